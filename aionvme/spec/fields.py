"""Reading a field of an identify structure or log page by the byte range the
specification gives (``byte_end`` and ``byte_begin`` both included)."""
from __future__ import annotations

from aionvme.exceptions import InterfaceError


def field(raw: bytes, byte_end: int, byte_begin: int | None = None,
          type: type = int) -> int | str:
    """Little-endian int, or ASCII str with trailing spaces/NULs removed."""
    if byte_begin is None:
        byte_begin = byte_end
    if not 0 <= byte_begin <= byte_end < len(raw):
        raise InterfaceError(
            f"byte range {byte_begin}..{byte_end} is outside 0..{len(raw) - 1}")
    chunk = raw[byte_begin:byte_end + 1]
    if type is str:
        return chunk.decode("latin-1").rstrip(" \0")
    if type is int:
        return int.from_bytes(chunk, "little")
    raise InterfaceError(f"type must be int or str, not {type!r}")
