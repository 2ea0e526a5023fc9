"""Identify data structures of the simulated controller (NVMe 2.0, 5.17.2;
NVM Command Set 4.1.5)."""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from aionvme.simulator.pci import VENDOR_ID
from aionvme.simulator.state import LBA_FORMATS

if TYPE_CHECKING:
    from aionvme.simulator.device import SimDevice

# OACS (5.17.2.1, bytes 257:256)
OACS_SECURITY, OACS_FORMAT, OACS_FIRMWARE, OACS_NS_MGMT, OACS_SELF_TEST = 1, 2, 4, 8, 16
OACS_DBBUF = 1 << 8
# ONCS (bytes 521:520)
ONCS_COMPARE, ONCS_WRITE_UNCOR, ONCS_DSM, ONCS_WRITE_ZEROES, ONCS_SAVE_SELECT = 1, 2, 4, 8, 16
ONCS_TIMESTAMP, ONCS_VERIFY = 64, 128

AERL = 3          # 0's based: 4 outstanding Asynchronous Event Requests
ACL = 3           # 0's based: 4 outstanding Aborts
FW_SLOTS = 3
ELPE = 63         # 0's based: 64 error log entries


def eui64(nsid: int) -> bytes:
    """The namespace's IEEE EUI-64, most significant byte first (5.17.2.2)."""
    return struct.pack(">Q", 0xA10E000000000000 | nsid)


def nguid(nsid: int) -> bytes:
    """The namespace's NGUID, 16 bytes as they appear in both structures."""
    return b"AIONVME-NGUID-" + struct.pack(">H", nsid)


def _ascii(s: str, n: int) -> bytes:
    return s.encode("ascii", "replace")[:n].ljust(n, b" ")


def controller(dev: "SimDevice") -> bytes:
    cfg = dev.cfg
    d = bytearray(4096)
    struct.pack_into("<HH", d, 0, VENDOR_ID, VENDOR_ID)      # VID, SSVID
    d[4:24] = _ascii(cfg.serial, 20)                          # SN
    d[24:64] = _ascii(cfg.model, 40)                          # MN
    d[64:72] = _ascii(dev.admin.firmware.active_revision(), 8)  # FR
    d[72] = 6                                                 # RAB
    d[73:76] = bytes((0x00, 0x0E, 0xA1))                      # IEEE OUI
    d[76] = 0                                                 # CMIC
    d[77] = cfg.mdts                                          # MDTS
    struct.pack_into("<H", d, 78, 1)                          # CNTLID
    struct.pack_into("<I", d, 80, dev.VS)                     # VER
    struct.pack_into("<I", d, 84, 100000)                     # RTD3R (us)
    struct.pack_into("<I", d, 88, 100000)                     # RTD3E (us)
    # OAES: Firmware Activation Notices only.  Namespace Attribute Notices (bit 8) need the
    # Changed Namespace List log page (04h), which the simulator does not have.
    struct.pack_into("<I", d, 92, 1 << 9)
    struct.pack_into("<H", d, 111, 1)                         # CNTRLTYPE: I/O controller
    struct.pack_into("<H", d, 256, OACS_FORMAT | OACS_FIRMWARE | OACS_SELF_TEST | OACS_DBBUF)
    d[258] = ACL
    d[259] = AERL
    d[260] = 0x1 | (FW_SLOTS << 1) | 0x10                     # FRMW: slot 1 RO, 3 slots, no-reset activation
    d[261] = 0x1 | 0x2 | 0x4                                  # LPA: SMART per ns, CSE log, ext data
    d[262] = ELPE
    d[263] = 0                                                # NPSS: one power state
    d[264] = 1                                                # AVSCC
    struct.pack_into("<H", d, 266, 273 + 80)                  # WCTEMP (K)
    struct.pack_into("<H", d, 268, 273 + 85)                  # CCTEMP (K)
    struct.pack_into("<H", d, 316, max(1, int(cfg.dst_extended_ms / 60000) + 1))  # EDSTT (min)
    d[318] = 0                                                # DSTO: one DST at a time per ctrl
    d[319] = 1                                                # FWUG: 4 KiB granularity
    struct.pack_into("<I", d, 328, 0x7)                       # SANICAP: crypto, block, overwrite
    d[512] = 0x66                                             # SQES: 64 bytes
    d[513] = 0x44                                             # CQES: 16 bytes
    struct.pack_into("<H", d, 514, 0)                         # MAXCMD
    struct.pack_into("<I", d, 516, len(dev.state.namespaces))  # NN
    struct.pack_into("<H", d, 520, ONCS_COMPARE | ONCS_WRITE_UNCOR | ONCS_DSM |
                     ONCS_WRITE_ZEROES | ONCS_SAVE_SELECT | ONCS_TIMESTAMP | ONCS_VERIFY)
    struct.pack_into("<H", d, 522, 0)                         # FUSES
    d[524] = 0x4                                              # FNA: crypto erase supported
    d[525] = 0x1 if cfg.vwc else 0                            # VWC present
    struct.pack_into("<H", d, 526, 0)                         # AWUN
    struct.pack_into("<H", d, 528, 0)                         # AWUPF
    struct.pack_into("<I", d, 536, 0x1 | (1 << 16) if cfg.sgl else 0)  # SGLS: byte-aligned, bit bucket
    nqn = f"nqn.2026-11.io.aionvme:sim:{cfg.serial}"
    d[768:768 + len(nqn)] = nqn.encode()                      # SUBNQN
    # Power state 0 descriptor (bytes 2079:2048): 25.00 W, entry/exit latency 0.
    struct.pack_into("<H", d, 2048, 2500)
    return bytes(d)


