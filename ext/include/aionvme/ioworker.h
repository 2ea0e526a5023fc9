/* SPDX-License-Identifier: MIT */
/*
 * ioworker.h - the IO engine of a worker process.  It drives one I/O queue
 * pair that the parent created on the controller: keeps qdepth commands
 * outstanding, polls the CQ (no interrupts), and publishes counters and a
 * latency histogram in a shared-memory block the parent reads while it runs.
 */
#ifndef AIONVME_IOWORKER_H
#define AIONVME_IOWORKER_H

#include <stdint.h>

#include "aionvme/hist.h"
#include "aionvme/kernel.h"
#include "aionvme/nvme.h"
#include "aionvme/queue.h"
#include "aionvme/verify.h"

#define ANV_IOW_MAGIC 0x57494e41u /* "ANIW" */
#define ANV_IOW_SECONDS (24u * 3600u + 60u) /* per-second counts: 24 hours and a margin */
#define ANV_IOW_MIX 1000u          /* op mix table: 0.1 % steps */
#define ANV_IOW_SIZES 4096u        /* distinct IO sizes of one worker */
#define ANV_IOW_SECTIONS 100u      /* distribution: equal sections of the region */

/* Values of struct anv_iow_stats.stop the parent writes. */
enum {
	ANV_IOW_STOP_DRAIN = 1,    /* submit no more, wait for what is outstanding */
	ANV_IOW_STOP_ABANDON = 2,  /* leave now: a reset is taking the queue away */
};

/* Operation slots of the counters; opcodes are NVM Command Set 3. */
enum anv_iow_op {
	ANV_IOW_READ = 0,
	ANV_IOW_WRITE,
	ANV_IOW_FLUSH,
	ANV_IOW_WRITE_ZEROES,
	ANV_IOW_DEALLOCATE, /* Dataset Management, Attribute - Deallocate */
	ANV_IOW_COMPARE,
	ANV_IOW_VERIFY,
	ANV_IOW_NOPS,
};

enum anv_iow_state {
	ANV_IOW_STARTING = 0,
	ANV_IOW_RUNNING = 1,
	ANV_IOW_DONE = 2,
};

/* Why the worker stopped (struct anv_iow_stats.reason). */
enum anv_iow_reason {
	ANV_IOW_END_NONE = 0,
	ANV_IOW_END_TIME = 1,      /* the time limit passed */
	ANV_IOW_END_COUNT = 2,     /* io_count commands completed */
	ANV_IOW_END_STOP = 3,      /* the parent set the stop flag */
	ANV_IOW_END_ERROR = 4,     /* a command failed: first_error holds it */
	ANV_IOW_END_TIMEOUT = 5,   /* outstanding commands got no completion in time */
	ANV_IOW_END_DEVICE = 6,    /* the doorbell write failed: the device is gone */
	ANV_IOW_END_VERIFY = 7,    /* data read back did not match (on_complete hook) */
	ANV_IOW_END_ABANDON = 8,   /* ANV_IOW_STOP_ABANDON: outstanding commands left behind */
};

/* What struct anv_iow_stats.first_error_kind holds. */
enum {
	ANV_IOW_ERR_STATUS = 1,    /* a CQE with a non-zero status field */
	ANV_IOW_ERR_VERIFY = 2,    /* a good CQE whose data failed verification */
	ANV_IOW_ERR_KERNEL = 3,    /* the kernel failed the command itself: first_error_errno */
	ANV_IOW_ERR_UNMATCHED = 4, /* a CQE that named no outstanding command (a misbehaving device) */
};

