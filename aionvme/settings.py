"""Driver-wide settings: ``aionvme.config(verify=..., fua_read=..., fua_write=..., timeout=...)``."""
from __future__ import annotations

import dataclasses

from aionvme.exceptions import InterfaceError


@dataclasses.dataclass
class Settings:
    verify: bool = False
    fua_read: bool = False
    fua_write: bool = False
    timeout: float = 5.0  # seconds a command may take before CommandTimeout
    poll_us: float = 20.0  # hybrid polling: how long an idle queue's only command is polled for


SETTINGS = Settings()


def config(verify: bool | None = None, fua_read: bool | None = None,
           fua_write: bool | None = None, *, timeout: float | None = None,
           poll_us: float | None = None) -> Settings:
    """Set driver-wide options (seed: ``config(verify, fua_read, fua_write)``).

    Args:
        verify: check every read against what was written (data verification).
        fua_read: set FUA on every read.
        fua_write: set FUA on every write.
        timeout: seconds before a command fails with ``CommandTimeout`` (default 5).
        poll_us: microseconds an I/O queue's only outstanding command is polled for
            before the event loop waits for its interrupt (default 20; 0: never).
            Applies to queues created afterwards.

    Returns:
        The settings now in force.
    """
    if verify is not None:
        SETTINGS.verify = bool(verify)
    if fua_read is not None:
        SETTINGS.fua_read = bool(fua_read)
    if fua_write is not None:
        SETTINGS.fua_write = bool(fua_write)
    if timeout is not None:
        if not 0 < timeout <= 3600:
            raise InterfaceError(f"timeout {timeout} s is outside (0, 3600]")
        SETTINGS.timeout = float(timeout)
    if poll_us is not None:
        if not 0 <= poll_us <= 1000:
            raise InterfaceError(f"poll_us {poll_us} is outside 0..1000")
        SETTINGS.poll_us = float(poll_us)
    return SETTINGS
