# DMA buffers carved from the process-wide arena.
from cpython.buffer cimport PyBUF_WRITABLE
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy, memset

from aionvme.includes.nvme cimport *

import os as _osmod


cdef class Arena:
    """The DMA arena: one memfd that every backend maps; IOVA = offset."""
    cdef anv_arena a

    def __cinit__(self, size_t size):
        if anv_arena_open(&self.a, size) < 0:
            raise convert_errno("creating the DMA arena")

    def __dealloc__(self):
        anv_arena_close(&self.a)

    @property
    def fd(self):
        return self.a.fd

    @property
    def size(self):
        return self.a.size

    @property
    def pages_used(self):
        return self.a.used


cdef Arena _the_arena = None


cpdef Arena arena():
    """The process-wide arena (created on first use; AIONVME_ARENA_MB sets its size)."""
    global _the_arena
    if _the_arena is None:
        mb = int(_osmod.environ.get("AIONVME_ARENA_MB", "1024"))
        _the_arena = Arena(<size_t>mb << 20)
    return _the_arena


cdef class Buffer:
    """A DMA buffer: zeroed, page aligned, in the arena.

    Indexing and slicing read and write bytes; ``data(end, begin)`` reads a
    little-endian field like the NVMe specification names it.

    Example:
        >>> b = Buffer(1024, "example")
        >>> b[0] = 0x5a
        >>> b[1:3] = [1, 2]
        >>> b.data(2, 0) == 0x02015a
        True
    """
    cdef Arena _arena
    cdef readonly Py_ssize_t size
    cdef uint64_t _iova
    cdef uint8_t *ptr
    cdef public str name
    cdef bint _freed
    cdef public int _inflight
    cdef public int _verified   # verified Reads and Writes in flight (VerifyPost)
    cdef int _exports

    def __cinit__(self, size=4096, str name="buffer"):
        cdef int64_t off
        if not isinstance(size, int) or isinstance(size, bool):
            raise _exc.InterfaceError(f"size must be an int, not {type(size).__name__}")
        if size <= 0:
            raise _exc.InterfaceError(f"size must be at least 1 byte, got {size}")
        self._arena = arena()
        if size > self._arena.a.size // 2:
            raise _exc.InterfaceError(
                f"size {size} is above the limit {self._arena.a.size // 2} (half the DMA arena; "
                f"set AIONVME_ARENA_MB for more)")
        off = anv_arena_alloc(&self._arena.a, <size_t>size)
        if off < 0:
            raise convert_errno(f"allocating a {size}-byte Buffer")
        self._iova = <uint64_t>off
        self.ptr = self._arena.a.base + off
        self.size = size
        self.name = name
        self._freed = False
        self._inflight = 0
        self._verified = 0
        self._exports = 0

    def __dealloc__(self):
        if not self._freed and self._arena is not None:
            anv_arena_free(&self._arena.a, self._iova, <size_t>self.size)
            self._freed = True

    cdef inline int _check(self) except -1:
        if self._freed:
            raise _exc.BufferFreedError(f"Buffer {self.name!r} was freed")
        return 0

    cdef inline int _check_writable(self) except -1:
        self._check()
        if self._verified:
            # The data of a verified command in flight: a Write's CRC32C was
            # taken at submission, a Read's is checked at completion.
            raise _exc.InterfaceError(
                f"Buffer {self.name!r} is in use by {self._verified} verified command(s) in "
                f"flight: changing it now would make the check compare other data")
        return 0

    def free(self):
        """Give the memory back now; any later use raises BufferFreedError."""
        if self._freed:
            return
        if self._inflight:
            raise _exc.InterfaceError(
                f"Buffer {self.name!r} is in use by {self._inflight} outstanding command(s)")
        if self._exports:
            raise _exc.InterfaceError(f"Buffer {self.name!r} has {self._exports} memoryview(s) alive")
        anv_arena_free(&self._arena.a, self._iova, <size_t>self.size)
        self._freed = True

    @property
    def iova(self):
        """The bus address the device uses for byte 0 of this buffer."""
        self._check()
        return self._iova

    @property
    def freed(self):
        return self._freed

    cdef uint64_t c_iova(self) except? 0:
        self._check()
        return self._iova

    def __getbuffer__(self, Py_buffer *view, int flags):
        self._check()
        view.buf = self.ptr
        view.len = self.size
        view.readonly = 0
        view.itemsize = 1
        if flags & 4:  # PyBUF_FORMAT
            view.format = "B"
        else:
            view.format = NULL
        view.ndim = 1
        if flags & 8:  # PyBUF_ND
            view.shape = &self.size
        else:
            view.shape = NULL
        view.strides = NULL
        view.suboffsets = NULL
        view.internal = NULL
        view.obj = self
        self._exports += 1

    def __releasebuffer__(self, Py_buffer *view):
        self._exports -= 1

    def __len__(self):
        return self.size

    def __repr__(self):
        return f"<buffer name: {self.name}>"

    def __getitem__(self, index):
        self._check()
        if isinstance(index, slice):
            return bytes(memoryview(self)[index])
        i = index + self.size if index < 0 else index
        if not 0 <= i < self.size:
            raise IndexError(f"index {index} is outside the buffer of {self.size} bytes")
        return self.ptr[i]

    def __setitem__(self, index, value):
        self._check_writable()
        if isinstance(index, slice):
            start, stop, step = index.indices(self.size)
            data = bytes(value)
            if index.stop is None and step == 1:
                stop = min(self.size, start + len(data))
            mv = memoryview(self)
            mv[start:stop:step] = data[:len(range(start, stop, step))]
            return
        i = index + self.size if index < 0 else index
        if not 0 <= i < self.size:
            raise IndexError(f"index {index} is outside the buffer of {self.size} bytes")
        self.ptr[i] = <uint8_t>value

    def data(self, byte_end, byte_begin=None, type=int):
        """The field from ``byte_begin`` to ``byte_end`` (both included), little endian."""
        self._check()
        if byte_begin is None:
            byte_begin = byte_end
        if not 0 <= byte_begin <= byte_end < self.size:
            raise _exc.InterfaceError(
                f"byte_begin {byte_begin} .. byte_end {byte_end} is outside the buffer of {self.size} bytes")
        raw = bytes(memoryview(self)[byte_begin:byte_end + 1])
        if type is int:
            return int.from_bytes(raw, "little")
        if type is str:
            return raw.decode("latin-1").rstrip(" \x00")
        raise _exc.InterfaceError(f"type must be int or str, not {type!r}")

    def fill(self, value=0):
        """Set every byte to ``value``."""
        self._check_writable()
        memset(self.ptr, <int>(value & 0xff), <size_t>self.size)

    def dump(self, size=None):
        """A hex dump of the first ``size`` bytes (all by default), as a string."""
        self._check()
        n = self.size if size is None else min(size, self.size)
        raw = bytes(memoryview(self)[:n])
        lines = [self.name]
        for off in range(0, n, 16):
            chunk = raw[off:off + 16]
            hexes = " ".join(f"{b:02x}" for b in chunk[:8])
            if len(chunk) > 8:
                hexes += "  " + " ".join(f"{b:02x}" for b in chunk[8:])
            text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
            lines.append(f"{off:08x}  {hexes:<49} {text}")
        return "\n".join(lines)

    def set_dsm_range(self, index, lba, lba_count, attr=0):
        """Fill range ``index`` of a Dataset Management range list (NVM 3.2.3)."""
        self._check()
        off = index * 16
        if index < 0 or off + 16 > self.size:
            raise _exc.InterfaceError(f"index {index} does not fit a {self.size}-byte buffer (16 bytes a range)")
        if not 0 <= lba_count <= 0xffffffff:
            raise _exc.InterfaceError(f"lba_count {lba_count} is outside 0..0xffffffff")
        self[off:off + 16] = (attr.to_bytes(4, "little") + lba_count.to_bytes(4, "little")
                              + lba.to_bytes(8, "little"))

    cdef uint8_t *c_ptr(self):
        return self.ptr
