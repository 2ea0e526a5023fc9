/* SPDX-License-Identifier: MIT */
/*
 * verify_iow.h - data verification inside an ioworker process.  The worker
 * maps its parent's table of the namespace (anv_verify_attach()) and calls
 * these hooks from its IO loop (struct anv_iow_cfg.on_submit/.on_complete):
 * writes are stamped and recorded, reads checked, by the same cross-process
 * rule as the parent's own commands (the top of verify.h).  The state of a
 * command is kept per CID, preallocated: nothing is allocated per IO.
 */
#ifndef AIONVME_VERIFY_IOW_H
#define AIONVME_VERIFY_IOW_H

#include <stdint.h>

#include "aionvme/verify.h"

/**
 * struct anv_verify_iow - the verify state of one worker
 * @v: the namespace's table, attached
 * @ncid: CIDs 0 to @ncid - 1 are tracked
 * @max_nlb: the most LBAs a command moves
 * @dealloc_or: what a deallocated LBA may read as besides its old data
 *	(ANV_VERIFY_OR_*, from DLFEAT)
 * @op/@lba/@nlb/@wide/@token: per CID, the command in flight (@op 0: none)
 * @snap: per CID, @max_nlb busy[] snapshots
 * @crc: per CID, @max_nlb CRC32C of a write's data
 * @keep: per CID, @max_nlb states a change replaces
 * @epoch: per CID, the power loss epoch the command began in
 * @m: where the first mismatch is described (the shared statistics block)
 * @mismatches: reads that failed the check
 */
struct anv_verify_iow {
	struct anv_verify *v;
	uint32_t ncid;
	uint32_t max_nlb;
	uint64_t dealloc_or;
	uint8_t *op;
	uint64_t *lba;
	uint32_t *nlb;
	uint64_t *wide;
	uint64_t *token;
	uint64_t *snap;
	uint32_t *crc;
	uint64_t *keep;
	uint64_t *epoch;
	struct anv_verify_mismatch *m;
	uint64_t mismatches;
};

/**
 * anv_verify_iow_init() - prepare the per-CID state of @ncid commands
 * @v: the table, attached by the caller (and closed by it after fini)
 * @dlfeat: the namespace's DLFEAT (Identify Namespace byte 33)
 * @m: where to describe the first mismatch
 *
 * Return: 0, or -1 with errno set.
 */
int anv_verify_iow_init(struct anv_verify_iow *vw, struct anv_verify *v, uint32_t ncid,
			uint32_t max_nlb, uint32_t dlfeat, struct anv_verify_mismatch *m);

/**
 * anv_verify_iow_fini() - free the per-CID state
 *
 * Changes still in flight (the run ended on a command timeout) stay busy in
 * the table: the device may still carry them out.
 */
void anv_verify_iow_fini(struct anv_verify_iow *vw);

/**
 * anv_verify_iow_submit() - a command of the worker is about to be submitted
 * @ctx: the struct anv_verify_iow
 * @op: enum anv_iow_op
 * @data: its buffer (@nlb LBAs), stamped here for a Write
 *
 * Return: 0, or -1 with errno EINVAL (@cid or @nlb out of range: not tracked).
 */
int anv_verify_iow_submit(void *ctx, uint16_t cid, uint32_t op, uint64_t lba, uint32_t nlb,
			  uint8_t *data);

/**
 * anv_verify_iow_complete() - the command of @cid completed
 * @ok: with status Successful Completion
 * @data: its buffer, read data to check for a Read
 *
 * Return: the number of LBAs of a read that failed the check (the first is
 * described in @vw->m if it is the worker's first), else 0.
 */
uint64_t anv_verify_iow_complete(void *ctx, uint16_t cid, int ok, const uint8_t *data);

#endif /* AIONVME_VERIFY_IOW_H */
