/* SPDX-License-Identifier: MIT */
/*
 * crc32c.h - CRC32C (Castagnoli, reflected polynomial 0x82F63B78), the
 * checksum the data verification keeps per LBA.
 *
 * On x86-64 with SSE4.2 the CRC32 instruction does the work; a fixed-length
 * plan splits a block into three streams that the CPU runs in parallel (the
 * instruction has a latency of three cycles and a throughput of one), then
 * joins them with precomputed "append zeroes" tables.  Elsewhere a portable
 * slicing-by-8 table computes the same values.
 */
#ifndef AIONVME_CRC32C_H
#define AIONVME_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/**
 * struct anv_crc32c_plan - how to checksum blocks of one fixed length fast
 * @len: bytes per block
 * @block: bytes per stream (multiple of 8); three streams, then a serial tail
 * @shift: @shift[k][b] moves byte k (value b) of a CRC register over @block
 *         zero bytes; a stream is joined by shifting the CRCs before it
 */
struct anv_crc32c_plan {
	size_t len;
	size_t block;
	uint32_t shift[4][256];
};

/**
 * anv_crc32c() - CRC32C of a buffer, continuing from @crc
 * @crc: 0 to start, or the result for the bytes before @buf
 * @buf: data
 * @len: bytes
 *
 * Uses the CRC32 instruction when the CPU has SSE4.2.
 *
 * Return: the CRC32C of all bytes so far.
 */
uint32_t anv_crc32c(uint32_t crc, const void *buf, size_t len);

/**
 * anv_crc32c_sw() - anv_crc32c() with the portable tables only
 *
 * The fallback on CPUs without SSE4.2; tests compare both.
 */
uint32_t anv_crc32c_sw(uint32_t crc, const void *buf, size_t len);

/**
 * anv_crc32c_plan_init() - prepare checksums of @len-byte blocks
 * @p: plan to fill
 * @len: bytes per block (an LBA's data size)
 *
 * Return: 0, or -1 with errno EINVAL when @len is 0.
 */
int anv_crc32c_plan_init(struct anv_crc32c_plan *p, size_t len);

/**
 * anv_crc32c_plan_run() - CRC32C of one block of @p->len bytes
 *
 * Return: the same value as anv_crc32c(0, @buf, @p->len).
 */
uint32_t anv_crc32c_plan_run(const struct anv_crc32c_plan *p, const void *buf);

/**
 * anv_crc32c_hw() - whether the CRC32 instruction is used (SSE4.2)
 *
 * Return: 1 when it is, 0 when the tables are.
 */
int anv_crc32c_hw(void);

#endif /* AIONVME_CRC32C_H */