/**
 * struct anv_iow_stats - the block shared by the worker and its parent
 * @stop: set by the parent to end the run: ANV_IOW_STOP_DRAIN (the worker
 *        drains and exits) or ANV_IOW_STOP_ABANDON (it exits at once)
 * @state: enum anv_iow_state, written last by the worker (release)
 * @start_ns/@end_ns: CLOCK_MONOTONIC of the first submit and the end
 * @now_ns: CLOCK_MONOTONIC of the worker's last counter update
 * @ios: completed commands per enum anv_iow_op
 * @bytes: data moved by completed reads, writes and compares
 * @errors: completions with a non-zero status
 * @first_error: the CQE of the first failed command, with @first_error_lba,
 *               @first_error_opcode and @first_error_kind (ANV_IOW_ERR_*);
 *               @first_error_errno for ANV_IOW_ERR_KERNEL
 * @verify_mismatch: the first LBA that failed verification (written by the
 *                   on_complete hook before first_error_kind says VERIFY)
 * @lat_*_ns: latency over every completed command
 * @seconds: number of @per_second entries in use
 * @per_second: completions in each second since @start_ns
 * @hist: latency histogram in microseconds
 *
 * The worker writes, the parent reads (and writes only @stop); every
 * counter is a naturally aligned 64-bit word, read whole.
 */
struct anv_iow_stats {
	uint32_t magic;
	uint32_t stop;
	uint32_t state;
	uint32_t reason;
	uint64_t start_ns;
	uint64_t end_ns;
	uint64_t now_ns;
	uint64_t submitted;
	uint64_t ios[ANV_IOW_NOPS];
	uint64_t bytes;
	uint64_t errors;
	struct anv_cqe first_error;
	uint64_t first_error_lba;
	uint32_t first_error_opcode;
	uint32_t first_error_kind;
	int32_t first_error_errno;
	uint32_t rsvd;
	struct anv_verify_mismatch verify_mismatch;
	uint64_t lat_min_ns;
	uint64_t lat_max_ns;
	uint64_t lat_sum_ns;
	uint64_t seconds;
	uint64_t per_second[ANV_IOW_SECONDS];
	struct anv_hist hist;
};

/**
 * struct anv_iow_seq - one command of a replayed sequence (io_sequence)
 * @time_ns: when to submit it, from the start of the run
 * @slba: its Starting LBA (ignored by Flush)
 * @nlb: its number of LBAs (1-based; at most the worker's io_size)
 * @op: enum anv_iow_op
 */
struct anv_iow_seq {
	uint64_t time_ns;
	uint64_t slba;
	uint32_t nlb;
	uint32_t op;
};

/**
 * struct anv_iow_cfg - what to run
 * @nsid/@lba_size: the namespace
 * @io_size: LBAs per command; with @nsizes, the largest size (buffers and
 *           start LBAs are laid out for it)
 * @nsizes: 0 (every command is @io_size), or the entries of @sizes
 * @sizes/@size_cum: IO sizes in LBAs and their cumulative integer weights:
 *           @sizes[i] is drawn with weight @size_cum[i] - @size_cum[i - 1]
 * @lba_step_io: sequential: the next start LBA follows the end of the last
 *           IO, rounded up to @lba_align (@lba_step is ignored)
 * @dist_cum: random: cumulative integer weights of ANV_IOW_SECTIONS equal
 *           sections of the aligned start LBAs (all 0: uniform)
 * @seq/@nseq: replay these commands at their times instead of generating
 *           IO (@nseq 0: off); the run ends when all completed
 * @lba_align: start LBAs are multiples of it (random and default sequential)
 * @lba_step: sequential: the next start LBA is this far from the last
 *            (may be negative; wraps inside the region)
 * @lba_random: random start LBAs (uniform over the aligned slots)
 * @region_start/@region_end: IO stays in [region_start, region_end)
 * @lba_start: first LBA of a sequential run
 * @qdepth: commands kept outstanding (at most the queue depth - 1)
 * @time_ns: stop after this long (0: no limit)
 * @io_count: stop after this many commands (0: no limit)
 * @iops: at most this many commands per second (0: no limit)
 * @timeout_ns: a command outstanding this long ends the run (ANV_IOW_END_TIMEOUT)
 * @mix: ANV_IOW_MIX entries of enum anv_iow_op, drawn uniformly per command
 * @data_iova/@data: qdepth buffers of io_size * lba_size bytes, one per CID
 * @aux_iova/@aux: qdepth * 16 bytes: the Dataset Management range of each CID
 * @seed: of the random generator (0: from the clock)
 * @verify_ctx/@on_submit/@on_complete: data verification hooks (NULL: off;
 *   verify_iow.h): on_submit sees every command (enum anv_iow_op) before it
 *   is submitted, with its buffer, and stamps a write's; on_complete sees
 *   every completion (@ok: Successful Completion) and returns non-zero when
 *   read data failed the check
 */
