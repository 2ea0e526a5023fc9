"""The admin command set (NVMe 2.0 base specification, 5), as the methods of
``Controller``: each returns an awaitable that completes with a
``Completion`` (or raises ``CommandError``)."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Callable

from aionvme import _core, checks, verify
from aionvme.exceptions import InterfaceError
from aionvme.qpair import waitdone
from aionvme.settings import SETTINGS
from aionvme.spec.transfer import admin_length


class AdminCommands:
    """Mixed into ``Controller``: it provides ``_aq`` (the admin queue), ``_namespaces``
    and ``_live_device()``."""

    _aq: Any
    _namespaces: Any
    _closed: bool
    _aer_cb: Callable[[int, int], Any] | None
    _aer_fut: Any
    aer_completions: list[Any]

    if TYPE_CHECKING:
        def _live_device(self) -> Any: ...  # Controller

    def _admin(self, opcode: int, *, nsid: int = 0, buf: Any = None, xfer_len: int = -1,
               cdw10: int = 0, cdw11: int = 0, cdw12: int = 0, cdw13: int = 0, cdw14: int = 0,
               cdw15: int = 0, cb: Callable | None = None, check: bool = True,
               timeout: float | None = None, prp1: int | None = None,
               prp2: int | None = None) -> "asyncio.Future[Any]":
        self._live_device()
        checks.integer("opcode", opcode, 0, 0xFF)
        checks.dwords(nsid=nsid, cdw10=cdw10, cdw11=cdw11, cdw12=cdw12, cdw13=cdw13, cdw14=cdw14,
                      cdw15=cdw15)
        checks.buffer("buf", buf)
        return self._aq.submit(opcode, nsid, buf, xfer_len, cdw10, cdw11, cdw12, cdw13, cdw14,
                               cdw15, cb=cb, check=check,
                               timeout=SETTINGS.timeout if timeout is None else timeout,
                               prp1=prp1, prp2=prp2, dev_len=admin_length(opcode, cdw10, cdw11))

    def send_cmd(self, opcode: int, buf: Any = None, nsid: int = 0, cdw10: int = 0,
                 cdw11: int = 0, cdw12: int = 0, cdw13: int = 0, cdw14: int = 0,
                 cdw15: int = 0, cb: Callable | None = None, *, check: bool = True,
                 timeout: float | None = None, prp1: int | None = None,
                 prp2: int | None = None) -> "asyncio.Future[Any]":
        """Any admin command, valid or not; ``buf`` is its data buffer.

        ``prp1``/``prp2`` put raw values in the data pointer (after any built from
        ``buf``): for queue base addresses and deliberately wrong pointers.
        """
        return self._admin(opcode, nsid=nsid, buf=buf, cdw10=cdw10, cdw11=cdw11, cdw12=cdw12,
                           cdw13=cdw13, cdw14=cdw14, cdw15=cdw15, cb=cb, check=check,
                           timeout=timeout, prp1=prp1, prp2=prp2)

    def identify(self, buf: Any, nsid: int = 0, cns: int = 1, cb: Callable | None = None, *,
                 check: bool = True, timeout: float | None = None) -> "asyncio.Future[Any]":
        """Identify (5.17) into ``buf`` (4096 bytes)."""
        return self._admin(0x06, nsid=nsid, buf=buf, xfer_len=4096, cdw10=cns, cb=cb,
                           check=check, timeout=timeout)

    def getlogpage(self, lid: int, buf: Any, size: int | None = None, offset: int = 0,
                   nsid: int = 0xFFFFFFFF, cb: Callable | None = None, *, rae: bool = False,
                   lsp: int = 0, check: bool = True,
                   timeout: float | None = None) -> "asyncio.Future[Any]":
        """Get Log Page (5.16): ``size`` bytes (default: the buffer) from ``offset``."""
        if size is None:
            size = len(buf)
        if size <= 0 or size % 4:
            raise InterfaceError(f"size {size} must be a positive multiple of 4 bytes")
        if offset % 4:
            raise InterfaceError(f"offset {offset} must be a multiple of 4 bytes")
        numd = size // 4 - 1
        cdw10 = (lid & 0xFF) | ((lsp & 0x7F) << 8) | (int(rae) << 15) | ((numd & 0xFFFF) << 16)
        return self._admin(0x02, nsid=nsid, buf=buf, xfer_len=size, cdw10=cdw10,
                           cdw11=numd >> 16, cdw12=offset & 0xFFFFFFFF, cdw13=offset >> 32,
                           cb=cb, check=check, timeout=timeout)

    def getfeatures(self, fid: int, cdw11: int = 0, cdw12: int = 0, cdw13: int = 0,
                    cdw14: int = 0, cdw15: int = 0, sel: int = 0, buf: Any = None,
                    cb: Callable | None = None, *, nsid: int = 0, check: bool = True,
                    timeout: float | None = None) -> "asyncio.Future[Any]":
        """Get Features (5.15); the value is ``cdw0`` of the completion."""
        return self._admin(0x0A, nsid=nsid, buf=buf, cdw10=(fid & 0xFF) | ((sel & 7) << 8),
                           cdw11=cdw11, cdw12=cdw12, cdw13=cdw13, cdw14=cdw14, cdw15=cdw15,
                           cb=cb, check=check, timeout=timeout)

    def setfeatures(self, fid: int, cdw11: int = 0, cdw12: int = 0, cdw13: int = 0,
                    cdw14: int = 0, cdw15: int = 0, sv: int = 0, buf: Any = None,
                    cb: Callable | None = None, *, nsid: int = 0, check: bool = True,
                    timeout: float | None = None) -> "asyncio.Future[Any]":
        """Set Features (5.27); ``sv`` saves the value across resets."""
        return self._admin(0x09, nsid=nsid, buf=buf, cdw10=(fid & 0xFF) | (int(bool(sv)) << 31),
                           cdw11=cdw11, cdw12=cdw12, cdw13=cdw13, cdw14=cdw14, cdw15=cdw15,
                           cb=cb, check=check, timeout=timeout)

    def abort(self, cid: int, sqid: int = 0, cb: Callable | None = None, *, check: bool = True,
              timeout: float | None = None) -> "asyncio.Future[Any]":
        """Abort (5.1) command ``cid`` of SQ ``sqid``; cdw0 bit 0 set: not aborted."""
        return self._admin(0x08, cdw10=(sqid & 0xFFFF) | ((cid & 0xFFFF) << 16), cb=cb,
                           check=check, timeout=timeout)

    def aer(self, cb: Callable | None = None, *, check: bool = True,
            timeout: float | None = 0) -> "asyncio.Future[Any]":
        """Asynchronous Event Request (5.2); the driver keeps one outstanding itself."""
        return self._admin(0x0C, cb=cb, check=check, timeout=timeout)

    def format(self, lbaf: int = 0, ses: int = 0, nsid: int = 1, cb: Callable | None = None, *,
               check: bool = True, timeout: float | None = None) -> "asyncio.Future[Any]":
        """Format NVM (5.14) with LBA format ``lbaf`` and Secure Erase Settings ``ses``."""
        cdw10 = (lbaf & 0xF) | (((lbaf >> 4) & 3) << 12) | ((ses & 7) << 9)
        fut = self._admin(0x80, nsid=nsid, cdw10=cdw10, cb=cb, check=check,
                          timeout=timeout if timeout is not None else max(SETTINGS.timeout, 30))
        return verify.forget_when_done(fut, self._namespaces, nsid)

    def sanitize(self, option: int = 2, pattern: int = 0x5AA5A55A, cb: Callable | None = None, *,
                 cdw10: int | None = None, check: bool = True,
                 timeout: float | None = None) -> "asyncio.Future[Any]":
        """Sanitize (5.24): ``option`` is SANACT (2 block erase, 3 overwrite, 4 crypto erase)."""
        fut = self._admin(0x84, cdw10=option if cdw10 is None else cdw10, cdw11=pattern, cb=cb,
                          check=check, timeout=timeout)
        return verify.forget_when_done(fut, self._namespaces, 0xFFFFFFFF)  # every namespace

    def dst(self, stc: int = 1, nsid: int = 0xFFFFFFFF, cb: Callable | None = None, *,
            check: bool = True, timeout: float | None = None) -> "asyncio.Future[Any]":
        """Device Self-test (5.8): 1 short, 2 extended, 0xf abort."""
        return self._admin(0x14, nsid=nsid, cdw10=stc & 0xF, cb=cb, check=check, timeout=timeout)

    def fw_download(self, buf: Any, offset: int, size: int | None = None,
                    cb: Callable | None = None, *, check: bool = True,
                    timeout: float | None = None) -> "asyncio.Future[Any]":
        """Firmware Image Download (5.13) of ``size`` bytes (default: the buffer) at ``offset``."""
        if size is None:
            size = len(buf)
        if size <= 0 or size % 4 or offset % 4:
            raise InterfaceError(f"size {size} and offset {offset} must be multiples of 4 bytes")
        return self._admin(0x11, buf=buf, xfer_len=size, cdw10=size // 4 - 1, cdw11=offset // 4,
                           cb=cb, check=check, timeout=timeout)

    def fw_commit(self, slot: int, action: int, cb: Callable | None = None, *,
                  check: bool = True, timeout: float | None = None) -> "asyncio.Future[Any]":
        """Firmware Commit (5.12): ``slot`` (FS) and commit ``action`` (CA)."""
        return self._admin(0x10, cdw10=(slot & 7) | ((action & 7) << 3), cb=cb, check=check,
                           timeout=timeout)

    async def downfw(self, filename: str, slot: int = 0, action: int = 1) -> Any:
        """Download a firmware file in 4 KiB pieces and commit it (activation at next reset)."""
        with open(filename, "rb") as f:
            image = f.read()
        if not image:
            raise InterfaceError(f"firmware file {filename!r} is empty")
        image += bytes(-len(image) % 4)
        chunk = 4096
        buf = _core.Buffer(chunk, "firmware")
        for off in range(0, len(image), chunk):
            piece = image[off:off + chunk]
            buf[0:len(piece)] = piece
            await self.fw_download(buf, off, len(piece))
        return await self.fw_commit(slot, action)

    async def waitdone(self, expected: int = 1, timeout: float | None = None) -> list[Any]:
        """Seed compatibility: wait until ``expected`` admin commands completed that
        nobody awaited, Asynchronous Event Requests included, and return their
        completions; ``CommandTimeout`` (a ``TimeoutError``) when they do not
        within ``timeout`` (see ``aionvme.qpair.waitdone``)."""
        return await waitdone(self._aq, expected, timeout)

    # -- asynchronous events (5.2) ----------------------------------------------
    def register_aer_cb(self, func: Callable[[int, int], Any] | None) -> None:
        """Call ``func(cdw0, status)`` when an Asynchronous Event Request completes."""
        self._aer_cb = func

    def _send_aer(self) -> None:
        fut = self.aer(check=False, timeout=0)
        self._aer_fut = fut
        fut.add_done_callback(self._on_aer)

    def _on_aer(self, fut: asyncio.Future) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        cpl = fut.result()
        self.aer_completions.append(cpl)
        self._aq.note_unwaited(cpl)  # the seed's waitdone() counts AER completions
        if self._aer_cb is not None:
            self._aer_cb(cpl.cdw0, cpl.raw_status)
        if cpl.ok and not self._closed:
            self._send_aer()
