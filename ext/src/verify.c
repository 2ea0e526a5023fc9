/* SPDX-License-Identifier: MIT */
/* The per-namespace table: memfd, mapping, entries, and the read check. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "aionvme/stamp.h"
#include "aionvme/verify.h"

#define PAGE 4096u

static inline size_t page_up(uint64_t n)
{
	return (size_t)((n + PAGE - 1) & ~(uint64_t)(PAGE - 1));
}

static inline uint64_t le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

/* Set the bits before the entries: a reader that sees an entry saw its bit. */
void __anv_verify_chunks_mark(struct anv_verify *v, uint64_t slba, uint64_t nlb)
{
	uint64_t first = slba >> ANV_VERIFY_CHUNK_SHIFT;
	uint64_t last = (slba + nlb - 1) >> ANV_VERIFY_CHUNK_SHIFT;

	for (uint64_t c = first; c <= last; c++) {
		uint64_t bit = 1ull << (c & 63);

		if (!(v->chunks[c >> 6] & bit))
			__atomic_fetch_or(&v->chunks[c >> 6], bit, __ATOMIC_RELEASE);
	}
}

static int map(struct anv_verify *v, uint32_t nsid, uint64_t nlba, uint32_t lba_size)
{
	size_t crc_sz, tok_sz, old_sz, map_sz, busy_sz;

	if (lba_size < 512 || (lba_size & (lba_size - 1)) || !nlba ||
	    nlba > (1ull << 48)) {
		errno = EINVAL;
		return -1;
	}
	crc_sz = page_up(nlba * 4);
	tok_sz = page_up(nlba * 8);
	old_sz = page_up(nlba * 8);
	map_sz = page_up((((nlba + ANV_VERIFY_CHUNK - 1) >> ANV_VERIFY_CHUNK_SHIFT) + 63) / 64 * 8);
	busy_sz = page_up(nlba * 8);
	v->data_size = crc_sz + tok_sz + old_sz + map_sz;
	v->size = v->data_size + busy_sz + PAGE;
	/* MAP_NORESERVE: the file is sparse; only pages written use memory. */
	v->base = mmap(NULL, v->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE,
		       v->fd, 0);
	if (v->base == MAP_FAILED) {
		v->base = NULL;
		return -1;
	}
	v->crc = (uint32_t *)v->base;
	v->token = (uint64_t *)(v->base + crc_sz);
	v->old = (uint64_t *)(v->base + crc_sz + tok_sz);
	v->chunks = (uint64_t *)(v->base + crc_sz + tok_sz + old_sz);
	v->busy = (uint64_t *)(v->base + v->data_size);
	v->wide = (uint64_t *)(v->base + v->data_size + busy_sz);
	v->gen = v->wide + 1;
	v->durable = v->wide + 2;
	v->epoch = v->wide + 3;
	v->no_cache = v->wide + 4;
	v->nsid = nsid;
	v->nlba = nlba;
	v->lba_shift = (uint32_t)__builtin_ctz(lba_size);
	return anv_crc32c_plan_init(&v->plan, lba_size);
}

/* Undo a failed open or attach: the mapping (if any) and the fd. */
static void unmap_close(struct anv_verify *v)
{
	if (v->base)
		munmap(v->base, v->size);
	close(v->fd);
	v->fd = -1;
	v->base = NULL;
}

int anv_verify_open(struct anv_verify *v, uint32_t nsid, uint64_t nlba, uint32_t lba_size)
{
	char name[32];

	memset(v, 0, sizeof(*v));
	snprintf(name, sizeof(name), "aionvme-verify-ns%u", nsid);
	v->fd = memfd_create(name, MFD_CLOEXEC);
	if (v->fd < 0)
		return -1;
	if (map(v, nsid, nlba, lba_size) < 0 || ftruncate(v->fd, (off_t)v->size) < 0) {
		unmap_close(v);
		return -1;
	}
	return 0;
}

int anv_verify_open_dir(struct anv_verify *v, uint32_t nsid, uint64_t nlba, uint32_t lba_size,
			const char *dir)
{
	memset(v, 0, sizeof(*v));
	v->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (v->fd < 0)
		return -1;
	if (map(v, nsid, nlba, lba_size) < 0 || ftruncate(v->fd, (off_t)v->size) < 0) {
		unmap_close(v);
		return -1;
	}
	return 0;
}

