/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "aionvme/arena.h"
#include "aionvme/debug.h"

static inline int page_used(const struct anv_arena *a, size_t p)
{
	return (int)((a->bitmap[p >> 6] >> (p & 63)) & 1u);
}

static inline void page_set(struct anv_arena *a, size_t p, int used)
{
	if (used)
		a->bitmap[p >> 6] |= (1ull << (p & 63));
	else
		a->bitmap[p >> 6] &= ~(1ull << (p & 63));
}

int anv_arena_open(struct anv_arena *a, size_t size)
{
	size_t first;

	memset(a, 0, sizeof(*a));
	a->fd = -1;
	size = (size + ANV_PAGE_SIZE - 1) & ~((size_t)ANV_PAGE_SIZE - 1);
	if (size <= ANV_ARENA_RESERVED) {
		errno = EINVAL;
		return -1;
	}
	a->fd = memfd_create("aionvme-arena", MFD_CLOEXEC);
	if (a->fd < 0)
		return -1;
	if (ftruncate(a->fd, (off_t)size) < 0)
		goto close_fd;
	a->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, a->fd, 0);
	if (a->base == MAP_FAILED)
		goto close_fd;
	a->size = size;
	a->npages = size >> ANV_PAGE_SHIFT;
	a->bitmap = calloc((a->npages + 63) / 64, sizeof(uint64_t));
	if (!a->bitmap)
		goto unmap;
	first = ANV_ARENA_RESERVED >> ANV_PAGE_SHIFT;
	for (size_t p = 0; p < first; p++)
		page_set(a, p, 1);
	a->hint = first;
	return 0;

unmap:
	munmap(a->base, size);
close_fd:
	close(a->fd);
	a->fd = -1;
	a->base = NULL;
	return -1;
}

int anv_arena_map(struct anv_arena *a, int fd, size_t size)
{
	memset(a, 0, sizeof(*a));
	a->fd = -1;
	if (!size || (size & (ANV_PAGE_SIZE - 1))) {
		errno = EINVAL;
		return -1;
	}
	a->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (a->base == MAP_FAILED) {
		a->base = NULL;
		return -1;
	}
	a->fd = fd;
	a->size = size;
	return 0;
}

void anv_arena_close(struct anv_arena *a)
{
	if (a->base)
		munmap(a->base, a->size);
	if (a->fd >= 0)
		close(a->fd);
	free(a->bitmap);
	memset(a, 0, sizeof(*a));
	a->fd = -1;
}

/* Find @n free pages in a row starting at or after @from; next-fit. */
static int64_t find_run(struct anv_arena *a, size_t from, size_t n)
{
	size_t run = 0;

	for (size_t p = from; p < a->npages; p++) {
		if (!(p & 63) && a->bitmap[p >> 6] == ~0ull) {
			run = 0;
			p += 63;
			continue;
		}
		if (page_used(a, p)) {
			run = 0;
			continue;
		}
		if (++run == n)
			return (int64_t)(p + 1 - n);
	}
	return -1;
}

int64_t anv_arena_alloc(struct anv_arena *a, size_t size)
{
	size_t n = (size + ANV_PAGE_SIZE - 1) >> ANV_PAGE_SHIFT;
	int64_t first;

	if (n == 0)
		n = 1;
	if (!a->bitmap) {
		errno = ENOMEM; /* a mapping without an allocator (anv_arena_map) */
		return -1;
	}
	first = find_run(a, a->hint, n);
	if (first < 0)
		first = find_run(a, ANV_ARENA_RESERVED >> ANV_PAGE_SHIFT, n);
	if (first < 0) {
		errno = ENOMEM;
		return -1;
	}
	for (size_t p = (size_t)first; p < (size_t)first + n; p++)
		page_set(a, p, 1);
	a->hint = (size_t)first + n;
	a->used += n;
	/* Buffers start zeroed (seed: "Data in buffer is clear to 0"). */
	memset(a->base + ((size_t)first << ANV_PAGE_SHIFT), 0, n << ANV_PAGE_SHIFT);
	return (int64_t)((uint64_t)first << ANV_PAGE_SHIFT);
}

void anv_arena_free(struct anv_arena *a, uint64_t off, size_t size)
{
	size_t first = (size_t)(off >> ANV_PAGE_SHIFT);
	size_t n = (size + ANV_PAGE_SIZE - 1) >> ANV_PAGE_SHIFT;

	if (n == 0)
		n = 1;
	if (first + n > a->npages)
		return;
	/* Give large runs back to the kernel so a long test does not grow. */
	if (n >= 512)
		fallocate(a->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			  (off_t)off, (off_t)(n << ANV_PAGE_SHIFT));
	for (size_t p = first; p < first + n; p++) {
		anv_dbg_check(page_used(a, p)); /* a double free, or a free of what was never allocated */
		page_set(a, p, 0);
	}
	anv_dbg_check(a->used >= n);
	a->used -= n;
	if (first < a->hint)
		a->hint = first;
}
