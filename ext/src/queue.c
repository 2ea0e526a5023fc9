/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "aionvme/debug.h"
#include "aionvme/queue.h"

static int cids_init(struct anv_qpair *qp)
{
	uint32_t depth = qp->depth;

	qp->free_cids = calloc(depth, sizeof(uint16_t));
	qp->cid_busy = calloc(depth, 1);
	qp->cid_tag = calloc(depth, sizeof(uint16_t));
	qp->cid_seq = calloc(depth, sizeof(uint64_t));
	if (!qp->free_cids || !qp->cid_busy || !qp->cid_tag || !qp->cid_seq) {
		errno = ENOMEM;
		return -1;
	}
	qp->slot_bits = 0;
	while ((1u << qp->slot_bits) < depth)
		qp->slot_bits++;
	qp->slot_mask = (1u << qp->slot_bits) - 1u;
	for (uint32_t i = 0; i < depth; i++)
		qp->cid_tag[i] = (uint16_t)i;
	/* CIDs 0 .. depth-2; pop order gives the lowest first. */
	for (uint32_t i = 0; i < depth - 1; i++)
		qp->free_cids[i] = (uint16_t)(depth - 2 - i);
	qp->nfree = depth - 1;
	return 0;
}

int anv_qpair_init(struct anv_qpair *qp, struct anv_dev *dev, struct anv_arena *arena,
		   uint16_t qid, uint32_t depth, uint32_t dstrd)
{
	int64_t off;

	memset(qp, 0, sizeof(*qp));
	if (depth < 2 || depth > 65536) {
		errno = EINVAL;
		return -1;
	}
	qp->dev = dev;
	qp->arena = arena;
	qp->qid = qid;
	qp->depth = depth;
	qp->dstrd = dstrd;
	qp->phase = 1; /* 4.2: the phase tag of a new CQ starts at 1 */
	qp->sq_iova = qp->cq_iova = qp->prp_iova = (uint64_t)-1;

	off = anv_arena_alloc(arena, (size_t)depth * sizeof(struct anv_sqe));
	if (off < 0)
		goto fail;
	qp->sq_iova = (uint64_t)off;
	qp->sq = anv_arena_ptr(arena, qp->sq_iova);

	off = anv_arena_alloc(arena, (size_t)depth * sizeof(struct anv_cqe));
	if (off < 0)
		goto fail;
	qp->cq_iova = (uint64_t)off;
	qp->cq = anv_arena_ptr(arena, qp->cq_iova);

	off = anv_arena_alloc(arena, (size_t)depth * ANV_PAGE_SIZE);
	if (off < 0)
		goto fail;
	qp->prp_iova = (uint64_t)off;
	qp->prp_list = anv_arena_ptr(arena, qp->prp_iova);

	if (cids_init(qp) < 0)
		goto fail;

	if (anv_cmdlog_init(&qp->log, depth * 2) < 0)
		goto fail;
	return 0;

fail:
	anv_qpair_fini(qp);
	if (!errno)
		errno = ENOMEM;
	return -1;
}