int anv_verify_attach(struct anv_verify *v, int fd, uint32_t nsid, uint64_t nlba,
		      uint32_t lba_size)
{
	memset(v, 0, sizeof(*v));
	v->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (v->fd < 0)
		return -1;
	if (map(v, nsid, nlba, lba_size) < 0) {
		unmap_close(v);
		return -1;
	}
	return 0;
}

void anv_verify_close(struct anv_verify *v)
{
	struct anv_verify_io *io = v->head, *next;

	for (; io; io = next) {
		next = io->next;
		free(io);
	}
	if (v->base)
		munmap(v->base, v->size);
	if (v->fd >= 0)
		close(v->fd);
	memset(v, 0, sizeof(*v));
	v->fd = -1;
}

int anv_verify_reset(struct anv_verify *v)
{
	/* A hole reads as zeroes (= unknown) and frees the pages at once,
	 * without the window of a truncate to 0 in which another process's
	 * access to its mapping would fault (SIGBUS).  busy[] and wide stay:
	 * commands in flight take themselves out of them at completion. */
	if (fallocate(v->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
		      (off_t)v->data_size) == 0)
		return 0;
	if (errno != EOPNOTSUPP)
		return -1;
	memset(v->base, 0, v->data_size);
	return 0;
}

/* Copy [@off, @off + @len) of @from to @to at @off + @shift, skipping holes. */
static int copy_sparse(int from, int to, off_t off, off_t len, off_t to_off)
{
	off_t end = off + len;
	static uint8_t buf[1 << 16];

	while (off < end) {
		off_t data = lseek(from, off, SEEK_DATA), hole;

		if (data < 0) {
			if (errno == ENXIO)
				return 0; /* only a hole is left */
			return -1;
		}
		if (data >= end)
			return 0;
		hole = lseek(from, data, SEEK_HOLE);
		if (hole < 0)
			return -1;
		if (hole > end)
			hole = end;
		for (off = data; off < hole;) {
			size_t n = (size_t)(hole - off) < sizeof(buf) ? (size_t)(hole - off) : sizeof(buf);
			ssize_t r = pread(from, buf, n, off);

			if (r <= 0) {
				if (r == 0)
					errno = EIO;
				return -1;
			}
			if (pwrite(to, buf, (size_t)r, off - to_off) != r)
				return -1;
			off += r;
		}
	}
	return 0;
}

