/* SPDX-License-Identifier: MIT */
/* tap.h - a minimal Test Anything Protocol harness for the C unit tests. */
#ifndef AIONVME_TAP_H
#define AIONVME_TAP_H

#include <stdio.h>

static int tap_n, tap_failed;

#define ok(cond, ...)                                                        \
	do {                                                                 \
		tap_n++;                                                     \
		if (!(cond))                                                 \
			tap_failed++;                                        \
		printf("%sok %d - ", (cond) ? "" : "not ", tap_n);           \
		printf(__VA_ARGS__);                                         \
		printf("\n");                                                \
	} while (0)

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#endif
