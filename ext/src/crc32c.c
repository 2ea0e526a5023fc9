/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "aionvme/crc32c.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#define ANV_CRC32C_X86 1
#endif

#define POLY 0x82f63b78u

static uint32_t sw_table[8][256];
static pthread_once_t sw_once = PTHREAD_ONCE_INIT;

static void sw_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t crc = n;

		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ POLY : crc >> 1;
		sw_table[0][n] = crc;
	}
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t crc = sw_table[0][n];

		for (int k = 1; k < 8; k++) {
			crc = sw_table[0][crc & 0xff] ^ (crc >> 8);
			sw_table[k][n] = crc;
		}
	}
}

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* The register before the final inversion: @crc is a raw register too. */
static uint32_t sw_raw(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		crc = sw_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
		len--;
	}
	while (len >= 8) {
		/* Slicing-by-8 assumes a little-endian load, as on x86 and arm64. */
		uint64_t w = load64(p) ^ crc;

		crc = sw_table[7][w & 0xff] ^ sw_table[6][(w >> 8) & 0xff] ^
		      sw_table[5][(w >> 16) & 0xff] ^ sw_table[4][(w >> 24) & 0xff] ^
		      sw_table[3][(w >> 32) & 0xff] ^ sw_table[2][(w >> 40) & 0xff] ^
		      sw_table[1][(w >> 48) & 0xff] ^ sw_table[0][w >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = sw_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

uint32_t anv_crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&sw_once, sw_init);
	return ~sw_raw(~crc, buf, len);
}

#ifdef ANV_CRC32C_X86
__attribute__((target("sse4.2")))
static uint32_t hw_raw(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t c = crc;

	while (len && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		len--;
	}
	while (len >= 8) {
		c = _mm_crc32_u64(c, load64(p));
		p += 8;
		len -= 8;
	}
	while (len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return (uint32_t)c;
}

static inline uint32_t shift(const struct anv_crc32c_plan *pl, uint32_t crc)
{
	return pl->shift[0][crc & 0xff] ^ pl->shift[1][(crc >> 8) & 0xff] ^
	       pl->shift[2][(crc >> 16) & 0xff] ^ pl->shift[3][crc >> 24];
}

/*
 * CRC is linear: crc(A || B) = zeroes_|B|(crc(A)) ^ crc0(B), with crc0 the
 * register run from 0.  Three streams over A, B, C are independent
 * dependency chains, so the instruction's three-cycle latency overlaps.
 */
__attribute__((target("sse4.2")))
static uint32_t hw_plan(const struct anv_crc32c_plan *pl, const uint8_t *p)
{
	const uint8_t *a = p, *b = p + pl->block, *c = p + 2 * pl->block;
	uint64_t c0 = 0xffffffffu, c1 = 0, c2 = 0;
	uint32_t crc;

	for (size_t i = 0; i < pl->block; i += 8) {
		c0 = _mm_crc32_u64(c0, load64(a + i));
		c1 = _mm_crc32_u64(c1, load64(b + i));
		c2 = _mm_crc32_u64(c2, load64(c + i));
	}
	crc = shift(pl, (uint32_t)c0) ^ (uint32_t)c1;
	crc = shift(pl, crc) ^ (uint32_t)c2;
	crc = hw_raw(crc, p + 3 * pl->block, pl->len - 3 * pl->block);
	return ~crc;
}
#endif

static int hw_state = -1;

int anv_crc32c_hw(void)
{
	if (hw_state < 0) {
#ifdef ANV_CRC32C_X86
		__builtin_cpu_init();
		hw_state = __builtin_cpu_supports("sse4.2") ? 1 : 0;
#else
		hw_state = 0;
#endif
	}
	return hw_state;
}

uint32_t anv_crc32c(uint32_t crc, const void *buf, size_t len)
{
#ifdef ANV_CRC32C_X86
	if (anv_crc32c_hw())
		return ~hw_raw(~crc, buf, len);
#endif
	return anv_crc32c_sw(crc, buf, len);
}

/* GF(2) 32x32 matrix (one column a word) times a vector. */
static uint32_t gf2_times(const uint32_t *mat, uint32_t vec)
{
	uint32_t sum = 0;

	for (; vec; vec >>= 1, mat++)
		if (vec & 1)
			sum ^= *mat;
	return sum;
}

static void gf2_square(uint32_t *sq, const uint32_t *mat)
{
	for (int n = 0; n < 32; n++)
		sq[n] = gf2_times(mat, mat[n]);
}

/* The operator that appends @len zero bytes to a raw CRC register. */
static void zeroes_op(uint32_t *op, size_t len)
{
	uint32_t pow[32], tmp[32], row = 1;

	/* pow: one zero bit; squared three times it is one zero byte. */
	pow[0] = POLY;
	for (int n = 1; n < 32; n++, row <<= 1)
		pow[n] = row;
	for (int k = 0; k < 3; k++) {
		gf2_square(tmp, pow);
		memcpy(pow, tmp, sizeof(pow));
	}
	/* op = identity, then multiply in pow^(2^i) for each set bit i of len. */
	for (int n = 0; n < 32; n++)
		op[n] = 1u << n;
	while (len) {
		if (len & 1) {
			for (int n = 0; n < 32; n++)
				tmp[n] = gf2_times(pow, op[n]);
			memcpy(op, tmp, sizeof(tmp));
		}
		len >>= 1;
		if (len) {
			gf2_square(tmp, pow);
			memcpy(pow, tmp, sizeof(pow));
		}
	}
}

int anv_crc32c_plan_init(struct anv_crc32c_plan *p, size_t len)
{
	uint32_t op[32];

	if (!len) {
		errno = EINVAL;
		return -1;
	}
	memset(p, 0, sizeof(*p));
	p->len = len;
	p->block = (len / 24) * 8;
	if (!p->block)
		return 0;
	zeroes_op(op, p->block);
	for (uint32_t n = 0; n < 256; n++)
		for (int k = 0; k < 4; k++)
			p->shift[k][n] = gf2_times(op, n << (8 * k));
	return 0;
}

uint32_t anv_crc32c_plan_run(const struct anv_crc32c_plan *p, const void *buf)
{
#ifdef ANV_CRC32C_X86
	if (anv_crc32c_hw()) {
		if (p->block)
			return hw_plan(p, buf);
		return ~hw_raw(~0u, buf, p->len);
	}
#endif
	return anv_crc32c_sw(0, buf, p->len);
}