int anv_verify_save(struct anv_verify *v, int fd, const uint8_t *id)
{
	struct anv_verify_file h;
	uint64_t nchunks = (v->nlba + ANV_VERIFY_CHUNK - 1) >> ANV_VERIFY_CHUNK_SHIFT;
	uint32_t unknown = ANV_VERIFY_UNKNOWN;

	memset(&h, 0, sizeof(h));
	h.magic = ANV_VERIFY_FILE_MAGIC;
	h.version = ANV_VERIFY_FILE_VERSION;
	h.nsid = v->nsid;
	h.nlba = v->nlba;
	h.lba_size = 1u << v->lba_shift;
	h.data_size = v->data_size;
	h.gen = __atomic_load_n(v->gen, __ATOMIC_SEQ_CST);
	h.durable = __atomic_load_n(v->durable, __ATOMIC_SEQ_CST);
	memcpy(h.id, id, sizeof(h.id));
	if (__atomic_load_n(v->wide, __ATOMIC_SEQ_CST) & ANV_VERIFY_BUSY_INFLIGHT) {
		errno = EBUSY; /* a huge Deallocate is in flight: its LBAs are not known */
		return -1;
	}
	if (ftruncate(fd, 0) < 0 ||
	    ftruncate(fd, (off_t)(ANV_VERIFY_FILE_DATA + v->data_size)) < 0 ||
	    pwrite(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
		return -1;
	if (copy_sparse(v->fd, fd, 0, (off_t)v->data_size, -(off_t)ANV_VERIFY_FILE_DATA) < 0)
		return -1;
	/* What is in flight now has no result the file could know. */
	for (uint64_t c = 0; c < nchunks; c++) {
		uint64_t lba = c << ANV_VERIFY_CHUNK_SHIFT;
		uint64_t end = lba + ANV_VERIFY_CHUNK < v->nlba ? lba + ANV_VERIFY_CHUNK : v->nlba;

		if (!__anv_verify_chunk_written(v, lba))
			continue;
		for (; lba < end; lba++)
			if (__atomic_load_n(&v->busy[lba], __ATOMIC_SEQ_CST) & ANV_VERIFY_BUSY_INFLIGHT &&
			    pwrite(fd, &unknown, 4, (off_t)(ANV_VERIFY_FILE_DATA + lba * 4)) != 4)
				return -1;
	}
	return fsync(fd);
}

int anv_verify_load(struct anv_verify *v, int fd, const uint8_t *id)
{
	struct anv_verify_file h;

	if (pread(fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h) || h.magic != ANV_VERIFY_FILE_MAGIC ||
	    h.version != ANV_VERIFY_FILE_VERSION) {
		errno = EBADMSG;
		return -1;
	}
	if (h.nlba != v->nlba || h.lba_size != 1u << v->lba_shift || h.data_size != v->data_size) {
		errno = EINVAL;
		return -1;
	}
	if (memcmp(h.id, id, sizeof(h.id))) {
		errno = ESTALE;
		return -1;
	}
	if (anv_verify_reset(v) < 0)
		return -1;
	if (copy_sparse(fd, v->fd, ANV_VERIFY_FILE_DATA, (off_t)v->data_size,
			ANV_VERIFY_FILE_DATA) < 0)
		return -1;
	__atomic_store_n(v->gen, h.gen, __ATOMIC_SEQ_CST);
	__atomic_store_n(v->durable, h.durable, __ATOMIC_SEQ_CST);
	return 0;
}

void anv_verify_erased(struct anv_verify *v)
{
	uint64_t nchunks = (v->nlba + ANV_VERIFY_CHUNK - 1) >> ANV_VERIFY_CHUNK_SHIFT;

	for (uint64_t c = 0; c < nchunks; c++) {
		uint64_t lba = c << ANV_VERIFY_CHUNK_SHIFT;
		uint64_t end = lba + ANV_VERIFY_CHUNK < v->nlba ? lba + ANV_VERIFY_CHUNK : v->nlba;

		if (!__anv_verify_chunk_written(v, lba))
			continue;
		for (; lba < end; lba++) {
			uint32_t w = __atomic_load_n(&v->crc[lba], __ATOMIC_RELAXED);

			/* A stamped write's data (its LBA and a unique token) cannot
			 * be what the erase leaves; zeroes or a pattern could be. */
			__anv_verify_set_old(v, lba, w >= ANV_VERIFY_CRC_MIN ? w : ANV_VERIFY_UNKNOWN,
					     0);
			v->token[lba] &= ANV_VERIFY_TOKEN_MASK;
			__atomic_store_n(&v->crc[lba], w >= ANV_VERIFY_CRC_MIN ? ANV_VERIFY_NOT_OLD :
					 ANV_VERIFY_UNKNOWN, __ATOMIC_RELAXED);
		}
	}
}

void anv_verify_set_no_cache(struct anv_verify *v, int no_cache)
{
	__atomic_store_n(v->no_cache, (uint64_t)!!no_cache, __ATOMIC_SEQ_CST);
}

uint64_t anv_verify_flush_begin(struct anv_verify *v)
{
	/* seq_cst: a write that completes after this sees the new gen. */
	return __atomic_add_fetch(v->gen, 1, __ATOMIC_SEQ_CST);
}

void anv_verify_flush_end(struct anv_verify *v, uint64_t g, int ok)
{
	uint64_t d = __atomic_load_n(v->durable, __ATOMIC_RELAXED);

	while (ok && d < g &&
	       !__atomic_compare_exchange_n(v->durable, &d, g, 0, __ATOMIC_SEQ_CST,
					    __ATOMIC_RELAXED))
		;
}

uint64_t anv_verify_power_loss(struct anv_verify *v)
{
	uint64_t d = __atomic_load_n(v->durable, __ATOMIC_SEQ_CST), either = 0;
	uint64_t nchunks = (v->nlba + ANV_VERIFY_CHUNK - 1) >> ANV_VERIFY_CHUNK_SHIFT;
	uint64_t g = __atomic_add_fetch(v->gen, 1, __ATOMIC_SEQ_CST);

	__atomic_add_fetch(v->epoch, 1, __ATOMIC_SEQ_CST);

	for (uint64_t c = 0; c < nchunks; c++) {
		uint64_t lba = c << ANV_VERIFY_CHUNK_SHIFT;
		uint64_t end = lba + ANV_VERIFY_CHUNK < v->nlba ? lba + ANV_VERIFY_CHUNK : v->nlba;

		if (!__anv_verify_chunk_written(v, lba))
			continue;
		for (; lba < end; lba++) {
			uint32_t w = __anv_verify_wgen(v, lba), oc = (uint32_t)v->old[lba];

			if ((w & ANV_VERIFY_WGEN_MASK) <= d)
				continue; /* durable: exact */
			if ((w & ANV_VERIFY_WGEN_MULTI) || v->crc[lba] == ANV_VERIFY_UNKNOWN) {
				v->crc[lba] = ANV_VERIFY_UNKNOWN;
				__anv_verify_set_old(v, lba, oc, 0);
				continue;
			}
			/* The cached write, or the state before it. */
			__anv_verify_set_old(v, lba, oc, ANV_VERIFY_WGEN_EITHER |
					     (uint32_t)(g & ANV_VERIFY_WGEN_MASK));
			either++;
		}
	}
	/* What the media holds now is all durable; later writes are above g. */
	__atomic_store_n(v->durable, g, __ATOMIC_SEQ_CST);
	return either;
}

uint64_t anv_verify_token(void)
{
	static uint64_t counter;
	uint64_t n = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);

	return (((uint64_t)(uint32_t)getpid() << 40) | (n & ((1ull << 40) - 1))) &
	       ANV_VERIFY_TOKEN_MASK;
}

uint32_t anv_verify_get(const struct anv_verify *v, uint64_t lba)
{
	if (lba >= v->nlba || !__anv_verify_chunk_written(v, lba))
		return ANV_VERIFY_UNKNOWN;
	return __atomic_load_n(&v->crc[lba], __ATOMIC_RELAXED);
}

void __anv_verify_set(struct anv_verify *v, uint64_t slba, uint64_t nlb, uint32_t value)
{
	uint64_t end = slba + nlb, lba = slba;

	if (value != ANV_VERIFY_UNKNOWN) {
		__anv_verify_chunks_mark(v, slba, nlb);
		for (; lba < end; lba++)
			__atomic_store_n(&v->crc[lba], value, __ATOMIC_RELAXED);
		return;
	}
	/* Unknown is what an unwritten chunk already says: skip those, so
	 * forgetting a large range never allocates. */
	while (lba < end) {
		uint64_t c_end = ((lba >> ANV_VERIFY_CHUNK_SHIFT) + 1) << ANV_VERIFY_CHUNK_SHIFT;

		if (c_end > end)
			c_end = end;
		if (__anv_verify_chunk_written(v, lba))
			for (uint64_t l = lba; l < c_end; l++)
				__atomic_store_n(&v->crc[l], ANV_VERIFY_UNKNOWN, __ATOMIC_RELAXED);
		lba = c_end;
	}
}

void __anv_verify_stamp(const struct anv_verify *v, uint8_t *data, uint64_t slba, uint64_t nlb,
			uint64_t token, uint32_t *crc)
{
	for (uint64_t i = 0; i < nlb; i++) {
		uint8_t *p = data + (i << v->lba_shift);
		uint64_t lba = slba + i;
		uint32_t c;

		anv_stamp_lba(p, lba, token);
		/* The CRC of what the device is handed now: a buffer changed
		 * while the write is in flight is the test's own race. */
		c = anv_crc32c_plan_run(&v->plan, p);
		crc[i] = c < ANV_VERIFY_CRC_MIN ? ~c : c;
	}
}

/* Whether a change of @lba began since a read sampled it (see the top of verify.h). */
static inline int disturbed(const struct anv_verify *v, uint64_t lba, uint64_t snap, uint64_t wide)
{
	return __atomic_load_n(&v->busy[lba], __ATOMIC_ACQUIRE) + 1 != snap ||
	       __atomic_load_n(v->wide, __ATOMIC_ACQUIRE) + 1 != wide;
}

static inline uint32_t first_nonzero(const uint8_t *p, uint32_t len)
{
	uint32_t i = 0;

	for (; i + 8 <= len; i += 8)
		if (le64(p + i))
			break;
	for (; i < len; i++)
		if (p[i])
			return i;
	return len;
}

static inline int all_ones(const uint8_t *p, uint32_t len)
{
	for (uint32_t i = 0; i + 8 <= len; i += 8)
		if (le64(p + i) != ~0ull)
			return 0;
	return 1;
}

/* Whether @p is one of the values a Deallocate allowed besides crc[] (@alt). */
static inline int alt_match(const uint8_t *p, uint32_t len, uint64_t alt)
{
	if ((alt & ANV_VERIFY_OR_ZEROES) && first_nonzero(p, len) == len)
		return 1;
	return (alt & ANV_VERIFY_OR_ONES) && all_ones(p, len);
}

/* Whether the LBA data @p is what the old[] state @c allows. */
static inline int matches_old(const struct anv_verify *v, const uint8_t *p, uint32_t c)
{
	uint32_t lba_size = 1u << v->lba_shift, got;

	if (c == ANV_VERIFY_UNKNOWN)
		return 1;
	if (c == ANV_VERIFY_ZEROES)
		return first_nonzero(p, lba_size) == lba_size;
	if (c == ANV_VERIFY_UNCOR)
		return 0; /* it would have failed the read */
	if (c == ANV_VERIFY_NOT_OLD)
		return 1; /* what it must differ from is not kept in old[] */
	got = anv_crc32c_plan_run(&v->plan, p);
	if (got < ANV_VERIFY_CRC_MIN)
		got = ~got;
	return got == c;
}

uint64_t __anv_verify_check(struct anv_verify *v, const uint8_t *data, uint64_t slba,
			    uint64_t nlb, const uint64_t *snap, uint64_t wide,
			    struct anv_verify_mismatch *m)
{
	uint32_t lba_size = 1u << v->lba_shift;
	uint64_t bad = 0;

	for (uint64_t i = 0; i < nlb; i++) {
		const uint8_t *p = data + (i << v->lba_shift);
		uint64_t lba = slba + i;
		uint32_t want, got = 0, off = lba_size;
		uint32_t kind = 0;
		uint64_t alt = 0;

		/* 0: the chunk was unwritten or a change was in flight at submission. */
		if (!snap[i])
			continue;
		want = __atomic_load_n(&v->crc[lba], __ATOMIC_ACQUIRE);
		if (want == ANV_VERIFY_UNKNOWN)
			continue;
		if (want == ANV_VERIFY_ZEROES) {
			off = first_nonzero(p, lba_size);
			if (off < lba_size)
				kind = ANV_VERIFY_BAD_ZEROES;
		} else if (want == ANV_VERIFY_NOT_OLD) {
			got = anv_crc32c_plan_run(&v->plan, p);
			if (got < ANV_VERIFY_CRC_MIN)
				got = ~got;
			if (got == (uint32_t)v->old[lba])
				kind = ANV_VERIFY_BAD_OLD;
		} else if (want == ANV_VERIFY_UNCOR) {
			/* NVM 3.2.11: reads of these LBAs complete with
			 * Unrecovered Read Error until they are written. */
			kind = ANV_VERIFY_BAD_UNCOR;
		} else {
			got = anv_crc32c_plan_run(&v->plan, p);
			if (got < ANV_VERIFY_CRC_MIN)
				got = ~got;
			if (got != want)
				kind = ANV_VERIFY_BAD_CRC;
		}
		/* After a Deallocate: the old data, or the value DLFEAT allows
		 * (token[] is read only now: a good read touches crc[] alone). */
		if (kind) {
			alt = v->token[lba] & ANV_VERIFY_OR_MASK;
			if (alt && alt_match(p, lba_size, alt))
				continue;
		}
		/* Since a power loss the LBA may hold the state before its last
		 * cached write (the top of verify.h): that is checked exactly too. */
		if (kind && (__anv_verify_wgen(v, lba) & ANV_VERIFY_WGEN_EITHER) &&
		    matches_old(v, p, (uint32_t)v->old[lba]))
			continue;
		/* A change that began while the read was outstanding may have
		 * landed before or after it: no alarm (NVMe 1.3c, 6.3). */
		if (!kind || disturbed(v, lba, snap[i], wide))
			continue;
		if (!bad++ && m) {
			memset(m, 0, sizeof(*m));
			m->lba = lba;
			m->kind = kind;
			m->expected_crc = want;
			m->found_crc = got;
			m->alt = alt;
			if (kind == ANV_VERIFY_BAD_OLD) {
				m->expected_crc = (uint32_t)v->old[lba];
				m->expected_token = v->token[lba] & ANV_VERIFY_TOKEN_MASK;
				m->found_lba = le64(p);
				m->found_token = le64(p + 8);
			} else if (kind == ANV_VERIFY_BAD_CRC) {
				m->expected_token = v->token[lba] & ANV_VERIFY_TOKEN_MASK;
				m->found_lba = le64(p);
				m->found_token = le64(p + 8);
			} else if (kind == ANV_VERIFY_BAD_ZEROES) {
				m->offset = off;
				m->value = p[off];
			}
		}
	}
	return bad;
}
