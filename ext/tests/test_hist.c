/* SPDX-License-Identifier: MIT */
/*
 * test_hist.c - unit tests of the latency histogram: bucket mapping,
 * precision, the highest-equivalent-value rule, percentiles (in any order)
 * and the overflow bucket, with the code under test included.
 */
#include <stdlib.h>
#include <string.h>

#include "../src/hist.c"
#include "tap.h"

static struct anv_hist h;

static uint64_t pct(double p)
{
	uint64_t v;

	anv_hist_percentiles(&h, &p, 1, &v);
	return v;
}

static void test_index(void)
{
	int exact = 1, monotonic = 1, covers = 1, precise = 1;
	uint32_t prev = 0;

	for (uint64_t v = 0; v < ANV_HIST_LINEAR; v++)
		if (anv_hist_index(v) != v || anv_hist_value((uint32_t)v) != v)
			exact = 0;
	ok(exact, "below %u us every value has its own bucket", ANV_HIST_LINEAR);
	/* Walk values up to 2^41 in growing steps: buckets never go backwards. */
	for (uint64_t v = 1; v < (1ull << 41); v += v / 97 + 1) {
		uint32_t i = anv_hist_index(v);
		uint64_t hi = anv_hist_value(i);

		if (i < prev)
			monotonic = 0;
		prev = i;
		if (hi < v || (i && anv_hist_value(i - 1) >= v))
			covers = 0; /* v must lie in (value(i - 1), value(i)] */
		if ((double)(hi - v) > (double)v / 512.0 + 1.0)
			precise = 0;
	}
	ok(monotonic, "bucket indexes grow with the value");
	ok(covers, "each value lies in its bucket's range (value(i - 1), value(i)]");
	ok(precise, "a bucket's highest value is within 1/512 (0.2 %%) of any value in it");
	ok(anv_hist_index(1023) == 1023 && anv_hist_index(1024) == 1024 &&
	   anv_hist_value(1024) == 1025 && anv_hist_index(1025) == 1024,
	   "from 1024 us the buckets are 2 us wide");
	ok(anv_hist_index(UINT64_MAX) == ANV_HIST_BUCKETS - 1 &&
	   anv_hist_index(1ull << 45) == ANV_HIST_BUCKETS - 1,
	   "values past 2^41 us land in the last bucket");
	ok(anv_hist_index((1ull << 41) - 1) == ANV_HIST_BUCKETS - 1,
	   "the last bucket ends at 2^41 - 1 us (25 days)");
}

static void test_percentiles(void)
{
	double ps[4] = { 99, 50, 100, 0 };
	uint64_t out[4];

	memset(&h, 0, sizeof(h));
	ok(pct(50) == 0, "an empty histogram reads 0 at every percentile");
	for (uint64_t v = 1; v <= 100; v++)
		anv_hist_record(&h, v);
	ok(h.total == 100, "the total counts every value");
	ok(pct(50) == 50 && pct(99) == 99 && pct(100) == 100 && pct(1) == 1,
	   "1..100 us once each: the p-th percentile is p us");
	ok(pct(0) == 1, "percentile 0 is the smallest value");
	anv_hist_percentiles(&h, ps, 4, out);
	ok(out[0] == 99 && out[1] == 50 && out[2] == 100 && out[3] == 1,
	   "percentiles asked in descending or mixed order are right");
	ok(pct(-5) == 1 && pct(250) == 100, "percentiles outside 0..100 are clamped");

	memset(&h, 0, sizeof(h));
	for (int i = 0; i < 999; i++)
		anv_hist_record(&h, 10);
	anv_hist_record(&h, 5000);
	ok(pct(99.9) == 10 && pct(99.95) == anv_hist_value(anv_hist_index(5000)),
	   "one outlier in 1000: p99.9 ignores it, p99.95 reports it");
	ok(anv_hist_value(anv_hist_index(5000)) >= 5000 && anv_hist_value(anv_hist_index(5000)) < 5016,
	   "an outlier reads as its bucket's highest value, never less than the truth");

	memset(&h, 0, sizeof(h));
	anv_hist_record(&h, 3600ull * 1000000ull * 24ull);
	ok(pct(50) >= 86400000000ull && pct(50) < 86400000000ull / 500 * 501,
	   "a day-long latency is kept within 0.2 %%");
}

int main(void)
{
	test_index();
	test_percentiles();
	return tap_done();
}
