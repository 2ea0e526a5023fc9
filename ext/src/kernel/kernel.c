/* SPDX-License-Identifier: MIT */
/*
 * kernel.c - the kernel transport (see kernel.h): an io_uring of big SQEs and
 * CQEs driven by the raw system calls, the CID table and cmdlog of a kernel
 * queue, and the admin ioctl.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "aionvme/debug.h"
#include "aionvme/kernel.h"

/* The generic system call table (and x86-64's) numbers them alike since 5.1. */
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_enter
#define __NR_io_uring_enter 426
#endif
#ifndef __NR_io_uring_register
#define __NR_io_uring_register 427
#endif

_Static_assert(sizeof(struct anv_nvme_uring_cmd) == 72, "struct nvme_uring_cmd is 72 bytes");
_Static_assert(sizeof(struct anv_nvme_passthru_cmd64) == 80, "struct nvme_passthru_cmd64 is 80 bytes");
_Static_assert(sizeof(struct anv_uring_sqe) == 128, "an SQE128 is 128 bytes");
_Static_assert(offsetof(struct anv_uring_sqe, cmd) == 48, "the uring_cmd area starts at byte 48");
_Static_assert(sizeof(struct anv_uring_cqe) == 32, "a CQE32 is 32 bytes");

/* struct io_sqring_offsets / io_cqring_offsets / io_uring_params (Linux 5.1 on) */
struct anv_sqring_offsets {
	uint32_t head, tail, ring_mask, ring_entries, flags, dropped, array, resv1;
	uint64_t user_addr;
};

struct anv_cqring_offsets {
	uint32_t head, tail, ring_mask, ring_entries, overflow, cqes, flags, resv1;
	uint64_t user_addr;
};

struct anv_uring_params {
	uint32_t sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle, features, wq_fd;
	uint32_t resv[3];
	struct anv_sqring_offsets sq_off;
	struct anv_cqring_offsets cq_off;
};

_Static_assert(sizeof(struct anv_uring_params) == 120, "struct io_uring_params is 120 bytes");

#if defined(__has_include)
#if __has_include(<linux/io_uring.h>)
#include <linux/io_uring.h>
#ifdef IORING_SETUP_CQE32 /* headers of Linux 5.19 or later: check our copies */
_Static_assert(sizeof(struct io_uring_params) == sizeof(struct anv_uring_params), "params");
_Static_assert(offsetof(struct io_uring_params, sq_off) == offsetof(struct anv_uring_params, sq_off),
	       "sq_off");
_Static_assert(offsetof(struct io_uring_sqe, cmd_op) == offsetof(struct anv_uring_sqe, cmd_op),
	       "cmd_op");
_Static_assert(offsetof(struct io_uring_sqe, user_data) ==
		       offsetof(struct anv_uring_sqe, user_data), "user_data");
_Static_assert(offsetof(struct io_uring_sqe, cmd) == offsetof(struct anv_uring_sqe, cmd), "cmd");
_Static_assert(IORING_OP_URING_CMD == ANV_IORING_OP_URING_CMD, "IORING_OP_URING_CMD");
_Static_assert(IORING_SETUP_SQE128 == ANV_IORING_SETUP_SQE128, "SQE128");
_Static_assert(IORING_SETUP_CQE32 == ANV_IORING_SETUP_CQE32, "CQE32");
_Static_assert(IORING_OFF_SQES == ANV_IORING_OFF_SQES, "IORING_OFF_SQES");
_Static_assert(IORING_OFF_CQ_RING == ANV_IORING_OFF_CQ_RING, "IORING_OFF_CQ_RING");
#endif
#endif
#if __has_include(<linux/nvme_ioctl.h>)
#include <linux/nvme_ioctl.h>
#ifdef NVME_URING_CMD_IO
_Static_assert(NVME_URING_CMD_IO == ANV_NVME_URING_CMD_IO, "NVME_URING_CMD_IO");
_Static_assert(NVME_URING_CMD_ADMIN == ANV_NVME_URING_CMD_ADMIN, "NVME_URING_CMD_ADMIN");
_Static_assert(NVME_IOCTL_ADMIN64_CMD == ANV_NVME_IOCTL_ADMIN64_CMD, "NVME_IOCTL_ADMIN64_CMD");
_Static_assert(NVME_IOCTL_RESET == ANV_NVME_IOCTL_RESET, "NVME_IOCTL_RESET");
_Static_assert(NVME_IOCTL_SUBSYS_RESET == ANV_NVME_IOCTL_SUBSYS_RESET, "NVME_IOCTL_SUBSYS_RESET");
_Static_assert(NVME_IOCTL_ID == ANV_NVME_IOCTL_ID, "NVME_IOCTL_ID");
#endif
#endif
#endif

