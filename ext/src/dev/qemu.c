/* SPDX-License-Identifier: MIT */
/*
 * qemu.c - the qemu backend: QEMU's emulated NVMe controller (hw/nvme)
 * driven through the qtest protocol, with no guest OS.  Guest RAM is the DMA
 * arena (a memory-backend-file on the arena's memfd), so queues and buffers
 * need no copying; configuration space goes through ports 0xcf8/0xcfc and
 * BAR0 through readl/writel on the address the host assigned.
 *
 * MSI-X: every table entry points at a dword of guest RAM (a mailbox); a
 * thread watches the mailboxes and turns each write QEMU makes into a write
 * to the vector's eventfd, which the asyncio poller waits on.
 *
 * Doorbell writes are pipelined: their "OK" replies are collected before the
 * next request that needs an answer, so a batch of submissions costs one
 * round trip instead of one each.
 *
 * Worker processes (ioworkers) cannot share the qtest socket: they ring
 * doorbells the way they ring the simulator's, a store into a shared page at
 * the doorbell's BAR0 offset and an eventfd write; a proxy thread here
 * forwards every changed doorbell to QEMU.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "aionvme/dev.h"

#define QTEST_TIMEOUT_MS 20000
#define MAX_PIPELINED 64

struct qemu_priv {
	int sock;
	uint32_t bdf;          /* config address bits for bus 0, device, function */
	uint64_t bar0;         /* guest physical address of BAR0 */
	uint32_t bar0_lo, bar0_hi;
	uint32_t devfn;
	int ecam_on;           /* the q35 MCH's PCIEXBAR is programmed */
	unsigned pending_ok;   /* pipelined writes whose reply is not read yet */
	char rbuf[4096];
	size_t rlen;

	/* the doorbell proxy for worker processes */
	int proxy_fd;               /* memfd: a BAR0-sized page of doorbells */
	int proxy_efd;              /* eventfd the workers write after a doorbell store */
	uint32_t *proxy;
	uint32_t proxy_seen[(ANV_MSIX_TABLE_OFF - ANV_REG_DBS) / 4]; /* ring counts forwarded */
	pthread_t proxy_thread;
	int proxy_on;

	volatile uint32_t *mailbox; /* one dword per vector in guest RAM */
	pthread_t thread;
	int thread_on;
	volatile int stop;
	pthread_mutex_t lock;  /* the socket: poller thread never uses it, callers may */
};

