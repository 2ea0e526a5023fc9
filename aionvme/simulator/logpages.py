"""Log pages of the simulated controller (NVMe 2.0, 5.16.1)."""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aionvme.simulator.device import SimDevice

ERROR_INFO, SMART, FW_SLOT, CMD_EFFECTS, SELF_TEST, SANITIZE = 0x01, 0x02, 0x03, 0x05, 0x06, 0x81

ADMIN_OPCODES = (0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x08, 0x09, 0x0A, 0x0C, 0x10, 0x11, 0x14,
                 0x7C, 0x80, 0x84)
IO_OPCODES = (0x00, 0x01, 0x02, 0x04, 0x05, 0x08, 0x09, 0x0C)


def _u128(v: int) -> bytes:
    return v.to_bytes(16, "little")


def smart(dev: "SimDevice") -> bytes:
    """SMART / Health Information (5.16.1.3)."""
    st, c = dev.state, dev.core.counters()
    d = bytearray(512)
    d[0] = st.critical_warning
    struct.pack_into("<H", d, 1, st.temperature_k)
    d[3] = 100   # available spare
    d[4] = 10    # available spare threshold
    d[5] = 0     # percentage used
    # Data units are thousands of 512-byte units, rounded up.
    d[32:48] = _u128((c["units_read"] + 999) // 1000)
    d[48:64] = _u128((c["units_written"] + 999) // 1000)
    d[64:80] = _u128(c["host_reads"])
    d[80:96] = _u128(c["host_writes"])
    d[112:128] = _u128(st.power_cycles)
    d[128:144] = _u128(st.power_on_hours)
    d[144:160] = _u128(st.unsafe_shutdowns)
    d[160:176] = _u128(c["media_errors"])
    d[176:192] = _u128(st.error_count)
    struct.pack_into("<H", d, 200, st.temperature_k)  # temperature sensor 1
    return bytes(d)


def error_info(dev: "SimDevice") -> bytes:
    entries = list(dev.state.error_log)
    return b"".join(entries).ljust(64 * 64, b"\0")


def effects() -> bytes:
    """Commands Supported and Effects (5.16.1.6): CSUPP, and LBCC/NCC/NIC where they apply."""
    d = bytearray(4096)
    for op in ADMIN_OPCODES:
        bits = 1
        if op in (0x80, 0x84):
            bits |= (1 << 1) | (1 << 2) | (1 << 3)  # LBCC, NCC, NIC
        if op == 0x10:
            bits |= 1 << 4  # CCC
        struct.pack_into("<I", d, 4 * op, bits)
    for op in IO_OPCODES:
        bits = 1 | ((1 << 1) if op in (0x01, 0x04, 0x08, 0x09) else 0)
        struct.pack_into("<I", d, 1024 + 4 * op, bits)
    return bytes(d)


def build(dev: "SimDevice", lid: int, nsid: int) -> bytes | None:
    if lid in (ERROR_INFO, SMART):
        dev.admin.take_io_errors()  # the data path's I/O errors so far
    if lid == ERROR_INFO:
        return error_info(dev)
    if lid == SMART:
        return smart(dev)
    if lid == FW_SLOT:
        return dev.admin.firmware.slot_log()
    if lid == CMD_EFFECTS:
        return effects()
    if lid == SELF_TEST:
        return dev.admin.selftest.log()
    if lid == SANITIZE:
        return dev.admin.sanitize.log()
    return None
