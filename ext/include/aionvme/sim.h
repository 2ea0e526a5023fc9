/* SPDX-License-Identifier: MIT */
/*
 * sim.h - the simulated controller's native data path.  The device process
 * keeps queue, namespace and fault state here; IO queues are processed
 * entirely in C, admin commands are fetched and completed for the Python
 * control plane (aionvme/sim/device.py).
 */
#ifndef AIONVME_SIM_H
#define AIONVME_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "aionvme/nvme.h"

#define SIM_MAX_QUEUES 65     /* admin + 64 IO queues */
#define SIM_MAX_NS 16
#define SIM_MAX_FAULTS 32
#define SIM_MAX_DELAYED 4096
#define SIM_JOURNAL_MAX (4096u)  /* write-cache undo records */
#define SIM_JOURNAL_BYTES (64u << 20) /* their old data: one slab, reused after each flush */

struct sim_sq {
	uint8_t valid;
	uint8_t prio;
	uint16_t cqid;
	uint32_t size;
	uint32_t head;
	uint64_t iova;
};

struct sim_cq {
	uint8_t valid;
	uint8_t ien;
	uint16_t vector;
	uint32_t size;
	uint32_t head;
	uint32_t tail;
	uint16_t phase;
	uint16_t nsq; /* SQs bound to this CQ */
	uint64_t iova;
	uint8_t irq_due;
	uint32_t coal_count;  /* CQEs posted since this CQ's last interrupt */
	uint64_t coal_due_ns; /* when a held interrupt must go out (0: none held) */
};

struct sim_ns {
	uint8_t valid;
	uint32_t lba_shift;
	uint64_t nlba;
	uint8_t *media;      /* capacity bytes, mapped */
	uint64_t media_size;
	int media_fd;        /* -1: anonymous memory */
	uint8_t *uncor;      /* one bit per LBA of the smallest format */
	uint64_t uncor_size;
	/*
	 * One bit per 512 bytes, as @uncor: set once written, clear while
	 * deallocated or never written (what DULBE reports).
	 */
	uint8_t *written;
	uint8_t dulbe;       /* Error Recovery feature DULBE (bit 16) of this namespace */
};

/* An I/O command that completed with an error, for the Error Information log. */
struct sim_err {
	uint16_t sqid;
	uint16_t cid;
	uint16_t status; /* the status field as posted: DNR included, phase bit clear */
	uint32_t nsid;
	uint64_t lba;    /* the first LBA in error, or the command's SLBA */
};

#define SIM_ERRLOG_MAX 64u

enum sim_fault_action {
	SIM_FAULT_STATUS = 1, /* complete with @status */
	SIM_FAULT_DROP = 2,   /* never complete */
	SIM_FAULT_DELAY = 3,  /* complete @delay_us later */
	SIM_FAULT_DUPLICATE = 4, /* complete twice: the second CQE names a CID already done */
	SIM_FAULT_BAD_CID = 5,   /* complete with a CID the host never used (cid ^ 0x8000) */
	SIM_FAULT_HANG = 6,      /* never complete, and stop fetching from every queue
				  * (a firmware hang) until a Controller Level Reset */
	/* Data faults of I/O commands (what data verification must catch): */
	SIM_FAULT_SKIP = 7,      /* complete successfully without executing: a lost write,
				  * a Write Uncorrectable or Deallocate not carried out */
	SIM_FAULT_BITFLIP = 8,   /* Read: byte @arg of the data returned XOR @xor */
	SIM_FAULT_MISPLACE = 9,  /* Read: the data of the LBAs @arg further on */
	SIM_FAULT_ZEROES = 10,   /* Read: all bytes 00h instead of the data */
	SIM_FAULT_TORN = 11,     /* Write: only the first @arg LBAs reach the media */
};

/**
 * struct sim_fault - a rule matched against each fetched SQE
 * @qid/@opcode/@nsid: -1 / -1 / 0 match any
 * @slba_lo/@slba_hi: LBA window an IO command must touch (hi 0: any)
 * @count: how many more matches fire (-1: unlimited)
 * @arg/@xor: the data faults' parameters (enum sim_fault_action)
 */
