/* SPDX-License-Identifier: MIT */
/*
 * ioworker.c - the worker's IO loop: submit up to qdepth commands, ring the
 * SQ doorbell once per batch, reap CQEs in batches (one CQ head doorbell per
 * batch), and account each completion in the shared statistics block.  No
 * allocation and no system call per IO: one clock read per loop turn.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aionvme/debug.h"
#include "aionvme/ioworker.h"
#include "aionvme/stamp.h"

#define TIMEOUT_SCAN_NS 1000000u /* outstanding commands are checked against the timeout every 1 ms */
#define REAP_BATCH 64

struct iow {
	const struct anv_iow_cfg *cfg;
	struct anv_qpair *qp;  /* PCIe: the rings are ours */
	struct anv_kqueue *kq; /* kernel transport: an io_uring of passthrough commands */
	struct anv_sqe ksqe;   /* kq: the command being built */
	int32_t kerr[REAP_BATCH]; /* kq: errno of each reaped completion (0: an NVMe status) */
	uint8_t matched[REAP_BATCH]; /* PCIe: whether each reaped CQE named an outstanding command */
	uint64_t scan_ns;      /* when outstanding commands were last checked against the timeout */
	struct anv_iow_stats *st;
	uint64_t rng;
	uint64_t lo, nslots;   /* aligned start LBAs: lo + i * lba_align, i < nslots */
	uint64_t hi;           /* the highest start LBA */
	int dist;              /* random start LBAs drawn by section (cfg->dist_cum) */
	uint64_t sec_lo[ANV_IOW_SECTIONS], sec_n[ANV_IOW_SECTIONS]; /* slots of each section */
	uint64_t next_lba;     /* sequential */
	uint32_t io_bytes;
	int single_op;         /* -1: draw from the mix */
	uint64_t *sub_ns;      /* per CID: submission time */
	uint64_t *lba;         /* per CID: start LBA */
	uint32_t *nlb;         /* per CID: LBAs of its command */
	uint8_t *op;           /* per CID: enum anv_iow_op */
	uint64_t *prp1, *prp2; /* per CID: the data pointer of its buffer (for io_size) */
	uint64_t *log_seq;     /* per CID: its cmdlog entry's sequence number */
	uint64_t log_next;
	uint64_t submitted;
	uint32_t reason;
};

static const uint8_t op_opcode[ANV_IOW_NOPS] = {
	[ANV_IOW_READ] = ANV_NVM_READ,
	[ANV_IOW_WRITE] = ANV_NVM_WRITE,
	[ANV_IOW_FLUSH] = ANV_NVM_FLUSH,
	[ANV_IOW_WRITE_ZEROES] = ANV_NVM_WRITE_ZEROES,
	[ANV_IOW_DEALLOCATE] = ANV_NVM_DSM,
	[ANV_IOW_COMPARE] = ANV_NVM_COMPARE,
	[ANV_IOW_VERIFY] = ANV_NVM_VERIFY,
};

static inline uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: fast, and plenty for spreading LBAs. */
static inline uint64_t rnd(struct iow *w)
{
	w->rng ^= w->rng >> 12;
	w->rng ^= w->rng << 25;
	w->rng ^= w->rng >> 27;
	return w->rng * 0x2545f4914f6cdd1dull;
}

/* Uniform in [0, n) without a division (Lemire). */
static inline uint64_t rnd_below(struct iow *w, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rnd(w) * n) >> 64);
}

static inline void put64(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELAXED);
}

/* Cumulative weights: never decreasing; @need_total: the last is above 0. */
static int bad_cum(const uint64_t *cum, uint32_t n, int need_total)
{
	for (uint32_t i = 1; i < n; i++)
		if (cum[i] < cum[i - 1])
			return 1;
	return need_total && !cum[n - 1];
}