struct anv_iow_cfg {
	uint32_t nsid;
	uint32_t lba_size;
	uint32_t io_size;
	uint32_t nsizes;
	uint32_t sizes[ANV_IOW_SIZES];
	uint64_t size_cum[ANV_IOW_SIZES];
	uint32_t lba_align;
	int64_t lba_step;
	int lba_step_io;
	uint64_t dist_cum[ANV_IOW_SECTIONS];
	const struct anv_iow_seq *seq;
	uint64_t nseq;
	int lba_random;
	uint64_t region_start;
	uint64_t region_end;
	uint64_t lba_start;
	uint32_t qdepth;
	uint64_t time_ns;
	uint64_t io_count;
	uint64_t iops;
	uint64_t timeout_ns;
	uint8_t mix[ANV_IOW_MIX];
	uint64_t data_iova;
	uint8_t *data;
	uint64_t aux_iova;
	uint8_t *aux;
	uint64_t seed;
	/*
	 * Nonzero: each Write stamps every LBA of its data (stamp.h) with its LBA and
	 * the token @stamp + the command's number, the pattern filling the rest; with
	 * verification on, its hook stamps instead.
	 */
	uint64_t stamp;
	void *verify_ctx;
	int (*on_submit)(void *ctx, uint16_t cid, uint32_t op, uint64_t lba, uint32_t nlb,
			 uint8_t *data);
	uint64_t (*on_complete)(void *ctx, uint16_t cid, int ok, const uint8_t *data);
	/*
	 * The queue's cmdlog, in memory the parent reads (the DMA arena): @log_size
	 * entries, the newest commands kept; NULL for none.  Times are CLOCK_REALTIME:
	 * the worker's monotonic clock plus @log_clock_offset.
	 */
	struct anv_cmdlog_entry *log;
	uint32_t log_size;
	int64_t log_clock_offset;
};

/**
 * anv_ioworker_check() - validate @cfg against a queue of @depth entries
 *
 * Return: 0, or -1 with errno EINVAL.
 */
int anv_ioworker_check(const struct anv_iow_cfg *cfg, uint32_t depth);

/**
 * anv_ioworker_run() - run IO on @qp until a stop condition, then drain
 * @qp: an I/O queue pair created on the controller and attached here
 *      (anv_qpair_attach()); the worker owns its rings while it runs
 * @st: shared statistics block, zeroed by the caller
 *
 * Blocks for the whole run; call it without the GIL.  Stop conditions:
 * time, io_count, the end of a replayed sequence, @st->stop, the first
 * failed command, a command timeout, a dead device.  On return @st->state is ANV_IOW_DONE and @st->reason
 * says why.
 *
 * Return: 0 (the run ended, see @st->reason), or -1 with errno EINVAL when
 * @cfg is invalid.
 */
int anv_ioworker_run(const struct anv_iow_cfg *cfg, struct anv_qpair *qp,
		     struct anv_iow_stats *st);

/**
 * anv_ioworker_run_kernel() - the same loop on a queue of the kernel
 * transport: each command is an NVME_URING_CMD_IO on @kq's io_uring (its
 * data pointer @cfg->data of this process, the kernel builds the PRPs), one
 * io_uring_enter per batch of submissions; the CQ ring is read in user
 * space, and when nothing has completed the worker waits in io_uring_enter
 * for at most a millisecond (so the stop flag and timeouts are still seen).
 * A command the kernel fails itself ends the run with ANV_IOW_ERR_KERNEL.
 */
int anv_ioworker_run_kernel(const struct anv_iow_cfg *cfg, struct anv_kqueue *kq,
			    struct anv_iow_stats *st);

#endif /* AIONVME_IOWORKER_H */
