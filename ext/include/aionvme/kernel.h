/* SPDX-License-Identifier: MIT */
/*
 * kernel.h - the kernel transport: a controller left on Linux's nvme driver.
 * Admin commands go through NVME_IOCTL_ADMIN64_CMD on /dev/nvmeX, I/O through
 * io_uring IORING_OP_URING_CMD (NVME_URING_CMD_IO) on the namespace's generic
 * character device /dev/ngXnY; completions are signalled on the ring's
 * registered eventfd, which the event loop watches like an MSI-X eventfd.
 *
 * The io_uring ABI is declared here (anv_uring_*), not taken from the system's
 * <linux/io_uring.h>, so that older kernel headers still build; where the
 * system header is new enough the layouts are checked against it (kernel.c).
 * No liburing: the three raw system calls are enough.
 */
#ifndef AIONVME_KERNEL_H
#define AIONVME_KERNEL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "aionvme/cmdlog.h"
#include "aionvme/nvme.h"

/* io_uring_setup(2) flags and features used here */
#define ANV_IORING_SETUP_SQE128 (1u << 10)
#define ANV_IORING_SETUP_CQE32 (1u << 11)
#define ANV_IORING_FEAT_SINGLE_MMAP (1u << 0)
#define ANV_IORING_OP_URING_CMD 46
#define ANV_IORING_ENTER_GETEVENTS (1u << 0)
#define ANV_IORING_ENTER_EXT_ARG (1u << 3)
#define ANV_IORING_REGISTER_EVENTFD 4
#define ANV_IORING_OFF_SQ_RING 0ull
#define ANV_IORING_OFF_CQ_RING 0x8000000ull
#define ANV_IORING_OFF_SQES 0x10000000ull

/* <linux/nvme_ioctl.h> */
#define ANV_NVME_IOCTL_ID 0x4e40u                 /* _IO('N', 0x40) */
#define ANV_NVME_IOCTL_RESET 0x4e44u              /* _IO('N', 0x44) */
#define ANV_NVME_IOCTL_SUBSYS_RESET 0x4e45u       /* _IO('N', 0x45) */
#define ANV_NVME_IOCTL_RESCAN 0x4e46u             /* _IO('N', 0x46) */
#define ANV_NVME_IOCTL_ADMIN64_CMD 0xc0504e47u    /* _IOWR('N', 0x47, 80 bytes) */
#define ANV_NVME_URING_CMD_IO 0xc0484e80u         /* _IOWR('N', 0x80, 72 bytes) */
#define ANV_NVME_URING_CMD_ADMIN 0xc0484e82u      /* _IOWR('N', 0x82, 72 bytes) */

/**
 * struct anv_nvme_uring_cmd - struct nvme_uring_cmd, the 72 bytes of an NVMe
 * passthrough command in the big SQE's command area (the kernel builds the
 * SQE from it: it picks CID, PRP or SGL and the data direction itself)
 */
struct anv_nvme_uring_cmd {
	uint8_t opcode;
	uint8_t flags;
	uint16_t rsvd1;
	uint32_t nsid;
	uint32_t cdw2;
	uint32_t cdw3;
	uint64_t metadata;
	uint64_t addr;
	uint32_t metadata_len;
	uint32_t data_len;
	uint32_t cdw10;
	uint32_t cdw11;
	uint32_t cdw12;
	uint32_t cdw13;
	uint32_t cdw14;
	uint32_t cdw15;
	uint32_t timeout_ms;
	uint32_t rsvd2;
};

/* struct nvme_passthru_cmd64: the same plus the 64-bit result (CQE DW0, DW1) */
struct anv_nvme_passthru_cmd64 {
	struct anv_nvme_uring_cmd c;
	uint64_t result;
};

/* A 128-byte SQE (IORING_SETUP_SQE128) carrying IORING_OP_URING_CMD. */
struct anv_uring_sqe {
	uint8_t opcode;
	uint8_t flags;
	uint16_t ioprio;
	int32_t fd;
	uint32_t cmd_op;
	uint32_t pad1;
	uint64_t addr;
	uint32_t len;
	uint32_t rw_flags;
	uint64_t user_data;
	uint16_t buf_index;
	uint16_t personality;
	int32_t splice_fd_in;
	uint8_t cmd[80]; /* from byte 48: the command (struct anv_nvme_uring_cmd) */
};