int anv_ioworker_check(const struct anv_iow_cfg *c, uint32_t depth)
{
	uint64_t first, nslots;

	if (!c->io_size || c->io_size > 0x10000 || !c->lba_align || !c->lba_size ||
	    !c->qdepth || c->qdepth > depth - 1 || c->region_end <= c->region_start ||
	    !c->data || !c->aux)
		goto invalid;
	first = (c->region_start + c->lba_align - 1) / c->lba_align * c->lba_align;
	if (first + c->io_size > c->region_end)
		goto invalid; /* no aligned IO fits in the region */
	nslots = (c->region_end - c->io_size - first) / c->lba_align + 1;
	if (c->nsizes > ANV_IOW_SIZES || (c->nsizes && bad_cum(c->size_cum, c->nsizes, 1)))
		goto invalid;
	for (uint32_t i = 0; i < c->nsizes; i++)
		if (!c->sizes[i] || c->sizes[i] > c->io_size)
			goto invalid;
	/* Every section needs at least one start LBA. */
	if (bad_cum(c->dist_cum, ANV_IOW_SECTIONS, 0) ||
	    (c->dist_cum[ANV_IOW_SECTIONS - 1] && nslots < ANV_IOW_SECTIONS))
		goto invalid;
	if (c->nseq && !c->seq)
		goto invalid;
	for (uint64_t i = 0; i < c->nseq; i++)
		if (c->seq[i].op >= ANV_IOW_NOPS || !c->seq[i].nlb || c->seq[i].nlb > c->io_size ||
		    (i && c->seq[i].time_ns < c->seq[i - 1].time_ns))
			goto invalid;
	if (c->lba_start && (c->lba_start < c->region_start ||
			     c->lba_start + c->io_size > c->region_end))
		goto invalid;
	for (uint32_t i = 0; i < ANV_IOW_MIX; i++)
		if (c->mix[i] >= ANV_IOW_NOPS)
			goto invalid;
	return 0;
invalid:
	errno = EINVAL;
	return -1;
}

static int iow_init(struct iow *w, const struct anv_iow_cfg *c, struct anv_qpair *qp,
		    struct anv_kqueue *kq, struct anv_iow_stats *st)
{
	uint32_t ncid = qp ? qp->depth : kq->depth;

	memset(w, 0, sizeof(*w));
	w->cfg = c;
	w->qp = qp;
	w->kq = kq;
	w->st = st;
	w->rng = c->seed ? c->seed : (mono_ns() ^ 0x9e3779b97f4a7c15ull);
	if (!w->rng)
		w->rng = 1;
	w->io_bytes = c->io_size * c->lba_size;
	w->lo = (c->region_start + c->lba_align - 1) / c->lba_align * c->lba_align;
	w->nslots = (c->region_end - c->io_size - w->lo) / c->lba_align + 1;
	w->hi = w->lo + (w->nslots - 1) * c->lba_align;
	w->next_lba = c->lba_start ? c->lba_start : w->lo;
	w->dist = c->dist_cum[ANV_IOW_SECTIONS - 1] != 0;
	for (uint32_t s = 0; s < ANV_IOW_SECTIONS; s++) {
		w->sec_lo[s] = w->nslots * s / ANV_IOW_SECTIONS;
		w->sec_n[s] = w->nslots * (s + 1u) / ANV_IOW_SECTIONS - w->sec_lo[s];
	}
	w->single_op = c->mix[0];
	for (uint32_t i = 1; i < ANV_IOW_MIX; i++)
		if (c->mix[i] != c->mix[0])
			w->single_op = -1;
	w->sub_ns = calloc(ncid, sizeof(uint64_t));
	w->lba = calloc(ncid, sizeof(uint64_t));
	w->nlb = calloc(ncid, sizeof(uint32_t));
	w->op = calloc(ncid, 1);
	w->prp1 = calloc(ncid, sizeof(uint64_t));
	w->prp2 = calloc(ncid, sizeof(uint64_t));
	w->log_seq = calloc(ncid, sizeof(uint64_t));
	if (!w->sub_ns || !w->lba || !w->nlb || !w->op || !w->prp1 || !w->prp2 || !w->log_seq)
		return -1;
	/* Each CID owns one data buffer: its PRPs (and PRP list) are built once. */
	for (uint32_t cid = 0; qp && cid < c->qdepth; cid++) {
		if (anv_qpair_build_prp(qp, (uint16_t)cid, c->data_iova + (uint64_t)cid * w->io_bytes,
					w->io_bytes, &w->prp1[cid], &w->prp2[cid]) < 0)
			return -1;
	}
	return 0;
}

