/* SPDX-License-Identifier: MIT */
/*
 * dma.c - the simulated controller's DMA engine: walks PRPs (4.1.1) and
 * SGLs (4.1.2) of a command and copies between host memory (the arena) and
 * a device-side buffer.  Any address outside the arena is a Data Transfer
 * Error; the walk is bounded, so a hostile list cannot loop.
 */
#include <string.h>

#include "aionvme/arena.h"
#include "aionvme/sim.h"

#define PAGE 4096u
#define SGL_MAX_DESCRIPTORS 4096u

/*
 * Host memory as an IOMMU would map it: the arena minus its reserved first
 * MiB (IOVA 0 and low addresses are never mapped), so a data pointer of 0 or
 * an overlong transfer faults instead of landing in some other buffer.
 */
static inline uint8_t *host(struct sim_ctrl *c, uint64_t iova, uint64_t len)
{
	if (iova < ANV_ARENA_RESERVED || iova >= c->arena_size || len > c->arena_size - iova)
		return NULL;
	return c->arena + iova;
}

static inline int copy(struct sim_ctrl *c, uint64_t iova, uint8_t *buf, uint64_t len, int to_host)
{
	uint8_t *p = host(c, iova, len);

	if (!p)
		return -1;
	if (to_host)
		memcpy(p, buf, len);
	else
		memcpy(buf, p, len);
	return 0;
}

static int dma_prp(struct sim_ctrl *c, const struct anv_sqe *sqe, uint8_t *buf, uint64_t len,
		   int to_host, uint16_t *status)
{
	uint64_t prp1 = sqe->prp1, prp2 = sqe->prp2;
	uint64_t first = PAGE - (prp1 & (PAGE - 1));
	uint64_t done;

	/* 4.1.1: PRP1's offset must be dword aligned. */
	if (prp1 & 3u) {
		*status = ANV_STATUS(ANV_SCT_GENERIC, ANV_SC_INVALID_PRP_OFFSET);
		return -1;
	}
	if (first > len)
		first = len;
	if (copy(c, prp1, buf, first, to_host) < 0)
		goto xfer_error;
	done = first;
	if (done == len)
		return 0;
	if (len - done <= PAGE) {
		/* PRP2 is the second data page. */
		if (prp2 & (PAGE - 1)) {
			*status = ANV_STATUS(ANV_SCT_GENERIC, ANV_SC_INVALID_PRP_OFFSET);
			return -1;
		}
		if (copy(c, prp2, buf + done, len - done, to_host) < 0)
			goto xfer_error;
		return 0;
	}
	/* PRP2 points to a PRP list; qword aligned, may start mid-page. */
	if (prp2 & 7u) {
		*status = ANV_STATUS(ANV_SCT_GENERIC, ANV_SC_INVALID_PRP_OFFSET);
		return -1;
	}
	{
		uint64_t entry_addr = prp2;

		while (done < len) {
			uint64_t *entry = (uint64_t *)host(c, entry_addr, 8);
			uint64_t chunk = len - done < PAGE ? len - done : PAGE;
			uint64_t page;

			if (!entry)
				goto xfer_error;
			page = *entry;
			/* The last entry of a list page chains to the next list page. */
			if (((entry_addr + 8) & (PAGE - 1)) == 0 && len - done > PAGE) {
				if (page & 7u) {
					*status = ANV_STATUS(ANV_SCT_GENERIC, ANV_SC_INVALID_PRP_OFFSET);
					return -1;
				}
				entry_addr = page;
				continue;
			}
			if (page & (PAGE - 1)) {
				*status = ANV_STATUS(ANV_SCT_GENERIC, ANV_SC_INVALID_PRP_OFFSET);
				return -1;
			}
			if (copy(c, page, buf + done, chunk, to_host) < 0)
				goto xfer_error;
			done += chunk;
			entry_addr += 8;
		}
	}
	return 0;

xfer_error:
	*status = ANV_STATUS(ANV_SCT_GENERIC, ANV_SC_DATA_XFER_ERROR);
	return -1;
}

