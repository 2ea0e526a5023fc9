/* SPDX-License-Identifier: MIT */
/*
 * proxy.c - doorbells rung by a process that has no channel of its own to
 * the device (an ioworker on the qemu backend, whose qtest socket belongs to
 * the parent).  A ring stores the value at its BAR0 offset in a shared page,
 * counts the ring at the same offset plus ANV_PROXY_SEQ_OFF, and writes an
 * eventfd; the device's owner forwards every counted ring (dev/qemu.c), so a
 * ring of the same value as the last one (after a full lap of the queue) is
 * not lost.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "aionvme/dev.h"

struct proxy_priv {
	uint8_t *page;
	int page_fd;
	int efd;
};

static int proxy_doorbell(struct anv_dev *dev, uint32_t off, uint32_t val)
{
	struct proxy_priv *p = dev->priv;
	uint64_t one = 1;

	if (off < ANV_REG_DBS || off + 4 > ANV_MSIX_TABLE_OFF) {
		errno = EINVAL;
		return -1;
	}
	/* Release: the SQE stores are visible before the value, the value before its count. */
	__atomic_store_n((uint32_t *)(p->page + off), val, __ATOMIC_RELEASE);
	__atomic_fetch_add((uint32_t *)(p->page + ANV_PROXY_SEQ_OFF + off), 1u, __ATOMIC_RELEASE);
	if (write(p->efd, &one, sizeof(one)) != sizeof(one))
		return -1;
	return 0;
}

static int proxy_unsupported(void)
{
	errno = EOPNOTSUPP; /* registers and config space are the owner's */
	return -1;
}

static int proxy_cfg_read(struct anv_dev *d, uint32_t o, uint32_t l, uint64_t *v)
{
	(void)d, (void)o, (void)l, (void)v;
	return proxy_unsupported();
}

static int proxy_write(struct anv_dev *d, uint32_t o, uint32_t l, uint64_t v)
{
	(void)d, (void)o, (void)l, (void)v;
	return proxy_unsupported();
}

static int proxy_reset(struct anv_dev *d, int kind)
{
	(void)d, (void)kind;
	return proxy_unsupported();
}

static void proxy_close(struct anv_dev *dev)
{
	struct proxy_priv *p = dev->priv;

	if (!p)
		return;
	munmap(p->page, ANV_BAR0_SIZE);
	close(p->page_fd);
	close(p->efd);
	free(p);
	dev->priv = NULL;
}

static const struct anv_dev_ops proxy_ops = {
	.cfg_read = proxy_cfg_read,
	.cfg_write = proxy_write,
	.bar_read = proxy_cfg_read,
	.bar_write = proxy_write,
	.doorbell = proxy_doorbell,
	.reset = proxy_reset,
	.close = proxy_close,
};

int anv_proxy_open_doorbells(struct anv_dev *dev, int page_fd, int efd)
{
	struct proxy_priv *p = calloc(1, sizeof(*p));

	if (!p)
		return -1;
	p->page = mmap(NULL, ANV_BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, page_fd, 0);
	if (p->page == MAP_FAILED) {
		free(p);
		return -1;
	}
	p->page_fd = page_fd;
	p->efd = efd;
	dev->ops = &proxy_ops;
	dev->priv = p;
	dev->nvec = 0;
	for (int i = 0; i < ANV_MSIX_MAX_VECTORS; i++)
		dev->irq_fd[i] = -1;
	return 0;
}