static void iow_fini(struct iow *w)
{
	free(w->sub_ns);
	free(w->lba);
	free(w->nlb);
	free(w->op);
	free(w->prp1);
	free(w->prp2);
	free(w->log_seq);
}

/* The index of the first cumulative weight above a uniform draw below the total. */
static inline uint32_t pick(struct iow *w, const uint64_t *cum, uint32_t n)
{
	uint64_t r = rnd_below(w, cum[n - 1u]);
	uint32_t lo = 0, hi = n - 1u;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2u;

		if (r < cum[mid])
			hi = mid;
		else
			lo = mid + 1u;
	}
	return lo;
}

static inline uint64_t next_lba(struct iow *w, uint32_t nlb)
{
	const struct anv_iow_cfg *c = w->cfg;
	uint64_t lba, step;

	if (c->lba_random) {
		uint64_t slot;

		if (w->dist) {
			uint32_t s = pick(w, c->dist_cum, ANV_IOW_SECTIONS);

			slot = w->sec_lo[s] + rnd_below(w, w->sec_n[s]);
		} else {
			slot = rnd_below(w, w->nslots);
		}
		return w->lo + slot * c->lba_align;
	}
	lba = w->next_lba;
	/* Sequential: step, and wrap inside the region (a negative step wraps to the top). */
	if (c->lba_step_io || c->lba_step >= 0) {
		step = c->lba_step_io ? (nlb + c->lba_align - 1u) / c->lba_align * c->lba_align
				      : (uint64_t)c->lba_step;
		w->next_lba = lba + step;
		if (w->next_lba > w->hi || w->next_lba < w->lo)
			w->next_lba = w->lo;
	} else {
		uint64_t back = (uint64_t)(-c->lba_step);

		w->next_lba = lba >= w->lo + back ? lba - back : w->hi;
	}
	return lba;
}

/* PRP2 of @cid's buffer for @bytes: none, the second page, or its PRP list (4.1.1). */
static inline uint64_t prp2_for(const struct iow *w, uint16_t cid, uint32_t bytes)
{
	uint64_t first = ANV_PAGE_SIZE - (w->prp1[cid] & (ANV_PAGE_SIZE - 1u));

	if (bytes <= first)
		return 0;
	if (bytes - first <= ANV_PAGE_SIZE)
		return w->prp1[cid] + first;
	return w->prp2[cid];
}

/* The queue, PCIe or kernel: a CID, the SQE to fill, publishing it, the doorbell. */
static inline int q_outstanding(const struct iow *w)
{
	return w->kq ? anv_kqueue_outstanding(w->kq) : anv_qpair_outstanding(w->qp);
}

static inline int q_cid_alloc(struct iow *w)
{
	return w->kq ? anv_kqueue_cid_alloc(w->kq) : anv_qpair_cid_alloc(w->qp);
}

static inline struct anv_sqe *q_slot(struct iow *w)
{
	return w->kq ? &w->ksqe : anv_qpair_sq_slot(w->qp);
}

static inline void q_push(struct iow *w, void *data, uint32_t len)
{
	if (!w->kq) {
		anv_qpair_sq_push(w->qp);
		return;
	}
	/* The SQ has depth entries and at most depth - 1 commands are out: never full. */
	if (anv_kqueue_submit(w->kq, -1, &w->ksqe, data, len, 0, 0) < 0)
		anv_dbg_check(0);
}

