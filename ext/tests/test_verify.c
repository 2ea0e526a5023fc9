/* SPDX-License-Identifier: MIT */
/*
 * test_verify.c - unit tests of the verify table's rules, with the code under
 * test included and no device: the state each change leaves (Write, Write
 * Zeroes, Deallocate with each DLFEAT, Format), the power loss model (Flush,
 * FUA, written twice, a change across a power loss) and save/load.  A "read"
 * here is a buffer of LBA data checked the way a completed Read is.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../src/crc32c.c"
#include "../src/verify.c"
#include "../src/verify_inflight.c"
#include "../src/verify_io.c"
#include "tap.h"

#define NLBA 8192u
#define LBA 512u

static struct anv_verify v;
static uint8_t data[8 * LBA], media[NLBA][LBA];

/* A change of one range, completed successfully; the "device" applies it. */
static void change(enum anv_verify_op op, uint64_t slba, uint32_t nlb, int apply)
{
	struct anv_verify_range r = { slba, nlb };
	struct anv_verify_io *io;

	memset(data, 0x5a, sizeof(data));
	io = anv_verify_begin(&v, op, op == ANV_VERIFY_WRITE || op == ANV_VERIFY_WRITE_FUA ?
				      data : NULL, &r, 1);
	if (apply && (op == ANV_VERIFY_WRITE || op == ANV_VERIFY_WRITE_FUA))
		memcpy(media[slba], data, (size_t)nlb * LBA);
	if (apply && (op == ANV_VERIFY_WRITE_ZEROES || op == ANV_VERIFY_DEALLOC_ZEROES))
		memset(media[slba], 0, (size_t)nlb * LBA);
	if (apply && op == ANV_VERIFY_DEALLOC_ONES)
		memset(media[slba], 0xff, (size_t)nlb * LBA);
	anv_verify_end(&v, io, 1, NULL);
}

/* How many LBAs of a read of [slba, slba + nlb) from media fail the check. */
static uint64_t bad(uint64_t slba, uint32_t nlb)
{
	struct anv_verify_range r = { slba, nlb };
	struct anv_verify_mismatch m;
	struct anv_verify_io *io = anv_verify_begin(&v, ANV_VERIFY_READ, data, &r, 1);

	memcpy(data, media[slba], (size_t)nlb * LBA);
	return anv_verify_end(&v, io, 1, &m);
}

static void test_deallocate(void)
{
	uint8_t saved[LBA];

	change(ANV_VERIFY_WRITE, 0, 4, 1);
	memcpy(saved, media[1], LBA);
	change(ANV_VERIFY_DEALLOC_ZEROES, 0, 2, 1);   /* carried out: zeroes */
	change(ANV_VERIFY_DEALLOC_ZEROES, 2, 2, 0);   /* not: the old data */
	ok(bad(0, 4) == 0, "deallocated (DLFEAT 001b): zeroes or the old data both pass");
	memcpy(media[1], saved, LBA);
	ok(bad(1, 1) == 0, "the old data of a deallocated LBA passes");
	memset(media[1], 0xff, LBA);
	ok(bad(1, 1) == 1, "DLFEAT 001b: all FFh is a corruption");
	change(ANV_VERIFY_DEALLOC_ONES, 1, 1, 1);
	ok(bad(1, 1) == 0, "DLFEAT 010b: all FFh passes");
	change(ANV_VERIFY_DEALLOC, 3, 1, 0);
	memset(media[3], 0xff, LBA);
	ok(bad(3, 1) == 0, "DLFEAT 000b: all FFh passes");
	memset(media[3], 0, LBA);
	ok(bad(3, 1) == 0, "DLFEAT 000b: zeroes pass");
	media[3][100] = 1;
	ok(bad(3, 1) == 1, "after a Deallocate, other data is a corruption");
	change(ANV_VERIFY_WRITE, 3, 1, 1);
	memset(media[3], 0, LBA);
	ok(bad(3, 1) == 1, "a write makes the LBA exact again: zeroes fail");
	change(ANV_VERIFY_DEALLOC_ZEROES, 100, 4, 1);
	ok(anv_verify_get(&v, 100) == ANV_VERIFY_UNKNOWN, "deallocating unwritten LBAs: unknown");
}

static void test_write_zeroes(void)
{
	change(ANV_VERIFY_WRITE, 200, 2, 1);
	change(ANV_VERIFY_WRITE_ZEROES, 200, 2, 0);  /* a device that did nothing */
	ok(bad(200, 2) == 2, "Write Zeroes is not advisory: the old data fails");
	memset(media[200], 0, 2 * LBA);
	ok(bad(200, 2) == 0, "Write Zeroes: zeroes pass");
}

