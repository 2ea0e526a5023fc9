/* SPDX-License-Identifier: MIT */
/*
 * cmdlog.h - per-queue ring of the most recent commands with their
 * completions and timestamps.
 */
#ifndef AIONVME_CMDLOG_H
#define AIONVME_CMDLOG_H

#include <stdint.h>

#include "aionvme/nvme.h"

#define ANV_CMDLOG_MIN 1024

/**
 * struct anv_cmdlog_entry - one command
 * @seq: 1-based submission sequence number (0: empty slot)
 * @submit_ns/@complete_ns: CLOCK_REALTIME; complete_ns 0 while outstanding
 * @flags: ANV_LOG_* bits
 * @err: with ANV_LOG_KERNEL_ERR, the errno the kernel failed the command with
 */
struct anv_cmdlog_entry {
	struct anv_sqe sqe;
	struct anv_cqe cqe;
	uint64_t seq;
	uint64_t submit_ns;
	uint64_t complete_ns;
	uint32_t flags;
	uint32_t err;
};

enum {
	ANV_LOG_TIMEOUT = 1u << 0,  /* the host gave up waiting */
	ANV_LOG_DROPPED = 1u << 1,  /* the queue was torn down first */
	ANV_LOG_KERNEL_ERR = 1u << 2, /* the kernel failed it itself: errno, no NVMe status */
};

struct anv_cmdlog {
	struct anv_cmdlog_entry *ring;
	uint32_t size;
	uint64_t seq; /* last sequence number handed out */
};

int anv_cmdlog_init(struct anv_cmdlog *log, uint32_t size);
void anv_cmdlog_fini(struct anv_cmdlog *log);
uint64_t anv_cmdlog_submit(struct anv_cmdlog *log, const struct anv_sqe *sqe);
void anv_cmdlog_complete(struct anv_cmdlog *log, uint64_t seq, const struct anv_cqe *cqe);
void anv_cmdlog_flag(struct anv_cmdlog *log, uint64_t seq, uint32_t flags);
/* The kernel failed command @seq itself with errno @err (no NVMe status). */
void anv_cmdlog_error(struct anv_cmdlog *log, uint64_t seq, int err);
uint64_t anv_now_ns(void);

#endif /* AIONVME_CMDLOG_H */
