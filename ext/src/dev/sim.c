/* SPDX-License-Identifier: MIT */
/*
 * sim.c - host side of the simulator backend.  Register and config accesses
 * are synchronous requests on a unix socket; doorbells are stores into the
 * shared BAR page followed by an eventfd kick (like KVM's ioeventfd).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aionvme/dev.h"

/*
 * A request that takes longer than this means the device process hangs
 * (AIONVME_SIM_REPLY_TIMEOUT_MS overrides it, e.g. for a test of that).
 */
#define SIM_REPLY_TIMEOUT_MS 20000

struct sim_priv {
	int sock;
	int bar_fd;
	int db_fd;
	int reply_timeout_ms;
	int lost;     /* the request stream broke: no request goes out again */
	uint8_t *bar;
};

static int xfer_all(int fd, void *buf, size_t len, int sending, int timeout_ms)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n;

		if (!sending) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };
			int r = poll(&pfd, 1, timeout_ms);

			if (r == 0) {
				errno = ETIMEDOUT;
				return -1;
			}
			if (r < 0) {
				if (errno == EINTR)
					continue;
				return -1;
			}
			n = recv(fd, p, len, 0);
		} else {
			n = send(fd, p, len, MSG_NOSIGNAL);
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			errno = EIO;
			return -1;
		}
		if (n == 0) {
			errno = EIO; /* the device process is gone */
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static const struct anv_dev_ops sim_ops;

int anv_sim_call(struct anv_dev *dev, uint32_t op, uint32_t off, uint32_t len,
		 uint64_t val, const void *payload, uint32_t plen, uint64_t *rval,
		 void *rbuf, uint32_t rcap, uint32_t *rlen)
{
	struct sim_priv *s = dev->priv;
	struct anv_sim_req req = { .op = op, .off = off, .len = len, .plen = plen, .val = val };
	struct anv_sim_rep rep;
	uint32_t keep;

	if (!s || s->sock < 0) {
		errno = EIO;
		return -1;
	}
	if (xfer_all(s->sock, &req, sizeof(req), 1, s->reply_timeout_ms) < 0)
		goto lost;
	if (plen && xfer_all(s->sock, (void *)payload, plen, 1, s->reply_timeout_ms) < 0)
		goto lost;
	if (xfer_all(s->sock, &rep, sizeof(rep), 0, s->reply_timeout_ms) < 0)
		goto lost;
	keep = rep.plen < rcap ? rep.plen : rcap;
	if (keep && xfer_all(s->sock, rbuf, keep, 0, s->reply_timeout_ms) < 0)
		goto lost;
	/* Drain what does not fit so the stream stays framed. */
	for (uint32_t left = rep.plen - keep; left;) {
		uint8_t sink[256];
		uint32_t n = left < sizeof(sink) ? left : (uint32_t)sizeof(sink);

		if (xfer_all(s->sock, sink, n, 0, s->reply_timeout_ms) < 0)
			goto lost;
		left -= n;
	}
	if (rlen)
		*rlen = keep;
	if (rval)
		*rval = rep.val;
	if (rep.err) {
		errno = rep.err;
		return -1;
	}
	return 0;

lost:
	/*
	 * Part of a request or reply is missing (a timeout, or the process went
	 * away): a late reply would be taken as the answer to the next request.
	 * The device is dead to this host; every later request fails with EIO.
	 */
	{
		int err = errno;

		shutdown(s->sock, SHUT_RDWR);
		close(s->sock);
		s->sock = -1;
		s->lost = 1;
		errno = err;
	}
	return -1;
}

int anv_sim_lost(struct anv_dev *dev)
{
	struct sim_priv *s = dev->priv;

	return dev->ops == &sim_ops && s && s->lost;
}

static int sim_cfg_read(struct anv_dev *dev, uint32_t off, uint32_t len, uint64_t *val)
{
	return anv_sim_call(dev, ANV_SIM_OP_CFG_READ, off, len, 0, NULL, 0, val, NULL, 0, NULL);
}

static int sim_cfg_write(struct anv_dev *dev, uint32_t off, uint32_t len, uint64_t val)
{
	return anv_sim_call(dev, ANV_SIM_OP_CFG_WRITE, off, len, val, NULL, 0, NULL, NULL, 0, NULL);
}

static int sim_bar_read(struct anv_dev *dev, uint32_t off, uint32_t len, uint64_t *val)
{
	return anv_sim_call(dev, ANV_SIM_OP_BAR_READ, off, len, 0, NULL, 0, val, NULL, 0, NULL);
}

static int sim_bar_write(struct anv_dev *dev, uint32_t off, uint32_t len, uint64_t val)
{
	return anv_sim_call(dev, ANV_SIM_OP_BAR_WRITE, off, len, val, NULL, 0, NULL, NULL, 0, NULL);
}

static int sim_doorbell(struct anv_dev *dev, uint32_t off, uint32_t val)
{
	struct sim_priv *s = dev->priv;
	uint64_t one = 1;

	if (off < ANV_REG_DBS || off + 4 > ANV_MSIX_TABLE_OFF) {
		errno = EINVAL;
		return -1;
	}
	/* Release: the SQE stores are visible before the new tail. */
	__atomic_store_n((uint32_t *)(s->bar + off), val, __ATOMIC_RELEASE);
	if (write(s->db_fd, &one, sizeof(one)) != sizeof(one))
		return -1;
	return 0;
}

static int sim_reset(struct anv_dev *dev, int kind)
{
	return anv_sim_call(dev, ANV_SIM_OP_RESET, 0, 0, (uint64_t)kind, NULL, 0, NULL, NULL, 0, NULL);
}

static void sim_close(struct anv_dev *dev)
{
	struct sim_priv *s = dev->priv;

	if (!s)
		return;
	if (s->bar)
		munmap(s->bar, ANV_BAR0_SIZE);
	if (s->sock >= 0)
		close(s->sock);
	if (s->bar_fd >= 0)
		close(s->bar_fd);
	if (s->db_fd >= 0)
		close(s->db_fd);
	__anv_dev_close_irqs(dev);
	free(s);
	dev->priv = NULL;
}

static const struct anv_dev_ops sim_ops = {
	.cfg_read = sim_cfg_read,
	.cfg_write = sim_cfg_write,
	.bar_read = sim_bar_read,
	.bar_write = sim_bar_write,
	.doorbell = sim_doorbell,
	.reset = sim_reset,
	.close = sim_close,
};

/* The backend state over the shared BAR page; NULL with errno set. */
static struct sim_priv *sim_priv_new(int sock, int bar_fd, int db_fd)
{
	struct sim_priv *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->bar = mmap(NULL, ANV_BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, bar_fd, 0);
	if (s->bar == MAP_FAILED) {
		free(s);
		return NULL;
	}
	s->sock = sock;
	s->bar_fd = bar_fd;
	s->db_fd = db_fd;
	s->reply_timeout_ms = SIM_REPLY_TIMEOUT_MS;
	{
		const char *env = getenv("AIONVME_SIM_REPLY_TIMEOUT_MS");
		long ms = env ? strtol(env, NULL, 10) : 0;

		if (ms > 0 && ms <= 3600000)
			s->reply_timeout_ms = (int)ms;
	}
	return s;
}

int anv_sim_open(struct anv_dev *dev, int sock, int bar_fd, int db_fd,
		 const int *irq_fds, int nvec)
{
	struct sim_priv *s;

	if (nvec < 1 || nvec > ANV_MSIX_MAX_VECTORS) {
		errno = EINVAL;
		return -1;
	}
	s = sim_priv_new(sock, bar_fd, db_fd);
	if (!s)
		return -1;
	return __anv_dev_init(dev, &sim_ops, s, irq_fds, nvec);
}

int anv_sim_open_doorbells(struct anv_dev *dev, int bar_fd, int db_fd)
{
	/* No socket: register and config requests fail with EIO; no vectors. */
	struct sim_priv *s = sim_priv_new(-1, bar_fd, db_fd);

	if (!s)
		return -1;
	memset(dev, 0, sizeof(*dev));
	dev->ops = &sim_ops;
	dev->priv = s;
	for (int i = 0; i < ANV_MSIX_MAX_VECTORS; i++)
		dev->irq_fd[i] = -1;
	return 0;
}

int anv_sim_doorbell_fds(struct anv_dev *dev, int *bar_fd, int *db_fd)
{
	struct sim_priv *s = dev->priv;

	if (dev->ops != &sim_ops || !s) {
		errno = EOPNOTSUPP;
		return -1;
	}
	*bar_fd = s->bar_fd;
	*db_fd = s->db_fd;
	return 0;
}
