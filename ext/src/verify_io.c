/* SPDX-License-Identifier: MIT */
/*
 * Commands in flight against a verify table.  The controller does not
 * order the Reads and Writes it has been given (NVMe 1.3c, 6.3; the seed
 * cites it), so what a command sees of another one it overlaps in time is
 * unknown to the host:
 * - a read overlapping a change in flight may see old or new data: those
 *   LBAs are not checked;
 * - two changes of an LBA in flight together leave either result: the LBA
 *   becomes unknown.
 * A finished record is kept until nothing in flight started before it ended.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "aionvme/verify.h"

static inline int changes(const struct anv_verify_io *io)
{
	return io->op != ANV_VERIFY_READ;
}

/* Two records overlap in time: neither ended before the other started. */
static inline int concurrent(const struct anv_verify_io *a, const struct anv_verify_io *b)
{
	return (!a->end || a->end > b->start) && (!b->end || b->end > a->start);
}

static inline int intersect(const struct anv_verify_range *a, const struct anv_verify_range *b,
			    struct anv_verify_range *out)
{
	uint64_t s = a->slba > b->slba ? a->slba : b->slba;
	uint64_t ea = a->slba + a->nlb, eb = b->slba + b->nlb;
	uint64_t e = ea < eb ? ea : eb;

	if (s >= e)
		return 0;
	out->slba = s;
	out->nlb = e - s;
	return 1;
}

static void stamp(uint8_t *data, uint32_t shift, uint64_t slba, uint64_t nlb, uint64_t token)
{
	for (uint64_t i = 0; i < nlb; i++) {
		uint8_t *p = data + (i << shift);
		uint64_t lba = slba + i;

		/* Little endian, as every other NVMe field. */
		for (int b = 0; b < 8; b++) {
			p[b] = (uint8_t)(lba >> (8 * b));
			p[8 + b] = (uint8_t)(token >> (8 * b));
		}
	}
}

struct anv_verify_io *anv_verify_begin(struct anv_verify *v, enum anv_verify_op op,
				       uint8_t *data, const struct anv_verify_range *r,
				       uint32_t nr)
{
	struct anv_verify_io *io;
	uint64_t ncrc = op == ANV_VERIFY_WRITE ? r[0].nlb : 0;
	size_t sz;

	if (!nr || (op == ANV_VERIFY_WRITE || op == ANV_VERIFY_READ ? !data || nr != 1 : 0)) {
		errno = EINVAL;
		return NULL;
	}
	for (uint32_t k = 0; k < nr; k++) {
		if (r[k].slba > v->nlba || r[k].nlb > v->nlba - r[k].slba) {
			errno = ERANGE;
			return NULL;
		}
	}
	sz = sizeof(*io) + nr * sizeof(*r) + ncrc * sizeof(uint32_t);
	io = malloc(sz);
	if (!io)
		return NULL;
	memset(io, 0, sizeof(*io));
	io->op = op;
	io->nr = nr;
	io->data = data;
	io->r = (struct anv_verify_range *)(io + 1);
	memcpy(io->r, r, nr * sizeof(*r));
	if (op == ANV_VERIFY_WRITE) {
		io->crc = (uint32_t *)(io->r + nr);
		io->token = anv_verify_token();
		stamp(data, v->lba_shift, r[0].slba, r[0].nlb, io->token);
		/* The CRC of what the device is handed now: a buffer changed
		 * while the write is in flight is the test's own race. */
		for (uint64_t i = 0; i < ncrc; i++) {
			uint32_t c = anv_crc32c_plan_run(&v->plan, data + (i << v->lba_shift));

			io->crc[i] = c < ANV_VERIFY_CRC_MIN ? ~c : c;
		}
	}
	if (changes(io))
		for (uint32_t k = 0; k < nr; k++)
			__anv_verify_set(v, r[k].slba, r[k].nlb, ANV_VERIFY_UNKNOWN);
	io->start = ++v->seq;
	io->prev = v->tail;
	if (v->tail)
		v->tail->next = io;
	else
		v->head = io;
	v->tail = io;
	return io;
}

static void apply(struct anv_verify *v, const struct anv_verify_io *io)
{
	for (uint32_t k = 0; k < io->nr; k++) {
		const struct anv_verify_range *r = &io->r[k];

		switch (io->op) {
		case ANV_VERIFY_WRITE:
			__anv_verify_record(v, r->slba, r->nlb, io->crc, io->token);
			break;
		case ANV_VERIFY_WRITE_ZEROES:
			/* NVM 3.2.10: the LBAs read back as all zeroes. */
			__anv_verify_set(v, r->slba, r->nlb, ANV_VERIFY_ZEROES);
			break;
		case ANV_VERIFY_WRITE_UNCOR:
			__anv_verify_set(v, r->slba, r->nlb, ANV_VERIFY_UNCOR);
			break;
		case ANV_VERIFY_DEALLOC_ZEROES:
			/* DLFEAT 001b (Identify Namespace byte 33, bits 2:0):
			 * deallocated LBAs read as zeroes.  Very long ranges
			 * are only marked where the table already has pages. */
			__anv_verify_set(v, r->slba, r->nlb, r->nlb <= ANV_VERIFY_DENSE_MAX ?
					 ANV_VERIFY_ZEROES : ANV_VERIFY_UNKNOWN);
			break;
		default:
			/* Deallocated LBAs with DLFEAT 000b read back as anything. */
			__anv_verify_set(v, r->slba, r->nlb, ANV_VERIFY_UNKNOWN);
			break;
		}
	}
}

/* Drop finished records that no record in flight can overlap in time. */
static void prune(struct anv_verify *v)
{
	struct anv_verify_io *io, *next;
	uint64_t min_start = v->seq + 1;

	for (io = v->head; io; io = io->next)
		if (!io->end) {
			min_start = io->start;
			break;
		}
	for (io = v->head; io; io = next) {
		next = io->next;
		if (!io->end || io->end >= min_start)
			continue;
		if (io->prev)
			io->prev->next = io->next;
		else
			v->head = io->next;
		if (io->next)
			io->next->prev = io->prev;
		else
			v->tail = io->prev;
		free(io);
	}
}

uint64_t anv_verify_end(struct anv_verify *v, struct anv_verify_io *io, int ok,
			struct anv_verify_mismatch *m)
{
	struct anv_verify_range skip[ANV_VERIFY_MAX_SKIP], part;
	uint32_t nskip = 0;
	uint64_t bad = 0;
	int overflow = 0;

	io->end = ++v->seq;
	if (ok && changes(io))
		apply(v, io);
	for (struct anv_verify_io *x = v->head; x; x = x->next) {
		if (x == io || !changes(x) || !concurrent(x, io))
			continue;
		for (uint32_t a = 0; a < io->nr; a++)
			for (uint32_t b = 0; b < x->nr; b++) {
				if (!intersect(&io->r[a], &x->r[b], &part))
					continue;
				if (changes(io))
					__anv_verify_set(v, part.slba, part.nlb,
							 ANV_VERIFY_UNKNOWN);
				else if (nskip < ANV_VERIFY_MAX_SKIP)
					skip[nskip++] = part;
				else
					overflow = 1;
			}
	}
	if (ok && !changes(io) && !overflow)
		bad = __anv_verify_check(v, io->data, io->r[0].slba, io->r[0].nlb, skip, nskip, m);
	io->data = NULL;
	prune(v);
	return bad;
}