static inline int q_ring(struct iow *w)
{
	if (!w->kq)
		return anv_qpair_ring(w->qp);
	/* The kernel may take fewer (EAGAIN, EBUSY): the rest go with the next enter. */
	if (anv_kqueue_flush(w->kq) < 0 && errno != EAGAIN && errno != EBUSY && errno != EINTR)
		return -1;
	return 0;
}

/*
 * A CQE that named no outstanding command: a duplicate, a late one of a slot's
 * previous command (its CID generation is stale), or a CID never used.  It is
 * an error of the run, and it completes nothing: the command holding the slot
 * now keeps its buffer until its own CQE.
 */
static void unmatched(struct iow *w, const struct anv_cqe *e)
{
	struct anv_iow_stats *st = w->st;

	put64(&st->errors, st->errors + 1u);
	if (st->errors == 1u) {
		st->first_error = *e;
		st->first_error_lba = 0;
		st->first_error_opcode = 0;
		st->first_error_kind = ANV_IOW_ERR_UNMATCHED;
	}
	if (!w->reason)
		w->reason = ANV_IOW_END_ERROR;
}

/* How long the oldest outstanding command has been with the device. */
static uint64_t oldest_outstanding(const struct iow *w, uint64_t now)
{
	const uint8_t *busy = w->kq ? w->kq->cid_busy : w->qp->cid_busy;
	uint32_t depth = w->kq ? w->kq->depth : w->qp->depth;
	uint64_t oldest = 0;

	for (uint32_t cid = 0; cid < depth; cid++)
		if (busy[cid] && now > w->sub_ns[cid] && now - w->sub_ns[cid] > oldest)
			oldest = now - w->sub_ns[cid];
	return oldest;
}

/* Reap up to @max CQEs of our commands into @out; the others are counted as errors. */
static inline int q_reap(struct iow *w, struct anv_cqe *out, int max)
{
	struct anv_kcpl k[REAP_BATCH];
	int n, i, m = 0;

	if (!w->kq) {
		n = anv_qpair_reap_ex(w->qp, out, max, w->matched);
		for (i = 0; i < n; i++) {
			if (!w->matched[i])
				unmatched(w, &out[i]);
			else
				out[m++] = out[i];
		}
		return n < 0 ? n : m;
	}
	n = anv_kqueue_reap(w->kq, k, max);
	for (i = 0; i < n; i++) {
		if (!k[i].counted) {
			unmatched(w, &k[i].cqe); /* names no CID of ours */
			continue;
		}
		out[m] = k[i].cqe;
		w->kerr[m++] = k[i].err;
	}
	return m;
}

