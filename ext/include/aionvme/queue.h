/* SPDX-License-Identifier: MIT */
/*
 * queue.h - host side submission/completion queue pair: rings in the DMA
 * arena, CID allocation from a free stack, PRP lists, and the cmdlog.
 */
#ifndef AIONVME_QUEUE_H
#define AIONVME_QUEUE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "aionvme/arena.h"
#include "aionvme/cmdlog.h"
#include "aionvme/dev.h"
#include "aionvme/nvme.h"

/**
 * struct anv_qpair - one SQ and its CQ (qid 0 is the admin pair)
 * @depth: entries in each ring; at most depth - 1 commands are outstanding
 *         (3.3.1: the queue is full when tail + 1 == head)
 * @cid_busy: per CID slot, 1 while the device owns the command
 * @cid_tag: per slot, the CID value of its current command: the slot in the
 *           low @slot_bits bits, a generation above them that changes at every
 *           allocation, so a late or duplicate CQE of the slot's previous command
 *           matches nothing (a slot is reused at once: the free stack is LIFO)
 * @prp_iova: one PRP list page per CID slot, at prp_iova + slot * 4096
 *
 * "CID" in this API is the slot (an index below @depth); what goes into an
 * SQE's CID field is anv_qpair_cid_tag() of it.
 */
struct anv_qpair {
	struct anv_dev *dev;
	struct anv_arena *arena;
	uint16_t qid;
	uint32_t depth;
	uint32_t dstrd;
	uint8_t attached; /* rings belong to another process (anv_qpair_attach) */

	struct anv_sqe *sq;
	uint64_t sq_iova;
	uint32_t sq_tail;
	uint32_t sq_head; /* last SQHD the controller reported */

	struct anv_cqe *cq;
	uint64_t cq_iova;
	uint32_t cq_head;
	uint16_t phase;

	uint16_t *free_cids;
	uint32_t nfree;
	uint8_t *cid_busy;
	uint16_t *cid_tag;
	uint32_t slot_mask; /* (1 << slot_bits) - 1 */
	uint8_t slot_bits;
	uint64_t *cid_seq; /* cmdlog sequence of the command holding the CID */

	uint64_t prp_iova;
	uint64_t *prp_list;

	/* 5.11 shadow doorbells and EventIdx (NULL: MMIO doorbells only) */
	uint32_t *shadow_sq, *shadow_cq;
	uint32_t *ei_sq, *ei_cq;

	struct anv_cmdlog log;
};

/* An EventIdx no controller has written yet (values it writes are below 65536). */
#define ANV_EVENTIDX_UNSET 0xffff0000u

/* SQyTDBL and CQyHDBL offsets, 4 << CAP.DSTRD bytes apart */
static inline uint32_t anv_sq_db_off(uint16_t qid, uint32_t dstrd)
{
	return ANV_REG_DBS + (2u * qid) * (4u << dstrd);
}

static inline uint32_t anv_cq_db_off(uint16_t qid, uint32_t dstrd)
{
	return ANV_REG_DBS + (2u * qid + 1u) * (4u << dstrd);
}

int anv_qpair_init(struct anv_qpair *qp, struct anv_dev *dev, struct anv_arena *arena,
		   uint16_t qid, uint32_t depth, uint32_t dstrd);
void anv_qpair_fini(struct anv_qpair *qp);

/**
 * anv_qpair_attach() - use rings that another process allocated
 * @arena: a mapping of the same arena (anv_arena_map())
 * @sq_iova/@cq_iova: the rings of a queue pair already created on the
 *                    controller, empty (tail, head 0; phase 1)
 * @prp_iova: depth pages for the PRP lists, one per CID
 *
 * Only the CID table is allocated here; anv_qpair_fini() leaves the rings
 * in the arena to their owner.
 *
 * Return: 0, or -1 with errno set (EINVAL: a ring is outside the arena).
 */
int anv_qpair_attach(struct anv_qpair *qp, struct anv_dev *dev, struct anv_arena *arena,
		     uint16_t qid, uint32_t depth, uint32_t dstrd, uint64_t sq_iova,
		     uint64_t cq_iova, uint64_t prp_iova);

/**
 * anv_qpair_cid_alloc() - take a free CID
 *
 * Return: the CID, or -1 with errno EBUSY when depth - 1 commands are out.
 */
static inline int anv_qpair_cid_alloc(struct anv_qpair *qp)
{
	uint16_t cid;

	if (!qp->nfree) {
		errno = EBUSY;
		return -1;
	}
	cid = qp->free_cids[--qp->nfree];
	qp->cid_busy[cid] = 1;
	if (qp->slot_bits < 16) /* a new generation: 16 - slot_bits bits of it */
		qp->cid_tag[cid] = (uint16_t)(cid | ((((uint32_t)qp->cid_tag[cid] >> qp->slot_bits) + 1u)
						      << qp->slot_bits));
	return cid;
}

/* The CID field value for the command in slot @cid (see struct anv_qpair). */
static inline uint16_t anv_qpair_cid_tag(const struct anv_qpair *qp, uint16_t cid)
{
	return qp->cid_tag[cid];
}

