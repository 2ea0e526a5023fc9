/* SPDX-License-Identifier: MIT */
/*
 * arena.h - the DMA arena: one shared-memory region (memfd) that every
 * backend can DMA into.  Buffers, queues and PRP lists are carved from it in
 * 4 KiB pages; a page's IOVA is its offset in the arena.
 */
#ifndef AIONVME_ARENA_H
#define AIONVME_ARENA_H

#include <stddef.h>
#include <stdint.h>

#define ANV_PAGE_SHIFT 12
#define ANV_PAGE_SIZE (1u << ANV_PAGE_SHIFT)
/* The first MiB is never handed out: IOVA 0 and low addresses stay invalid. */
#define ANV_ARENA_RESERVED (1u << 20)

struct anv_arena {
	int fd;          /* memfd; owned */
	uint8_t *base;   /* MAP_SHARED mapping of the whole memfd */
	size_t size;     /* bytes, multiple of ANV_PAGE_SIZE */
	uint64_t *bitmap; /* one bit per page, 1 = in use */
	size_t npages;
	size_t hint;     /* next-fit search start */
	size_t used;     /* pages in use */
};

/**
 * anv_arena_open() - create an arena of @size bytes backed by a new memfd
 * @a: arena to initialise
 * @size: bytes; rounded up to a page
 *
 * Return: 0 on success, -1 with errno set.
 */
int anv_arena_open(struct anv_arena *a, size_t size);

/**
 * anv_arena_map() - map an arena another process created (a worker)
 * @fd: its memfd (ownership taken); @size: its size
 *
 * The mapping has no allocator: anv_arena_alloc() fails with ENOMEM, so
 * only the owner carves the arena.
 *
 * Return: 0 on success, -1 with errno set.
 */
int anv_arena_map(struct anv_arena *a, int fd, size_t size);

/**
 * anv_arena_close() - unmap and close; every allocation becomes invalid
 */
void anv_arena_close(struct anv_arena *a);

/**
 * anv_arena_alloc() - allocate zeroed, page-aligned memory
 * @size: bytes; rounded up to whole pages
 *
 * Return: the offset (= IOVA) of the allocation, or -1 with errno ENOMEM.
 */
int64_t anv_arena_alloc(struct anv_arena *a, size_t size);

/**
 * anv_arena_free() - give back an allocation made by anv_arena_alloc()
 */
void anv_arena_free(struct anv_arena *a, uint64_t off, size_t size);

static inline void *anv_arena_ptr(const struct anv_arena *a, uint64_t off)
{
	return a->base + off;
}

#endif /* AIONVME_ARENA_H */
