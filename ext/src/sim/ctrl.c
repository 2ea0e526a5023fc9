/* SPDX-License-Identifier: MIT */
/*
 * ctrl.c - simulated controller: queue state, completion posting, MSI-X.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "aionvme/arena.h"
#include "aionvme/sim.h"

static inline uint32_t db_read(struct sim_ctrl *c, uint32_t off)
{
	/* Acquire: SQEs written before the doorbell are visible after it. */
	return __atomic_load_n((uint32_t *)(c->bar + off), __ATOMIC_ACQUIRE);
}

static inline uint32_t *shadow(struct sim_ctrl *c, uint64_t base, uint16_t qid, int cq)
{
	return (uint32_t *)(c->arena + base + (2u * qid + (unsigned)cq) * (4u << c->dstrd));
}

/*
 * 5.11: once a Doorbell Buffer Config command succeeded, an I/O queue's
 * doorbell values are read from the Shadow Doorbell buffer in host memory.
 */
static inline uint32_t sq_db(struct sim_ctrl *c, uint16_t qid)
{
	if (c->dbbuf_enabled && qid)
		return __atomic_load_n(shadow(c, c->dbbuf_dbs, qid, 0), __ATOMIC_ACQUIRE);
	return db_read(c, ANV_REG_DBS + (2u * qid) * (4u << c->dstrd));
}

static inline uint32_t cq_db(struct sim_ctrl *c, uint16_t qid)
{
	if (c->dbbuf_enabled && qid)
		return __atomic_load_n(shadow(c, c->dbbuf_dbs, qid, 1), __ATOMIC_ACQUIRE);
	return db_read(c, ANV_REG_DBS + (2u * qid + 1u) * (4u << c->dstrd));
}

int sim_dbbuf_config(struct sim_ctrl *c, uint64_t dbs, uint64_t eis)
{
	uint64_t span = 2u * SIM_MAX_QUEUES * (4u << c->dstrd);

	if (dbs < ANV_ARENA_RESERVED || eis < ANV_ARENA_RESERVED || dbs + span > c->arena_size ||
	    eis + span > c->arena_size) {
		errno = EINVAL;
		return -1;
	}
	for (uint16_t q = 1; q < SIM_MAX_QUEUES; q++) {
		if (c->sq[q].valid) {
			*shadow(c, dbs, q, 0) = db_read(c, ANV_REG_DBS + (2u * q) * (4u << c->dstrd));
			*shadow(c, eis, q, 0) = c->sq[q].head;
		}
		if (c->cq[q].valid) {
			*shadow(c, dbs, q, 1) = db_read(c, ANV_REG_DBS + (2u * q + 1u) * (4u << c->dstrd));
			*shadow(c, eis, q, 1) = c->cq[q].head;
		}
	}
	c->dbbuf_dbs = dbs;
	c->dbbuf_eis = eis;
	__atomic_store_n(&c->dbbuf_enabled, 1, __ATOMIC_RELEASE);
	return 0;
}

/*
 * The host rings the MMIO doorbell only when its new value passes EventIdx
 * (the virtio rule Linux's nvme_dbbuf_need_event() applies).  EventIdx one
 * behind what the controller has seen suppresses the ring; equal to it asks
 * for one.
 */
