/* SPDX-License-Identifier: MIT */
/*
 * The cross-process rule for commands in flight: busy[] and wide in the
 * shared table (the top of verify.h says why it is enough).  The parent's
 * commands (verify_io.c) and an ioworker's (verify_iow.c) both go through
 * here, so a worker's write in flight keeps the parent's overlapping read
 * from a false alarm, and the other way round.
 *
 * Snapshots kept by the caller between begin and end:
 * - a read's busy[] sample is the word + 1, or 0 when the LBA is not to be
 *   checked (its chunk never written, or a change in flight);
 * - a change's is the word after its own add, or 0 when another change was
 *   in flight then (its result is unknown whatever it finds at the end);
 * - the wide sample (both) is the wide word + 1, or 0 when a wide change
 *   was in flight.
 */
#include "aionvme/verify.h"

static inline uint64_t sample(const uint64_t *word)
{
	uint64_t w = __atomic_load_n(word, __ATOMIC_ACQUIRE);

	return w & ANV_VERIFY_BUSY_INFLIGHT ? 0 : w + 1;
}

/**
 * __anv_verify_read_begin() - sample busy[] of a read about to be submitted
 * @snap: @nlb samples (see the top of this file)
 *
 * Return: the wide sample; 0 means nothing of the read is to be checked.
 */
uint64_t __anv_verify_read_begin(struct anv_verify *v, uint64_t slba, uint64_t nlb,
				 uint64_t *snap)
{
	uint64_t wide = sample(v->wide);

	for (uint64_t i = 0; i < nlb; i++)
		snap[i] = __anv_verify_chunk_written(v, slba + i) ? sample(&v->busy[slba + i]) : 0;
	return wide;
}

/**
 * __anv_verify_change_begin() - put a change about to be submitted in flight
 * @snap: @nlb snapshots for __anv_verify_change_end()
 *
 * The LBAs are unknown until it ends.  The chunks are marked first, so that
 * busy[] is only touched where the table has pages.
 *
 * Return: the wide sample for __anv_verify_change_end().
 */
uint64_t __anv_verify_change_begin(struct anv_verify *v, uint64_t slba, uint64_t nlb,
				   uint64_t *snap, uint64_t *keep)
{
	/* The lines this change reads (keep) and writes at its end, fetched
	 * together: their misses overlap instead of following one another. */
	for (uint64_t i = 0; i < nlb; i += 8) {
		__builtin_prefetch(&v->token[slba + i], 1, 3);
		__builtin_prefetch(&v->old[slba + i], 1, 3);
		__builtin_prefetch(&v->busy[slba + i], 1, 3);
	}
	__anv_verify_chunks_mark(v, slba, nlb);
	for (uint64_t i = 0; i < nlb; i++) {
		/* seq_cst: of two changes, the later add sees the earlier one. */
		uint64_t old = __atomic_fetch_add(&v->busy[slba + i], ANV_VERIFY_BUSY_BEGIN,
						  __ATOMIC_SEQ_CST);

		snap[i] = old & ANV_VERIFY_BUSY_INFLIGHT ? 0 : old + ANV_VERIFY_BUSY_BEGIN;
		/* A Deallocate may leave the old state, a cached write may fall
		 * back to it: keep it (valid only when no other change was in
		 * flight, snap[i] != 0). */
		keep[i] = __atomic_load_n(&v->crc[slba + i], __ATOMIC_RELAXED) |
				  (v->token[slba + i] & ANV_VERIFY_OR_MASK);
		__atomic_store_n(&v->crc[slba + i], ANV_VERIFY_UNKNOWN, __ATOMIC_RELAXED);
	}
	return sample(v->wide);
}

/* The state a Deallocate leaves in an LBA that was @keep (crc | OR bits): the
 * old data or what @alt says (ANV_VERIFY_OR_*).  Returns crc[], sets *@tok. */
static inline uint32_t dealloc_state(const struct anv_verify *v, uint64_t lba, uint64_t keep,
				     uint64_t alt, uint64_t *tok)
{
	uint32_t c = (uint32_t)keep;
	uint64_t or_bits = (keep & ANV_VERIFY_OR_MASK) | alt;

	if (c == ANV_VERIFY_UNKNOWN) {
		*tok = 0;
		return ANV_VERIFY_UNKNOWN; /* unknown or anything is unknown */
	}
	if (c == ANV_VERIFY_ZEROES)
		or_bits &= ~ANV_VERIFY_OR_ZEROES;
	*tok = (v->token[lba] & ANV_VERIFY_TOKEN_MASK) | or_bits;
	return c;
}

/**
 * __anv_verify_change_end() - a change completed: record it, take it out of flight
 * @snap/@wide: what __anv_verify_change_begin() returned
 * @ok: it completed successfully (else its effect is unknown)
 * @crc: a Write's per-LBA CRC32C, or NULL: @value for every LBA
 * @token: a Write's token (for reports); with @keep, the ANV_VERIFY_OR_* a
 *	Deallocate adds
 * @keep: a Deallocate's states from __anv_verify_change_begin(), else NULL
 */
