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
import errno
import os
import weakref
from typing import TYPE_CHECKING, Any, Iterable

from aionvme import _core
from aionvme.exceptions import InterfaceError
from aionvme.spec.opcodes import DSM, FLUSH, READ, WRITE, WRITE_UNCOR, WRITE_ZEROES

if TYPE_CHECKING:
    from aionvme.namespace import Namespace

DSM_ATTR_DEALLOCATE = 1 << 2  # Dataset Management CDW11 bit 2: AD (NVM 3.2.3)


def _dlfeat(ns: "Namespace") -> int:
    """DLFEAT bits 2:0 of ``ns`` (Identify Namespace byte 33): what a deallocated
    LBA reads as, 001b all 00h, 010b all FFh, 000b not reported."""
    return ns._id[33] & 0x7 if len(ns._id) > 33 else 0


def _vwc_present(ns: "Namespace") -> bool:
    """Whether the controller has a volatile write cache (Identify Controller byte
    525 bit 0, VWC); unknown counts as present (the cautious answer)."""
    id_ctrl = bytes(getattr(ns.nvme, "_id_ctrl", b""))
    return bool(id_ctrl[525] & 1) if len(id_ctrl) > 525 else True


def _table_dir() -> str | None:
    """Where tables live: ``AIONVME_VERIFY_DIR`` names a directory on disk for tables
    larger than the host's memory (an unnamed file there; its pages are page cache
    the kernel writes back and reclaims); by default a memfd (memory)."""
    return os.environ.get("AIONVME_VERIFY_DIR") or None


# Namespaces that have a table, for save()/load() without a namespace named.
_LIVE: "weakref.WeakSet[Namespace]" = weakref.WeakSet()


class Verifier:
    """The verification state of one namespace; ``Namespace`` makes it on the
    first command while ``config(verify=True)`` is on."""

    __slots__ = ("nsid", "table", "dlfeat")

    def __init__(self, namespace: "Namespace") -> None:
        self.nsid = namespace.nsid
        self.table = _core.VerifyTable(namespace.nsid, namespace.nsze, namespace.lba_size,
                                       _table_dir())
        self.dlfeat = _dlfeat(namespace)
        self.table.set_no_cache(not _vwc_present(namespace))
        _LIVE.add(namespace)

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
        """After Format NVM (Base 5.14), whose completion already made the table
        erased(): the LBA format may have changed.  ``ns`` has read its Identify
        Namespace data again."""
        if (ns.nsze, ns.lba_size) != (self.table.nlba, self.table.lba_size):
            self.table = _core.VerifyTable(ns.nsid, ns.nsze, ns.lba_size, _table_dir())
            self.table.set_no_cache(not _vwc_present(ns))
        self.dlfeat = _dlfeat(ns)

    def erased(self) -> None:
        """A Format NVM (Base 5.14) or Sanitize completed: whatever SES or SANACT
        asked for, the controller shall not return the user data written before
        it, so each LBA that held a stamped write must not read as that write any
        more; what it reads as instead (zeroes, a pattern, anything) is not known."""
        self.table.erased()

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
            ns._verifier.erased()


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

def _identity(ns: "Namespace") -> bytes:
    """What a saved table is checked against: the controller's Serial Number and
    Model Number (Identify Controller bytes 23:4, 63:24), the NSID, and the
    namespace's NGUID and EUI64 (Identify Namespace bytes 119:104, 127:120)."""
    ctrl = bytes(getattr(ns.nvme, "_id_ctrl", b""))[4:64]
    return ctrl + ns.nsid.to_bytes(4, "little") + bytes(ns._id[104:128])


def _the_namespace(namespace: "Namespace | None", verb: str) -> "Namespace":
    if namespace is not None:
        return namespace
    live = [ns for ns in _LIVE if ns._verifier is not None]
    if len(live) != 1:
        raise InterfaceError(f"{verb}: {len(live)} namespaces have a verify table; name one "
                             f"with namespace=")
    return live[0]


def save(path: "str | os.PathLike[str]", namespace: "Namespace | None" = None) -> None:
    """Write the verify table of ``namespace`` (by default the only namespace that
    has one) to the file ``path``, so that a later test process can ``load()``
    it and verify everything written before.  LBAs with a change in flight are
    saved unknown.  The file is sparse, as the table is.

    Example:
        >>> aionvme.verify.save("/var/tmp/ns1.verify", nvme0n1)
        ... # power cycle the drive, restart the test process, then:
        >>> aionvme.verify.load("/var/tmp/ns1.verify", nvme0n1)
    """
    ns = _the_namespace(namespace, "save")
    verifier = ns._current_verifier()
    if verifier is None:
        raise InterfaceError("save: verification is off (aionvme.config(verify=True))")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        verifier.table.save(fd, _identity(ns))
    finally:
        os.close(fd)


def load(path: "str | os.PathLike[str]", namespace: "Namespace | None" = None, *,
         power_lost: bool = False) -> None:
    """Replace the verify table of ``namespace`` with the one ``save()`` wrote to
    ``path``.  The file must have been saved for this namespace of this drive
    (serial number, NSID, NGUID/EUI64) in its current LBA format.  With
    ``power_lost``, the drive lost power abruptly (with its volatile write cache)
    since the save: what was not yet flushed then reads as old or new."""
    ns = _the_namespace(namespace, "load")
    verifier = ns._current_verifier()
    if verifier is None:
        raise InterfaceError("load: verification is off (aionvme.config(verify=True))")
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        verifier.table.load(fd, _identity(ns))
    except OSError as e:
        why = {"ESTALE": "it was saved for another namespace or drive",
               "EINVAL": f"it was saved for another geometry than {ns.nsze} LBAs of "
                         f"{ns.lba_size} bytes",
               "EBADMSG": "it is not a saved verify table"}
        name = errno.errorcode.get(e.errno or 0, "")
        if name in why:
            raise InterfaceError(f"load: {path}: {why[name]}") from e
        raise
    finally:
        os.close(fd)
    if power_lost:
        verifier.power_lost()
