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


SETTINGS = Settings()


def config(verify: bool | None = None, fua_read: bool | None = None,
           fua_write: bool | None = None, *, timeout: float | None = None) -> Settings:
    """Set driver-wide options (seed: ``config(verify, fua_read, fua_write)``).

    Args:
        verify: check every read against what was written (data verification).
        fua_read: set FUA on every read.
        fua_write: set FUA on every write.
        timeout: seconds before a command fails with ``CommandTimeout`` (default 5).

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
    return SETTINGS
