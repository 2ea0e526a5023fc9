/* SPDX-License-Identifier: MIT */
/*
 * The parent's commands against a verify table: one malloc'd record per
 * command, holding its ranges, a write's CRCs and the busy[] snapshots of
 * the cross-process rule (verify_inflight.c; the top of verify.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "aionvme/verify.h"

static inline int changes(const struct anv_verify_io *io)
{
	return io->op != ANV_VERIFY_READ;
}

static inline int deallocates(uint32_t op)
{
	return op == ANV_VERIFY_DEALLOC || op == ANV_VERIFY_DEALLOC_ZEROES ||
	       op == ANV_VERIFY_DEALLOC_ONES;
}

/* What a change is to the volatile write cache (__anv_verify_change_end()). */
static inline int how(uint32_t op)
{
	if (deallocates(op))
		return ANV_VERIFY_CHG_DEALLOC;
	return op == ANV_VERIFY_WRITE_FUA ? ANV_VERIFY_CHG_FUA : ANV_VERIFY_CHG_CACHED;
}

/* The ANV_VERIFY_OR_* a Deallocate leaves (NVM 3.2.3.2.1; DLFEAT bits 2:0). */
static inline uint64_t dealloc_or(uint32_t op)
{
	return __anv_verify_dealloc_or(op == ANV_VERIFY_DEALLOC_ZEROES ? 1u :
				       op == ANV_VERIFY_DEALLOC_ONES ? 2u : 0u);
}

/* LBAs of @r that have busy[] snapshots (a wide range counts in one word). */
static inline uint64_t tracked(const struct anv_verify_range *r)
{
	return __anv_verify_is_wide(r->nlb) ? 0 : r->nlb;
}

struct anv_verify_io *anv_verify_begin(struct anv_verify *v, enum anv_verify_op op,
				       uint8_t *data, const struct anv_verify_range *r,
				       uint32_t nr)
{
	struct anv_verify_io *io;
	int write = op == ANV_VERIFY_WRITE || op == ANV_VERIFY_WRITE_FUA;
	uint64_t ncrc = write ? r[0].nlb : 0, nsnap = 0, nkeep;
	size_t sz;

	if (!nr || (write || op == ANV_VERIFY_READ ? !data || nr != 1 : 0)) {
		errno = EINVAL;
		return NULL;
	}
	for (uint32_t k = 0; k < nr; k++) {
		if (r[k].slba > v->nlba || r[k].nlb > v->nlba - r[k].slba) {
			errno = ERANGE;
			return NULL;
		}
		nsnap += tracked(&r[k]);
	}
	if ((op == ANV_VERIFY_READ || write) && !nsnap) {
		errno = EINVAL; /* a Read or Write moves at most 64 Ki LBAs (NLB, NVM 3.2.6) */
		return NULL;
	}
	nkeep = op != ANV_VERIFY_READ ? nsnap : 0;
	sz = sizeof(*io) + (nsnap + nkeep) * sizeof(uint64_t) + nr * sizeof(*r) +
	     ncrc * sizeof(uint32_t);
	io = malloc(sz);
	if (!io)
		return NULL;
	memset(io, 0, sizeof(*io));
	io->op = op;
	io->nr = nr;
	io->data = data;
	io->epoch = __anv_verify_epoch(v);
	io->snap = (uint64_t *)(io + 1);
	io->old = nkeep ? io->snap + nsnap : NULL;
	io->r = (struct anv_verify_range *)(io->snap + nsnap + nkeep);
	memcpy(io->r, r, nr * sizeof(*r));
	if (write) {
		io->crc = (uint32_t *)(io->r + nr);
		io->token = anv_verify_token();
		__anv_verify_stamp(v, data, r[0].slba, r[0].nlb, io->token, io->crc);
	}
	if (op == ANV_VERIFY_READ) {
		io->wide = __anv_verify_read_begin(v, r[0].slba, r[0].nlb, io->snap);
	} else {
		/* The wide adds first: per-LBA ranges of the same command then
		 * see a wide change in flight, and the whole command's result
		 * is unknown, as a wide range's always is. */
		for (uint32_t k = 0; k < nr; k++)
			if (__anv_verify_is_wide(r[k].nlb))
				__anv_verify_wide_begin(v, r[k].slba, r[k].nlb);
		io->wide = 1;
		for (uint32_t k = 0, s = 0; k < nr; s += (uint32_t)tracked(&r[k]), k++) {
			uint64_t w;

			if (__anv_verify_is_wide(r[k].nlb))
				continue;
			w = __anv_verify_change_begin(v, r[k].slba, r[k].nlb, io->snap + s,
						      io->old ? io->old + s : NULL);
			/* One wide sample for the command: any range that saw a
			 * wide change in flight makes the whole command unknown. */
			io->wide = w && io->wide ? w : 0;
		}
	}
	io->prev = v->tail;
	if (v->tail)
		v->tail->next = io;
	else
		v->head = io;
	v->tail = io;
	return io;
}

/* The value a successful change other than a Write leaves in each LBA of @r. */
static uint32_t result(const struct anv_verify_io *io, const struct anv_verify_range *r)
{
	switch (io->op) {
	case ANV_VERIFY_WRITE_ZEROES:
		/* NVM 3.2.10: the LBAs read back as all zeroes. */
		return ANV_VERIFY_ZEROES;
	case ANV_VERIFY_WRITE_UNCOR:
		/* NVM 3.2.11: reads fail until the LBAs are written. */
		return ANV_VERIFY_UNCOR;
	default:
		/* A Deallocate's result is its old state plus ANV_VERIFY_OR_*
		 * (__anv_verify_change_end() with @keep). */
		(void)r;
		return ANV_VERIFY_UNKNOWN;
	}
}

uint64_t anv_verify_end(struct anv_verify *v, struct anv_verify_io *io, int ok,
			struct anv_verify_mismatch *m)
{
	uint64_t bad = 0;

	if (!changes(io)) {
		if (ok && io->wide)
			bad = __anv_verify_check(v, io->data, io->r[0].slba, io->r[0].nlb, io->snap,
						 io->wide, m);
	} else {
		/* A range list may repeat LBAs (NVM 3.2.3 does not forbid it):
		 * the second add of an LBA sees the first in flight, unknown. */
		for (uint32_t k = 0, s = 0; k < io->nr; s += (uint32_t)tracked(&io->r[k]), k++) {
			const struct anv_verify_range *r = &io->r[k];

			if (__anv_verify_is_wide(r->nlb))
				continue;
			__anv_verify_change_end(v, r->slba, r->nlb, io->snap + s, io->wide, ok,
						io->crc, result(io, r),
						deallocates(io->op) ? dealloc_or(io->op) : io->token,
						io->old + s, how(io->op), io->epoch);
		}
		for (uint32_t k = 0; k < io->nr; k++)
			if (__anv_verify_is_wide(io->r[k].nlb))
				__anv_verify_wide_end(v, io->r[k].slba, io->r[k].nlb);
	}
	if (io->prev)
		io->prev->next = io->next;
	else
		v->head = io->next;
	if (io->next)
		io->next->prev = io->prev;
	else
		v->tail = io->prev;
	free(io);
	return bad;
}
