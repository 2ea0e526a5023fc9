/* SPDX-License-Identifier: MIT */
/*
 * loop.c - the simulated controller's wait loop: IO queues are run here
 * without returning to Python; it returns only when the control plane has
 * work (a socket request, admin commands, a timer).  After activity it polls
 * the doorbells for @spin_ns before sleeping, as a real controller's
 * firmware does, so a host at queue depth 1 is not slowed by a wakeup.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

#include "aionvme/sim.h"

int sim_tick(struct sim_ctrl *c, uint64_t now_ns, uint64_t *next_due_ns);
int __sim_cq_full(struct sim_ctrl *c, uint16_t cqid);

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int sim_admin_pending(struct sim_ctrl *c)
{
	uint32_t tail;

	if (!c->sq[0].valid || !c->cq[0].valid || c->hung)
		return 0;
	tail = __atomic_load_n((uint32_t *)(c->bar + ANV_REG_DBS), __ATOMIC_ACQUIRE);
	/* An out-of-range tail wakes the control plane once, for its event (5.2). */
	if (tail >= c->sq[0].size)
		return tail != c->sq_db_seen[0];
	if (tail == c->sq[0].head)
		return 0;
	/* Nothing can be fetched while the admin CQ is full (4.1: no overwriting). */
	return !__sim_cq_full(c, 0);
}

int sim_run(struct sim_ctrl *c, int db_fd, int sock_fd, uint64_t deadline_ns, uint64_t spin_ns,
	    int io_enabled, int check_admin)
{
	uint64_t last_busy = mono_ns(), next_due, now;
	struct pollfd pfd[2] = { { .fd = sock_fd, .events = POLLIN }, { .fd = db_fd, .events = POLLIN } };
	uint64_t drain;
	int suppressed = 0;

	for (;;) {
		int n = io_enabled ? sim_process_io(c, 4096) : 0;

		if (io_enabled && check_admin && sim_admin_pending(c))
			return SIM_WAKE_ADMIN;
		now = mono_ns();
		if (c->ndelayed || c->coal_held)
			n += sim_tick(c, now, &next_due);
		else
			next_due = 0;
		if (deadline_ns && now >= deadline_ns)
			return SIM_WAKE_TIMER;
		if (n) {
			if (!suppressed) {
				sim_dbbuf_publish(c, 1); /* polling: no need to ring */
				suppressed = 1;
			}
			last_busy = now;
			continue;
		}
		if (now - last_busy < spin_ns) {
			/* Busy: look at the socket without sleeping, then poll the doorbells again. */
			if (poll(pfd, 1, 0) > 0)
				return SIM_WAKE_SOCKET;
			continue;
		}
		/* About to sleep: ask for rings, then look once more (a write may have raced). */
		if (c->dbbuf_enabled) {
			sim_dbbuf_publish(c, 0);
			suppressed = 0;
			if (io_enabled && sim_process_io(c, 4096)) {
				last_busy = mono_ns();
				continue;
			}
		}
		{
			uint64_t until = deadline_ns;
			int timeout_ms;
			int r;

			if (next_due && (!until || next_due < until))
				until = next_due;
			timeout_ms = until ? (int)((until > now ? until - now : 0) / 1000000u) + 1 : -1;
			r = poll(pfd, 2, timeout_ms);
			if (r < 0 && errno != EINTR)
				return -1;
			if (r > 0 && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
				return SIM_WAKE_SOCKET;
			if (r > 0 && (pfd[1].revents & POLLIN)) {
				if (read(db_fd, &drain, sizeof(drain)) < 0 && errno != EAGAIN)
					return -1;
				last_busy = mono_ns();
				check_admin = 1; /* a new doorbell: look at the admin SQ again */
			}
		}
	}
}
