/* SPDX-License-Identifier: MIT */
/*
 * fuzz_sim_io.c - libFuzzer harness for the simulated controller's native
 * data path (ext/src/sim): SQE decoding, the NVM command set of io.c, fault
 * rules, PRP and SGL walks of dma.c, completion posting of ctrl.c, against an
 * in-memory arena and media.  Build (tests/test_fuzz.py does):
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iext/include \
 *         ext/fuzz/fuzz_sim_io.c ext/src/sim/{ctrl,dma,io,loop}.c -o fuzz_sim_io
 *
 * One input is one batch of commands on one I/O queue pair:
 *
 *   byte 0      flags: bit 0 SGLs supported, bit 1 weighted round robin,
 *               bit 2 volatile write cache enabled, bit 3 the SQ's priority
 *               class high (else urgent), bits 7:4 MDTS (0: none, else 1..9)
 *   byte 1      number of SQEs (at most QDEPTH - 1)
 *   byte 2      fault action (enum sim_fault_action; 0: none, 7 and up: none)
 *   byte 3      the fault's opcode (FFh: any)
 *   then        the SQEs, 64 bytes each
 *   then        host memory: copied to HOST_IOVA (PRP lists, SGL segments, data)
 *
 * After the I/O queue, each SQE goes once more straight to sim_dma() with
 * cdw13 as the transfer length (at most 2 MiB) in the direction of bit 0 of
 * cdw14, as the admin plane's transfers do.  A hang shows as a libFuzzer
 * timeout, a wild access as an ASan report.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aionvme/arena.h"
#include "aionvme/sim.h"

#define ARENA_SIZE (4u << 20)
#define SQ_IOVA ((uint64_t)ANV_ARENA_RESERVED)
#define CQ_IOVA ((uint64_t)ANV_ARENA_RESERVED + 0x4000u)
#define HOST_IOVA ((uint64_t)ANV_ARENA_RESERVED + 0x10000u)
#define HOST_MAX (ARENA_SIZE - HOST_IOVA)
#define QDEPTH 64u
#define NS_BYTES (1u << 20)
#define DMA_MAX (2u << 20)

static struct sim_ctrl ctrl;
static uint8_t *bar, *arena, *dmabuf;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	bar = calloc(1, ANV_BAR0_SIZE);
	arena = calloc(1, ARENA_SIZE);
	dmabuf = malloc(DMA_MAX);
	if (!bar || !arena || !dmabuf || sim_ctrl_init(&ctrl, bar, arena, ARENA_SIZE) < 0)
		abort();
	if (sim_ns_attach(&ctrl, 1, NS_BYTES, 9, -1, 0) < 0 ||
	    sim_ns_attach(&ctrl, 2, NS_BYTES, 12, -1, 0) < 0)
		abort();
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sim_ctrl *c = &ctrl;
	uint32_t nsqe;
	uint8_t flags;
	size_t host_len;

	if (size < 4)
		return 0;
	flags = data[0];
	/* A fresh controller state for every input: queues, faults, cache, media. */
	sim_queues_reset(c);
	sim_flush(c);
	memset(c->faults, 0, sizeof(c->faults));
	memset(arena, 0, ARENA_SIZE);
	memset(bar, 0, ANV_BAR0_SIZE);
	for (uint32_t ns = 1; ns <= 2; ns++) {
		memset(c->ns[ns].media, 0, c->ns[ns].media_size);
		memset(c->ns[ns].uncor, 0, c->ns[ns].uncor_size);
	}
	c->sgl_supported = flags & 1u;
	c->wrr = (flags >> 1) & 1u;
	c->vwc_enabled = (flags >> 2) & 1u;
	c->mdts_bytes = (flags >> 4) ? 4096u << ((flags >> 4) % 10u) : 0;
	c->arbitration = 0x03020107u;
	c->io_block_status = 0;
	nsqe = data[1] % QDEPTH;
	if (data[2] >= 1 && data[2] <= 6) {
		c->faults[0].active = 1;
		c->faults[0].action = data[2];
		c->faults[0].qid = -1;
		c->faults[0].opcode = data[3] == 0xff ? -1 : data[3];
		c->faults[0].count = -1;
		c->faults[0].status = ANV_STATUS(ANV_SCT_MEDIA, ANV_SC_UNRECOVERED_READ);
		c->faults[0].delay_us = 1;
	}
	data += 4;
	size -= 4;
	if (nsqe * 64u > size)
		nsqe = (uint32_t)(size / 64u);
	memcpy(arena + SQ_IOVA, data, nsqe * 64u);
	host_len = size - nsqe * 64u;
	if (host_len > HOST_MAX)
		host_len = HOST_MAX;
	memcpy(arena + HOST_IOVA, data + nsqe * 64u, host_len);

	sim_cq_create(c, 1, CQ_IOVA, QDEPTH, 0, 1);
	sim_sq_create(c, 1, SQ_IOVA, QDEPTH, 1, (uint8_t)((flags >> 3) & 1u));
	/* The host rings the SQ tail doorbell (SQ1TDBL, 4-byte stride). */
	*(uint32_t *)(bar + ANV_REG_DBS + 8u) = nsqe;
	sim_process_io(c, 4096);
	{
		uint64_t next = 0;

		sim_tick(c, UINT64_MAX, &next); /* delayed completions are due now */
	}

	for (uint32_t i = 0; i < nsqe; i++) {
		struct anv_sqe sqe;
		uint16_t status;
		uint64_t len;

		memcpy(&sqe, data + 64u * i, sizeof(sqe));
		len = sqe.cdw13 % (DMA_MAX + 1u);
		sim_dma(c, &sqe, dmabuf, len, (int)(sqe.cdw14 & 1u), &status);
	}
	return 0;
}
