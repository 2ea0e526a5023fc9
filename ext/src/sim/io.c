/* SPDX-License-Identifier: MIT */
/*
 * io.c - the simulated controller's NVM command set (NVM Command Set
 * Specification 1.0 of the NVMe 2.0 family, section 3), namespace media, the
 * volatile write cache, fault rules and arbitration.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "aionvme/sim.h"

#define UNIT_SHIFT 9 /* uncorrectable bits are kept per 512 bytes */

int __sim_sq_fetch(struct sim_ctrl *c, uint16_t qid, struct anv_sqe *sqe);
int __sim_complete(struct sim_ctrl *c, uint16_t sqid, uint16_t cid, uint16_t status,
		   uint32_t cdw0, uint32_t delay_us, uint64_t now_ns);

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Bitmaps with one bit per 512-byte unit of the media (uncorrectable, written). */
static void bits_set(uint8_t *map, uint64_t off, uint64_t len, int set)
{
	for (uint64_t u = off >> UNIT_SHIFT; u < (off + len) >> UNIT_SHIFT; u++) {
		if (!(u & 7) && u + 8 <= (off + len) >> UNIT_SHIFT) {
			map[u >> 3] = set ? 0xffu : 0; /* a whole byte at once */
			u += 7;
		} else if (set) {
			map[u >> 3] |= (uint8_t)(1u << (u & 7));
		} else if (map[u >> 3]) {
			map[u >> 3] &= (uint8_t)~(1u << (u & 7));
		}
	}
}

/* Byte offset of the first unit of [off, off+len) whose bit is @want, or UINT64_MAX. */
static uint64_t bits_first(const uint8_t *map, uint64_t off, uint64_t len, int want)
{
	uint8_t skip = want ? 0 : 0xffu; /* a byte with no unit of interest */

	for (uint64_t u = off >> UNIT_SHIFT; u < (off + len) >> UNIT_SHIFT; u++) {
		if (!(u & 7) && map[u >> 3] == skip && u + 8 <= (off + len) >> UNIT_SHIFT) {
			u += 7;
			continue;
		}
		if (!!(map[u >> 3] & (1u << (u & 7))) == want)
			return u << UNIT_SHIFT;
	}
	return UINT64_MAX;
}

/* A file-backed namespace: what the file holds was written, its holes were not. */
static void mark_file_data(struct sim_ns *ns, int fd, uint64_t capacity)
{
	off_t pos = 0, data, hole;

	while ((uint64_t)pos < capacity) {
		data = lseek(fd, pos, SEEK_DATA);
		if (data < 0)
			break; /* no data after pos (ENXIO) */
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > capacity)
			hole = (off_t)capacity;
		data &= ~(off_t)((1u << UNIT_SHIFT) - 1);
		bits_set(ns->written, (uint64_t)data,
			 ((uint64_t)hole + (1u << UNIT_SHIFT) - 1 - (uint64_t)data) &
				 ~(uint64_t)((1u << UNIT_SHIFT) - 1),
			 1);
		pos = hole;
	}
}

