"""What every NVMe over Fabrics transport shares (NVMe Base Specification 2.0,
Fabrics command set): the Fabrics command capsules (Connect, Property Get,
Property Set, Disconnect), the Connect data, the Discovery log page (70h)
and the SGL descriptors a capsule's data pointer holds.  Pure, no I/O."""
from __future__ import annotations

import struct
from dataclasses import dataclass

FABRICS_OPCODE = 0x7F
FCTYPE_PROPERTY_SET, FCTYPE_CONNECT, FCTYPE_PROPERTY_GET = 0x00, 0x01, 0x04
FCTYPE_AUTH_SEND, FCTYPE_AUTH_RECV, FCTYPE_DISCONNECT = 0x05, 0x06, 0x08
DISCOVERY_NQN = "nqn.2014-08.org.nvmexpress.discovery"
DEFAULT_PORT = 4420
CONNECT_DATA_LEN = 1024
CATTR_DISABLE_SQFLOW = 0x04  # Connect attributes bit 2: SQ flow control disable

# Command Specific status codes of Connect (SCT 1)
SC_CONNECT_INCOMPATIBLE_FORMAT = 0x80
SC_CONNECT_CONTROLLER_BUSY = 0x81
SC_CONNECT_INVALID_PARAMETERS = 0x82
SC_CONNECT_RESTART_DISCOVERY = 0x83
SC_CONNECT_INVALID_HOST = 0x84
# Generic status codes (SCT 0) a fabrics target answers with
SC_INVALID_OPCODE, SC_INVALID_FIELD, SC_DATA_XFER_ERROR = 0x01, 0x02, 0x04
SC_CMD_SEQ_ERROR, SC_SGL_INVALID_LENGTH, SC_SGL_INVALID_TYPE = 0x0C, 0x0F, 0x11
SC_SGL_INVALID_OFFSET, SC_TRANSIENT_TRANSPORT = 0x16, 0x22

# SGL descriptor types (byte 15 of the descriptor: type << 4 | subtype)
SGL_DATA_BLOCK_OFFSET = 0x01     # Data Block, subtype Offset: in-capsule data
# Transport SGL Data Block (type 5h), subtype Ah (transport specific): data by
# R2T/H2CData or C2HData.  Linux's nvme-tcp host sends exactly 5Ah.
SGL_TRANSPORT_DATA_BLOCK = 0x5A
PSDT_SGL = 0x40                  # SQE flags bits 7:6 = 01b: SGLs for data (no metadata SGL)

# Fabrics properties (the registers of a fabrics controller)
PROP_CAP, PROP_VS, PROP_CC, PROP_CSTS, PROP_NSSR = 0x00, 0x08, 0x14, 0x1C, 0x20
PROP_SIZES = {PROP_CAP: 8, PROP_VS: 4, PROP_CC: 4, PROP_CSTS: 4, PROP_NSSR: 4}


def sqe(opcode: int, cid: int = 0, *, flags: int = 0, nsid: int = 0, cdw2: int = 0,
        cdw3: int = 0, mptr: int = 0, dptr: bytes = bytes(16), cdw10: int = 0, cdw11: int = 0,
        cdw12: int = 0, cdw13: int = 0, cdw14: int = 0, cdw15: int = 0) -> bytes:
    """A 64-byte submission queue entry."""
    return (struct.pack("<BBHIIIQ", opcode, flags, cid, nsid, cdw2, cdw3, mptr) + dptr
            + struct.pack("<6I", cdw10, cdw11, cdw12, cdw13, cdw14, cdw15))


def sgl(kind: int, length: int, address: int = 0) -> bytes:
    """A 16-byte SGL descriptor: ``kind`` is its byte 15 (type << 4 | subtype)."""
    return struct.pack("<QI3xB", address, length, kind)


def parse_sgl(sqe_bytes: bytes) -> tuple[int, int, int]:
    """(kind, address, length) of the SGL descriptor in an SQE's data pointer."""
    address, length = struct.unpack_from("<QI", sqe_bytes, 24)
    return sqe_bytes[39], address, length


def fabrics_sqe(fctype: int, cid: int = 0, specific: bytes = b"", dptr: bytes = bytes(16)) -> bytes:
    """A Fabrics command SQE: FCTYPE at byte 4, its own fields from byte 40."""
    if len(specific) > 24:
        raise ValueError("Fabrics command specific fields are bytes 40..63")
    return (struct.pack("<BBHB19x", FABRICS_OPCODE, PSDT_SGL, cid, fctype) + dptr
            + specific.ljust(24, b"\0"))