static int sys_setup(uint32_t entries, struct anv_uring_params *p)
{
	return (int)syscall(__NR_io_uring_setup, entries, p);
}

static int sys_enter(int fd, uint32_t to_submit, uint32_t min_complete, uint32_t flags)
{
	return (int)syscall(__NR_io_uring_enter, fd, to_submit, min_complete, flags, NULL, 0);
}

/* struct io_uring_getevents_arg and struct __kernel_timespec */
struct anv_uring_getevents_arg {
	uint64_t sigmask;
	uint32_t sigmask_sz;
	uint32_t pad;
	uint64_t ts;
};

struct anv_kernel_timespec {
	int64_t tv_sec;
	long long tv_nsec;
};

static int sys_register(int fd, uint32_t op, void *arg, uint32_t nr)
{
	return (int)syscall(__NR_io_uring_register, fd, op, arg, nr);
}

int anv_uring_open(struct anv_uring *r, uint32_t entries)
{
	struct anv_uring_params p;
	uint8_t *sq, *cq;
	int err;

	memset(r, 0, sizeof(*r));
	r->fd = r->efd = -1;
	memset(&p, 0, sizeof(p));
	p.flags = ANV_IORING_SETUP_SQE128 | ANV_IORING_SETUP_CQE32;
	r->fd = sys_setup(entries, &p);
	if (r->fd < 0)
		return -1;
	r->sq_entries = p.sq_entries;
	r->cq_entries = p.cq_entries;
	r->sq_map_len = p.sq_off.array + p.sq_entries * sizeof(uint32_t);
	r->cq_map_len = p.cq_off.cqes + p.cq_entries * sizeof(struct anv_uring_cqe);
	if (p.features & ANV_IORING_FEAT_SINGLE_MMAP) {
		if (r->cq_map_len > r->sq_map_len)
			r->sq_map_len = r->cq_map_len;
		r->cq_map_len = r->sq_map_len;
	}
	r->sq_map = mmap(NULL, r->sq_map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			 r->fd, (off_t)ANV_IORING_OFF_SQ_RING);
	if (r->sq_map == MAP_FAILED) {
		r->sq_map = NULL;
		goto fail;
	}
	if (p.features & ANV_IORING_FEAT_SINGLE_MMAP) {
		r->cq_map = r->sq_map;
	} else {
		r->cq_map = mmap(NULL, r->cq_map_len, PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_POPULATE, r->fd, (off_t)ANV_IORING_OFF_CQ_RING);
		if (r->cq_map == MAP_FAILED) {
			r->cq_map = NULL;
			goto fail;
		}
	}
	r->sqes_len = p.sq_entries * sizeof(struct anv_uring_sqe);
	r->sqes = mmap(NULL, r->sqes_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
		       (off_t)ANV_IORING_OFF_SQES);
	if (r->sqes == MAP_FAILED) {
		r->sqes = NULL;
		goto fail;
	}
	sq = r->sq_map;
	cq = r->cq_map;
	r->sq_head = (uint32_t *)(sq + p.sq_off.head);
	r->sq_tail = (uint32_t *)(sq + p.sq_off.tail);
	r->sq_mask = (uint32_t *)(sq + p.sq_off.ring_mask);
	r->sq_array = (uint32_t *)(sq + p.sq_off.array);
	r->cq_head = (uint32_t *)(cq + p.cq_off.head);
	r->cq_tail = (uint32_t *)(cq + p.cq_off.tail);
	r->cq_mask = (uint32_t *)(cq + p.cq_off.ring_mask);
	r->cq_overflow = (uint32_t *)(cq + p.cq_off.overflow);
	r->cqes = (struct anv_uring_cqe *)(cq + p.cq_off.cqes);
	r->sq_local_tail = *r->sq_tail;
	r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (r->efd < 0)
		goto fail;
	if (sys_register(r->fd, ANV_IORING_REGISTER_EVENTFD, &r->efd, 1) < 0)
		goto fail;
	return 0;
fail:
	err = errno;
	anv_uring_close(r);
	errno = err;
	return -1;
}

