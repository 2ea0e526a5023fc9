/* SPDX-License-Identifier: MIT */
/*
 * test_queue.c - unit tests of the arena allocator, PRP building and the
 * shadow doorbell rule, with the code under test included and a stub device.
 */
#include "../src/arena.c"
#include "../src/cmdlog.c"
#include "../src/queue.c"
#include "tap.h"

#include <signal.h>
#include <sys/wait.h>

static int rings;
static uint32_t last_off, last_val;

static int stub_doorbell(struct anv_dev *dev, uint32_t off, uint32_t val)
{
	(void)dev;
	rings++;
	last_off = off;
	last_val = val;
	return 0;
}

static const struct anv_dev_ops stub_ops = { .doorbell = stub_doorbell };

static void test_arena(void)
{
	struct anv_arena a;
	int64_t x, y, z;

	ok(anv_arena_open(&a, 8u << 20) == 0, "arena of 8 MiB opens");
	x = anv_arena_alloc(&a, 1);
	y = anv_arena_alloc(&a, 8192);
	ok(x >= (int64_t)ANV_ARENA_RESERVED, "allocations start above the reserved first MiB");
	ok(x % 4096 == 0 && y % 4096 == 0, "allocations are page aligned");
	ok(y >= x + 4096, "allocations do not overlap");
	memset(anv_arena_ptr(&a, (uint64_t)y), 0xab, 8192);
	anv_arena_free(&a, (uint64_t)y, 8192);
	z = anv_arena_alloc(&a, 4096);
	ok(z == y && ((uint8_t *)anv_arena_ptr(&a, (uint64_t)z))[0] == 0, "freed pages come back zeroed");
	ok(anv_arena_alloc(&a, 64u << 20) < 0 && errno == ENOMEM, "too large an allocation fails with ENOMEM");
	anv_arena_close(&a);
}

static void test_prp(void)
{
	struct anv_arena a;
	struct anv_dev dev = { .ops = &stub_ops };
	struct anv_qpair qp;
	uint64_t p1, p2, *list;

	anv_arena_open(&a, 16u << 20);
	ok(anv_qpair_init(&qp, &dev, &a, 1, 8, 0) == 0, "queue pair of depth 8");
	anv_qpair_build_prp(&qp, 0, 0x200000, 4096, &p1, &p2);
	ok(p1 == 0x200000 && p2 == 0, "one page: PRP1 only (4.1.1)");
	anv_qpair_build_prp(&qp, 0, 0x200800, 4096, &p1, &p2);
	ok(p1 == 0x200800 && p2 == 0x201000, "an offset page crossing one boundary: PRP2 is the next page");
	anv_qpair_build_prp(&qp, 3, 0x200000, 5 * 4096, &p1, &p2);
	list = anv_arena_ptr(&a, p2);
	ok(p2 == qp.prp_iova + 3 * 4096, "more than two pages: PRP2 is the CID's list page");
	ok(list[0] == 0x201000 && list[3] == 0x204000 && list[4] == 0, "list entries are the next pages, then 0");
	anv_qpair_build_prp(&qp, 3, 0x200000, 3 * 4096, &p1, &p2);
	ok(list[1] == 0x202000 && list[2] == 0 && list[3] == 0, "a shorter list leaves no stale entries");
	ok(anv_qpair_build_prp(&qp, 0, 0x200000, 600u * 4096, &p1, &p2) < 0 && errno == E2BIG,
	   "a transfer needing two list pages is refused");
	/* A command that transfers more than its buffer holds (a raw send_cmd). */
	anv_qpair_build_prp_for(&qp, 3, 0x200000, 2 * 4096, 3 * 4096, &p1, &p2);
	ok(p2 == qp.prp_iova + 3 * 4096 && list[0] == 0x201000 && list[1] == 0,
	   "a two-page buffer, a three-page transfer: a list (never the data page), then 0");
	anv_qpair_build_prp_for(&qp, 3, 0x200000, 4096, 2 * 4096, &p1, &p2);
	ok(p1 == 0x200000 && p2 == 0, "a one-page buffer, a two-page transfer: PRP2 is 0");
	anv_qpair_build_prp_for(&qp, 3, 0x200000, 3 * 4096, 2 * 4096, &p1, &p2);
	ok(p2 == 0x201000, "a transfer shorter than the buffer: its own shape (PRP2 a data page)");
	ok(anv_qpair_build_prp_for(&qp, 3, 0x200000, 513u * 4096, 600u * 4096, &p1, &p2) < 0 &&
	   errno == E2BIG, "a buffer filling the list page while the transfer needs more: refused");
	anv_qpair_fini(&qp);
	anv_arena_close(&a);
}