/* The slot a CQE's CID field names, if it names one. */
static inline uint32_t anv_qpair_cid_slot(const struct anv_qpair *qp, uint16_t tag)
{
	return tag & qp->slot_mask;
}

/* Give back a CID that was never submitted. */
static inline void anv_qpair_cid_put(struct anv_qpair *qp, uint16_t cid)
{
	if (cid < qp->depth && qp->cid_busy[cid]) {
		qp->cid_busy[cid] = 0;
		qp->free_cids[qp->nfree++] = cid;
	}
}

/**
 * anv_qpair_build_prp() - PRP entries for a transfer of @len bytes at @iova
 * @cid: the command whose PRP list page may be used
 *
 * 4.1.1: PRP1 may carry a page offset; every further entry is page aligned.
 * A list is built in the CID's own page; a transfer needing more than one
 * list page fails with E2BIG (MDTS keeps it from happening).
 *
 * Return: 0, or -1 with errno set.
 */
int anv_qpair_build_prp(struct anv_qpair *qp, uint16_t cid, uint64_t iova, uint64_t len,
			uint64_t *prp1, uint64_t *prp2);

/**
 * anv_qpair_build_prp_for() - PRP entries for a buffer of @len bytes at @iova
 * that a command transfers @xfer bytes of
 *
 * The entries take the shape the device reads for @xfer (4.1.1: PRP2 is a
 * data page when the transfer crosses one page boundary, a PRP list pointer
 * when it crosses more), filled only with the buffer's own pages: where
 * @xfer exceeds @len, PRP2 or the list entries past the buffer are 0h, so the
 * device never reaches outside the buffer, nor reads a data page as a list;
 * where it is shorter, a list page is never taken for the second data page.
 *
 * Return: 0, or -1 with errno set (E2BIG: the buffer needs a second list page).
 */
int anv_qpair_build_prp_for(struct anv_qpair *qp, uint16_t cid, uint64_t iova, uint64_t len,
			    uint64_t xfer, uint64_t *prp1, uint64_t *prp2);

/**
 * anv_qpair_submit() - copy @sqe (its cid already set) to the SQ tail and
 * ring the doorbell when @ring is set.
 *
 * Return: 0, or -1 with errno set (EIO from the backend).
 */
int anv_qpair_submit(struct anv_qpair *qp, const struct anv_sqe *sqe, int ring);

/**
 * anv_qpair_set_dbbuf() - use the Shadow Doorbell (@dbs) and EventIdx (@eis)
 * pages given to the controller with Doorbell Buffer Config; NULL turns
 * them off.  The shadow entries are set to the current doorbell values and
 * EventIdx to ANV_EVENTIDX_UNSET (ring until the controller writes one).
 */
void anv_qpair_set_dbbuf(struct anv_qpair *qp, uint8_t *dbs, uint8_t *eis);

/* Write the SQ tail doorbell (after submits made with ring = 0). */
int anv_qpair_ring(struct anv_qpair *qp);

/**
 * anv_qpair_reap_ex() - anv_qpair_reap(), telling which CQEs matched
 * @matched: NULL, or @max bytes: 1 for a CQE whose CID named an outstanding
 *           command (now completed, its slot freed), 0 for one that named
 *           none (a duplicate, a late or an unknown CID: a misbehaving device)
 */
int anv_qpair_reap_ex(struct anv_qpair *qp, struct anv_cqe *out, int max, uint8_t *matched);

/**
 * anv_qpair_reap() - take up to @max new CQEs into @out
 * @bad: set to the number of reaped CQEs whose CID was not outstanding
 *
 * The CQ head doorbell is written once for the batch.  The CID of every
 * reaped CQE that matches an outstanding command is freed.
 *
 * Return: the number of CQEs copied, or -1 with errno set.
 */
int anv_qpair_reap(struct anv_qpair *qp, struct anv_cqe *out, int max);

/**
 * anv_qpair_reset_rings() - start over with empty rings (the queue is about
 * to be created again on the device after a reset); outstanding CIDs are
 * dropped.
 */
void anv_qpair_reset_rings(struct anv_qpair *qp);

/* Free every outstanding CID: the queue is gone on the device. */
void anv_qpair_drop_all(struct anv_qpair *qp);

/**
 * anv_qpair_sq_slot() - the SQE at the tail, to be filled in place and then
 * published with anv_qpair_sq_push() (the caller owns a CID for it)
 */
static inline struct anv_sqe *anv_qpair_sq_slot(struct anv_qpair *qp)
{
	return &qp->sq[qp->sq_tail];
}

/* Advance the SQ tail over the filled slot; the doorbell comes with anv_qpair_ring(). */
static inline void anv_qpair_sq_push(struct anv_qpair *qp)
{
	if (++qp->sq_tail == qp->depth)
		qp->sq_tail = 0;
}

/* 1 when the CQ head entry carries the current phase tag (a new CQE, 4.2). */
static inline int anv_qpair_cq_ready(const struct anv_qpair *qp)
{
	return (__atomic_load_n(&qp->cq[qp->cq_head].status, __ATOMIC_ACQUIRE) & 1u) == qp->phase;
}

static inline int anv_qpair_outstanding(const struct anv_qpair *qp)
{
	return (int)(qp->depth - 1 - qp->nfree);
}

#endif /* AIONVME_QUEUE_H */
