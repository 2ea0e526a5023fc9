/* SPDX-License-Identifier: MIT */
/*
 * debug.h - checks of the native core's own invariants, compiled in by
 * AIONVME_DEBUG=1 (`make debug`); nothing at all in a normal build.  A failed
 * check is a bug in aionvme, never the device's or the test's doing: it
 * names the check and aborts.
 */
#ifndef AIONVME_DEBUG_H
#define AIONVME_DEBUG_H

#include <stdio.h>
#include <stdlib.h>

#ifndef AIONVME_DEBUG
#define AIONVME_DEBUG 0
#endif

#define anv_dbg_check(cond)                                                          \
	do {                                                                         \
		if (AIONVME_DEBUG && !(cond)) {                                       \
			fprintf(stderr, "aionvme internal check failed: %s (%s:%d)\n", \
				#cond, __FILE__, __LINE__);                           \
			abort();                                                     \
		}                                                                    \
	} while (0)

#endif /* AIONVME_DEBUG_H */