struct sim_fault {
	uint8_t active;
	uint8_t action;
	int32_t qid;
	int32_t opcode;
	uint32_t nsid;
	uint64_t slba_lo;
	uint64_t slba_hi;
	uint16_t status; /* a CQE status field, DNR included, phase bit clear */
	int64_t count;
	uint32_t delay_us;
	uint64_t hits;
	int64_t arg;     /* data faults: byte offset, LBA distance, LBAs kept */
	uint8_t xor;     /* SIM_FAULT_BITFLIP */
};

struct sim_delayed {
	uint16_t cqid;
	uint64_t due_ns;
	struct anv_cqe cqe;
};

struct sim_journal_rec {
	uint32_t nsid;
	uint64_t off;   /* byte offset in media */
	uint32_t len;
	uint8_t *old;   /* previous contents, in the journal slab */
	uint8_t *old_written; /* and their written bits (one per 512 bytes), after them */
};

struct sim_ctrl {
	uint8_t *bar;
	uint8_t *arena;
	uint64_t arena_size;
	uint32_t dstrd;
	uint32_t mdts_bytes; /* 0: no limit */
	uint8_t sgl_supported;

	int irq_fd[ANV_MSIX_MAX_VECTORS];
	uint32_t nvec;
	uint8_t msix_enabled;
	uint8_t msix_fmask;
	uint64_t irq_count[ANV_MSIX_MAX_VECTORS];
	/* 5.27.1.6 Interrupt Coalescing and 5.27.1.7 Interrupt Vector Configuration */
	uint8_t coal_thr;                        /* aggregation threshold, 0's based */
	uint8_t coal_time;                       /* aggregation time, 100 us units */
	uint8_t coal_disable[ANV_MSIX_MAX_VECTORS]; /* CD per vector */
	uint32_t coal_held;                      /* CQs holding an interrupt */

	struct sim_sq sq[SIM_MAX_QUEUES];
	struct sim_cq cq[SIM_MAX_QUEUES];
	uint32_t sq_db_seen[SIM_MAX_QUEUES]; /* last SQ tail doorbell value taken */

	struct sim_ns ns[SIM_MAX_NS + 1]; /* index = nsid */

	struct sim_fault faults[SIM_MAX_FAULTS];
	struct sim_delayed *delayed;
	uint32_t ndelayed;

	/* 5.11 Doorbell Buffer Config: shadow doorbells and EventIdx in host memory */
	uint8_t dbbuf_enabled;
	uint64_t dbbuf_dbs;
	uint64_t dbbuf_eis;

	uint8_t vwc_enabled;
	uint8_t wrr;           /* CC.AMS 001b: weighted round robin with urgent class */
	uint32_t arbitration;  /* the Arbitration feature's value (5.27.1.1) */
	uint16_t io_block_status; /* non-zero: every IO command completes with it (sanitize) */
	uint8_t hung;          /* SIM_FAULT_HANG fired: no queue is served until a reset */
	struct sim_journal_rec *journal;
	uint32_t njournal;
	uint8_t *journal_slab; /* SIM_JOURNAL_BYTES; no allocation per cached write */
	uint64_t journal_used;

	uint8_t *scratch;
	uint64_t scratch_size;

	/* SMART counters (5.16.1.3) in raw units */
	uint64_t units_read;   /* 512-byte units */
	uint64_t units_written;
	uint64_t host_reads;
	uint64_t host_writes;
	uint64_t media_errors;

	/* events for the control plane (asynchronous event requests) */
	uint32_t evt_invalid_db;     /* writes to a doorbell of a queue that does not exist */
	uint32_t evt_invalid_db_val; /* doorbell values out of range */

	/* I/O errors for the Error Information log: a ring, newest at (nerr - 1) % max */
	struct sim_err errlog[SIM_ERRLOG_MAX];
	uint64_t nerr; /* I/O errors since init, each one logged or overwritten */
};

int sim_ctrl_init(struct sim_ctrl *c, uint8_t *bar, uint8_t *arena, uint64_t arena_size);
void sim_ctrl_fini(struct sim_ctrl *c);

/* Queue state, checked by the control plane before it calls these. */
void sim_cq_create(struct sim_ctrl *c, uint16_t qid, uint64_t iova, uint32_t size,
		   uint16_t vector, uint8_t ien);
