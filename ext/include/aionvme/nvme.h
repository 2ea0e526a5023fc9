/* SPDX-License-Identifier: MIT */
/*
 * nvme.h - NVMe structures and register layout shared by the driver core and
 * the simulated controller.  Section numbers refer to the NVMe Base
 * Specification 2.0 unless stated otherwise.
 */
#ifndef AIONVME_NVME_H
#define AIONVME_NVME_H

#include <stdint.h>

/* 3.1.3 Controller registers (offsets in BAR0) */
enum {
	ANV_REG_CAP = 0x00,
	ANV_REG_VS = 0x08,
	ANV_REG_INTMS = 0x0c,
	ANV_REG_INTMC = 0x10,
	ANV_REG_CC = 0x14,
	ANV_REG_CSTS = 0x1c,
	ANV_REG_NSSR = 0x20,
	ANV_REG_AQA = 0x24,
	ANV_REG_ASQ = 0x28,
	ANV_REG_ACQ = 0x30,
	ANV_REG_DBS = 0x1000, /* SQ0TDBL, the first doorbell */
};

/* Layout of BAR0 used by the simulator (the MSI-X table may sit anywhere in a BAR). */
enum {
	ANV_BAR0_SIZE = 0x4000,
	ANV_MSIX_TABLE_OFF = 0x2000,
	ANV_MSIX_PBA_OFF = 0x3000,
	ANV_MSIX_MAX_VECTORS = 64,
};

/* 4.2 Submission Queue Entry: 64 bytes */
struct anv_sqe {
	uint8_t opcode;
	uint8_t flags; /* FUSE[1:0], PSDT[7:6] */
	uint16_t cid;
	uint32_t nsid;
	uint32_t cdw2;
	uint32_t cdw3;
	uint64_t mptr;
	uint64_t prp1; /* DPTR: PRP entry 1 or SGL descriptor bytes 0-7 */
	uint64_t prp2; /* DPTR: PRP entry 2 or SGL descriptor bytes 8-15 */
	uint32_t cdw10;
	uint32_t cdw11;
	uint32_t cdw12;
	uint32_t cdw13;
	uint32_t cdw14;
	uint32_t cdw15;
};

/* 4.2 Completion Queue Entry: 16 bytes */
struct anv_cqe {
	uint32_t cdw0;
	uint32_t cdw1;
	uint16_t sqhd;
	uint16_t sqid;
	uint16_t cid;
	uint16_t status; /* bit 0: phase tag, bits 15:1 status field */
};

/* 4.2.3 Status Field, as held in anv_cqe.status (phase tag in bit 0) */
#define ANV_STATUS_SC(s) (((s) >> 1) & 0xff)
#define ANV_STATUS_SCT(s) (((s) >> 9) & 0x7)
#define ANV_STATUS_CRD(s) (((s) >> 12) & 0x3)
#define ANV_STATUS_MORE(s) (((s) >> 14) & 0x1)
#define ANV_STATUS_DNR(s) (((s) >> 15) & 0x1)
#define ANV_STATUS(sct, sc) ((uint16_t)((((sct) & 0x7) << 9) | (((sc) & 0xff) << 1)))

/* 4.3 SGL descriptor: 16 bytes */
struct anv_sgl_desc {
	uint64_t addr;
	uint32_t len;
	uint8_t rsvd[3];
	uint8_t type; /* type[7:4], subtype[3:0] */
};

enum {
	ANV_SGL_TYPE_DATA_BLOCK = 0x0,
	ANV_SGL_TYPE_BIT_BUCKET = 0x1,
	ANV_SGL_TYPE_SEGMENT = 0x2,
	ANV_SGL_TYPE_LAST_SEGMENT = 0x3,
};

/* 5 Admin command set opcodes */
enum {
	ANV_ADMIN_DELETE_SQ = 0x00,
	ANV_ADMIN_CREATE_SQ = 0x01,
	ANV_ADMIN_GET_LOG_PAGE = 0x02,
	ANV_ADMIN_DELETE_CQ = 0x04,
	ANV_ADMIN_CREATE_CQ = 0x05,
	ANV_ADMIN_IDENTIFY = 0x06,
	ANV_ADMIN_ABORT = 0x08,
	ANV_ADMIN_SET_FEATURES = 0x09,
	ANV_ADMIN_GET_FEATURES = 0x0a,
	ANV_ADMIN_ASYNC_EVENT = 0x0c,
	ANV_ADMIN_FW_COMMIT = 0x10,
	ANV_ADMIN_FW_DOWNLOAD = 0x11,
	ANV_ADMIN_DEV_SELF_TEST = 0x14,
	ANV_ADMIN_DBBUF_CONFIG = 0x7c,
	ANV_ADMIN_FORMAT_NVM = 0x80,
	ANV_ADMIN_SANITIZE = 0x84,
};

/* NVM command set opcodes (NVM Command Set Specification 1.0, section 3) */
enum {
	ANV_NVM_FLUSH = 0x00,
	ANV_NVM_WRITE = 0x01,
	ANV_NVM_READ = 0x02,
	ANV_NVM_WRITE_UNCOR = 0x04,
	ANV_NVM_COMPARE = 0x05,
	ANV_NVM_WRITE_ZEROES = 0x08,
	ANV_NVM_DSM = 0x09,
	ANV_NVM_VERIFY = 0x0c,
};

/* 4.2.3 Generic command status (SCT 0) */
enum {
	ANV_SC_SUCCESS = 0x00,
	ANV_SC_INVALID_OPCODE = 0x01,
	ANV_SC_INVALID_FIELD = 0x02,
	ANV_SC_CID_CONFLICT = 0x03,
	ANV_SC_DATA_XFER_ERROR = 0x04,
	ANV_SC_POWER_LOSS_ABORT = 0x05,
	ANV_SC_INTERNAL = 0x06,
	ANV_SC_ABORT_REQ = 0x07,
	ANV_SC_ABORT_SQ_DELETED = 0x08,
	ANV_SC_INVALID_NS = 0x0b,
	ANV_SC_CMD_SEQ_ERROR = 0x0c,
	ANV_SC_SGL_INVALID_SEGMENT = 0x0d,
	ANV_SC_SGL_INVALID_COUNT = 0x0e,
	ANV_SC_SGL_INVALID_DATA_LEN = 0x0f,
	ANV_SC_SGL_INVALID_TYPE = 0x11,
	ANV_SC_INVALID_PRP_OFFSET = 0x13,
	ANV_SC_SANITIZE_IN_PROGRESS = 0x1d,
	ANV_SC_LBA_OUT_OF_RANGE = 0x80,
	ANV_SC_CAP_EXCEEDED = 0x81,
	ANV_SC_NS_NOT_READY = 0x82,
};

/* 4.2.3 Media and data integrity errors (SCT 2) */
enum {
	ANV_SC_WRITE_FAULT = 0x80,
	ANV_SC_UNRECOVERED_READ = 0x81,
	ANV_SC_COMPARE_FAILURE = 0x85,
	ANV_SC_DEALLOC_OR_UNWRITTEN = 0x87,
};

enum {
	ANV_SCT_GENERIC = 0,
	ANV_SCT_CMD_SPECIFIC = 1,
	ANV_SCT_MEDIA = 2,
	ANV_SCT_PATH = 3,
	ANV_SCT_VENDOR = 7,
};

#endif /* AIONVME_NVME_H */