/* Fill the SQE at the SQ tail for one command of @cid: @op on @nlb LBAs at @lba. */
static inline void build(struct iow *w, uint16_t cid, uint64_t now, int op, uint64_t lba,
			 uint32_t nlb)
{
	const struct anv_iow_cfg *c = w->cfg;
	struct anv_sqe *sqe = q_slot(w);
	uint32_t nlb0 = nlb - 1u; /* NLB is 0's based (NVM 3.2.6) */
	void *data = NULL;     /* kernel: what the kernel maps for the command */
	uint32_t len = 0;

	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = op_opcode[op];
	sqe->cid = w->kq ? cid : anv_qpair_cid_tag(w->qp, cid); /* PCIe: slot + generation */
	sqe->nsid = c->nsid;
	switch (op) {
	case ANV_IOW_FLUSH:
		break;
	case ANV_IOW_DEALLOCATE: {
		/* NVM 3.2.3: one range {context attributes, NLB (not 0's based), SLBA}. */
		uint8_t *r = c->aux + (size_t)cid * 16u;
		uint32_t attr = 0;

		memcpy(r, &attr, 4);
		memcpy(r + 4, &nlb, 4);
		memcpy(r + 8, &lba, 8);
		sqe->prp1 = c->aux_iova + (uint64_t)cid * 16u;
		data = r;
		len = 16u;
		sqe->cdw10 = 0;       /* NR: one range */
		sqe->cdw11 = 1u << 2; /* AD: deallocate */
		break;
	}
	case ANV_IOW_WRITE:
	case ANV_IOW_READ:
	case ANV_IOW_COMPARE:
		if (w->kq) {
			/* The kernel builds the PRPs; the cmdlog shows the buffer's IOVA. */
			sqe->prp1 = c->data_iova + (uint64_t)cid * w->io_bytes;
			data = c->data + (size_t)cid * w->io_bytes;
			len = nlb * c->lba_size;
		} else {
			sqe->prp1 = w->prp1[cid];
			sqe->prp2 = prp2_for(w, cid, nlb * c->lba_size);
		}
		/* fall through */
	default: /* write zeroes, verify: no data */
		sqe->cdw10 = (uint32_t)lba;
		sqe->cdw11 = (uint32_t)(lba >> 32);
		sqe->cdw12 = nlb0;
		break;
	}
	/* Before the doorbell: a write is stamped, a read samples the table. */
	if (op == ANV_IOW_WRITE && c->stamp && !c->on_submit)
		anv_stamp_lbas(c->data + (size_t)cid * w->io_bytes, c->lba_size, lba, nlb,
			       c->stamp + w->submitted);
	if (c->on_submit)
		c->on_submit(c->verify_ctx, cid, (uint32_t)op, lba, nlb,
			     c->data + (size_t)cid * w->io_bytes);
	w->sub_ns[cid] = now;
	w->lba[cid] = lba;
	w->nlb[cid] = nlb;
	w->op[cid] = (uint8_t)op;
	if (c->log) {
		uint64_t seq = ++w->log_next;
		struct anv_cmdlog_entry *e = &c->log[seq % c->log_size];

		e->seq = 0; /* a reader skips the entry while it is rewritten */
		memcpy(&e->sqe, sqe, sizeof(*sqe));
		memset(&e->cqe, 0, sizeof(e->cqe));
		e->submit_ns = now + (uint64_t)c->log_clock_offset;
		e->complete_ns = 0;
		e->flags = 0;
		__atomic_store_n(&e->seq, seq, __ATOMIC_RELEASE);
		w->log_seq[cid] = seq;
	}
	q_push(w, data, len);
}

static void first_error(struct iow *w, const struct anv_cqe *e, uint16_t cid, uint32_t kind)
{
	struct anv_iow_stats *st = w->st;

	put64(&st->errors, st->errors + 1u);
	if (st->errors == 1u) {
		st->first_error = *e;
		st->first_error_lba = w->lba[cid];
		st->first_error_opcode = op_opcode[w->op[cid]];
		st->first_error_kind = kind;
	}
	if (!w->reason)
		w->reason = kind == ANV_IOW_ERR_VERIFY ? ANV_IOW_END_VERIFY : ANV_IOW_END_ERROR;
}

static inline void complete(struct iow *w, const struct anv_cqe *e, int32_t kerr, uint64_t now)
{
	const struct anv_iow_cfg *c = w->cfg;
	struct anv_iow_stats *st = w->st;
	/* q_reap() passed only CQEs of outstanding commands: the slot is the index. */
	uint16_t cid = w->kq ? e->cid : (uint16_t)anv_qpair_cid_slot(w->qp, e->cid);
	uint64_t lat;
	int op;

	if (cid >= c->qdepth)
		return;
	if (c->log) {
		struct anv_cmdlog_entry *le = &c->log[w->log_seq[cid] % c->log_size];

		if (__atomic_load_n(&le->seq, __ATOMIC_ACQUIRE) == w->log_seq[cid]) {
			le->cqe = *e;
			le->complete_ns = now + (uint64_t)c->log_clock_offset;
		}
	}
	op = w->op[cid];
	lat = now > w->sub_ns[cid] ? now - w->sub_ns[cid] : 0;
	put64(&st->ios[op], st->ios[op] + 1u);
	if (lat < st->lat_min_ns)
		put64(&st->lat_min_ns, lat);
	if (lat > st->lat_max_ns)
		put64(&st->lat_max_ns, lat);
	put64(&st->lat_sum_ns, st->lat_sum_ns + lat);
	/* Rounded up: a percentile reads "at most this many us", never less than the truth. */
	anv_hist_record(&st->hist, (lat + 999u) / 1000u);
	if (kerr) {
		if (c->on_complete)
			c->on_complete(c->verify_ctx, cid, 0, NULL);
		if (st->errors == 0u)
			st->first_error_errno = kerr;
		first_error(w, e, cid, ANV_IOW_ERR_KERNEL);
		return;
	}
	if (ANV_STATUS_SC(e->status) || ANV_STATUS_SCT(e->status)) {
		if (c->on_complete)
			c->on_complete(c->verify_ctx, cid, 0, NULL);
		first_error(w, e, cid, ANV_IOW_ERR_STATUS);
		return;
	}
	if (op == ANV_IOW_READ || op == ANV_IOW_WRITE || op == ANV_IOW_COMPARE)
		put64(&st->bytes, st->bytes + (uint64_t)w->nlb[cid] * c->lba_size);
	if (c->on_complete &&
	    c->on_complete(c->verify_ctx, cid, 1, c->data + (size_t)cid * w->io_bytes))
		first_error(w, e, cid, ANV_IOW_ERR_VERIFY);
}