int sim_ns_attach(struct sim_ctrl *c, uint32_t nsid, uint64_t capacity, uint32_t lba_shift, int fd,
		  int hugepages)
{
	struct sim_ns *ns;
	int flags;

	if (nsid == 0 || nsid > SIM_MAX_NS || lba_shift < 9 || lba_shift > 16) {
		errno = EINVAL;
		return -1;
	}
	sim_ns_detach(c, nsid);
	ns = &c->ns[nsid];
	capacity &= ~((1ull << 16) - 1); /* whole LBAs in every format */
	if (!capacity) {
		errno = EINVAL;
		return -1;
	}
	if (fd >= 0) {
		if (ftruncate(fd, (off_t)capacity) < 0)
			return -1;
		ns->media = mmap(NULL, capacity, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	} else {
		flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
		ns->media = mmap(NULL, capacity, PROT_READ | PROT_WRITE, flags, -1, 0);
	}
	if (ns->media == MAP_FAILED) {
		ns->media = NULL;
		return -1;
	}
	/*
	 * Transparent huge pages make copies from a written media faster, but
	 * each first write into a 2 MiB region then zeroes (and may compact) a
	 * whole huge page: thousands of times slower on a fresh namespace.  So
	 * only on request (SimConfig.hugepages), e.g. for a benchmark that
	 * writes the namespace first.
	 */
	if (fd < 0 && hugepages)
		madvise(ns->media, capacity, MADV_HUGEPAGE);
	ns->uncor_size = ((capacity >> UNIT_SHIFT) + 7) / 8;
	ns->uncor = mmap(NULL, ns->uncor_size, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (ns->uncor == MAP_FAILED) {
		munmap(ns->media, capacity);
		ns->media = NULL;
		ns->uncor = NULL;
		return -1;
	}
	ns->written = mmap(NULL, ns->uncor_size, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (ns->written == MAP_FAILED) {
		munmap(ns->media, capacity);
		munmap(ns->uncor, ns->uncor_size);
		ns->media = NULL;
		ns->uncor = NULL;
		ns->written = NULL;
		return -1;
	}
	if (fd >= 0)
		mark_file_data(ns, fd, capacity);
	ns->media_fd = fd;
	ns->media_size = capacity;
	ns->lba_shift = lba_shift;
	ns->nlba = capacity >> lba_shift;
	ns->valid = 1;
	return 0;
}

void sim_ns_detach(struct sim_ctrl *c, uint32_t nsid)
{
	struct sim_ns *ns;

	if (nsid == 0 || nsid > SIM_MAX_NS)
		return;
	ns = &c->ns[nsid];
	if (ns->media)
		munmap(ns->media, ns->media_size);
	if (ns->uncor)
		munmap(ns->uncor, ns->uncor_size);
	if (ns->written)
		munmap(ns->written, ns->uncor_size);
	if (ns->media_fd >= 0)
		close(ns->media_fd);
	memset(ns, 0, sizeof(*ns));
	ns->media_fd = -1;
}

/* Make [off, off+len) of the media read back as zeroes, releasing whole pages. */
static void media_zero(struct sim_ns *ns, uint64_t off, uint64_t len)
{
	uint64_t a = (off + 4095u) & ~4095ull, b = (off + len) & ~4095ull;

	if (b > a + (64u << 10)) {
		memset(ns->media + off, 0, a - off);
		if (ns->media_fd >= 0)
			fallocate(ns->media_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				  (off_t)a, (off_t)(b - a));
		else
			madvise(ns->media + a, b - a, MADV_DONTNEED);
		memset(ns->media + b, 0, off + len - b);
	} else {
		memset(ns->media + off, 0, len);
	}
}

static void uncor_set(struct sim_ns *ns, uint64_t off, uint64_t len, int set)
{
	bits_set(ns->uncor, off, len, set);
}

static int uncor_any(struct sim_ns *ns, uint64_t off, uint64_t len)
{
	return bits_first(ns->uncor, off, len, 1) != UINT64_MAX;
}

int sim_ns_format(struct sim_ctrl *c, uint32_t nsid, uint32_t lba_shift, int erase)
{
	struct sim_ns *ns;

	if (nsid == 0 || nsid > SIM_MAX_NS || !c->ns[nsid].valid || lba_shift < 9 || lba_shift > 16) {
		errno = EINVAL;
		return -1;
	}
	ns = &c->ns[nsid];
	/* Cached writes to this namespace are gone with its data. */
	for (uint32_t i = 0; i < c->njournal; i++) {
		if (c->journal[i].nsid == nsid)
			c->journal[i].nsid = 0;
	}
	if (erase) {
		media_zero(ns, 0, ns->media_size);
		madvise(ns->written, ns->uncor_size, MADV_DONTNEED); /* all unwritten */
	}
	/* keep the mappings; drop their pages */
	madvise(ns->uncor, ns->uncor_size, MADV_DONTNEED);
	ns->lba_shift = lba_shift;
	ns->nlba = ns->media_size >> lba_shift;
	return 0;
}

int sim_ns_fill(struct sim_ctrl *c, uint32_t nsid, uint32_t pattern)
{
	struct sim_ns *ns;
	uint64_t done;

	if (nsid == 0 || nsid > SIM_MAX_NS || !c->ns[nsid].valid) {
		errno = EINVAL;
		return -1;
	}
	ns = &c->ns[nsid];
	for (uint32_t i = 0; i < c->njournal; i++) {
		if (c->journal[i].nsid == nsid)
			c->journal[i].nsid = 0;
	}
	memcpy(ns->media, &pattern, 4); /* x86: little endian, as the host reads it */
	for (done = 4; done < ns->media_size; done *= 2)
		memcpy(ns->media + done, ns->media,
		       done < ns->media_size - done ? done : ns->media_size - done);
	madvise(ns->uncor, ns->uncor_size, MADV_DONTNEED);
	memset(ns->written, 0xff, ns->uncor_size);
	return 0;
}

/*
 * Volatile write cache: remember what a cached write replaces.  The old data
 * goes to one slab that a flush empties, so a cached write allocates nothing
 * (a malloc per write, and fresh zeroed pages after each flush, cost more
 * than the write itself).
 */
static void journal_add(struct sim_ctrl *c, uint32_t nsid, uint64_t off, uint64_t len)
{
	struct sim_journal_rec *r;
	uint64_t units = len >> UNIT_SHIFT, need = len + (units + 7) / 8;

	if (need > SIM_JOURNAL_BYTES)
		return; /* never: MDTS and the write zeroes limit keep writes far smaller */
	if (c->njournal == SIM_JOURNAL_MAX || need > SIM_JOURNAL_BYTES - c->journal_used)
		sim_flush(c); /* the cache is full: it destages */
	r = &c->journal[c->njournal];
	r->old = c->journal_slab + c->journal_used;
	memcpy(r->old, c->ns[nsid].media + off, len);
	r->old_written = r->old + len;
	memset(r->old_written, 0, (units + 7) / 8);
	for (uint64_t i = 0; i < units; i++) {
		uint64_t u = (off >> UNIT_SHIFT) + i;

		if (c->ns[nsid].written[u >> 3] & (1u << (u & 7)))
			r->old_written[i >> 3] |= (uint8_t)(1u << (i & 7));
	}
	r->nsid = nsid;
	r->off = off;
	r->len = (uint32_t)len;
	c->journal_used += need;
	c->njournal++;
}

void sim_flush(struct sim_ctrl *c)
{
	c->njournal = 0;
	c->journal_used = 0;
}

void sim_power_loss(struct sim_ctrl *c)
{
	/* Undo the unflushed writes, newest first. */
	while (c->njournal) {
		struct sim_journal_rec *r = &c->journal[--c->njournal];

		if (r->nsid && c->ns[r->nsid].valid) {
			struct sim_ns *ns = &c->ns[r->nsid];

			memcpy(ns->media + r->off, r->old, r->len);
			for (uint64_t i = 0; i < r->len >> UNIT_SHIFT; i++) {
				uint64_t u = (r->off >> UNIT_SHIFT) + i;
				int was = !!(r->old_written[i >> 3] & (1u << (i & 7)));

				bits_set(ns->written, u << UNIT_SHIFT, 1u << UNIT_SHIFT, was);
			}
		}
	}
	c->journal_used = 0;
	sim_queues_reset(c);
}

int sim_fault_match(struct sim_ctrl *c, uint16_t qid, const struct anv_sqe *sqe)
{
	for (int i = 0; i < SIM_MAX_FAULTS; i++) {
		struct sim_fault *f = &c->faults[i];

		if (!f->active)
			continue;
		if (f->qid >= 0 && f->qid != qid)
			continue;
		if (f->opcode >= 0 && f->opcode != sqe->opcode)
			continue;
		if (f->nsid && f->nsid != sqe->nsid)
			continue;
		/*
		 * LBA windows and the duplicate and unknown-CID actions are rules for
		 * I/O commands: an admin command (opcode 02h is Get Log Page there,
		 * Read here) never matches one.  Admin commands are matched here too
		 * (sim_ctrl's Python admin plane asks), so rules are decided in one place.
		 */
		if (!qid && (f->slba_hi || f->action == SIM_FAULT_DUPLICATE ||
			     f->action == SIM_FAULT_BAD_CID))
			continue;
		if (f->slba_hi) {
			uint64_t slba = sqe->cdw10 | ((uint64_t)sqe->cdw11 << 32);
			uint64_t elba = slba + (sqe->cdw12 & 0xffffu);

			if (elba < f->slba_lo || slba >= f->slba_hi)
				continue;
		}
		f->hits++;
		if (f->count > 0 && --f->count == 0)
			f->active = 0;
		return i;
	}
	return -1;
}

static uint16_t st(uint8_t sct, uint8_t sc)
{
	return ANV_STATUS(sct, sc);
}

static uint16_t do_dsm(struct sim_ctrl *c, struct sim_ns *ns, const struct anv_sqe *sqe)
{
	uint32_t nr = (sqe->cdw10 & 0xffu) + 1u;
	uint8_t ranges[256 * 16];
	uint16_t status;

	if (sim_dma(c, sqe, ranges, nr * 16u, 0, &status) < 0)
		return status;
	/* 3.2.3.1: only the Attribute - Deallocate (AD) bit changes data. */
	if (!(sqe->cdw11 & (1u << 2)))
		return 0;
	for (uint32_t i = 0; i < nr; i++) {
		uint32_t nlb;
		uint64_t slba;

		memcpy(&nlb, ranges + i * 16u + 4u, 4);
		memcpy(&slba, ranges + i * 16u + 8u, 8);
		if (slba > ns->nlba || nlb > ns->nlba - slba)
			return st(ANV_SCT_GENERIC, ANV_SC_LBA_OUT_OF_RANGE);
	}
	for (uint32_t i = 0; i < nr; i++) {
		uint32_t nlb;
		uint64_t slba;

		memcpy(&nlb, ranges + i * 16u + 4u, 4);
		memcpy(&slba, ranges + i * 16u + 8u, 8);
		if (!nlb)
			continue;
		/* DLFEAT 001b: a deallocated LBA reads back as zeroes. */
		media_zero(ns, slba << ns->lba_shift, (uint64_t)nlb << ns->lba_shift);
		uncor_set(ns, slba << ns->lba_shift, (uint64_t)nlb << ns->lba_shift, 0);
		bits_set(ns->written, slba << ns->lba_shift, (uint64_t)nlb << ns->lba_shift, 0);
	}
	return 0;
}

/*
 * The Error Recovery feature's DULBE bit (NVM Command Set 1.0): with it set,
 * reading a deallocated or never written LBA fails.  Return 1 and the first
 * such LBA in @elba.
 */
static int dulbe_hit(struct sim_ns *ns, uint64_t off, uint64_t len, uint64_t *elba)
{
	uint64_t at;

	if (!ns->dulbe)
		return 0;
	at = bits_first(ns->written, off, len, 0);
	if (at == UINT64_MAX)
		return 0;
	*elba = at >> ns->lba_shift;
	return 1;
}

static uint64_t first_uncor_lba(struct sim_ns *ns, uint64_t off, uint64_t len)
{
	return bits_first(ns->uncor, off, len, 1) >> ns->lba_shift;
}

/*
 * A Read under a data fault (@f): the data goes through the scratch buffer,
 * changed as the fault says, so the media stays intact.
 */
static uint16_t read_faulty(struct sim_ctrl *c, struct sim_ns *ns, const struct anv_sqe *sqe,
			    uint64_t off, uint64_t len, const struct sim_fault *f)
{
	uint16_t status = 0;
	uint64_t from = off;

	if (len > c->scratch_size)
		return st(ANV_SCT_GENERIC, ANV_SC_INVALID_FIELD);
	if (f->action == SIM_FAULT_MISPLACE) {
		int64_t d = f->arg * (int64_t)(1ull << ns->lba_shift);

		/* Wrap inside the namespace: the data of some other LBA. */
		from = (uint64_t)(((int64_t)off + d) % (int64_t)(ns->nlba << ns->lba_shift));
		if ((int64_t)from < 0)
			from += ns->nlba << ns->lba_shift;
		if (from + len > ns->nlba << ns->lba_shift)
			from = 0;
	}
	if (f->action == SIM_FAULT_ZEROES)
		memset(c->scratch, 0, len);
	else
		memcpy(c->scratch, ns->media + from, len);
	if (f->action == SIM_FAULT_BITFLIP && f->arg >= 0 && (uint64_t)f->arg < len)
		c->scratch[f->arg] ^= f->xor ? f->xor : 0x01;
	if (sim_dma(c, sqe, c->scratch, len, 1, &status) < 0)
		return status;
	c->units_read += len >> 9;
	c->host_reads++;
	return 0;
}

/*
 * Execute one NVM command; returns the status field (without phase).  @elba
 * comes in as the command's SLBA and leaves as the LBA an error names.  @f:
 * a matching data fault rule, or NULL.
 */
static uint16_t exec_io(struct sim_ctrl *c, const struct anv_sqe *sqe, uint64_t *elba,
			const struct sim_fault *f)
{
	struct sim_ns *ns;
	uint64_t slba, off, len;
	uint32_t nlb;
	uint16_t status = 0;

	if (sqe->opcode == ANV_NVM_FLUSH && sqe->nsid == 0xffffffffu) {
		sim_flush(c);
		return 0;
	}
	if (sqe->nsid == 0 || sqe->nsid > SIM_MAX_NS || !c->ns[sqe->nsid].valid)
		return st(ANV_SCT_GENERIC, ANV_SC_INVALID_NS);
	ns = &c->ns[sqe->nsid];
	slba = sqe->cdw10 | ((uint64_t)sqe->cdw11 << 32);
	nlb = (sqe->cdw12 & 0xffffu) + 1u; /* 0's based */
	off = slba << ns->lba_shift;
	len = (uint64_t)nlb << ns->lba_shift;

	switch (sqe->opcode) {
	case ANV_NVM_FLUSH:
		sim_flush(c);
		return 0;
	case ANV_NVM_DSM:
		return do_dsm(c, ns, sqe);
	case ANV_NVM_READ:
	case ANV_NVM_WRITE:
	case ANV_NVM_COMPARE:
	case ANV_NVM_VERIFY:
	case ANV_NVM_WRITE_ZEROES:
	case ANV_NVM_WRITE_UNCOR:
		break;
	default:
		return st(ANV_SCT_GENERIC, ANV_SC_INVALID_OPCODE);
	}
	if (slba >= ns->nlba || nlb > ns->nlba - slba)
		return st(ANV_SCT_GENERIC, ANV_SC_LBA_OUT_OF_RANGE);
	if ((sqe->opcode == ANV_NVM_READ || sqe->opcode == ANV_NVM_WRITE ||
	     sqe->opcode == ANV_NVM_COMPARE) && c->mdts_bytes && len > c->mdts_bytes)
		return st(ANV_SCT_GENERIC, ANV_SC_INVALID_FIELD);

	switch (sqe->opcode) {
	case ANV_NVM_READ:
		if (uncor_any(ns, off, len)) {
			c->media_errors++;
			*elba = first_uncor_lba(ns, off, len);
			return st(ANV_SCT_MEDIA, ANV_SC_UNRECOVERED_READ);
		}
		if (dulbe_hit(ns, off, len, elba))
			return st(ANV_SCT_MEDIA, ANV_SC_DEALLOC_OR_UNWRITTEN);
		if (f && f->action >= SIM_FAULT_BITFLIP && f->action <= SIM_FAULT_ZEROES)
			return read_faulty(c, ns, sqe, off, len, f);
		if (sim_dma(c, sqe, ns->media + off, len, 1, &status) < 0)
			return status;
		c->units_read += len >> 9;
		c->host_reads++;
		return 0;
	case ANV_NVM_WRITE:
		if (f && f->action == SIM_FAULT_TORN && f->arg >= 0 && (uint64_t)f->arg < nlb) {
			/* Power or firmware tore the write: only the first LBAs land. */
			uint64_t keep = (uint64_t)f->arg << ns->lba_shift;

			if (len > c->scratch_size)
				return st(ANV_SCT_GENERIC, ANV_SC_INVALID_FIELD);
			if (sim_dma(c, sqe, c->scratch, len, 0, &status) < 0)
				return status;
			if (c->vwc_enabled && !(sqe->cdw12 & (1u << 30)))
				journal_add(c, sqe->nsid, off, keep);
			memcpy(ns->media + off, c->scratch, keep);
			uncor_set(ns, off, keep, 0);
			bits_set(ns->written, off, keep, 1);
			c->host_writes++;
			return 0;
		}
		/* FUA (cdw12 bit 30) writes through the cache. */
		if (c->vwc_enabled && !(sqe->cdw12 & (1u << 30)))
			journal_add(c, sqe->nsid, off, len);
		if (sim_dma(c, sqe, ns->media + off, len, 0, &status) < 0)
			return status;
		uncor_set(ns, off, len, 0);
		bits_set(ns->written, off, len, 1);
		c->units_written += len >> 9;
		c->host_writes++;
		return 0;
	case ANV_NVM_COMPARE:
		if (uncor_any(ns, off, len)) {
			*elba = first_uncor_lba(ns, off, len);
			return st(ANV_SCT_MEDIA, ANV_SC_UNRECOVERED_READ);
		}
		if (dulbe_hit(ns, off, len, elba))
			return st(ANV_SCT_MEDIA, ANV_SC_DEALLOC_OR_UNWRITTEN);
		if (len > c->scratch_size)
			return st(ANV_SCT_GENERIC, ANV_SC_INVALID_FIELD);
		if (sim_dma(c, sqe, c->scratch, len, 0, &status) < 0)
			return status;
		c->host_reads++;
		if (memcmp(c->scratch, ns->media + off, len))
			return st(ANV_SCT_MEDIA, ANV_SC_COMPARE_FAILURE);
		return 0;
	case ANV_NVM_VERIFY:
		if (uncor_any(ns, off, len)) {
			*elba = first_uncor_lba(ns, off, len);
			return st(ANV_SCT_MEDIA, ANV_SC_UNRECOVERED_READ);
		}
		if (dulbe_hit(ns, off, len, elba))
			return st(ANV_SCT_MEDIA, ANV_SC_DEALLOC_OR_UNWRITTEN);
		return 0;
	case ANV_NVM_WRITE_ZEROES:
		if (c->vwc_enabled && !(sqe->cdw12 & (1u << 30)) && len <= (1u << 20))
			journal_add(c, sqe->nsid, off, len);
		media_zero(ns, off, len);
		uncor_set(ns, off, len, 0);
		/* DLFEAT bit 3: Deallocate (DEAC, cdw12 bit 25) deallocates, else they are written. */
		bits_set(ns->written, off, len, !(sqe->cdw12 & (1u << 25)));
		return 0;
	case ANV_NVM_WRITE_UNCOR:
		uncor_set(ns, off, len, 1);
		bits_set(ns->written, off, len, 1);
		return 0;
	}
	return st(ANV_SCT_GENERIC, ANV_SC_INVALID_OPCODE);
}

/* Opcodes whose cdw10/cdw11 are an SLBA (the others have no LBA to log). */
static int has_slba(uint8_t opcode)
{
	switch (opcode) {
	case ANV_NVM_READ:
	case ANV_NVM_WRITE:
	case ANV_NVM_COMPARE:
	case ANV_NVM_VERIFY:
	case ANV_NVM_WRITE_ZEROES:
	case ANV_NVM_WRITE_UNCOR:
		return 1;
	}
	return 0;
}

/* An I/O command error for the Error Information log (the control plane takes them). */
static void log_error(struct sim_ctrl *c, uint16_t q, const struct anv_sqe *sqe, uint16_t status,
		      uint64_t elba)
{
	struct sim_err *e = &c->errlog[c->nerr % SIM_ERRLOG_MAX];

	e->sqid = q;
	e->cid = sqe->cid;
	e->status = status;
	e->nsid = sqe->nsid;
	e->lba = has_slba(sqe->opcode) ? elba : 0;
	c->nerr++;
}

/* Fetch and execute one command of SQ @q; 0 when it had none to give. */
static inline __attribute__((always_inline)) int run_one(struct sim_ctrl *c, uint16_t q,
							   uint64_t *now)
{
	struct anv_sqe sqe;
	uint16_t status;
	uint32_t delay = 0;
	uint64_t elba;
	int f;

	if (!c->sq[q].valid || !__sim_sq_fetch(c, q, &sqe))
		return 0;
	elba = sqe.cdw10 | ((uint64_t)sqe.cdw11 << 32);
	f = sim_fault_match(c, q, &sqe);
	if (f >= 0 && c->faults[f].action == SIM_FAULT_DROP)
		return 1;
	if (f >= 0 && c->faults[f].action == SIM_FAULT_HANG) {
		c->hung = 1;
		return 1;
	}
	if (c->io_block_status) {
		status = c->io_block_status;
	} else if (f >= 0 && c->faults[f].action == SIM_FAULT_STATUS) {
		status = c->faults[f].status; /* a whole status field, DNR included */
	} else if (f >= 0 && c->faults[f].action == SIM_FAULT_SKIP) {
		status = 0; /* success, and nothing done: what verification must catch */
	} else {
		status = exec_io(c, &sqe, &elba, f >= 0 && c->faults[f].action >= SIM_FAULT_BITFLIP ?
				 &c->faults[f] : NULL);
		/* 4.2.3: DNR is set when a retry would fail the same way. */
		if (status)
			status |= (uint16_t)(1u << 15);
		if (f >= 0 && c->faults[f].action == SIM_FAULT_DELAY) {
			delay = c->faults[f].delay_us;
			if (!*now)
				*now = now_ns();
		}
	}
	if (status)
		log_error(c, q, &sqe, status, elba);
	if (f >= 0 && c->faults[f].action == SIM_FAULT_BAD_CID)
		sqe.cid ^= 0x8000u; /* a misbehaving controller: the host must cope */
	__sim_complete(c, q, sqe.cid, status, 0, delay, *now);
	if (f >= 0 && c->faults[f].action == SIM_FAULT_DUPLICATE)
		__sim_complete(c, q, sqe.cid, status, 0, 0, *now);
	return 1;
}

/*
 * Serve the SQs of priority class @prio round robin, at most the arbitration
 * burst from one SQ per turn, until @quota commands (0: until they are empty)
 * or @left.  Return how many ran.
 */
static int serve_class(struct sim_ctrl *c, uint8_t prio, int quota, int left, uint64_t *now)
{
	uint32_t ab = c->arbitration & 7u;
	uint32_t burst = ab == 7u ? UINT32_MAX : 1u << ab; /* 5.27.1.1: AB 111b is no limit */
	int taken = 0, more = 1;

	while (more && taken < left && (!quota || taken < quota) && !c->hung) {
		more = 0;
		for (uint16_t q = 1; q < SIM_MAX_QUEUES; q++) {
			if (!c->sq[q].valid || c->sq[q].prio != prio)
				continue;
			for (uint32_t b = 0; b < burst; b++) {
				if (taken >= left || (quota && taken >= quota) || c->hung ||
				    !run_one(c, q, now))
					break;
				taken++;
				more = 1;
			}
		}
	}
	return taken;
}

/*
 * 4.13.2 Weighted Round Robin with Urgent Priority Class: urgent SQs (QPRIO
 * 00b) are served strictly first; then high, medium and low take HPW + 1,
 * MPW + 1 and LPW + 1 commands a round (Arbitration feature, 5.27.1.1).
 */
static int process_wrr(struct sim_ctrl *c, int budget, uint64_t *now)
{
	int n = 0, k = 1;

	while (k && n < budget) {
		k = serve_class(c, 0, 0, budget - n, now);
		for (uint8_t prio = 1; prio <= 3 && n + k < budget; prio++) {
			uint32_t weight = ((c->arbitration >> (8u * (4u - prio))) & 0xffu) + 1u;

			k += serve_class(c, prio, (int)weight, budget - n - k, now);
		}
		n += k;
	}
	return n;
}

int sim_process_io(struct sim_ctrl *c, int budget)
{
	uint64_t now = 0;
	int n = 0, progress = 1;

	if (c->hung)
		return 0;
	if (c->wrr) {
		n = process_wrr(c, budget, &now);
	} else {
		/* 4.13.1 Round Robin: one command from each SQ in turn. */
		while (progress && n < budget) {
			progress = 0;
			for (uint16_t q = 1; q < SIM_MAX_QUEUES && n < budget && !c->hung; q++) {
				if (run_one(c, q, &now)) {
					progress = 1;
					n++;
				}
			}
		}
	}
	if (n)
		sim_fire_pending(c);
	return n;
}