static void test_cids_and_shadow(void)
{
	struct anv_arena a;
	struct anv_dev dev = { .ops = &stub_ops };
	struct anv_qpair qp;
	struct anv_sqe sqe = { 0 };
	uint8_t *dbs, *eis;
	int got = 0;

	anv_arena_open(&a, 16u << 20);
	anv_qpair_init(&qp, &dev, &a, 2, 4, 0);
	errno = 0;
	while (anv_qpair_cid_alloc(&qp) >= 0)
		got++;
	ok(got == 3 && errno == EBUSY, "depth 4 gives 3 CIDs (3.3.1: full at tail + 1 == head)");
	anv_qpair_fini(&qp);
	anv_qpair_init(&qp, &dev, &a, 2, 16, 0);
	dbs = anv_arena_ptr(&a, (uint64_t)anv_arena_alloc(&a, 4096));
	eis = anv_arena_ptr(&a, (uint64_t)anv_arena_alloc(&a, 4096));
	anv_qpair_set_dbbuf(&qp, dbs, eis);
	/* Two commands outstanding: the queue is busy, so EventIdx decides. */
	anv_qpair_cid_alloc(&qp);
	anv_qpair_cid_alloc(&qp);
	rings = 0;
	sqe.cid = 0;
	anv_qpair_submit(&qp, &sqe, 1);
	ok(rings == 1 && last_off == 0x1010 && last_val == 1,
	   "EventIdx not written by the controller yet: the tail rings the MMIO doorbell");
	anv_qpair_submit(&qp, &sqe, 1);
	ok(rings == 2 && last_val == 2, "still not written: ring again");
	/* The controller polls: EventIdx one behind the tail 2 it has seen. */
	((uint32_t *)eis)[4] = 1;
	anv_qpair_submit(&qp, &sqe, 1);
	ok(rings == 2 && ((uint32_t *)dbs)[4] == 3, "EventIdx behind: the shadow doorbell moves, no MMIO write");
	((uint32_t *)eis)[4] = 3;
	anv_qpair_submit(&qp, &sqe, 1);
	ok(rings == 3 && last_val == 4, "EventIdx at the old tail: ring again");
	((uint32_t *)eis)[4] = 3; /* polling again ... */
	anv_qpair_drop_all(&qp);  /* ... but the queue went idle: its only command rings */
	sqe.cid = (uint16_t)anv_qpair_cid_alloc(&qp);
	anv_qpair_submit(&qp, &sqe, 1);
	ok(rings == 4 && last_val == 5, "the only command of an idle queue rings whatever EventIdx says");
	anv_qpair_fini(&qp);
	anv_arena_close(&a);
}

/* In a debug build (AIONVME_DEBUG=1) a double free aborts: it is aionvme's own bug. */
static void test_debug_checks(void)
{
	struct anv_arena a;
	int64_t x;
	pid_t pid;
	int status = 0;

	anv_arena_open(&a, 8u << 20);
	x = anv_arena_alloc(&a, 4096);
	anv_arena_free(&a, (uint64_t)x, 4096);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		fclose(stderr); /* the check's message is expected */
		anv_arena_free(&a, (uint64_t)x, 4096);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	if (AIONVME_DEBUG)
		ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "debug build: a double free aborts");
	else
		ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "normal build: no checks compiled in");
	anv_arena_close(&a);
}

int main(void)
{
	test_arena();
	test_prp();
	test_cids_and_shadow();
	test_debug_checks();
	return tap_done();
}
