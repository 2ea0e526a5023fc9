"""Data verification (seed: "transparent checksum verification"; ``config(verify=True)``).

Every Write stamps each LBA of its buffer with the LBA number (bytes 7:0) and a
write token unique to the command (bytes 15:8), both little endian, and records
each LBA's CRC32C when the write completes successfully.  Every successful Read
is checked LBA by LBA; a mismatch fails the read with ``VerifyError`` naming the
namespace, the LBA, what was expected and what was found.  Write Zeroes,
Dataset Management (deallocate), Write Uncorrectable, Format NVM and Sanitize
update the table.  The table is a sparse shared memfd (``_core.VerifyTable``):
memory is used only for LBAs written, so an 8 TB namespace costs nothing up
front.  The work per command runs in C.

Ioworkers share the table: a worker started while verification is on maps it
(its fd is passed to the process), stamps and records its writes in it and
checks its reads against it, so the parent verifies what workers wrote and the
other way round; a mismatch stops the worker with ``IOWorkerVerifyError`` (a
``VerifyError``).  Commands of any process that overlap an LBA in time leave it
unchecked or unknown (NVMe 1.3c, 6.3): the rule is in ext/include/aionvme/verify.h.
A worker started with verification off makes the parent forget its table.

Example:
    >>> aionvme.config(verify=True)
    >>> await ns.write(q, buf, 0, 8)     # stamps buf, records 8 CRCs
    >>> nvme0.sim.corrupt(1, 3)          # flip bits of LBA 3 on the media
    >>> await ns.read(q, buf, 0, 8)      # raises VerifyError naming LBA 3
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Iterable

from aionvme import _core
from aionvme.spec.opcodes import DSM, FLUSH, READ, WRITE, WRITE_UNCOR, WRITE_ZEROES

if TYPE_CHECKING:
    from aionvme.namespace import Namespace

DSM_ATTR_DEALLOCATE = 1 << 2  # Dataset Management CDW11 bit 2: AD (NVM 3.2.3)


def _dlfeat(ns: "Namespace") -> int:
    """DLFEAT bits 2:0 of ``ns`` (Identify Namespace byte 33): what a deallocated
    LBA reads as, 001b all 00h, 010b all FFh, 000b not reported."""
    return ns._id[33] & 0x7 if len(ns._id) > 33 else 0


class Verifier:
    """The verification state of one namespace; ``Namespace`` makes it on the
    first command while ``config(verify=True)`` is on."""

    __slots__ = ("nsid", "table", "dlfeat")

    def __init__(self, namespace: "Namespace") -> None:
        self.nsid = namespace.nsid
        self.table = _core.VerifyTable(namespace.nsid, namespace.nsze, namespace.lba_size)
        self.dlfeat = _dlfeat(namespace)

    def hook(self, opcode: int, buf: Any, lba: int, lba_count: int, **kw: Any) -> Any:
        """Prepare a command about to be submitted; return the ``post(cpl)`` that
        the queue calls at its completion, or None."""
        if opcode == READ:
            return self.table.read(buf, lba, lba_count)
        if opcode == WRITE:
            return self.table.write(buf, lba, lba_count, kw.get("fua", False))
        if opcode == FLUSH:
            return self.table.flush()
        if opcode == WRITE_ZEROES:
            return self.table.write_zeroes(lba, lba_count)
        if opcode == WRITE_UNCOR:
            return self.table.write_uncorrectable(lba, lba_count)
        if opcode == DSM and kw.get("attribute", 0) & DSM_ATTR_DEALLOCATE:
            return self.table.deallocate(buf, kw.get("range_count", 1), self.dlfeat)
        return None

    def formatted(self, ns: "Namespace") -> None:
        """After Format NVM (Base 5.14): user data is undefined, the LBA format may
        have changed.  ``ns`` has read its Identify Namespace data again."""
        if (ns.nsze, ns.lba_size) != (self.table.nlba, self.table.lba_size):
            self.table = _core.VerifyTable(ns.nsid, ns.nsze, ns.lba_size)
        else:
            self.table.reset()
        self.dlfeat = _dlfeat(ns)

    def power_lost(self) -> int:
        """Power went away without a shutdown, with a volatile write cache: an LBA
        written since the last completed Flush (and not with FUA) may hold the old
        or the new data, both accepted exactly; every other LBA stays exact
        (NVM 3.2.4).  Returns how many LBAs are "old or new"."""
        return int(self.table.power_loss())

    def reset(self) -> None:
        """Every LBA unknown: after a Sanitize (Base 5.24) or Format NVM sent through
        the controller, or a power loss with a volatile write cache."""
        self.table.reset()


# -- what commands of the controller do to every namespace's table -------------------
def forget(namespaces: Iterable["Namespace"], nsid: int = 0xFFFFFFFF) -> None:
    """The data of ``nsid`` (every namespace when 0xffffffff) is gone."""
    for ns in list(namespaces):
        if ns._verifier is not None and nsid in (0xFFFFFFFF, ns.nsid):
            ns._verifier.reset()


def forget_when_done(fut: "asyncio.Future[Any]", namespaces: Iterable["Namespace"],
                     nsid: int) -> "asyncio.Future[Any]":
    """Once ``fut`` (a Format NVM or a Sanitize) succeeds, the data of ``nsid`` is
    gone: verification forgets what it expected there."""
    def done(f: "asyncio.Future[Any]") -> None:
        if not f.cancelled() and f.exception() is None and f.result().ok:
            forget(namespaces, nsid)
    fut.add_done_callback(done)
    return fut


def power_lost(namespaces: Iterable["Namespace"], id_ctrl: bytes, shutdown_done: bool) -> None:
    """Power went away: without a completed shutdown, and with a volatile write
    cache present (Identify Controller byte 525 bit 0, VWC), an LBA written
    since the last completed Flush (and not with FUA) may hold old or new data
    (Verifier.power_lost); every other LBA stays exact."""
    vwc_present = bool(id_ctrl[525] & 1) if len(id_ctrl) > 525 else True
    if vwc_present and not shutdown_done:
        for ns in list(namespaces):
            if ns._verifier is not None:
                ns._verifier.power_lost()