void anv_uring_close(struct anv_uring *r)
{
	if (r->sqes)
		munmap(r->sqes, r->sqes_len);
	if (r->cq_map && r->cq_map != r->sq_map)
		munmap(r->cq_map, r->cq_map_len);
	if (r->sq_map)
		munmap(r->sq_map, r->sq_map_len);
	if (r->fd >= 0)
		close(r->fd);
	if (r->efd >= 0)
		close(r->efd);
	memset(r, 0, sizeof(*r));
	r->fd = r->efd = -1;
}

struct anv_uring_sqe *anv_uring_sqe_get(struct anv_uring *r)
{
	/* acquire: the kernel is done reading the SQEs before the head it published */
	uint32_t head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
	struct anv_uring_sqe *sqe;
	uint32_t idx;

	if (r->sq_local_tail - head >= r->sq_entries) {
		errno = EBUSY;
		return NULL;
	}
	idx = r->sq_local_tail & *r->sq_mask;
	sqe = &r->sqes[idx];
	memset(sqe, 0, sizeof(*sqe));
	r->sq_array[idx] = idx;
	r->sq_local_tail++;
	r->pending++;
	return sqe;
}

int anv_uring_enter(struct anv_uring *r, uint32_t wait)
{
	uint32_t n = r->pending;
	int ret;

	/* release: the SQE and array stores are visible before the new tail */
	__atomic_store_n(r->sq_tail, r->sq_local_tail, __ATOMIC_RELEASE);
	if (!n && !wait)
		return 0;
	do {
		ret = sys_enter(r->fd, n, wait, wait ? ANV_IORING_ENTER_GETEVENTS : 0);
	} while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -1;
	r->pending -= (uint32_t)ret < n ? (uint32_t)ret : n;
	return ret;
}

int anv_uring_wait(struct anv_uring *r, uint64_t timeout_ns)
{
	struct anv_kernel_timespec ts = {
		.tv_sec = (int64_t)(timeout_ns / 1000000000u),
		.tv_nsec = (long long)(timeout_ns % 1000000000u),
	};
	struct anv_uring_getevents_arg arg = { .ts = (uint64_t)(uintptr_t)&ts };
	uint32_t n = r->pending;
	int ret;

	__atomic_store_n(r->sq_tail, r->sq_local_tail, __ATOMIC_RELEASE);
	ret = (int)syscall(__NR_io_uring_enter, r->fd, n, 1u,
			   ANV_IORING_ENTER_GETEVENTS | ANV_IORING_ENTER_EXT_ARG, &arg, sizeof(arg));
	if (ret < 0)
		return -1;
	r->pending -= (uint32_t)ret < n ? (uint32_t)ret : n;
	return 0;
}

int anv_uring_reap(struct anv_uring *r, struct anv_uring_cqe *out, int max)
{
	uint32_t head = *r->cq_head;
	uint32_t tail = __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE);
	int n = 0;

	while (head != tail && n < max) {
		out[n++] = r->cqes[head & *r->cq_mask];
		head++;
	}
	/* release: our reads of the CQEs are done before the kernel may reuse them */
	__atomic_store_n(r->cq_head, head, __ATOMIC_RELEASE);
	return n;
}