/* A 32-byte CQE (IORING_SETUP_CQE32); big_cqe[0] carries the NVMe result. */
struct anv_uring_cqe {
	uint64_t user_data;
	int32_t res;
	uint32_t flags;
	uint64_t big_cqe[2];
};

/**
 * struct anv_uring - one io_uring with 128-byte SQEs and 32-byte CQEs
 * @efd: the eventfd registered with IORING_REGISTER_EVENTFD; readable when
 *       a CQE was posted
 * @pending: SQEs filled since the last io_uring_enter
 */
struct anv_uring {
	int fd;
	int efd;
	uint32_t sq_entries, cq_entries;
	void *sq_map, *cq_map;
	size_t sq_map_len, cq_map_len;
	uint32_t *sq_head, *sq_tail, *sq_mask, *sq_array;
	uint32_t *cq_head, *cq_tail, *cq_mask, *cq_overflow;
	struct anv_uring_sqe *sqes;
	size_t sqes_len;
	struct anv_uring_cqe *cqes;
	uint32_t sq_local_tail;
	uint32_t pending;
};

/**
 * anv_uring_open() - io_uring_setup() with SQE128 | CQE32, map its rings and
 * register a new eventfd
 * @entries: SQ entries (the kernel rounds up to a power of two); the CQ has
 *           twice as many, so it cannot overflow with at most @entries
 *           commands outstanding
 *
 * Return: 0, or -1 with errno set (ENOSYS/EPERM: io_uring is not available
 * or disabled; EINVAL: the kernel predates SQE128/CQE32, Linux 5.19).
 */
int anv_uring_open(struct anv_uring *r, uint32_t entries);
void anv_uring_close(struct anv_uring *r);

/**
 * anv_uring_sqe_get() - the next free SQE, zeroed, or NULL (errno EBUSY)
 * when the SQ holds @sq_entries not yet consumed by the kernel
 */
struct anv_uring_sqe *anv_uring_sqe_get(struct anv_uring *r);

/**
 * anv_uring_enter() - publish the filled SQEs and hand them to the kernel
 * @wait: completions to wait for (0: do not block)
 *
 * Return: the number of SQEs the kernel consumed, or -1 with errno set.
 */
int anv_uring_enter(struct anv_uring *r, uint32_t wait);

/**
 * anv_uring_wait() - hand the pending SQEs to the kernel and sleep until a
 * CQE is posted or @timeout_ns passed (IORING_ENTER_EXT_ARG, Linux 5.11+)
 * Return: 0, or -1 with errno set (ETIME: the time passed).
 */
int anv_uring_wait(struct anv_uring *r, uint64_t timeout_ns);

/* The number of CQEs ready to be reaped. */
static inline uint32_t anv_uring_cq_ready(const struct anv_uring *r)
{
	/* acquire: the CQE contents are visible once the tail that covers them is */
	return __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE) - *r->cq_head;
}

/**
 * anv_uring_reap() - copy up to @max CQEs into @out and free their slots
 * Return: the number copied.
 */
int anv_uring_reap(struct anv_uring *r, struct anv_uring_cqe *out, int max);

/**
 * struct anv_kcpl - a completion as the kernel transport saw it
 * @cqe: the CQE equivalent: DW0/DW1 from the kernel's result, the status
 *       field from the kernel's NVMe status, sqid the queue, cid ours
 * @err: 0, or the errno of a command the kernel failed itself (rejected it,
 *       EINVAL/EACCES; cancelled it, EINTR): no NVMe status exists then
 * @counted: 1 when the CID was outstanding (and is free now), 0 for a
 *           completion naming no outstanding command
 */
struct anv_kcpl {
	struct anv_cqe cqe;
	int32_t err;
	uint32_t counted;
};

/**
 * struct anv_kqueue - the host's view of one kernel queue: a CID table,
 * a cmdlog and, for I/O, an io_uring on the generic char device
 * @fd: /dev/ngXnY (I/O, with @ring) or /dev/nvmeX (admin, ioctl: no ring)
 * @depth: at most depth - 1 commands outstanding, as on a PCIe queue pair
 */
struct anv_kqueue {
	int fd;
	uint16_t qid;
	uint32_t depth;
	int has_ring;
	struct anv_uring ring;
	uint16_t *free_cids;
	uint32_t nfree;
	uint8_t *cid_busy;
	uint64_t *cid_seq;
	struct anv_cmdlog log;
};