void sim_sq_create(struct sim_ctrl *c, uint16_t qid, uint64_t iova, uint32_t size,
		   uint16_t cqid, uint8_t prio);
void sim_cq_delete(struct sim_ctrl *c, uint16_t qid);
/* Deleting an SQ completes nothing: 3.3.1.3, its commands are aborted. */
void sim_sq_delete(struct sim_ctrl *c, uint16_t qid);
void sim_queues_reset(struct sim_ctrl *c);

int sim_ns_attach(struct sim_ctrl *c, uint32_t nsid, uint64_t capacity, uint32_t lba_shift, int fd,
		  int hugepages);
void sim_ns_detach(struct sim_ctrl *c, uint32_t nsid);
int sim_ns_format(struct sim_ctrl *c, uint32_t nsid, uint32_t lba_shift, int erase);
/* Fill the whole media of @nsid with the 32-bit @pattern (little endian); it counts as written. */
int sim_ns_fill(struct sim_ctrl *c, uint32_t nsid, uint32_t pattern);

/**
 * sim_process_io() - run every IO SQ until empty or @budget commands
 * Return: number of commands processed.
 */
int sim_process_io(struct sim_ctrl *c, int budget);

/* Admin queue: fetch one SQE (1), none (0); complete it with sim_post(). */
int sim_admin_fetch(struct sim_ctrl *c, struct anv_sqe *sqe);

/**
 * sim_post() - post a CQE for a command fetched from @sqid
 * Return: 0, or -1 when the CQ does not exist or is full.
 */
int sim_post(struct sim_ctrl *c, uint16_t sqid, uint16_t cid, uint16_t status,
	     uint32_t cdw0, int fire);

void sim_fire_pending(struct sim_ctrl *c);
void sim_irq_check_pending(struct sim_ctrl *c);

/* DMA between host memory described by the SQE's data pointer and @buf. */
int sim_dma(struct sim_ctrl *c, const struct anv_sqe *sqe, uint8_t *buf, uint64_t len,
	    int to_host, uint16_t *status);

int sim_fault_match(struct sim_ctrl *c, uint16_t qid, const struct anv_sqe *sqe);
int sim_tick(struct sim_ctrl *c, uint64_t now_ns, uint64_t *next_due_ns);

enum sim_wake {
	SIM_WAKE_SOCKET = 1, /* a request from the host is waiting */
	SIM_WAKE_ADMIN = 2,  /* admin SQ has commands */
	SIM_WAKE_TIMER = 3,  /* @deadline_ns passed */
};

/**
 * sim_dbbuf_config() - take shadow doorbell (@dbs) and EventIdx (@eis) pages
 * for the I/O queues; the current doorbell values are copied into them.
 * Return: 0, or -1 (EINVAL) when a page is not in host memory.
 */
int sim_dbbuf_config(struct sim_ctrl *c, uint64_t dbs, uint64_t eis);

/* Publish EventIdx: @suppress asks the host not to ring (the controller polls). */
void sim_dbbuf_publish(struct sim_ctrl *c, int suppress);

/* 1 when the admin SQ tail doorbell is ahead of the controller's head. */
int sim_admin_pending(struct sim_ctrl *c);

/**
 * sim_run() - run IO queues until the control plane has work
 * @db_fd: doorbell eventfd; @sock_fd: the host's request socket
 * @deadline_ns: CLOCK_MONOTONIC time to return by (0: none)
 * @spin_ns: how long to keep polling doorbells after activity before sleeping
 * @io_enabled: 0 while the controller may not process commands
 * @check_admin: 0 after an admin wake that fetched nothing: no admin wake
 *               again before the next doorbell (no livelock on a stuck tail)
 *
 * Return: an enum sim_wake, or -1 with errno set.
 */
int sim_run(struct sim_ctrl *c, int db_fd, int sock_fd, uint64_t deadline_ns, uint64_t spin_ns,
	    int io_enabled, int check_admin);

void sim_flush(struct sim_ctrl *c);
void sim_power_loss(struct sim_ctrl *c);

#endif /* AIONVME_SIM_H */
