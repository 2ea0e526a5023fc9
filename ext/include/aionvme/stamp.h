/* SPDX-License-Identifier: MIT */
/*
 * stamp.h - what aionvme writes into each LBA it writes: the LBA number in
 * bytes 7:0 and a write token in bytes 15:8, little endian as every other
 * NVMe field.  Data read back then names where it was written and by which
 * command; an LBA never written reads as the device's unwritten value.
 */
#ifndef AIONVME_STAMP_H
#define AIONVME_STAMP_H

#include <stdint.h>

#define ANV_STAMP_BYTES 16u

/**
 * anv_stamp_lba() - stamp one LBA's data at @p: @lba and @token
 */
static inline void anv_stamp_lba(uint8_t *p, uint64_t lba, uint64_t token)
{
	for (int b = 0; b < 8; b++) {
		p[b] = (uint8_t)(lba >> (8 * b));
		p[8 + b] = (uint8_t)(token >> (8 * b));
	}
}

/**
 * anv_stamp_lbas() - stamp @nlb LBAs of @lba_size bytes from @slba at @data
 */
static inline void anv_stamp_lbas(uint8_t *data, uint32_t lba_size, uint64_t slba, uint64_t nlb,
				  uint64_t token)
{
	for (uint64_t i = 0; i < nlb; i++)
		anv_stamp_lba(data + i * lba_size, slba + i, token);
}

#endif /* AIONVME_STAMP_H */