static void test_power_loss(void)
{
	uint8_t old[4][LBA];
	uint64_t n, g = anv_verify_flush_begin(&v);

	anv_verify_flush_end(&v, g, 1);               /* the earlier tests' writes are durable */
	change(ANV_VERIFY_WRITE, 300, 4, 1);
	change(ANV_VERIFY_WRITE, 400, 1, 1);
	g = anv_verify_flush_begin(&v);
	change(ANV_VERIFY_WRITE, 500, 1, 1);          /* completed after the Flush's submission */
	anv_verify_flush_end(&v, g, 1);
	memcpy(old, media[300], sizeof(old));
	change(ANV_VERIFY_WRITE, 300, 2, 1);          /* cached */
	change(ANV_VERIFY_WRITE_FUA, 302, 2, 1);      /* durable */
	change(ANV_VERIFY_WRITE, 400, 1, 1);          /* cached twice */
	change(ANV_VERIFY_WRITE, 400, 1, 1);
	n = anv_verify_power_loss(&v);
	ok(n == 3, "three LBAs are 'old or new' (300, 301, 500): %lu", (unsigned long)n);
	ok(anv_verify_get(&v, 400) == ANV_VERIFY_UNKNOWN, "written twice since durable: unknown");
	ok(bad(300, 4) == 0, "the new data passes");
	memcpy(media[300], old, 2 * LBA);
	ok(bad(300, 4) == 0, "the old data passes");
	media[301][40] ^= 1;
	ok(bad(301, 1) == 1, "either, checked exactly");
	memcpy(media[302], old[2], LBA);
	ok(bad(302, 1) == 1, "a FUA write must survive");
	ok(bad(500, 1) == 0, "a write completed after the Flush was submitted: new passes");
	ok(anv_verify_power_loss(&v) == 0, "after the first power loss, nothing more is at risk");
	media[302][40] ^= 1;
	ok(bad(302, 1) == 1, "durable LBAs stay exact after a second power loss");
}

static void test_across_a_power_loss(void)
{
	struct anv_verify_range r = { 600, 1 };
	struct anv_verify_io *io;

	change(ANV_VERIFY_WRITE, 600, 1, 1);
	io = anv_verify_begin(&v, ANV_VERIFY_WRITE, data, &r, 1);
	anv_verify_power_loss(&v);
	anv_verify_end(&v, io, 1, NULL);
	ok(anv_verify_get(&v, 600) == ANV_VERIFY_UNKNOWN,
	   "a write begun before a power loss and completed after it: unknown");
}

static void test_erased(void)
{
	uint8_t saved[LBA];

	change(ANV_VERIFY_WRITE, 700, 2, 1);
	change(ANV_VERIFY_WRITE_ZEROES, 702, 1, 1);
	memcpy(saved, media[700], LBA);
	anv_verify_erased(&v);
	ok(anv_verify_get(&v, 700) == ANV_VERIFY_NOT_OLD &&
	   anv_verify_get(&v, 702) == ANV_VERIFY_UNKNOWN, "after a Format: not-old, unknown");
	memset(media[700], 0, 2 * LBA);
	ok(bad(700, 2) == 0, "after a Format: zeroes pass");
	memcpy(media[700], saved, LBA);
	ok(bad(700, 2) == 1, "after a Format: the data written before fails");
}

static void test_save_load(void)
{
	char path[] = "/tmp/aionvme-test-verify-XXXXXX";
	uint8_t id[256] = { 1, 2, 3 }, other[256] = { 9 };
	int fd = mkstemp(path);
	uint32_t before;

	change(ANV_VERIFY_WRITE, 800, 1, 1);
	before = anv_verify_get(&v, 800);
	unlink(path);
	ok(anv_verify_save(&v, fd, id) == 0, "save");
	anv_verify_reset(&v);
	ok(anv_verify_get(&v, 800) == ANV_VERIFY_UNKNOWN, "reset forgets");
	ok(anv_verify_load(&v, fd, other) < 0 && errno == ESTALE, "load refuses another id");
	ok(anv_verify_load(&v, fd, id) == 0 && anv_verify_get(&v, 800) == before,
	   "load restores the table");
	ok(bad(800, 1) == 0, "and its checks");
	media[800][77] ^= 4;
	ok(bad(800, 1) == 1, "exactly");
	close(fd);
}

int main(void)
{
	if (anv_verify_open(&v, 1, NLBA, LBA) < 0) {
		perror("anv_verify_open");
		return 1;
	}
	test_deallocate();
	test_write_zeroes();
	test_power_loss();
	test_across_a_power_loss();
	test_erased();
	test_save_load();
	anv_verify_close(&v);
	return tap_done();
}
