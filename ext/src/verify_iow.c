/* SPDX-License-Identifier: MIT */
/* Data verification hooks of the ioworker's IO loop (verify_iow.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "aionvme/ioworker.h"
#include "aionvme/verify_iow.h"

/* What a CID's command does to the table (struct anv_verify_iow.op). */
enum {
	CMD_NONE = 0,  /* nothing in flight, or a command the table ignores */
	CMD_READ,
	CMD_WRITE,
	CMD_ZEROES,    /* Write Zeroes */
	CMD_DEALLOC,   /* Dataset Management, Attribute - Deallocate, one range */
	CMD_FLUSH,
};

int anv_verify_iow_init(struct anv_verify_iow *vw, struct anv_verify *v, uint32_t ncid,
			uint32_t max_nlb, uint32_t dlfeat, struct anv_verify_mismatch *m)
{
	memset(vw, 0, sizeof(*vw));
	if (!ncid || !max_nlb || __anv_verify_is_wide(max_nlb)) {
		errno = EINVAL;
		return -1;
	}
	vw->v = v;
	vw->max_nlb = max_nlb;
	vw->dealloc_or = __anv_verify_dealloc_or(dlfeat);
	vw->m = m;
	vw->op = calloc(ncid, 1);
	vw->lba = calloc(ncid, sizeof(uint64_t));
	vw->nlb = calloc(ncid, sizeof(uint32_t));
	vw->wide = calloc(ncid, sizeof(uint64_t));
	vw->token = calloc(ncid, sizeof(uint64_t));
	vw->snap = calloc((size_t)ncid * max_nlb, sizeof(uint64_t));
	vw->crc = calloc((size_t)ncid * max_nlb, sizeof(uint32_t));
	vw->keep = calloc((size_t)ncid * max_nlb, sizeof(uint64_t));
	vw->epoch = calloc(ncid, sizeof(uint64_t));
	if (!vw->op || !vw->lba || !vw->nlb || !vw->wide || !vw->token || !vw->snap || !vw->crc ||
	    !vw->keep || !vw->epoch) {
		anv_verify_iow_fini(vw);
		errno = ENOMEM;
		return -1;
	}
	vw->ncid = ncid;
	return 0;
}

void anv_verify_iow_fini(struct anv_verify_iow *vw)
{
	free(vw->op);
	free(vw->lba);
	free(vw->nlb);
	free(vw->wide);
	free(vw->token);
	free(vw->snap);
	free(vw->crc);
	free(vw->keep);
	free(vw->epoch);
	vw->keep = NULL;
	vw->epoch = NULL;
	vw->op = NULL;
	vw->lba = NULL;
	vw->nlb = NULL;
	vw->wide = NULL;
	vw->token = NULL;
	vw->snap = NULL;
	vw->crc = NULL;
}

int anv_verify_iow_submit(void *ctx, uint16_t cid, uint32_t op, uint64_t lba, uint32_t nlb,
			  uint8_t *data)
{
	struct anv_verify_iow *vw = ctx;
	struct anv_verify *v = vw->v;
	uint64_t *snap = vw->snap + (size_t)cid * vw->max_nlb;

	if (cid >= vw->ncid) {
		errno = EINVAL;
		return -1;
	}
	vw->op[cid] = CMD_NONE;
	if (nlb > vw->max_nlb || lba > v->nlba || nlb > v->nlba - lba) {
		errno = EINVAL;
		return -1;
	}
	vw->epoch[cid] = __anv_verify_epoch(v);
	switch (op) {
	case ANV_IOW_READ:
		vw->wide[cid] = __anv_verify_read_begin(v, lba, nlb, snap);
		vw->op[cid] = CMD_READ;
		break;
	case ANV_IOW_WRITE:
		vw->token[cid] = anv_verify_token();
		__anv_verify_stamp(v, data, lba, nlb, vw->token[cid],
				   vw->crc + (size_t)cid * vw->max_nlb);
		vw->wide[cid] = __anv_verify_change_begin(v, lba, nlb, snap,
							  vw->keep + (size_t)cid * vw->max_nlb);
		vw->op[cid] = CMD_WRITE;
		break;
	case ANV_IOW_WRITE_ZEROES:
		vw->wide[cid] = __anv_verify_change_begin(v, lba, nlb, snap,
							  vw->keep + (size_t)cid * vw->max_nlb);
		vw->op[cid] = CMD_ZEROES;
		break;
	case ANV_IOW_FLUSH:
		vw->token[cid] = anv_verify_flush_begin(v);
		vw->op[cid] = CMD_FLUSH;
		return 0;
	case ANV_IOW_DEALLOCATE:
		vw->wide[cid] = __anv_verify_change_begin(v, lba, nlb, snap,
							  vw->keep + (size_t)cid * vw->max_nlb);
		vw->op[cid] = CMD_DEALLOC;
		break;
	default:
		/* Compare, Verify: nothing read into the host, nothing changed. */
		return 0;
	}
	vw->lba[cid] = lba;
	vw->nlb[cid] = nlb;
	return 0;
}

uint64_t anv_verify_iow_complete(void *ctx, uint16_t cid, int ok, const uint8_t *data)
{
	struct anv_verify_iow *vw = ctx;
	struct anv_verify *v = vw->v;
	uint64_t *snap = vw->snap + (size_t)cid * vw->max_nlb;
	uint64_t lba = vw->lba[cid], bad;
	uint32_t nlb = vw->nlb[cid];
	struct anv_verify_mismatch m;

	if (cid >= vw->ncid)
		return 0;
	switch (vw->op[cid]) {
	case CMD_READ:
		vw->op[cid] = CMD_NONE;
		if (!ok || !vw->wide[cid])
			return 0;
		bad = __anv_verify_check(v, data, lba, nlb, snap, vw->wide[cid], &m);
		if (bad && !vw->mismatches++ && vw->m)
			*vw->m = m;
		return bad;
	case CMD_WRITE:
		__anv_verify_change_end(v, lba, nlb, snap, vw->wide[cid], ok,
					vw->crc + (size_t)cid * vw->max_nlb, 0, vw->token[cid],
					vw->keep + (size_t)cid * vw->max_nlb, ANV_VERIFY_CHG_CACHED,
					vw->epoch[cid]);
		break;
	case CMD_ZEROES:
		/* NVM 3.2.10: Write Zeroes reads back as zeroes. */
		__anv_verify_change_end(v, lba, nlb, snap, vw->wide[cid], ok, NULL,
					ANV_VERIFY_ZEROES, 0, vw->keep + (size_t)cid * vw->max_nlb,
					ANV_VERIFY_CHG_CACHED, vw->epoch[cid]);
		break;
	case CMD_FLUSH:
		anv_verify_flush_end(v, vw->token[cid], ok);
		break;
	case CMD_DEALLOC:
		/* NVM 3.2.3.2.1: the old data, or the value DLFEAT reports. */
		__anv_verify_change_end(v, lba, nlb, snap, vw->wide[cid], ok, NULL,
					ANV_VERIFY_UNKNOWN, vw->dealloc_or,
					vw->keep + (size_t)cid * vw->max_nlb, ANV_VERIFY_CHG_DEALLOC,
					vw->epoch[cid]);
		break;
	default:
		break;
	}
	vw->op[cid] = CMD_NONE;
	return 0;
}