def property_get(offset: int, size: int, cid: int = 0) -> bytes:
    attrib = 1 if size == 8 else 0
    return fabrics_sqe(FCTYPE_PROPERTY_GET, cid, struct.pack("<B3xI", attrib, offset))


def property_set(offset: int, size: int, value: int, cid: int = 0) -> bytes:
    attrib = 1 if size == 8 else 0
    return fabrics_sqe(FCTYPE_PROPERTY_SET, cid, struct.pack("<B3xIQ", attrib, offset, value))


def connect(qid: int, sqsize: int, kato_ms: int, data_len: int = CONNECT_DATA_LEN,
            cattr: int = 0, cid: int = 0, in_capsule: bool = True) -> bytes:
    """Connect (``sqsize`` 0's based; ``kato_ms`` 0: no Keep Alive)."""
    kind = SGL_DATA_BLOCK_OFFSET if in_capsule else SGL_TRANSPORT_DATA_BLOCK
    return fabrics_sqe(FCTYPE_CONNECT, cid, struct.pack("<HHHBxI", 0, qid, sqsize, cattr, kato_ms),
                       sgl(kind, data_len))


def disconnect(cid: int = 0) -> bytes:
    return fabrics_sqe(FCTYPE_DISCONNECT, cid, struct.pack("<H", 0))


def _nqn_field(nqn: str) -> bytes:
    raw = nqn.encode()
    if not 0 < len(raw) < 256:
        raise ValueError(f"an NQN is 1..255 bytes, not {len(raw)}: {nqn!r}")
    return raw.ljust(256, b"\0")


def connect_data(hostid: bytes, cntlid: int, subnqn: str, hostnqn: str) -> bytes:
    """The 1024 bytes of Connect data (host ID, CNTLID 0xFFFF for any, SUBNQN, HOSTNQN)."""
    if len(hostid) != 16:
        raise ValueError("the host identifier is 16 bytes")
    return (hostid + struct.pack("<H", cntlid) + bytes(238) + _nqn_field(subnqn)
            + _nqn_field(hostnqn) + bytes(256))


@dataclass(slots=True)
class ConnectCmd:
    recfmt: int
    qid: int
    sqsize: int
    cattr: int
    kato_ms: int


def parse_connect(sqe_bytes: bytes) -> ConnectCmd:
    recfmt, qid, sqsize, cattr, kato = struct.unpack_from("<HHHBxI", sqe_bytes, 40)
    return ConnectCmd(recfmt, qid, sqsize, cattr, kato)


def _nqn(raw: bytes) -> str | None:
    """An NQN field: NUL-terminated UTF-8, or None when there is no terminator."""
    end = raw.find(b"\0")
    if end <= 0:
        return None
    try:
        return raw[:end].decode()
    except UnicodeDecodeError:
        return None


@dataclass(slots=True)
class ConnectData:
    hostid: bytes
    cntlid: int
    subnqn: str | None
    hostnqn: str | None


def parse_connect_data(data: bytes) -> ConnectData:
    return ConnectData(bytes(data[0:16]), struct.unpack_from("<H", data, 16)[0],
                       _nqn(bytes(data[256:512])), _nqn(bytes(data[512:768])))


def parse_property(sqe_bytes: bytes) -> tuple[int, int, int]:
    """(size, offset, value) of Property Get/Set (value 0 for Get)."""
    attrib, offset, value = struct.unpack_from("<B3xIQ", sqe_bytes, 40)
    return (8 if attrib & 7 == 1 else 4 if attrib & 7 == 0 else 0), offset, value


# -- the Discovery log page (Log Identifier 70h) ---------------------------------
TRTYPE_TCP, ADRFAM_IPV4, ADRFAM_IPV6 = 3, 1, 2
SUBTYPE_DISCOVERY, SUBTYPE_NVME = 1, 2
TREQ_NOT_REQUIRED = 0x02     # secure channel not required
DLP_HEADER, DLP_ENTRY = 1024, 1024