/**
 * anv_kqueue_init() - a queue on @fd (not owned); with @ring an io_uring of
 * @depth entries is set up for NVME_URING_CMD_IO
 * Return: 0, or -1 with errno set.
 */
int anv_kqueue_init(struct anv_kqueue *q, int fd, uint16_t qid, uint32_t depth, int ring);
void anv_kqueue_fini(struct anv_kqueue *q);

static inline int anv_kqueue_cid_alloc(struct anv_kqueue *q)
{
	uint16_t cid;

	if (!q->nfree) {
		errno = EBUSY;
		return -1;
	}
	cid = q->free_cids[--q->nfree];
	q->cid_busy[cid] = 1;
	return cid;
}

/* Give back a CID that was never submitted. */
static inline void anv_kqueue_cid_put(struct anv_kqueue *q, uint16_t cid)
{
	if (cid < q->depth && q->cid_busy[cid]) {
		q->cid_busy[cid] = 0;
		q->free_cids[q->nfree++] = cid;
	}
}

static inline int anv_kqueue_outstanding(const struct anv_kqueue *q)
{
	return (int)(q->depth - 1 - q->nfree);
}

/* Fill @cmd from the NVMe SQE @sqe (PRP/SGL fields are the kernel's to build). */
void anv_kernel_cmd_from_sqe(struct anv_nvme_uring_cmd *cmd, const struct anv_sqe *sqe,
			     void *data, uint32_t len, uint32_t timeout_ms);

/**
 * anv_kqueue_log() - record @sqe (its cid set, owned) in the cmdlog
 */
void anv_kqueue_log(struct anv_kqueue *q, const struct anv_sqe *sqe);

/**
 * anv_kqueue_submit() - record @sqe and put it on the ring as a uring_cmd
 * to @fd (a namespace's generic char device; -1: the queue's own) with @len
 * bytes of data at @data; with @flush the ring is entered now.  One ring
 * serves every namespace, as one I/O queue pair does on PCIe (each SQE names
 * its namespace's device; the kernel refuses, EINVAL, an NSID that is not
 * the device's).
 *
 * Return: 0, or -1 with errno set (EBUSY: the SQ is full; the CID stays
 * the caller's then).
 */
int anv_kqueue_submit(struct anv_kqueue *q, int fd, const struct anv_sqe *sqe, void *data,
		      uint32_t len, uint32_t timeout_ms, int flush);

/* Enter the ring for the SQEs submitted with flush = 0. */
int anv_kqueue_flush(struct anv_kqueue *q);

/**
 * anv_kqueue_complete() - the command of @c->cqe.cid completed: record it in
 * the cmdlog and free its CID
 * Return: 1, or 0 when the CID was not outstanding (nothing changed).
 */
int anv_kqueue_complete(struct anv_kqueue *q, const struct anv_kcpl *c);

/**
 * anv_kqueue_reap() - take up to @max completions of the ring into @out
 * (each recorded and its CID freed); completions naming no outstanding CID
 * are copied too, with @counted 0
 *
 * Return: the number copied.
 */
int anv_kqueue_reap(struct anv_kqueue *q, struct anv_kcpl *out, int max);

/* Free every outstanding CID (marked dropped in the cmdlog): the queue is gone. */
void anv_kqueue_drop_all(struct anv_kqueue *q);

/**
 * anv_kernel_admin() - one admin command by NVME_IOCTL_ADMIN64_CMD on @fd;
 * blocks until it completes (call it without the GIL, off the event loop)
 * @out: filled with the completion (cid and sqid from @sqe and 0)
 *
 * Return: 0 (the completion is in @out, its err set when the ioctl failed).
 */
int anv_kernel_admin(int fd, const struct anv_sqe *sqe, void *data, uint32_t len,
		     uint32_t timeout_ms, struct anv_kcpl *out);

/* NVME_IOCTL_ID on a namespace device: its NSID, or -1 with errno set. */
int anv_kernel_nsid(int fd);

/* NVME_IOCTL_RESET (kind 0), NVME_IOCTL_SUBSYS_RESET (1), NVME_IOCTL_RESCAN (2). */
int anv_kernel_reset(int fd, int kind);

#endif /* AIONVME_KERNEL_H */