static int dma_sgl(struct sim_ctrl *c, const struct anv_sqe *sqe, uint8_t *buf, uint64_t len,
		   int to_host, uint16_t *status)
{
	struct anv_sgl_desc d;
	const struct anv_sgl_desc *seg = NULL;
	uint32_t nseg = 0, idx = 0, budget = SGL_MAX_DESCRIPTORS;
	uint64_t done = 0;
	int last = 0;

	memcpy(&d, &sqe->prp1, sizeof(d));
	for (;;) {
		uint8_t type = d.type >> 4, subtype = d.type & 0xf;

		if (!budget--)
			goto bad_segment;
		switch (type) {
		case ANV_SGL_TYPE_DATA_BLOCK:
		case ANV_SGL_TYPE_BIT_BUCKET: {
			uint64_t n = d.len;

			if (subtype != 0)
				goto bad_type;
			if (type == ANV_SGL_TYPE_BIT_BUCKET && !to_host)
				goto bad_type; /* 4.1.2.1: bit buckets only for reads */
			if (n > len - done)
				n = len - done;
			if (type == ANV_SGL_TYPE_DATA_BLOCK && n && copy(c, d.addr, buf + done, n, to_host) < 0) {
				*status = ANV_STATUS(ANV_SCT_GENERIC, ANV_SC_DATA_XFER_ERROR);
				return -1;
			}
			done += n;
			break;
		}
		case ANV_SGL_TYPE_SEGMENT:
		case ANV_SGL_TYPE_LAST_SEGMENT:
			if (subtype != 0)
				goto bad_type;
			if (last || (d.len % 16u) || !d.len)
				goto bad_segment;
			seg = (const struct anv_sgl_desc *)host(c, d.addr, d.len);
			if (!seg) {
				*status = ANV_STATUS(ANV_SCT_GENERIC, ANV_SC_DATA_XFER_ERROR);
				return -1;
			}
			nseg = d.len / 16u;
			idx = 0;
			last = type == ANV_SGL_TYPE_LAST_SEGMENT;
			break;
		default:
			goto bad_type;
		}
		if (done == len)
			return 0;
		if (!seg || idx == nseg)
			break;
		memcpy(&d, &seg[idx++], sizeof(d));
		/* 4.1.2: only the last descriptor of a segment may be a segment. */
		if (idx < nseg && ((d.type >> 4) == ANV_SGL_TYPE_SEGMENT ||
				   (d.type >> 4) == ANV_SGL_TYPE_LAST_SEGMENT))
			goto bad_segment;
	}
	*status = ANV_STATUS(ANV_SCT_GENERIC, ANV_SC_SGL_INVALID_DATA_LEN);
	return -1;

bad_type:
	*status = ANV_STATUS(ANV_SCT_GENERIC, ANV_SC_SGL_INVALID_TYPE);
	return -1;
bad_segment:
	*status = ANV_STATUS(ANV_SCT_GENERIC, ANV_SC_SGL_INVALID_SEGMENT);
	return -1;
}

int sim_dma(struct sim_ctrl *c, const struct anv_sqe *sqe, uint8_t *buf, uint64_t len,
	    int to_host, uint16_t *status)
{
	uint8_t psdt = (uint8_t)(sqe->flags >> 6);

	*status = 0;
	if (!len)
		return 0;
	if (psdt == 0)
		return dma_prp(c, sqe, buf, len, to_host, status);
	if (psdt == 1 && c->sgl_supported)
		return dma_sgl(c, sqe, buf, len, to_host, status);
	/* 4.2: PSDT 10b needs metadata SGLs, 11b is reserved. */
	*status = ANV_STATUS(ANV_SCT_GENERIC, ANV_SC_INVALID_FIELD);
	return -1;
}