static int send_line(struct qemu_priv *q, const char *line, size_t len)
{
	while (len) {
		ssize_t n = send(q->sock, line, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			errno = EIO;
			return -1;
		}
		line += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read one reply line ("OK ...", "FAIL ...", "ERR ..."); asynchronous lines are skipped. */
static int read_reply(struct qemu_priv *q, char *out, size_t cap)
{
	for (;;) {
		char *nl = memchr(q->rbuf, '\n', q->rlen);

		if (nl) {
			size_t len = (size_t)(nl - q->rbuf);
			int is_reply = len >= 2 && (!strncmp(q->rbuf, "OK", 2) || !strncmp(q->rbuf, "FAIL", 4) ||
						    !strncmp(q->rbuf, "ERR", 3));

			if (is_reply && out) {
				size_t keep = len < cap - 1 ? len : cap - 1;

				memcpy(out, q->rbuf, keep);
				out[keep] = 0;
			}
			memmove(q->rbuf, nl + 1, q->rlen - len - 1);
			q->rlen -= len + 1;
			if (is_reply)
				return 0;
			continue; /* "IRQ raise" and the like */
		}
		if (q->rlen == sizeof(q->rbuf)) {
			q->rlen = 0; /* an absurdly long line: drop it */
			continue;
		}
		{
			struct pollfd pfd = { .fd = q->sock, .events = POLLIN };
			int r = poll(&pfd, 1, QTEST_TIMEOUT_MS);
			ssize_t n;

			if (r == 0) {
				errno = ETIMEDOUT;
				return -1;
			}
			if (r < 0) {
				if (errno == EINTR)
					continue;
				return -1;
			}
			n = recv(q->sock, q->rbuf + q->rlen, sizeof(q->rbuf) - q->rlen, 0);
			if (n <= 0) {
				if (n < 0 && errno == EINTR)
					continue;
				errno = EIO; /* QEMU is gone */
				return -1;
			}
			q->rlen += (size_t)n;
		}
	}
}

static int drain_pipelined(struct qemu_priv *q)
{
	char line[128];

	while (q->pending_ok) {
		if (read_reply(q, line, sizeof(line)) < 0)
			return -1;
		q->pending_ok--;
		if (strncmp(line, "OK", 2)) {
			errno = EIO;
			return -1;
		}
	}
	return 0;
}

/* One qtest command and its reply; the value after "OK" goes to @val. */
static int qtest(struct qemu_priv *q, uint64_t *val, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int qtest(struct qemu_priv *q, uint64_t *val, const char *fmt, ...)
{
	char line[160], reply[160];
	va_list ap;
	int n, rc = -1;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&q->lock);
	if (drain_pipelined(q) < 0 || send_line(q, line, (size_t)n) < 0 ||
	    read_reply(q, reply, sizeof(reply)) < 0)
		goto out;
	if (strncmp(reply, "OK", 2)) {
		errno = EIO;
		goto out;
	}
	if (val)
		*val = reply[2] ? strtoull(reply + 3, NULL, 16) : 0;
	rc = 0;
out:
	pthread_mutex_unlock(&q->lock);
	return rc;
}

static uint32_t cfg_addr(struct qemu_priv *q, uint32_t off)
{
	return 0x80000000u | q->bdf | (off & 0xfcu);
}

/*
 * Extended configuration space (offsets 100h-FFFh) is reached only through
 * ECAM (PCIe 7.2.2).  The q35 MCH (00:00.0) maps it where its PCIEXBAR
 * register (60h) says; with no BIOS, nobody has set it, so do it here:
 * 256 MiB at QEMU's default base, enabled.
 */
#define ECAM_BASE 0xb0000000ull
#define MCH_PCIEXBAR 0x60u

static int ecam(struct qemu_priv *q)
{
	if (q->ecam_on)
		return 0;
	if (qtest(q, NULL, "outl 0xcf8 0x%x\n", 0x80000000u | MCH_PCIEXBAR) < 0 ||
	    qtest(q, NULL, "outl 0xcfc 0x%x\n", (uint32_t)ECAM_BASE | 1u) < 0 ||
	    qtest(q, NULL, "outl 0xcf8 0x%x\n", 0x80000000u | (MCH_PCIEXBAR + 4u)) < 0 ||
	    qtest(q, NULL, "outl 0xcfc 0x0\n") < 0)
		return -1;
	q->ecam_on = 1;
	return 0;
}

static uint64_t ecam_addr(struct qemu_priv *q, uint32_t off)
{
	return ECAM_BASE + ((uint64_t)q->devfn << 12) + off; /* bus 0 */
}

static int qemu_cfg_read(struct anv_dev *dev, uint32_t off, uint32_t len, uint64_t *val)
{
	struct qemu_priv *q = dev->priv;
	static const char *in[] = { NULL, "inb", "inw", NULL, "inl" };

	if (off >= 256) {
		static const char *rd[] = { NULL, "readb", "readw", NULL, "readl" };

		if (ecam(q) < 0)
			return -1;
		return qtest(q, val, "%s 0x%" PRIx64 "\n", rd[len], ecam_addr(q, off));
	}
	if (qtest(q, NULL, "outl 0xcf8 0x%x\n", cfg_addr(q, off)) < 0)
		return -1;
	return qtest(q, val, "%s 0x%x\n", in[len], 0xcfcu + (off & 3u));
}

static int qemu_cfg_write(struct anv_dev *dev, uint32_t off, uint32_t len, uint64_t val)
{
	struct qemu_priv *q = dev->priv;
	static const char *out[] = { NULL, "outb", "outw", NULL, "outl" };

	if (off >= 256) {
		static const char *wr[] = { NULL, "writeb", "writew", NULL, "writel" };

		if (ecam(q) < 0)
			return -1;
		return qtest(q, NULL, "%s 0x%" PRIx64 " 0x%" PRIx64 "\n", wr[len], ecam_addr(q, off), val);
	}
	if (qtest(q, NULL, "outl 0xcf8 0x%x\n", cfg_addr(q, off)) < 0 ||
	    qtest(q, NULL, "%s 0x%x 0x%" PRIx64 "\n", out[len], 0xcfcu + (off & 3u), val) < 0)
		return -1;
	/* Follow where the host puts BAR0 (a 64-bit memory BAR: 0x10 and 0x14). */
	if (off == 0x10 && len == 4)
		q->bar0_lo = (uint32_t)val & ~0xfu;
	else if (off == 0x14 && len == 4)
		q->bar0_hi = (uint32_t)val;
	q->bar0 = ((uint64_t)q->bar0_hi << 32) | q->bar0_lo;
	return 0;
}

static int qemu_bar_read(struct anv_dev *dev, uint32_t off, uint32_t len, uint64_t *val)
{
	struct qemu_priv *q = dev->priv;

	return qtest(q, val, "%s 0x%" PRIx64 "\n", len == 8 ? "readq" : "readl", q->bar0 + off);
}

static int qemu_bar_write(struct anv_dev *dev, uint32_t off, uint32_t len, uint64_t val)
{
	struct qemu_priv *q = dev->priv;

	return qtest(q, NULL, "%s 0x%" PRIx64 " 0x%" PRIx64 "\n", len == 8 ? "writeq" : "writel",
		     q->bar0 + off, val);
}

static int qemu_doorbell(struct anv_dev *dev, uint32_t off, uint32_t val)
{
	struct qemu_priv *q = dev->priv;
	char line[96];
	int n, rc = -1;

	n = snprintf(line, sizeof(line), "writel 0x%" PRIx64 " 0x%x\n", q->bar0 + off, val);
	pthread_mutex_lock(&q->lock);
	if (q->pending_ok >= MAX_PIPELINED && drain_pipelined(q) < 0)
		goto out;
	if (send_line(q, line, (size_t)n) < 0)
		goto out;
	q->pending_ok++;
	rc = 0;
out:
	pthread_mutex_unlock(&q->lock);
	return rc;
}

/* The MSI-X mailboxes in guest RAM -> eventfds. */
static void *mailbox_thread(void *arg)
{
	struct anv_dev *dev = arg;
	struct qemu_priv *q = dev->priv;
	struct timespec idle = { .tv_sec = 0, .tv_nsec = 20000 };

	while (!q->stop) {
		volatile uint32_t *mb = q->mailbox;
		int fired = 0;

		if (mb) {
			for (int v = 0; v < dev->nvec; v++) {
				if (mb[v] && __atomic_exchange_n(&mb[v], 0, __ATOMIC_ACQ_REL)) {
					uint64_t one = 1;

					if (write(dev->irq_fd[v], &one, sizeof(one)) < 0) {
						/* the reader is gone; nothing to deliver to */
					}
					fired = 1;
				}
			}
		}
		if (!fired)
			nanosleep(&idle, NULL);
	}
	return NULL;
}

static const struct anv_dev_ops qemu_ops;

/* Forward every ring the workers counted in the proxy page (dev/proxy.c). */
static void *proxy_thread(void *arg)
{
	struct anv_dev *dev = arg;
	struct qemu_priv *q = dev->priv;
	const unsigned n = (ANV_MSIX_TABLE_OFF - ANV_REG_DBS) / 4;
	const uint32_t *vals = q->proxy + ANV_REG_DBS / 4;
	const uint32_t *seqs = q->proxy + (ANV_REG_DBS + ANV_PROXY_SEQ_OFF) / 4;
	struct pollfd pfd = { .fd = q->proxy_efd, .events = POLLIN };
	uint64_t drain;

	while (!q->stop) {
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if (read(q->proxy_efd, &drain, sizeof(drain)) < 0 && errno != EAGAIN)
			continue;
		for (unsigned i = 0; i < n; i++) {
			/* Acquire: the value read next is at least as new as the count. */
			uint32_t seq = __atomic_load_n(&seqs[i], __ATOMIC_ACQUIRE);

			if (seq != q->proxy_seen[i]) {
				q->proxy_seen[i] = seq;
				qemu_doorbell(dev, ANV_REG_DBS + 4u * i,
					      __atomic_load_n(&vals[i], __ATOMIC_ACQUIRE));
			}
		}
	}
	return NULL;
}

int anv_qemu_doorbell_fds(struct anv_dev *dev, int *page_fd, int *efd)
{
	struct qemu_priv *q = dev->priv;

	if (dev->ops != &qemu_ops || !q) {
		errno = EOPNOTSUPP;
		return -1;
	}
	if (!q->proxy_on) {
		q->proxy_fd = memfd_create("aionvme-qemu-doorbells", MFD_CLOEXEC);
		if (q->proxy_fd < 0)
			return -1;
		if (ftruncate(q->proxy_fd, ANV_BAR0_SIZE) < 0)
			goto close_fd;
		q->proxy = mmap(NULL, ANV_BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, q->proxy_fd, 0);
		if (q->proxy == MAP_FAILED)
			goto close_fd;
		q->proxy_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (q->proxy_efd < 0)
			goto unmap;
		if (pthread_create(&q->proxy_thread, NULL, proxy_thread, dev))
			goto close_efd;
		q->proxy_on = 1;
	}
	*page_fd = q->proxy_fd;
	*efd = q->proxy_efd;
	return 0;

close_efd:
	close(q->proxy_efd);
unmap:
	munmap(q->proxy, ANV_BAR0_SIZE);
close_fd:
	close(q->proxy_fd);
	q->proxy_fd = q->proxy_efd = -1;
	q->proxy = NULL;
	return -1;
}

static int qemu_reset(struct anv_dev *dev, int kind)
{
	(void)dev;
	(void)kind;
	errno = EOPNOTSUPP; /* FLR goes through config space; power is the process's */
	return -1;
}

static void qemu_close(struct anv_dev *dev)
{
	struct qemu_priv *q = dev->priv;

	if (!q)
		return;
	q->stop = 1;
	if (q->thread_on)
		pthread_join(q->thread, NULL);
	if (q->proxy_on) {
		uint64_t one = 1;

		if (write(q->proxy_efd, &one, sizeof(one)) < 0) {
			/* the thread wakes within 100 ms anyway */
		}
		pthread_join(q->proxy_thread, NULL);
		munmap(q->proxy, ANV_BAR0_SIZE);
		close(q->proxy_fd);
		close(q->proxy_efd);
	}
	if (q->sock >= 0)
		close(q->sock);
	__anv_dev_close_irqs(dev);
	pthread_mutex_destroy(&q->lock);
	free(q);
	dev->priv = NULL;
}

static const struct anv_dev_ops qemu_ops = {
	.cfg_read = qemu_cfg_read,
	.cfg_write = qemu_cfg_write,
	.bar_read = qemu_bar_read,
	.bar_write = qemu_bar_write,
	.doorbell = qemu_doorbell,
	.reset = qemu_reset,
	.close = qemu_close,
};

int anv_qemu_open(struct anv_dev *dev, int sock, uint32_t devfn, const int *irq_fds, int nvec)
{
	struct qemu_priv *q;

	if (nvec < 1 || nvec > ANV_MSIX_MAX_VECTORS) {
		errno = EINVAL;
		return -1;
	}
	q = calloc(1, sizeof(*q));
	if (!q)
		return -1;
	q->sock = sock;
	q->bdf = (devfn & 0xffu) << 8;
	q->devfn = devfn & 0xffu;
	pthread_mutex_init(&q->lock, NULL);
	q->proxy_fd = q->proxy_efd = -1;
	__anv_dev_init(dev, &qemu_ops, q, irq_fds, nvec);
	if (pthread_create(&q->thread, NULL, mailbox_thread, dev) == 0)
		q->thread_on = 1;
	return 0;
}

void anv_qemu_set_mailbox(struct anv_dev *dev, uint32_t *mailbox)
{
	struct qemu_priv *q = dev->priv;

	if (q)
		q->mailbox = mailbox;
}

int anv_qemu_reconnect(struct anv_dev *dev, int sock)
{
	struct qemu_priv *q = dev->priv;

	if (!q) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&q->lock);
	if (q->sock >= 0)
		close(q->sock);
	q->sock = sock;
	q->pending_ok = 0;
	q->rlen = 0;
	q->bar0 = q->bar0_lo = q->bar0_hi = 0;
	q->ecam_on = 0; /* a new machine: PCIEXBAR is unset again */
	pthread_mutex_unlock(&q->lock);
	return 0;
}