/*
 * A write of @lba into the volatile write cache completed (the top of
 * verify.h, "Power loss"): the state it replaced (@keep) is what the LBA
 * falls back to if power is lost before the next Flush, unless the LBA was
 * already waiting for one (then an intermediate write could survive too).
 */
static inline void cached(struct anv_verify *v, uint64_t lba, uint64_t keep, int how,
			  uint32_t gen, uint32_t d)
{
	uint32_t w = __anv_verify_wgen(v, lba), oc = (uint32_t)v->old[lba];

	if (how == ANV_VERIFY_CHG_FUA) {
		__anv_verify_set_old(v, lba, oc, 0);
		return;
	}
	if ((w & ANV_VERIFY_WGEN_MASK) <= d && !(w & ANV_VERIFY_WGEN_EITHER))
		/* The OR bits a Deallocate left are not kept: then any old data. */
		__anv_verify_set_old(v, lba, keep & ANV_VERIFY_OR_MASK ? ANV_VERIFY_UNKNOWN :
					     (uint32_t)keep, gen);
	else
		__anv_verify_set_old(v, lba, oc, gen | ANV_VERIFY_WGEN_MULTI);
}

void __anv_verify_change_end(struct anv_verify *v, uint64_t slba, uint64_t nlb,
			     const uint64_t *snap, uint64_t wide, int ok, const uint32_t *crc,
			     uint32_t value, uint64_t token, const uint64_t *keep, int how,
			     uint64_t epoch)
{
	/* Begun before a power loss, completed after it: the device may have
	 * undone it (the top of verify.h). */
	if (epoch != __anv_verify_epoch(v))
		ok = 0;
	/* Without a volatile write cache every completed write is durable. */
	if (how == ANV_VERIFY_CHG_CACHED && __atomic_load_n(v->no_cache, __ATOMIC_RELAXED))
		how = ANV_VERIFY_CHG_NONE;
	if (ok) {
		/* Read once for the command: its completion is one moment, and a
		 * Flush submitted after this load covers it (the top of verify.h). */
		uint32_t gen = (uint32_t)((__atomic_load_n(v->gen, __ATOMIC_SEQ_CST) + 1) &
					  ANV_VERIFY_WGEN_MASK);
		uint32_t d = (uint32_t)(__atomic_load_n(v->durable, __ATOMIC_ACQUIRE) &
					ANV_VERIFY_WGEN_MASK);

		for (uint64_t i = 0; i < nlb; i++) {
			uint64_t tok = crc ? token : 0;
			uint32_t c = crc ? crc[i] : value;

			if (!snap[i])
				continue;
			if (how == ANV_VERIFY_CHG_DEALLOC)
				c = dealloc_state(v, slba + i, keep[i], token, &tok);
			else if (how != ANV_VERIFY_CHG_NONE)
				cached(v, slba + i, keep[i], how, gen, d);
			/* The OR bits live in token[]: every change stores it. */
			v->token[slba + i] = tok;
			__atomic_store_n(&v->crc[slba + i], c, __ATOMIC_RELAXED);
		}
		/* The results are stored before busy[] and wide are read again: a
		 * change that begins after the re-read sees this one in flight and
		 * leaves the LBA unknown after these stores. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (__atomic_load_n(v->wide, __ATOMIC_SEQ_CST) + 1 != wide)
			ok = 0;
	}
	for (uint64_t i = 0; i < nlb; i++) {
		uint64_t *busy = &v->busy[slba + i];

		if (!ok || !snap[i] || __atomic_load_n(busy, __ATOMIC_SEQ_CST) != snap[i])
			__atomic_store_n(&v->crc[slba + i], ANV_VERIFY_UNKNOWN, __ATOMIC_RELAXED);
		/* release: a read that samples busy[] after this sees the result. */
		__atomic_fetch_sub(busy, 1, __ATOMIC_RELEASE);
	}
}

/**
 * __anv_verify_wide_begin() - a change of more than ANV_VERIFY_DENSE_MAX LBAs
 *
 * Its result is always unknown (only Dataset Management ranges are that
 * long), so it counts in the one wide word instead of per LBA, and marks
 * only written chunks unknown: a huge range never allocates table pages.
 *
 * Return: 0 (a change end's snapshot is not needed).
 */
uint64_t __anv_verify_wide_begin(struct anv_verify *v, uint64_t slba, uint64_t nlb)
{
	__atomic_fetch_add(v->wide, ANV_VERIFY_BUSY_BEGIN, __ATOMIC_SEQ_CST);
	__anv_verify_set(v, slba, nlb, ANV_VERIFY_UNKNOWN);
	return 0;
}

/**
 * __anv_verify_wide_end() - the wide change completed (successfully or not)
 */
void __anv_verify_wide_end(struct anv_verify *v, uint64_t slba, uint64_t nlb)
{
	/* Nothing to store: the LBAs became unknown at the begin, and a change
	 * overlapping this one in time sees the wide word move. */
	(void)slba;
	(void)nlb;
	__atomic_fetch_sub(v->wide, 1, __ATOMIC_RELEASE);
}