@dataclass(slots=True)
class DiscoveryEntry:
    subnqn: str
    traddr: str
    trsvcid: str
    subtype: int = SUBTYPE_NVME
    trtype: int = TRTYPE_TCP
    adrfam: int = ADRFAM_IPV4
    portid: int = 1
    cntlid: int = 0xFFFF
    asqsz: int = 32
    treq: int = TREQ_NOT_REQUIRED

    def encode(self) -> bytes:
        head = struct.pack("<BBBBHHHH20x", self.trtype, self.adrfam, self.subtype, self.treq,
                           self.portid, self.cntlid, self.asqsz, 0)
        return (head + self.trsvcid.encode().ljust(32, b" ") + bytes(192)
                + self.subnqn.encode().ljust(256, b"\0") + self.traddr.encode().ljust(256, b" ")
                + bytes(256))  # TSAS: for TCP, SECTYPE 0 (no security)

    @classmethod
    def decode(cls, raw: bytes) -> "DiscoveryEntry":
        trtype, adrfam, subtype, treq, portid, cntlid, asqsz = struct.unpack_from("<BBBBHHH", raw)
        return cls(subnqn=raw[256:512].split(b"\0")[0].decode(errors="replace"),
                   traddr=raw[512:768].rstrip(b" \0").decode(errors="replace"),
                   trsvcid=raw[32:64].rstrip(b" \0").decode(errors="replace"),
                   subtype=subtype, trtype=trtype, adrfam=adrfam, portid=portid, cntlid=cntlid,
                   asqsz=asqsz, treq=treq)


def discovery_log(entries: list[DiscoveryEntry], genctr: int) -> bytes:
    """The whole log page: the 1024-byte header (GENCTR, NUMREC, RECFMT 0) and the entries."""
    return (struct.pack("<QQH", genctr, len(entries), 0).ljust(DLP_HEADER, b"\0")
            + b"".join(e.encode() for e in entries))


def parse_discovery_log(raw: bytes) -> tuple[int, list[DiscoveryEntry]]:
    genctr, numrec = struct.unpack_from("<QQ", raw)
    n = min(numrec, (len(raw) - DLP_HEADER) // DLP_ENTRY)
    return genctr, [DiscoveryEntry.decode(raw[DLP_HEADER + i * DLP_ENTRY:
                                               DLP_HEADER + (i + 1) * DLP_ENTRY])
                    for i in range(n)]


def parse_address(addr: str | bytes) -> tuple[str, int, str]:
    """(host, port, subsystem NQN) of ``tcp://HOST[:PORT][/SUBNQN]`` or a bare IP
    (the seed's ``b'127.0.0.1'``); port 4420 and the discovery NQN by default."""
    from aionvme.exceptions import InterfaceError
    text = addr.decode() if isinstance(addr, bytes) else addr
    rest = text[len("tcp://"):] if text.startswith("tcp://") else text
    hostport, _, nqn = rest.partition("/")
    if hostport.startswith("["):  # [IPv6]:port
        host, _, tail = hostport[1:].partition("]")
        port_s = tail[1:] if tail.startswith(":") else ""
    elif hostport.count(":") == 1:
        host, _, port_s = hostport.partition(":")
        if not port_s:
            raise InterfaceError(f"address {text!r}: the port after ':' is missing")
    else:
        host, port_s = hostport, ""
    if not host:
        raise InterfaceError(f"address {text!r} names no host (tcp://HOST[:PORT][/SUBNQN])")
    try:
        port = int(port_s) if port_s else DEFAULT_PORT
    except ValueError:
        raise InterfaceError(f"address {text!r}: port {port_s!r} is not a number") from None
    if not 0 < port < 65536:
        raise InterfaceError(f"address {text!r}: port {port} is outside 1..65535")
    if nqn and len(nqn.encode()) > 223:
        raise InterfaceError(f"address {text!r}: the NQN is longer than 223 bytes")
    return host, port, nqn or DISCOVERY_NQN


def looks_like_tcp(addr: str | bytes) -> bool:
    """Whether ``addr`` names an NVMe/TCP controller: ``tcp://...`` or a bare IPv4/IPv6 address."""
    import ipaddress
    text = addr.decode() if isinstance(addr, bytes) else addr
    if text.startswith("tcp://"):
        return True
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


class Tcp(str):
    """An NVMe/TCP address for ``Controller(...)`` (pynvme 2.x: ``Tcp(addr, port)``).

    Example:
        >>> aionvme.Tcp("127.0.0.1", 4420, "nqn.2026-12.io.aionvme:sim")
        'tcp://127.0.0.1:4420/nqn.2026-12.io.aionvme:sim'
    """

    def __new__(cls, addr: str | bytes = "127.0.0.1", port: int = DEFAULT_PORT,
                nqn: str | None = None) -> "Tcp":
        from aionvme.exceptions import InterfaceError
        host = addr.decode() if isinstance(addr, bytes) else addr
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            raise InterfaceError(f"port {port!r} is outside 1..65535")
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        text = f"tcp://{host}:{port}" + (f"/{nqn}" if nqn else "")
        parse_address(text)   # the same checks as a written address
        return str.__new__(cls, text)
