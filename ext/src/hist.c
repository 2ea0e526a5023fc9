/* SPDX-License-Identifier: MIT */
#include <stdlib.h>

#include "aionvme/hist.h"

uint64_t anv_hist_value(uint32_t idx)
{
	uint32_t shift;

	if (idx < ANV_HIST_LINEAR)
		return idx;
	shift = (idx >> ANV_HIST_SUB_BITS) - 1u;
	/* The bucket holds [sub << shift, ((sub + 1) << shift) - 1]. */
	return ((uint64_t)(idx - (shift << ANV_HIST_SUB_BITS)) << shift) + ((1ull << shift) - 1u);
}

void anv_hist_percentiles(const struct anv_hist *h, const double *pct, int n, uint64_t *out)
{
	uint64_t total = 0, seen = 0;
	uint32_t idx = 0;

	for (uint32_t i = 0; i < ANV_HIST_BUCKETS; i++)
		total += __atomic_load_n(&h->counts[i], __ATOMIC_RELAXED);
	for (int k = 0; k < n; k++) {
		double p = pct[k] < 0 ? 0 : (pct[k] > 100 ? 100 : pct[k]);
		/* The smallest value with at least p percent of the counts at or below it. */
		uint64_t want = (uint64_t)((p / 100.0) * (double)total + 0.5);

		out[k] = 0;
		if (!total)
			continue;
		if (want < 1)
			want = 1;
		if (want > total)
			want = total;
		/* Percentiles are usually asked in ascending order: continue the walk. */
		if (seen >= want) {
			seen = 0;
			idx = 0;
		}
		while (idx < ANV_HIST_BUCKETS) {
			seen += __atomic_load_n(&h->counts[idx], __ATOMIC_RELAXED);
			if (seen >= want)
				break;
			idx++;
		}
		if (idx >= ANV_HIST_BUCKETS)
			idx = ANV_HIST_BUCKETS - 1u;
		out[k] = anv_hist_value(idx);
		/* Step past this bucket so the next walk can resume after it. */
		seen -= __atomic_load_n(&h->counts[idx], __ATOMIC_RELAXED);
	}
}
