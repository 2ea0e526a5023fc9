/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aionvme/cmdlog.h"

uint64_t anv_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int anv_cmdlog_init(struct anv_cmdlog *log, uint32_t size)
{
	if (size < ANV_CMDLOG_MIN)
		size = ANV_CMDLOG_MIN;
	log->ring = calloc(size, sizeof(*log->ring));
	if (!log->ring)
		return -1;
	log->size = size;
	log->seq = 0;
	return 0;
}

void anv_cmdlog_fini(struct anv_cmdlog *log)
{
	free(log->ring);
	log->ring = NULL;
	log->size = 0;
}

uint64_t anv_cmdlog_submit(struct anv_cmdlog *log, const struct anv_sqe *sqe)
{
	uint64_t seq = ++log->seq;
	struct anv_cmdlog_entry *e = &log->ring[seq % log->size];

	memcpy(&e->sqe, sqe, sizeof(*sqe));
	memset(&e->cqe, 0, sizeof(e->cqe));
	e->seq = seq;
	e->submit_ns = anv_now_ns();
	e->complete_ns = 0;
	e->flags = 0;
	e->err = 0;
	return seq;
}

static struct anv_cmdlog_entry *find(struct anv_cmdlog *log, uint64_t seq)
{
	struct anv_cmdlog_entry *e;

	if (!seq || !log->ring)
		return NULL;
	e = &log->ring[seq % log->size];
	/* The slot may have been reused by a newer command since. */
	return e->seq == seq ? e : NULL;
}

void anv_cmdlog_complete(struct anv_cmdlog *log, uint64_t seq, const struct anv_cqe *cqe)
{
	struct anv_cmdlog_entry *e = find(log, seq);

	if (!e)
		return;
	memcpy(&e->cqe, cqe, sizeof(*cqe));
	e->complete_ns = anv_now_ns();
}

void anv_cmdlog_flag(struct anv_cmdlog *log, uint64_t seq, uint32_t flags)
{
	struct anv_cmdlog_entry *e = find(log, seq);

	if (e)
		e->flags |= flags;
}

void anv_cmdlog_error(struct anv_cmdlog *log, uint64_t seq, int err)
{
	struct anv_cmdlog_entry *e = find(log, seq);

	if (e) {
		e->flags |= ANV_LOG_KERNEL_ERR;
		e->err = (uint32_t)err;
	}
}
