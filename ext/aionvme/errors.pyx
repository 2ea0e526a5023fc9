# Conversion of C errors (-1 with errno) into Python exceptions; in one place.
from libc.errno cimport errno
import os as _os

from aionvme import exceptions as _exc


cdef object convert_errno(str what, int err=0):
    """The exception for a C call that failed with @err (default: errno)."""
    if err == 0:
        err = errno
    msg = f"{what}: {_os.strerror(err)}"
    if err in (5, 32, 104):  # EIO, EPIPE, ECONNRESET: the device went away
        return _exc.DeviceError(f"{what}: the device is gone (its backend stopped answering: "
                                f"{_os.strerror(err)})")
    if err == 110:  # ETIMEDOUT
        return _exc.DeviceError(msg + " (the device did not answer)")
    if err == 12:  # ENOMEM
        return MemoryError(msg)
    return OSError(err, msg)
