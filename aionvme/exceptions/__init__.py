"""aionvme exceptions and the helpers the native core uses to build them.

Every status code has its own CommandError subclass in
``aionvme.exceptions.status`` (e.g. ``status.LbaOutOfRange``)."""
from aionvme.exceptions._base import (
    BufferFreedError,
    CapabilityError,
    CommandError,
    CommandTimeout,
    ControllerFatal,
    ControllerNotReady,
    DeviceError,
    InterfaceError,
    InternalError,
    IOWorkerCommandError,
    IOWorkerDied,
    IOWorkerError,
    IOWorkerStopped,
    IOWorkerTimeout,
    IOWorkerVerifyError,
    KernelCommandError,
    NoFreeQueueError,
    NvmeEnumerateError,
    NvmeError,
    QpairCreationError,
    QueueDeletedError,
    QueueFullError,
    VerifyError,
)
from aionvme.spec.names import command_name, status_name

__all__ = (
    "BufferFreedError", "CapabilityError", "CommandError", "CommandTimeout", "ControllerFatal",
    "ControllerNotReady", "DeviceError", "InterfaceError", "InternalError", "IOWorkerCommandError", "IOWorkerDied",
    "IOWorkerError", "IOWorkerStopped", "IOWorkerTimeout", "IOWorkerVerifyError", "KernelCommandError",
    "NoFreeQueueError",
    "NvmeEnumerateError", "NvmeError", "QpairCreationError", "QueueDeletedError", "QueueFullError",
    "VerifyError", "command_error", "describe_completion", "command_name",
)


def describe_completion(cpl) -> str:
    """One line, like the seed's: ``SUCCESS (00/00) sqid:0 cid:3 cdw0:0 sqhd:0002 p:1 m:0 dnr:0``."""
    return (f"{status_name(cpl.sct, cpl.sc).upper()} ({cpl.sct:02x}/{cpl.sc:02x}) "
            f"sqid:{cpl.sqid} cid:{cpl.cid} cdw0:{cpl.cdw0:x} sqhd:{cpl.sqhd:04x} "
            f"p:{cpl.phase} m:{cpl.more} dnr:{cpl.dnr}")


def command_error(cpl, opcode: int, admin: bool) -> CommandError:
    """The CommandError for a failed completion of ``opcode``."""
    name = command_name(opcode, admin)
    from aionvme.exceptions.status import error_class
    msg = (f"{name} ({opcode:02x}) failed: ERROR status: {cpl.sct:02x}/{cpl.sc:02x} "
           f"{status_name(cpl.sct, cpl.sc)} sqid:{cpl.sqid} cid:{cpl.cid} cdw0:{cpl.cdw0:#x} "
           f"dnr:{cpl.dnr} m:{cpl.more}")
    return error_class(cpl.sct, cpl.sc)(msg, cpl, opcode)


_QPAIR_ERRORS: dict[type, type] = {}


def qpair_creation_error(error: CommandError, what: str) -> CommandError:
    """``error`` (a refused Create I/O CQ/SQ) as an error that is both its status
    class and ``QpairCreationError``."""
    cls = type(error)
    both = _QPAIR_ERRORS.get(cls)
    if both is None:
        both = type(cls.__name__, (cls, QpairCreationError), {"__module__": cls.__module__})
        _QPAIR_ERRORS[cls] = both
    return both(f"{what}: {error}", error.completion, error.opcode)