int anv_qpair_attach(struct anv_qpair *qp, struct anv_dev *dev, struct anv_arena *arena,
		     uint16_t qid, uint32_t depth, uint32_t dstrd, uint64_t sq_iova,
		     uint64_t cq_iova, uint64_t prp_iova)
{
	memset(qp, 0, sizeof(*qp));
	qp->sq_iova = qp->cq_iova = qp->prp_iova = (uint64_t)-1;
	if (depth < 2 || depth > 65536 ||
	    sq_iova + (uint64_t)depth * sizeof(struct anv_sqe) > arena->size ||
	    cq_iova + (uint64_t)depth * sizeof(struct anv_cqe) > arena->size ||
	    prp_iova + (uint64_t)depth * ANV_PAGE_SIZE > arena->size ||
	    sq_iova < ANV_ARENA_RESERVED || cq_iova < ANV_ARENA_RESERVED ||
	    prp_iova < ANV_ARENA_RESERVED) {
		errno = EINVAL;
		return -1;
	}
	qp->attached = 1;
	qp->dev = dev;
	qp->arena = arena;
	qp->qid = qid;
	qp->depth = depth;
	qp->dstrd = dstrd;
	qp->phase = 1; /* 4.2: the phase tag of a new CQ starts at 1 */
	qp->sq_iova = sq_iova;
	qp->sq = anv_arena_ptr(arena, sq_iova);
	qp->cq_iova = cq_iova;
	qp->cq = anv_arena_ptr(arena, cq_iova);
	qp->prp_iova = prp_iova;
	qp->prp_list = anv_arena_ptr(arena, prp_iova);
	if (cids_init(qp) < 0) {
		anv_qpair_fini(qp);
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

void anv_qpair_fini(struct anv_qpair *qp)
{
	if (qp->attached)
		qp->sq_iova = qp->cq_iova = qp->prp_iova = (uint64_t)-1;
	if (qp->sq_iova != (uint64_t)-1 && qp->arena)
		anv_arena_free(qp->arena, qp->sq_iova, (size_t)qp->depth * sizeof(struct anv_sqe));
	if (qp->cq_iova != (uint64_t)-1 && qp->arena)
		anv_arena_free(qp->arena, qp->cq_iova, (size_t)qp->depth * sizeof(struct anv_cqe));
	if (qp->prp_iova != (uint64_t)-1 && qp->arena)
		anv_arena_free(qp->arena, qp->prp_iova, (size_t)qp->depth * ANV_PAGE_SIZE);
	qp->sq_iova = qp->cq_iova = qp->prp_iova = (uint64_t)-1;
	free(qp->free_cids);
	free(qp->cid_busy);
	free(qp->cid_tag);
	free(qp->cid_seq);
	qp->free_cids = NULL;
	qp->cid_busy = NULL;
	qp->cid_tag = NULL;
	qp->cid_seq = NULL;
	anv_cmdlog_fini(&qp->log);
}

int anv_qpair_build_prp(struct anv_qpair *qp, uint16_t cid, uint64_t iova, uint64_t len,
			uint64_t *prp1, uint64_t *prp2)
{
	return anv_qpair_build_prp_for(qp, cid, iova, len, len, prp1, prp2);
}

int anv_qpair_build_prp_for(struct anv_qpair *qp, uint16_t cid, uint64_t iova, uint64_t len,
			    uint64_t xfer, uint64_t *prp1, uint64_t *prp2)
{
	uint64_t first = ANV_PAGE_SIZE - (iova & (ANV_PAGE_SIZE - 1));
	uint64_t page = iova + first, n = 0, shape = xfer;
	uint64_t *list;

	*prp1 = iova;
	*prp2 = 0;
	if (shape <= first)
		return 0;
	if (len > first)
		n = (len - first + ANV_PAGE_SIZE - 1) / ANV_PAGE_SIZE; /* the buffer's further pages */
	if (shape - first <= ANV_PAGE_SIZE) {
		*prp2 = n ? page : 0;
		return 0;
	}
	if (n > (shape - first + ANV_PAGE_SIZE - 1) / ANV_PAGE_SIZE)
		n = (shape - first + ANV_PAGE_SIZE - 1) / ANV_PAGE_SIZE; /* what the transfer uses */
	/*
	 * One list page per CID: a buffer needing more entries than it holds,
	 * or filling it while the transfer needs more (its last entry would be
	 * read as a pointer to the next list), cannot be described.
	 */
	if (n > ANV_PAGE_SIZE / sizeof(uint64_t) ||
	    (n == ANV_PAGE_SIZE / sizeof(uint64_t) && shape - first > n * ANV_PAGE_SIZE)) {
		errno = E2BIG;
		return -1;
	}
	list = qp->prp_list + (size_t)cid * (ANV_PAGE_SIZE / sizeof(uint64_t));
	for (uint64_t i = 0; i < n; i++)
		list[i] = page + i * ANV_PAGE_SIZE;
	/*
	 * Entries past the buffer point at IOVA 0, which no backend maps: a
	 * command whose length exceeds its buffer cannot follow a stale entry
	 * into another buffer (the device answers Data Transfer Error).
	 */
	memset(list + n, 0, (ANV_PAGE_SIZE / sizeof(uint64_t) - n) * sizeof(uint64_t));
	*prp2 = qp->prp_iova + (uint64_t)cid * ANV_PAGE_SIZE;
	return 0;
}

void anv_qpair_set_dbbuf(struct anv_qpair *qp, uint8_t *dbs, uint8_t *eis)
{
	uint32_t sq_off = anv_sq_db_off(qp->qid, qp->dstrd) - ANV_REG_DBS;
	uint32_t cq_off = anv_cq_db_off(qp->qid, qp->dstrd) - ANV_REG_DBS;

	if (!dbs || !eis) {
		qp->shadow_sq = qp->shadow_cq = qp->ei_sq = qp->ei_cq = NULL;
		return;
	}
	qp->shadow_sq = (uint32_t *)(dbs + sq_off);
	qp->shadow_cq = (uint32_t *)(dbs + cq_off);
	qp->ei_sq = (uint32_t *)(eis + sq_off);
	qp->ei_cq = (uint32_t *)(eis + cq_off);
	__atomic_store_n(qp->shadow_sq, qp->sq_tail, __ATOMIC_RELEASE);
	__atomic_store_n(qp->shadow_cq, qp->cq_head, __ATOMIC_RELEASE);
	/*
	 * EventIdx may still hold what the controller wrote for a deleted
	 * queue of this qid, which would swallow the first rings.  A value no
	 * controller writes (doorbells are below 65536) means "not told yet:
	 * ring"; a controller that never maintains an EventIdx (QEMU 7.2 does
	 * not for CQs) thus still gets every MMIO doorbell it needs.
	 */
	__atomic_store_n(qp->ei_sq, ANV_EVENTIDX_UNSET, __ATOMIC_RELEASE);
	__atomic_store_n(qp->ei_cq, ANV_EVENTIDX_UNSET, __ATOMIC_RELEASE);
}

/* Linux's nvme_dbbuf_need_event(): has @new passed the EventIdx @ei since @old? */
static inline int need_event(uint16_t ei, uint16_t new, uint16_t old)
{
	return (uint16_t)(new - ei - 1) < (uint16_t)(new - old);
}

/*
 * 5.11: write the shadow doorbell, then ring the MMIO doorbell only when the
 * controller asked for it through EventIdx.
 */
static inline int db_ring(struct anv_qpair *qp, uint32_t *shadow, uint32_t *ei, uint32_t off,
		       uint32_t value, int force)
{
	if (shadow) {
		uint32_t old = __atomic_load_n(shadow, __ATOMIC_RELAXED), e;

		__atomic_store_n(shadow, value, __ATOMIC_RELEASE);
		/* The shadow store is visible before EventIdx is read (Dekker pairing). */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		e = __atomic_load_n(ei, __ATOMIC_ACQUIRE);
		if (!force && e < 0x10000u && !need_event((uint16_t)e, (uint16_t)value, (uint16_t)old))
			return 0;
	}
	return qp->dev->ops->doorbell(qp->dev, off, value);
}

int anv_qpair_ring(struct anv_qpair *qp)
{
	/*
	 * A command on an idle queue rings the MMIO doorbell even when EventIdx
	 * says the controller polls: at queue depth 1 the write is cheap next
	 * to the round trip, and without it the host thread is often asleep
	 * before the completion arrives (measured: QD1 p75 5 us vs 24 us on
	 * uvloop).  Busy queues follow EventIdx.
	 */
	return db_ring(qp, qp->shadow_sq, qp->ei_sq, anv_sq_db_off(qp->qid, qp->dstrd), qp->sq_tail,
		       anv_qpair_outstanding(qp) <= 1);
}

int anv_qpair_submit(struct anv_qpair *qp, const struct anv_sqe *sqe, int ring)
{
	uint32_t cid = anv_qpair_cid_slot(qp, sqe->cid);

	/* depth - 1 CIDs at most: the SQ can never be overrun (3.3.1). */
	anv_dbg_check(anv_qpair_outstanding(qp) <= (int)qp->depth - 1);
	anv_dbg_check(cid >= qp->depth || qp->cid_busy[cid]);
	memcpy(&qp->sq[qp->sq_tail], sqe, sizeof(*sqe));
	if (cid < qp->depth)
		qp->cid_seq[cid] = anv_cmdlog_submit(&qp->log, sqe);
	if (++qp->sq_tail == qp->depth)
		qp->sq_tail = 0;
	return ring ? anv_qpair_ring(qp) : 0;
}

int anv_qpair_reap(struct anv_qpair *qp, struct anv_cqe *out, int max)
{
	return anv_qpair_reap_ex(qp, out, max, NULL);
}

int anv_qpair_reap_ex(struct anv_qpair *qp, struct anv_cqe *out, int max, uint8_t *matched)
{
	int n = 0;

	while (n < max) {
		struct anv_cqe *cqe = &qp->cq[qp->cq_head];
		uint16_t status = __atomic_load_n(&cqe->status, __ATOMIC_ACQUIRE);

		/* 4.2: a new entry carries the current phase tag. */
		if ((status & 1u) != qp->phase)
			break;
		memcpy(&out[n], cqe, sizeof(*cqe));
		out[n].status = status;
		{
			uint32_t cid = anv_qpair_cid_slot(qp, out[n].cid);
			int ours = cid < qp->depth && qp->cid_busy[cid] &&
				   qp->cid_tag[cid] == out[n].cid;

			if (ours) {
				anv_dbg_check(qp->nfree < qp->depth - 1);
				anv_cmdlog_complete(&qp->log, qp->cid_seq[cid], &out[n]);
				qp->cid_busy[cid] = 0;
				qp->free_cids[qp->nfree++] = (uint16_t)cid;
			}
			if (matched)
				matched[n] = (uint8_t)ours;
		}
		qp->sq_head = out[n].sqhd;
		n++;
		if (++qp->cq_head == qp->depth) {
			qp->cq_head = 0;
			qp->phase ^= 1u;
		}
	}
	if (n && db_ring(qp, qp->shadow_cq, qp->ei_cq, anv_cq_db_off(qp->qid, qp->dstrd), qp->cq_head,
			 0) < 0)
		return -1;
	return n;
}

void anv_qpair_drop_all(struct anv_qpair *qp)
{
	for (uint32_t cid = 0; cid < qp->depth; cid++) {
		if (qp->cid_busy[cid]) {
			anv_cmdlog_flag(&qp->log, qp->cid_seq[cid], ANV_LOG_DROPPED);
			qp->cid_busy[cid] = 0;
			qp->free_cids[qp->nfree++] = cid;
		}
	}
}

void anv_qpair_reset_rings(struct anv_qpair *qp)
{
	anv_qpair_drop_all(qp);
	anv_qpair_set_dbbuf(qp, NULL, NULL); /* a reset forgets Doorbell Buffer Config */
	memset(qp->sq, 0, (size_t)qp->depth * sizeof(struct anv_sqe));
	memset(qp->cq, 0, (size_t)qp->depth * sizeof(struct anv_cqe));
	qp->sq_tail = qp->sq_head = 0;
	qp->cq_head = 0;
	qp->phase = 1;
}