/* How many commands the iops limit allows by @now (one ahead, so the first goes at once). */
static inline uint64_t allowed(const struct iow *w, uint64_t start, uint64_t now)
{
	return (uint64_t)(((unsigned __int128)(now - start) * w->cfg->iops) / 1000000000u) + 1u;
}

static void nap(uint64_t ns)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)(ns > 1000000u ? 1000000u : ns) };

	nanosleep(&ts, NULL);
}

static int run(const struct anv_iow_cfg *c, struct anv_qpair *qp, struct anv_kqueue *kq,
	       struct anv_iow_stats *st)
{
	struct anv_cqe cqes[REAP_BATCH];
	uint64_t start, now, deadline;
	struct iow w;
	int stopping = 0;
	uint64_t limit = c->nseq ? c->nseq : c->io_count; /* commands to send (0: no limit) */

	if (anv_ioworker_check(c, qp ? qp->depth : kq->depth) < 0)
		return -1;
	if (iow_init(&w, c, qp, kq, st) < 0) {
		int err = errno ? errno : ENOMEM;

		iow_fini(&w);
		errno = err;
		return -1;
	}
	st->magic = ANV_IOW_MAGIC;
	put64(&st->lat_min_ns, UINT64_MAX);
	start = w.scan_ns = mono_ns();
	deadline = c->time_ns ? start + c->time_ns : 0;
	st->start_ns = start;
	__atomic_store_n(&st->state, ANV_IOW_RUNNING, __ATOMIC_RELEASE);