int anv_kqueue_init(struct anv_kqueue *q, int fd, uint16_t qid, uint32_t depth, int ring)
{
	uint32_t i;
	int err;

	memset(q, 0, sizeof(*q));
	q->fd = fd;
	q->qid = qid;
	q->depth = depth;
	q->ring.fd = q->ring.efd = -1;
	if (depth < 2 || depth > 65536) {
		errno = EINVAL;
		return -1;
	}
	q->free_cids = calloc(depth, sizeof(*q->free_cids));
	q->cid_busy = calloc(depth, 1);
	q->cid_seq = calloc(depth, sizeof(*q->cid_seq));
	if (!q->free_cids || !q->cid_busy || !q->cid_seq) {
		errno = ENOMEM;
		goto fail;
	}
	if (anv_cmdlog_init(&q->log, depth * 2) < 0)
		goto fail;
	/* depth - 1 CIDs, highest first on the stack so CID 0 goes out first */
	for (i = 0; i + 1 < depth; i++)
		q->free_cids[q->nfree++] = (uint16_t)(depth - 2 - i);
	if (ring) {
		if (anv_uring_open(&q->ring, depth) < 0)
			goto fail;
		q->has_ring = 1;
	}
	return 0;
fail:
	err = errno;
	anv_kqueue_fini(q);
	errno = err;
	return -1;
}

void anv_kqueue_fini(struct anv_kqueue *q)
{
	if (q->has_ring)
		anv_uring_close(&q->ring);
	q->has_ring = 0;
	anv_cmdlog_fini(&q->log);
	free(q->free_cids);
	free(q->cid_busy);
	free(q->cid_seq);
	q->free_cids = NULL;
	q->cid_busy = NULL;
	q->cid_seq = NULL;
	q->nfree = 0;
}

void anv_kernel_cmd_from_sqe(struct anv_nvme_uring_cmd *cmd, const struct anv_sqe *sqe,
			     void *data, uint32_t len, uint32_t timeout_ms)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->opcode = sqe->opcode;
	cmd->flags = sqe->flags;
	cmd->nsid = sqe->nsid;
	cmd->cdw2 = sqe->cdw2;
	cmd->cdw3 = sqe->cdw3;
	cmd->addr = (uint64_t)(uintptr_t)data;
	cmd->data_len = data ? len : 0;
	cmd->cdw10 = sqe->cdw10;
	cmd->cdw11 = sqe->cdw11;
	cmd->cdw12 = sqe->cdw12;
	cmd->cdw13 = sqe->cdw13;
	cmd->cdw14 = sqe->cdw14;
	cmd->cdw15 = sqe->cdw15;
	cmd->timeout_ms = timeout_ms;
}

void anv_kqueue_log(struct anv_kqueue *q, const struct anv_sqe *sqe)
{
	anv_dbg_check(sqe->cid < q->depth && q->cid_busy[sqe->cid]);
	q->cid_seq[sqe->cid] = anv_cmdlog_submit(&q->log, sqe);
}

int anv_kqueue_submit(struct anv_kqueue *q, int fd, const struct anv_sqe *sqe, void *data,
		      uint32_t len, uint32_t timeout_ms, int flush)
{
	struct anv_uring_sqe *u;

	if (!q->has_ring) {
		errno = EINVAL;
		return -1;
	}
	u = anv_uring_sqe_get(&q->ring);
	if (!u)
		return -1;
	u->opcode = ANV_IORING_OP_URING_CMD;
	u->fd = fd >= 0 ? fd : q->fd;
	u->cmd_op = ANV_NVME_URING_CMD_IO;
	u->user_data = sqe->cid;
	anv_kernel_cmd_from_sqe((struct anv_nvme_uring_cmd *)u->cmd, sqe, data, len, timeout_ms);
	anv_kqueue_log(q, sqe);
	if (flush && anv_uring_enter(&q->ring, 0) < 0)
		return -2; /* on the ring: its completion still comes (or the queue is dropped) */
	return 0;
}

