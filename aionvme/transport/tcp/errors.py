"""Errors of the NVMe/TCP transport.  A PduError is a fatal transport error:
the receiver ends the connection, after a termination PDU (H2CTermReq or
C2HTermReq) carrying ``fes`` and ``fei``."""
from __future__ import annotations

from aionvme.exceptions import DeviceError

# Fatal Error Status of H2CTermReq / C2HTermReq (NVMe/TCP Transport Specification 1.0)
FES_INVALID_PDU_HDR = 0x01      # Invalid PDU Header Field (FEI: the field's byte offset)
FES_PDU_SEQ_ERR = 0x02          # PDU Sequence Error
FES_HDR_DIGEST_ERR = 0x03       # Header Digest Error (FEI: the digest received)
FES_DATA_OUT_OF_RANGE = 0x04    # Data Transfer Out of Range
FES_DATA_LIMIT_EXCEEDED = 0x05  # Data Transfer Limit Exceeded (R2T Limit Exceeded)
FES_UNSUPPORTED_PARAM = 0x06    # Unsupported Parameter (FEI: the field's byte offset)

FES_NAMES = {
    FES_INVALID_PDU_HDR: "Invalid PDU Header Field",
    FES_PDU_SEQ_ERR: "PDU Sequence Error",
    FES_HDR_DIGEST_ERR: "Header Digest Error",
    FES_DATA_OUT_OF_RANGE: "Data Transfer Out of Range",
    FES_DATA_LIMIT_EXCEEDED: "Data Transfer Limit Exceeded",
    FES_UNSUPPORTED_PARAM: "Unsupported Parameter",
}


class TransportError(DeviceError):
    """The NVMe/TCP connection failed or was ended (by either side)."""


class PduError(TransportError):
    """A malformed or unexpected PDU: a fatal transport error.

    ``fes`` is the Fatal Error Status, ``fei`` the Fatal Error Information
    (the byte offset of the bad header field, or the digest received), and
    ``header`` the PDU header that caused it (sent back in the TermReq)."""

    def __init__(self, message: str, fes: int, fei: int = 0, header: bytes = b"") -> None:
        super().__init__(f"{message} ({FES_NAMES.get(fes, 'unknown')}, FES {fes:#x})")
        self.fes = fes
        self.fei = fei
        self.header = header


class TermReqReceived(TransportError):
    """The peer ended the connection with a termination PDU."""

    def __init__(self, who: str, fes: int, fei: int) -> None:
        super().__init__(f"the {who} ended the connection: "
                         f"{FES_NAMES.get(fes, 'unknown')} (FES {fes:#x}, FEI {fei:#x})")
        self.fes = fes
        self.fei = fei


class DataDigestError(TransportError):
    """The data digest (CRC32C) of a PDU's data does not match its data."""
