"""The exception hierarchy.  Misuse raises InterfaceError (also a ValueError),
device status raises CommandError, lost deadlines raise CommandTimeout."""
from __future__ import annotations

from typing import Any


class NvmeError(Exception):
    """Base of every aionvme error."""


class InterfaceError(NvmeError, ValueError):
    """The API was used wrongly: the message names the argument and its limit."""


class CapabilityError(InterfaceError):
    """What was asked needs a capability the transport or backend does not have
    (config space on TCP, say); the message names both."""

    def __init__(self, message: str, *, backend: str = "", capability: str = "") -> None:
        super().__init__(message)
        self.backend = backend
        self.capability = capability


class NvmeEnumerateError(InterfaceError):
    """The address names no device (seed: ``NvmeEnumerateError``)."""


class QpairCreationError(NvmeError):
    """An I/O queue pair could not be created (seed: ``QpairCreationError``).  When
    the controller refused it, the error is also the ``CommandError`` subclass of
    the status (e.g. ``InvalidQueueSize``), with its completion."""


class NoFreeQueueError(InterfaceError, QpairCreationError):
    """Every I/O queue the controller allocated (Number of Queues) is in use."""


class BufferFreedError(InterfaceError):
    """A Buffer was used after ``free()``."""


class QueueFullError(InterfaceError):
    """Every CID of the queue is outstanding (depth - 1 commands)."""


class QueueDeletedError(NvmeError):
    """The queue a command was on was deleted, or the controller was reset."""


class InternalError(NvmeError):
    """A bug in aionvme itself."""


class DeviceError(NvmeError):
    """The device (or its backend process) failed or went away."""


class ControllerNotReady(DeviceError):
    """CSTS.RDY did not follow CC.EN within CAP.TO."""


class ControllerFatal(DeviceError):
    """The controller reports CSTS.CFS (Controller Fatal Status)."""


class KernelCommandError(NvmeError, OSError):
    """The kernel's nvme driver failed a passthrough command itself, so there is
    no NVMe status: it refused it (EINVAL, EACCES, EPERM) or cancelled it
    (EINTR, after a reset).  ``errno`` is the kernel's error."""

    def __init__(self, message: str, err: int) -> None:
        OSError.__init__(self, err, message)


class CommandTimeout(NvmeError, TimeoutError):
    """A command got no completion before its deadline."""


class VerifyError(NvmeError):
    """Data read back does not match what was written (data verification)."""

    def __init__(self, message: str, *, nsid: int = 0, lba: int = 0,
                 expected: Any = None, found: Any = None) -> None:
        super().__init__(message)
        self.nsid = nsid
        self.lba = lba
        self.expected = expected
        self.found = found


class CommandError(NvmeError):
    """A command completed with a non-zero status.

    ``str(e)`` carries the seed's "SCT/SC" text, e.g. ``00/01``, and the
    status name; ``e.completion`` is the CQE.
    """

    def __init__(self, message: str, completion: Any, opcode: int = -1) -> None:
        super().__init__(message)
        self.completion = completion
        self.opcode = opcode

    @property
    def sct(self) -> int:
        return int(self.completion.sct)

    @property
    def sc(self) -> int:
        return int(self.completion.sc)

    @property
    def dnr(self) -> int:
        return int(self.completion.dnr)

    @property
    def status(self) -> int:
        return int(self.completion.status)


class IOWorkerError(NvmeError):
    """An ioworker ended abnormally; ``result`` holds what it did until then
    (an ``IOWorkerResult``, or None when the worker never reported)."""

    def __init__(self, message: str, *, result: Any = None) -> None:
        NvmeError.__init__(self, message)
        self.result = result


class IOWorkerDied(IOWorkerError, DeviceError):
    """The worker process exited without finishing (killed, crashed);
    ``returncode`` is its exit code (negative: the signal)."""

    def __init__(self, message: str, *, returncode: int | None, result: Any = None) -> None:
        IOWorkerError.__init__(self, message, result=result)
        self.returncode = returncode


class IOWorkerCommandError(IOWorkerError, CommandError):
    """A command of the worker completed with an error status, which stopped it;
    ``completion`` is its CQE and ``lba`` its start LBA."""

    def __init__(self, message: str, completion: Any, opcode: int, *, lba: int,
                 result: Any = None) -> None:
        CommandError.__init__(self, message, completion, opcode)
        self.result = result
        self.lba = lba


class IOWorkerVerifyError(IOWorkerError, VerifyError):
    """Data a worker read back failed verification, which stopped it; ``lba``
    is the first bad LBA, ``expected``/``found`` as for ``VerifyError``, and
    ``command_lba`` the start LBA of the read."""

    def __init__(self, message: str, *, nsid: int = 0, lba: int = 0, expected: Any = None,
                 found: Any = None, command_lba: int = 0, result: Any = None) -> None:
        VerifyError.__init__(self, message, nsid=nsid, lba=lba, expected=expected, found=found)
        self.result = result
        self.command_lba = command_lba


class IOWorkerTimeout(IOWorkerError, CommandTimeout):
    """A command of the worker got no completion in time."""


class IOWorkerStopped(IOWorkerError):
    """The test stopped the worker before it finished: a controller reset, FLR,
    subsystem reset, power cycle or ``Controller.close()``; ``cause`` names it."""

    def __init__(self, message: str, *, cause: str, result: Any = None) -> None:
        IOWorkerError.__init__(self, message, result=result)
        self.cause = cause