int anv_kqueue_flush(struct anv_kqueue *q)
{
	return q->has_ring ? anv_uring_enter(&q->ring, 0) : 0;
}

int anv_kqueue_complete(struct anv_kqueue *q, const struct anv_kcpl *c)
{
	uint16_t cid = c->cqe.cid;

	if (cid >= q->depth || !q->cid_busy[cid])
		return 0; /* the caller keeps @c->counted 0 */
	anv_cmdlog_complete(&q->log, q->cid_seq[cid], &c->cqe);
	if (c->err)
		anv_cmdlog_error(&q->log, q->cid_seq[cid], c->err);
	q->cid_busy[cid] = 0;
	q->free_cids[q->nfree++] = cid;
	return 1;
}

/* The CQE equivalent of a kernel completion: status field as the kernel saw it. */
static void kcpl_from(struct anv_kcpl *c, uint16_t qid, uint64_t cid, int32_t res,
		      uint64_t result)
{
	memset(c, 0, sizeof(*c));
	c->cqe.cdw0 = (uint32_t)result;
	c->cqe.cdw1 = (uint32_t)(result >> 32);
	c->cqe.sqid = qid;
	c->cqe.cid = cid > 0xffff ? 0xffff : (uint16_t)cid;
	if (res < 0)
		c->err = -res;
	else /* the kernel hands back the 15-bit status field (CQE DW3 bits 31:17) */
		c->cqe.status = (uint16_t)((uint32_t)res << 1);
}

int anv_kqueue_reap(struct anv_kqueue *q, struct anv_kcpl *out, int max)
{
	struct anv_uring_cqe cqes[64];
	int n, i, total = 0;

	if (!q->has_ring)
		return 0;
	while (total < max) {
		n = anv_uring_reap(&q->ring, cqes, max - total < 64 ? max - total : 64);
		for (i = 0; i < n; i++) {
			struct anv_kcpl *c = &out[total + i];

			kcpl_from(c, q->qid, cqes[i].user_data, cqes[i].res, cqes[i].big_cqe[0]);
			c->counted = cqes[i].user_data < q->depth &&
				     anv_kqueue_complete(q, c);
		}
		total += n;
		if (n < 64)
			break;
	}
	return total;
}

void anv_kqueue_drop_all(struct anv_kqueue *q)
{
	uint32_t cid;

	for (cid = 0; cid < q->depth; cid++) {
		if (q->cid_busy[cid]) {
			anv_cmdlog_flag(&q->log, q->cid_seq[cid], ANV_LOG_DROPPED);
			q->cid_busy[cid] = 0;
			q->free_cids[q->nfree++] = (uint16_t)cid;
		}
	}
}

int anv_kernel_admin(int fd, const struct anv_sqe *sqe, void *data, uint32_t len,
		     uint32_t timeout_ms, struct anv_kcpl *out)
{
	struct anv_nvme_passthru_cmd64 cmd;
	int ret;

	anv_kernel_cmd_from_sqe(&cmd.c, sqe, data, len, timeout_ms);
	cmd.result = 0;
	/* Returns the NVMe status field (> 0), 0, or -1 with errno (the kernel's own failure). */
	ret = ioctl(fd, ANV_NVME_IOCTL_ADMIN64_CMD, &cmd);
	kcpl_from(out, 0, sqe->cid, ret < 0 ? -errno : ret, cmd.result);
	return 0;
}

int anv_kernel_nsid(int fd)
{
	return ioctl(fd, ANV_NVME_IOCTL_ID);
}

int anv_kernel_reset(int fd, int kind)
{
	static const unsigned long req[] = {ANV_NVME_IOCTL_RESET, ANV_NVME_IOCTL_SUBSYS_RESET,
					    ANV_NVME_IOCTL_RESCAN};

	if (kind < 0 || kind > 2) {
		errno = EINVAL;
		return -1;
	}
	return ioctl(fd, req[kind]);
}
