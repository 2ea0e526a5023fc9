/* SPDX-License-Identifier: MIT */
/*
 * hist.h - a log-linear latency histogram in the style of HdrHistogram:
 * exact to 1 us below 1024 us, then 512 buckets per power of two (0.2 %
 * relative precision), up to 2^41 us (25 days).  It is a flat array of
 * counters, so it can live in shared memory and be read by another process
 * while it is being filled.
 */
#ifndef AIONVME_HIST_H
#define AIONVME_HIST_H

#include <stdint.h>

#define ANV_HIST_SUB_BITS 9u                       /* 512 sub-buckets per magnitude */
#define ANV_HIST_LINEAR (2u << ANV_HIST_SUB_BITS)   /* values below 1024 are exact */
#define ANV_HIST_MAX_MAG 40u                        /* highest magnitude: 2^40 .. 2^41 - 1 us */
#define ANV_HIST_BUCKETS ((ANV_HIST_MAX_MAG - ANV_HIST_SUB_BITS + 2u) << ANV_HIST_SUB_BITS)

/**
 * struct anv_hist - latency counts, one per bucket, in microseconds
 * @total: values recorded
 * @counts: per bucket; anv_hist_index() maps a value to its bucket
 */
struct anv_hist {
	uint64_t total;
	uint64_t counts[ANV_HIST_BUCKETS];
};

/**
 * anv_hist_index() - the bucket of @us
 *
 * Below ANV_HIST_LINEAR the bucket is the value itself; above, magnitude m
 * (2^m <= us < 2^(m+1)) keeps the top ANV_HIST_SUB_BITS + 1 bits.
 */
static inline uint32_t anv_hist_index(uint64_t us)
{
	uint32_t mag, shift;

	if (us < ANV_HIST_LINEAR)
		return (uint32_t)us;
	mag = 63u - (uint32_t)__builtin_clzll(us);
	if (mag > ANV_HIST_MAX_MAG)
		return ANV_HIST_BUCKETS - 1u;
	shift = mag - ANV_HIST_SUB_BITS;
	return (shift << ANV_HIST_SUB_BITS) + (uint32_t)(us >> shift);
}

/**
 * anv_hist_record() - count one value of @us microseconds
 *
 * Relaxed atomics: a reader in another process sees each counter whole.
 */
static inline void anv_hist_record(struct anv_hist *h, uint64_t us)
{
	uint64_t *c = &h->counts[anv_hist_index(us)];

	__atomic_store_n(c, *c + 1u, __ATOMIC_RELAXED);
	__atomic_store_n(&h->total, h->total + 1u, __ATOMIC_RELAXED);
}

/**
 * anv_hist_value() - the highest value of bucket @idx (HdrHistogram's
 * "highest equivalent value", so a percentile never understates)
 */
uint64_t anv_hist_value(uint32_t idx);

/**
 * anv_hist_percentiles() - the values at @n percentiles @pct (0..100)
 * @out: @n values in microseconds; 0 when the histogram is empty
 *
 * Reads a histogram another process may still be filling: the counts are
 * summed once, so the result is consistent with that sum.
 */
void anv_hist_percentiles(const struct anv_hist *h, const double *pct, int n, uint64_t *out);

#endif /* AIONVME_HIST_H */