void sim_dbbuf_publish(struct sim_ctrl *c, int suppress)
{
	if (!c->dbbuf_enabled)
		return;
	for (uint16_t q = 1; q < SIM_MAX_QUEUES; q++) {
		if (c->sq[q].valid)
			__atomic_store_n(shadow(c, c->dbbuf_eis, q, 0),
					 (uint32_t)(uint16_t)(c->sq_db_seen[q] - (suppress ? 1u : 0u)),
					 __ATOMIC_RELEASE);
		if (c->cq[q].valid)
			__atomic_store_n(shadow(c, c->dbbuf_eis, q, 1),
					 (uint32_t)(uint16_t)(c->cq[q].head - (suppress ? 1u : 0u)),
					 __ATOMIC_RELEASE);
	}
	/* EventIdx is visible before the doorbells are read again (Dekker pairing). */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

int sim_ctrl_init(struct sim_ctrl *c, uint8_t *bar, uint8_t *arena, uint64_t arena_size)
{
	memset(c, 0, sizeof(*c));
	c->bar = bar;
	c->arena = arena;
	c->arena_size = arena_size;
	c->scratch_size = 4u << 20;
	c->scratch = malloc(c->scratch_size);
	c->delayed = calloc(SIM_MAX_DELAYED, sizeof(*c->delayed));
	c->journal = calloc(SIM_JOURNAL_MAX, sizeof(*c->journal));
	c->journal_slab = mmap(NULL, SIM_JOURNAL_BYTES, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (c->journal_slab == MAP_FAILED)
		c->journal_slab = NULL;
	for (int i = 0; i < ANV_MSIX_MAX_VECTORS; i++)
		c->irq_fd[i] = -1;
	for (int i = 0; i <= SIM_MAX_NS; i++)
		c->ns[i].media_fd = -1;
	if (!c->scratch || !c->delayed || !c->journal || !c->journal_slab) {
		sim_ctrl_fini(c);
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

void sim_ctrl_fini(struct sim_ctrl *c)
{
	for (uint32_t i = 1; i <= SIM_MAX_NS; i++)
		sim_ns_detach(c, i);
	sim_flush(c);
	free(c->scratch);
	free(c->delayed);
	free(c->journal);
	if (c->journal_slab)
		munmap(c->journal_slab, SIM_JOURNAL_BYTES);
	c->journal_slab = NULL;
	c->scratch = NULL;
	c->delayed = NULL;
	c->journal = NULL;
}

void sim_cq_create(struct sim_ctrl *c, uint16_t qid, uint64_t iova, uint32_t size,
		   uint16_t vector, uint8_t ien)
{
	struct sim_cq *cq = &c->cq[qid];

	memset(cq, 0, sizeof(*cq));
	cq->valid = 1;
	cq->iova = iova;
	cq->size = size;
	cq->vector = vector;
	cq->ien = ien;
	cq->phase = 1;
	if (c->dbbuf_enabled) {
		*shadow(c, c->dbbuf_dbs, qid, 1) = 0;
		*shadow(c, c->dbbuf_eis, qid, 1) = 0;
	}
	/* Doorbells of a new queue start at 0. */
	__atomic_store_n((uint32_t *)(c->bar + ANV_REG_DBS + (2u * qid + 1u) * (4u << c->dstrd)), 0,
			 __ATOMIC_RELEASE);
}

void sim_sq_create(struct sim_ctrl *c, uint16_t qid, uint64_t iova, uint32_t size,
		   uint16_t cqid, uint8_t prio)
{
	struct sim_sq *sq = &c->sq[qid];

	memset(sq, 0, sizeof(*sq));
	sq->valid = 1;
	sq->iova = iova;
	sq->size = size;
	sq->cqid = cqid;
	sq->prio = prio;
	c->cq[cqid].nsq++;
	c->sq_db_seen[qid] = 0;
	if (c->dbbuf_enabled) {
		*shadow(c, c->dbbuf_dbs, qid, 0) = 0;
		*shadow(c, c->dbbuf_eis, qid, 0) = 0;
	}
	__atomic_store_n((uint32_t *)(c->bar + ANV_REG_DBS + (2u * qid) * (4u << c->dstrd)), 0,
			 __ATOMIC_RELEASE);
}

void sim_cq_delete(struct sim_ctrl *c, uint16_t qid)
{
	if (c->cq[qid].coal_due_ns && c->coal_held)
		c->coal_held--;
	memset(&c->cq[qid], 0, sizeof(c->cq[qid]));
}

void sim_sq_delete(struct sim_ctrl *c, uint16_t qid)
{
	struct sim_sq *sq = &c->sq[qid];

	if (!sq->valid)
		return;
	if (c->cq[sq->cqid].nsq)
		c->cq[sq->cqid].nsq--;
	/* Delayed completions of this SQ are dropped with it. */
	for (uint32_t i = 0; i < c->ndelayed;) {
		if (c->delayed[i].cqe.sqid == qid)
			c->delayed[i] = c->delayed[--c->ndelayed];
		else
			i++;
	}
	memset(sq, 0, sizeof(*sq));
}

void sim_queues_reset(struct sim_ctrl *c)
{
	memset(c->sq, 0, sizeof(c->sq));
	memset(c->cq, 0, sizeof(c->cq));
	c->coal_held = 0;
	memset(c->sq_db_seen, 0, sizeof(c->sq_db_seen));
	c->ndelayed = 0;
	c->dbbuf_enabled = 0; /* a Controller Level Reset forgets the doorbell buffers */
	c->hung = 0;          /* and a hung controller starts over */
	memset(c->bar + ANV_REG_DBS, 0, ANV_MSIX_TABLE_OFF - ANV_REG_DBS);
}

static inline uint8_t *iova_ptr(struct sim_ctrl *c, uint64_t iova, uint64_t len)
{
	if (iova < ANV_ARENA_RESERVED || iova >= c->arena_size || len > c->arena_size - iova)
		return NULL;
	return c->arena + iova;
}

/* 7.6 / MSI-X: deliver @vector unless masked; a masked vector goes pending in the PBA. */
static void fire(struct sim_ctrl *c, uint16_t vector)
{
	uint32_t ctrl_word;
	uint64_t one = 1;
	uint64_t *pba = (uint64_t *)(c->bar + ANV_MSIX_PBA_OFF);

	if (vector >= c->nvec || c->irq_fd[vector] < 0)
		return;
	ctrl_word = __atomic_load_n((uint32_t *)(c->bar + ANV_MSIX_TABLE_OFF + 16u * vector + 12u),
				    __ATOMIC_ACQUIRE);
	if (!c->msix_enabled || c->msix_fmask || (ctrl_word & 1u)) {
		__atomic_fetch_or(&pba[vector / 64], 1ull << (vector % 64), __ATOMIC_RELEASE);
		return;
	}
	c->irq_count[vector]++;
	if (write(c->irq_fd[vector], &one, sizeof(one)) < 0) {
		/* The host closed its end; nothing to deliver to. */
	}
}

void sim_irq_check_pending(struct sim_ctrl *c)
{
	uint64_t *pba = (uint64_t *)(c->bar + ANV_MSIX_PBA_OFF);

	for (uint32_t v = 0; v < c->nvec; v++) {
		if (pba[v / 64] & (1ull << (v % 64))) {
			uint32_t ctrl_word = *(uint32_t *)(c->bar + ANV_MSIX_TABLE_OFF + 16u * v + 12u);

			if (c->msix_enabled && !c->msix_fmask && !(ctrl_word & 1u)) {
				__atomic_fetch_and(&pba[v / 64], ~(1ull << (v % 64)), __ATOMIC_RELEASE);
				fire(c, (uint16_t)v);
			}
		}
	}
}

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * 5.27.1.6: an I/O CQ's interrupt may wait until THR + 1 entries are posted,
 * for at most TIME * 100 us; never on the admin CQ, nor on a vector with
 * Coalescing Disable set (5.27.1.7).  TIME 0 allows no wait at all.
 */
static inline int coalesced(const struct sim_ctrl *c, uint16_t qid, const struct sim_cq *cq)
{
	return qid && c->coal_thr && c->coal_time && cq->vector < ANV_MSIX_MAX_VECTORS &&
	       !c->coal_disable[cq->vector];
}

void sim_fire_pending(struct sim_ctrl *c)
{
	uint64_t now = 0;

	for (uint32_t q = 0; q < SIM_MAX_QUEUES; q++) {
		struct sim_cq *cq = &c->cq[q];

		if (!cq->valid || !cq->irq_due)
			continue;
		if (cq->ien && coalesced(c, (uint16_t)q, cq)) {
			if (!now)
				now = mono_ns();
			if (!cq->coal_due_ns) {
				cq->coal_due_ns = now + (uint64_t)c->coal_time * 100000u;
				c->coal_held++;
			}
			if (cq->coal_count < (uint32_t)c->coal_thr + 1u && now < cq->coal_due_ns)
				continue; /* held: more entries, or the aggregation time, first */
			cq->coal_due_ns = 0;
			c->coal_held--;
		}
		cq->irq_due = 0;
		cq->coal_count = 0;
		if (cq->ien)
			fire(c, cq->vector);
	}
}

/* The earliest held interrupt's deadline, 0 when none is held. */
static uint64_t coal_next_due(const struct sim_ctrl *c)
{
	uint64_t due = 0;

	for (uint32_t q = 1; c->coal_held && q < SIM_MAX_QUEUES; q++) {
		const struct sim_cq *cq = &c->cq[q];

		if (cq->valid && cq->coal_due_ns && (!due || cq->coal_due_ns < due))
			due = cq->coal_due_ns;
	}
	return due;
}

int __sim_cq_full(struct sim_ctrl *c, uint16_t cqid);

static int cq_full(struct sim_ctrl *c, uint16_t cqid)
{
	struct sim_cq *cq = &c->cq[cqid];
	uint32_t head = cq_db(c, cqid);

	if (head < cq->size)
		cq->head = head;
	else
		c->evt_invalid_db_val++;
	return (cq->tail + 1) % cq->size == cq->head;
}

/* For loop.c: the same answer the fetch path gets. */
int __sim_cq_full(struct sim_ctrl *c, uint16_t cqid)
{
	return cq_full(c, cqid);
}

static int post_cqe(struct sim_ctrl *c, uint16_t cqid, struct anv_cqe *e)
{
	struct sim_cq *cq = &c->cq[cqid];
	struct anv_cqe *slot;

	if (!cq->valid || cq_full(c, cqid))
		return -1;
	slot = (struct anv_cqe *)iova_ptr(c, cq->iova + (uint64_t)cq->tail * 16u, 16);
	if (!slot)
		return -1;
	slot->cdw0 = e->cdw0;
	slot->cdw1 = e->cdw1;
	slot->sqhd = e->sqhd;
	slot->sqid = e->sqid;
	slot->cid = e->cid;
	/* Release: the entry is complete before its phase tag flips (4.2). */
	__atomic_store_n(&slot->status, (uint16_t)((e->status & ~1u) | cq->phase), __ATOMIC_RELEASE);
	if (++cq->tail == cq->size) {
		cq->tail = 0;
		cq->phase ^= 1u;
	}
	cq->irq_due = 1;
	cq->coal_count++;
	return 0;
}

int sim_post(struct sim_ctrl *c, uint16_t sqid, uint16_t cid, uint16_t status,
	     uint32_t cdw0, int do_fire)
{
	struct anv_cqe e;
	struct sim_sq *sq;

	if (sqid >= SIM_MAX_QUEUES)
		return -1;
	sq = &c->sq[sqid];
	memset(&e, 0, sizeof(e));
	e.cdw0 = cdw0;
	e.sqhd = (uint16_t)sq->head;
	e.sqid = sqid;
	e.cid = cid;
	e.status = status;
	if (post_cqe(c, sq->cqid, &e) < 0)
		return -1;
	if (do_fire)
		sim_fire_pending(c);
	return 0;
}

/* Post or park a completion, honouring a delay fault. */
int __sim_complete(struct sim_ctrl *c, uint16_t sqid, uint16_t cid, uint16_t status,
		   uint32_t cdw0, uint32_t delay_us, uint64_t now_ns)
{
	if (delay_us && c->ndelayed < SIM_MAX_DELAYED) {
		struct sim_delayed *d = &c->delayed[c->ndelayed++];

		memset(d, 0, sizeof(*d));
		d->cqid = c->sq[sqid].cqid;
		d->due_ns = now_ns + (uint64_t)delay_us * 1000u;
		d->cqe.cdw0 = cdw0;
		d->cqe.sqhd = (uint16_t)c->sq[sqid].head;
		d->cqe.sqid = sqid;
		d->cqe.cid = cid;
		d->cqe.status = status;
		return 0;
	}
	return sim_post(c, sqid, cid, status, cdw0, 0);
}

int sim_tick(struct sim_ctrl *c, uint64_t now_ns, uint64_t *next_due_ns)
{
	int n = 0;

	*next_due_ns = 0;
	for (uint32_t i = 0; i < c->ndelayed;) {
		struct sim_delayed *d = &c->delayed[i];

		if (d->due_ns <= now_ns) {
			if (post_cqe(c, d->cqid, &d->cqe) == 0) {
				c->delayed[i] = c->delayed[--c->ndelayed];
				n++;
				continue;
			}
		}
		if (!*next_due_ns || d->due_ns < *next_due_ns)
			*next_due_ns = d->due_ns;
		i++;
	}
	if (n || c->coal_held) {
		uint64_t due;

		sim_fire_pending(c);
		due = coal_next_due(c);
		if (due && (!*next_due_ns || due < *next_due_ns))
			*next_due_ns = due;
	}
	return n;
}

/*
 * Take the next SQE of @qid if the doorbell says there is one and the CQ has
 * room for its completion.  An out of range tail is an invalid doorbell
 * write value (5.2, asynchronous event) and is ignored.
 */
int __sim_sq_fetch(struct sim_ctrl *c, uint16_t qid, struct anv_sqe *sqe)
{
	struct sim_sq *sq = &c->sq[qid];
	uint32_t tail = sq_db(c, qid);
	const uint8_t *src;

	if (tail >= sq->size) {
		if (tail != c->sq_db_seen[qid])
			c->evt_invalid_db_val++;
		c->sq_db_seen[qid] = tail;
		return 0;
	}
	c->sq_db_seen[qid] = tail;
	if (sq->head == tail)
		return 0;
	if (cq_full(c, sq->cqid))
		return 0;
	src = iova_ptr(c, sq->iova + (uint64_t)sq->head * 64u, 64);
	if (!src)
		return 0;
	memcpy(sqe, src, sizeof(*sqe));
	if (++sq->head == sq->size)
		sq->head = 0;
	return 1;
}

int sim_admin_fetch(struct sim_ctrl *c, struct anv_sqe *sqe)
{
	if (!c->sq[0].valid || c->hung)
		return 0;
	return __sim_sq_fetch(c, 0, sqe);
}