	for (;;) {
		int n, out;
		uint32_t stop;

		now = mono_ns();
		n = q_reap(&w, cqes, REAP_BATCH);
		if (n < 0) {
			if (!w.reason)
				w.reason = ANV_IOW_END_DEVICE;
			break;
		}
		if (n > 0) {
			uint64_t sec = (now - start) / 1000000000u;

			for (int i = 0; i < n; i++)
				complete(&w, &cqes[i], kq ? w.kerr[i] : 0, now);
			if (sec >= ANV_IOW_SECONDS)
				sec = ANV_IOW_SECONDS - 1u;
			put64(&st->per_second[sec], st->per_second[sec] + (uint64_t)n);
			if (sec + 1u > st->seconds)
				put64(&st->seconds, sec + 1u);
			/* A fresh clock for the submissions below. */
			now = mono_ns();
		}
		put64(&st->now_ns, now);
		if (w.reason)
			stopping = 1;
		stop = __atomic_load_n(&st->stop, __ATOMIC_ACQUIRE);
		if (stop == ANV_IOW_STOP_ABANDON) {
			/* A reset deletes the queue: what is outstanding never completes. */
			w.reason = ANV_IOW_END_ABANDON;
			break;
		}
		if (!stopping && stop) {
			w.reason = ANV_IOW_END_STOP;
			stopping = 1;
		}
		if (!stopping && deadline && now >= deadline) {
			w.reason = ANV_IOW_END_TIME;
			stopping = 1;
		}
		if (!stopping) {
			int k = 0;

			while (q_outstanding(&w) < (int)c->qdepth) {
				int cid, op;
				uint64_t lba;
				uint32_t nlb;

				if (limit && w.submitted >= limit)
					break;
				if (c->iops && w.submitted >= allowed(&w, start, now))
					break;
				if (c->nseq && c->seq[w.submitted].time_ns > now - start)
					break; /* the next command of the sequence is not due */
				cid = q_cid_alloc(&w);
				if (cid < 0)
					break;
				if (c->nseq) {
					const struct anv_iow_seq *q = &c->seq[w.submitted];

					op = (int)q->op;
					lba = op == ANV_IOW_FLUSH ? 0 : q->slba;
					nlb = q->nlb;
				} else {
					op = w.single_op >= 0 ? w.single_op
							      : c->mix[rnd_below(&w, ANV_IOW_MIX)];
					nlb = c->nsizes ? c->sizes[pick(&w, c->size_cum, c->nsizes)]
							: c->io_size;
					lba = op == ANV_IOW_FLUSH ? 0 : next_lba(&w, nlb);
				}
				build(&w, (uint16_t)cid, now, op, lba, nlb);
				w.submitted++;
				k++;
			}
			if (k) {
				put64(&st->submitted, w.submitted);
				/* one SQ tail doorbell (SQyTDBL; kernel: one io_uring_enter) for the batch */
				if (q_ring(&w) < 0) {
					w.reason = ANV_IOW_END_DEVICE;
					break;
				}
			}
		}
		out = q_outstanding(&w);
		if (out && kq && !n && !anv_uring_cq_ready(&kq->ring))
			/* Nothing came: sleep in the kernel until a CQE (1 ms at most), handing it
			 * anything a busy kernel left pending. */
			anv_uring_wait(&kq->ring, 1000000u);
		if (!out) {
			if (stopping)
				break;
			if (limit && w.submitted >= limit) {
				w.reason = ANV_IOW_END_COUNT;
				break;
			}
			if (c->nseq) {
				/* Nothing in flight: sleep until the next command of the sequence is due. */
				uint64_t due = start + c->seq[w.submitted].time_ns;

				if (due > now)
					nap(due - now);
			} else if (c->iops) {
				/* Throttled with nothing in flight: sleep until the next command is due. */
				uint64_t due = start + (uint64_t)(((unsigned __int128)w.submitted *
								  1000000000u) / c->iops);

				if (due > now)
					nap(due - now);
			}
		} else if (c->timeout_ns && now - w.scan_ns > TIMEOUT_SCAN_NS) {
			/* A command outstanding longer than the timeout ends the run, whatever
			 * the others do (a dropped command at QD > 1 is not hidden by them). */
			w.scan_ns = now;
			if (oldest_outstanding(&w, now) > c->timeout_ns) {
				w.reason = ANV_IOW_END_TIMEOUT;
				break;
			}
		}
	}
	st->end_ns = mono_ns();
	if (st->lat_min_ns == UINT64_MAX)
		put64(&st->lat_min_ns, 0);
	st->reason = w.reason;
	__atomic_store_n(&st->state, ANV_IOW_DONE, __ATOMIC_RELEASE);
	iow_fini(&w);
	return 0;
}

int anv_ioworker_run(const struct anv_iow_cfg *c, struct anv_qpair *qp, struct anv_iow_stats *st)
{
	return run(c, qp, NULL, st);
}

int anv_ioworker_run_kernel(const struct anv_iow_cfg *c, struct anv_kqueue *kq,
			    struct anv_iow_stats *st)
{
	if (!kq->has_ring) {
		errno = EINVAL;
		return -1;
	}
	return run(c, NULL, kq, st);
}