def namespace(dev: "SimDevice", nsid: int) -> bytes:
    ns = dev.state.namespaces[nsid]
    d = bytearray(4096)
    struct.pack_into("<QQQ", d, 0, ns.nlba, ns.nlba, ns.nlba)  # NSZE, NCAP, NUSE
    d[24] = 0x4                                                # NSFEAT: DAE (bit 2): DULBE supported
    d[25] = len(LBA_FORMATS) - 1                               # NLBAF (0's based)
    d[26] = ns.lbaf & 0xF                                      # FLBAS
    d[27] = 0                                                  # MC
    d[28] = 0                                                  # DPC
    d[29] = 0                                                  # DPS
    d[33] = 0x9                                                # DLFEAT (NVM 4.1.5.1): reads 00h; WZ deallocates
    # 5.17.2.3: the same NGUID and EUI64 as the Namespace Identification Descriptors.
    d[104:120] = nguid(nsid)                                   # NGUID
    d[120:128] = eui64(nsid)                                   # EUI64
    for i, (ds, ms) in enumerate(LBA_FORMATS):
        rp = 0 if (ds, ms) == (4096, 0) else 2 if ms else 1
        struct.pack_into("<I", d, 128 + 4 * i, ms | ((ds.bit_length() - 1) << 16) | (rp << 24))
    return bytes(d)


def active_namespaces(dev: "SimDevice", after: int) -> bytes:
    ids = sorted(n for n in dev.state.namespaces if n > after)[:1024]
    return struct.pack(f"<{len(ids)}I", *ids).ljust(4096, b"\0")


def ns_descriptors(dev: "SimDevice", nsid: int) -> bytes:
    """Namespace Identification Descriptor list (5.17.2.3): EUI64, NGUID, CSI."""
    d = bytearray()
    d += bytes((1, 8, 0, 0)) + eui64(nsid)
    d += bytes((2, 16, 0, 0)) + nguid(nsid)
    d += bytes((4, 1, 0, 0)) + bytes((0,))  # CSI: NVM
    return bytes(d).ljust(4096, b"\0")
