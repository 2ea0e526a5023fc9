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

/*
 * 4.1.1 (PRP Entry and List): PRP1 may start mid-page (dword aligned); PRP2 is
 * either the second data page (page aligned) or a PRP List pointer (qword
 * aligned, may start mid-page).  Every entry in a list, and the pointer to the
 * next list page in the last entry of a page, has offset 0h: a non-zero one is
 * PRP Offset Invalid.  Because a chained list page is page aligned, each hop
 * yields 511 data entries before it may chain again, so the walk ends; the
 * count of list pages is bounded as well (data pages + 1), against any
 * mistake here turning a hostile list into a loop of the device's only thread.
 */
static int dma_prp(struct sim_ctrl *c, const struct anv_sqe *sqe, uint8_t *buf, uint64_t len,
		   int to_host, uint16_t *status)
{
	uint64_t prp1 = sqe->prp1, prp2 = sqe->prp2;
	uint64_t first = PAGE - (prp1 & (PAGE - 1));
	uint64_t done, entry_addr, lists = 1, max_lists;

	if (prp1 & 3u)
		goto bad_offset;
	if (first > len)
		first = len;
	if (copy(c, prp1, buf, first, to_host) < 0)
		goto xfer_error;
	done = first;
	if (done == len)
		return 0;
	if (len - done <= PAGE) {
		/* PRP2 is the second data page. */
		if (prp2 & (PAGE - 1))
			goto bad_offset;
		if (copy(c, prp2, buf + done, len - done, to_host) < 0)
			goto xfer_error;
		return 0;
	}
	if (prp2 & 7u)
		goto bad_offset;
	max_lists = (len - done + PAGE - 1) / PAGE + 1;
	entry_addr = prp2;
	while (done < len) {
		const uint64_t *entry = (const uint64_t *)host(c, entry_addr, 8);
		uint64_t chunk = len - done < PAGE ? len - done : PAGE;
		uint64_t page;

		if (!entry)
			goto xfer_error;
		page = *entry;
		if (page & (PAGE - 1))
			goto bad_offset;
		/* The last entry of a list page chains to the next list page. */
		if (((entry_addr + 8) & (PAGE - 1)) == 0 && len - done > PAGE) {
			if (++lists > max_lists)
				goto xfer_error;
			entry_addr = page;
			continue;
		}
		if (copy(c, page, buf + done, chunk, to_host) < 0)
			goto xfer_error;
		done += chunk;
		entry_addr += 8;
	}
	return 0;

bad_offset:
	*status = ANV_STATUS(ANV_SCT_GENERIC, ANV_SC_INVALID_PRP_OFFSET);
	return -1;
xfer_error:
	*status = ANV_STATUS(ANV_SCT_GENERIC, ANV_SC_DATA_XFER_ERROR);
	return -1;
}

/*
 * 4.1.2 (Scatter Gather List), statuses of its SGL validation error
 * conditions: a Segment or Last Segment descriptor other than the last of a
 * segment is Invalid Number of SGL Descriptors; one inside a last segment, a
 * segment length that is 0h or not a multiple of 16, or a segment address
 * that is not qword aligned is Invalid SGL Segment Descriptor; a reserved or
 * unsupported type or sub type (sub type 1h, offsets, is reserved on PCIe;
 * keyed and transport data blocks are fabrics only) is SGL Descriptor Type
 * Invalid; an SGL shorter than the transfer, or an Address + Length past
 * 2^64, is Data SGL Length Invalid.  A Bit Bucket in a source (host to
 * controller) buffer is treated as a Length of 0h.  The walk reads at most
 * SGL_MAX_DESCRIPTORS descriptors: a list that chains back to itself is too
 * long for the device (Invalid Number of SGL Descriptors), never a loop.
 */
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
			goto bad_count;
		switch (type) {
		case ANV_SGL_TYPE_DATA_BLOCK:
		case ANV_SGL_TYPE_BIT_BUCKET: {
			uint64_t n = d.len;

			if (subtype != 0)
				goto bad_type;
			if (type == ANV_SGL_TYPE_DATA_BLOCK && d.len && d.addr > UINT64_MAX - (d.len - 1u))
				goto bad_length;
			if (type == ANV_SGL_TYPE_BIT_BUCKET && !to_host)
				n = 0;
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
			if (last || (d.len % 16u) || !d.len || (d.addr & 7u))
				goto bad_segment;
			if (d.addr > UINT64_MAX - (d.len - 1u))
				goto bad_length;
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
		/* Only the last descriptor of a segment may be a segment descriptor. */
		if (idx < nseg && ((d.type >> 4) == ANV_SGL_TYPE_SEGMENT ||
				   (d.type >> 4) == ANV_SGL_TYPE_LAST_SEGMENT))
			goto bad_count;
	}
bad_length:
	*status = ANV_STATUS(ANV_SCT_GENERIC, ANV_SC_SGL_INVALID_DATA_LEN);
	return -1;
bad_type:
	*status = ANV_STATUS(ANV_SCT_GENERIC, ANV_SC_SGL_INVALID_TYPE);
	return -1;
bad_segment:
	*status = ANV_STATUS(ANV_SCT_GENERIC, ANV_SC_SGL_INVALID_SEGMENT);
	return -1;
bad_count:
	*status = ANV_STATUS(ANV_SCT_GENERIC, ANV_SC_SGL_INVALID_COUNT);
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
	/* 4.1 (Command Dword 0, PSDT): 10b needs metadata SGLs, 11b is reserved. */
	*status = ANV_STATUS(ANV_SCT_GENERIC, ANV_SC_INVALID_FIELD);
	return -1;
}
