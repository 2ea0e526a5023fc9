# A device reached through one backend of struct anv_dev_ops.
from libc.stdlib cimport malloc, free


cdef int _irq_array(list irq_fds, int *fds) except -1:
    """Copy the MSI-X eventfds into the C array a backend takes."""
    cdef int i
    if not 1 <= len(irq_fds) <= 64:
        raise _exc.InterfaceError(f"irq_fds holds {len(irq_fds)} eventfds; the limit is 1..64")
    for i in range(len(irq_fds)):
        fds[i] = irq_fds[i]
    return 0


cdef class Device:
    """A controller behind a backend (``dev_ops``): config space, BAR0,
    doorbells, MSI-X eventfds and resets.  Built by ``Device.open_sim``."""
    cdef anv_dev dev
    cdef bint _open
    cdef readonly str backend

    def __cinit__(self):
        self._open = False

    def __dealloc__(self):
        self._close()

    cdef void _close(self):
        if self._open:
            self.dev.ops.close(&self.dev)
            self._open = False

    @staticmethod
    def open_sim(int sock, int bar_fd, int db_fd, list irq_fds):
        """Attach to a simulator process; every fd's ownership passes to the Device."""
        cdef Device d = Device.__new__(Device)
        cdef int fds[64]
        _irq_array(irq_fds, fds)
        if anv_sim_open(&d.dev, sock, bar_fd, db_fd, fds, len(irq_fds)) < 0:
            raise convert_errno("attaching to the simulator")
        d._open = True
        d.backend = "sim"
        return d

    @staticmethod
    def open_qemu(int sock, int devfn, list irq_fds):
        """Drive QEMU's NVMe controller at 00:devfn over the qtest socket ``sock``."""
        cdef Device d = Device.__new__(Device)
        cdef int fds[64]
        _irq_array(irq_fds, fds)
        if anv_qemu_open(&d.dev, sock, devfn, fds, len(irq_fds)) < 0:
            raise convert_errno("attaching to QEMU")
        d._open = True
        d.backend = "qemu"
        return d

    @staticmethod
    def open_vfio(str bdf, int group_id, list irq_fds):
        """Drive the controller at ``bdf`` (``0000:01:00.0``, bound to vfio-pci, IOMMU
        group ``group_id``): the process-wide arena is mapped into its IOMMU at
        IOVA = offset.  Every eventfd's ownership passes to the Device; those
        beyond the device's MSI-X (or MSI) vectors are closed (``nvec`` says how
        many are wired)."""
        cdef Device d = Device.__new__(Device)
        cdef int fds[64]
        cdef Arena a = arena()
        cdef bytes b = bdf.encode()
        _irq_array(irq_fds, fds)
        if anv_vfio_open(&d.dev, b, group_id, &a.a, fds, len(irq_fds)) < 0:
            raise convert_errno(f"opening {bdf} through VFIO (IOMMU group {group_id})")
        d._open = True
        d.backend = "vfio"
        return d

    def vfio_release(self):
        """Give the VFIO device back for a power cycle, keeping the eventfds."""
        self._live()
        if self.backend != "vfio":
            raise _exc.InterfaceError("vfio_release is for the vfio backend")
        anv_vfio_release(&self.dev)

    def vfio_reopen(self, str bdf, int group_id):
        """Open the function again after vfio_release(), on the same eventfds."""
        cdef Arena a = arena()
        cdef bytes b = bdf.encode()
        self._live()
        if self.backend != "vfio":
            raise _exc.InterfaceError("vfio_reopen is for the vfio backend")
        if anv_vfio_reopen(&self.dev, b, group_id, &a.a) < 0:
            raise convert_errno(f"opening {bdf} again through VFIO (IOMMU group {group_id})")

    @property
    def irq_kind(self):
        """How the vectors reach the eventfds: "msix", "msi" (vfio), or "msix" otherwise."""
        cdef int k
        self._live()
        if self.backend != "vfio":
            return "msix"
        k = anv_vfio_irq_kind(&self.dev)
        return "msi" if k == ANV_VFIO_IRQ_MSI else "msix"

    def set_irq_mailbox(self, Buffer mailbox):
        """MSI-X messages are aimed at dwords of ``mailbox`` (one per vector); a
        backend that sees them only there (qemu) watches it."""
        self._live()
        if mailbox.size < 4 * self.dev.nvec:
            raise _exc.InterfaceError(f"mailbox of {mailbox.size} bytes is below {4 * self.dev.nvec}")
        if self.backend == "qemu":
            anv_qemu_set_mailbox(&self.dev, <uint32_t *>mailbox.c_ptr())

    def reconnect(self, int sock):
        """Talk to a restarted QEMU over ``sock`` (ownership taken)."""
        self._live()
        if self.backend != "qemu":
            raise _exc.InterfaceError("reconnect is for the qemu backend")
        if anv_qemu_reconnect(&self.dev, sock) < 0:
            raise convert_errno("reconnecting to QEMU")

    cdef int _live(self) except -1:
        if not self._open:
            raise _exc.DeviceError("the device is closed")
        return 0

    def close(self):
        self._close()

    @property
    def closed(self):
        return not self._open

    @property
    def nvec(self):
        return self.dev.nvec

    @property
    def lost(self):
        """The simulator stopped answering a request (the socket was closed then)."""
        return bool(self._open and anv_sim_lost(&self.dev))

    def irq_fd(self, int vector):
        """The eventfd that becomes readable when MSI-X ``vector`` fires."""
        self._live()
        if not 0 <= vector < self.dev.nvec:
            raise _exc.InterfaceError(f"vector {vector} is outside 0..{self.dev.nvec - 1}")
        return self.dev.irq_fd[vector]

    def doorbell_fds(self):
        """(kind, page memfd, eventfd) through which a worker process rings this
        device's doorbells.  kind "sim": a store at the doorbell's BAR0 offset in
        the simulator's own BAR page, then an eventfd write; kind "proxy" (qemu):
        the same in a page a thread of this process forwards to QEMU
        (anv_proxy_open_doorbells); kind "vfio": the VFIO device fd twice, whose
        BAR0 the worker maps (anv_vfio_open_doorbells).  The Device keeps owning
        both fds."""
        cdef int page_fd = -1, efd = -1
        cdef int rc
        self._live()
        if self.backend == "vfio":
            # the worker maps BAR0 of the same VFIO device fd and stores to it
            page_fd = efd = anv_vfio_doorbell_fd(&self.dev)
            rc = -1 if page_fd < 0 else 0
            if rc == 0:
                return "vfio", page_fd, efd
        elif self.backend == "qemu":
            rc = anv_qemu_doorbell_fds(&self.dev, &page_fd, &efd)
        else:
            rc = anv_sim_doorbell_fds(&self.dev, &page_fd, &efd)
        if rc < 0:
            raise convert_errno(f"doorbells for worker processes on the {self.backend} backend")
        return ("proxy" if self.backend == "qemu" else "sim"), page_fd, efd

    def cfg_read(self, uint32_t off, uint32_t length=4):
        cdef uint64_t val = 0
        self._live()
        if length not in (1, 2, 4) or off + length > 4096:
            raise _exc.InterfaceError(
                f"config read of {length} bytes at {off:#x}: length must be 1, 2 or 4 within 4 KiB")
        if self.dev.ops.cfg_read(&self.dev, off, length, &val) < 0:
            raise convert_errno(f"config read at {off:#x}")
        return val

    def cfg_write(self, uint32_t off, uint32_t length, uint64_t val):
        self._live()
        if length not in (1, 2, 4) or off + length > 4096:
            raise _exc.InterfaceError(
                f"config write of {length} bytes at {off:#x}: length must be 1, 2 or 4 within 4 KiB")
        if self.dev.ops.cfg_write(&self.dev, off, length, val) < 0:
            raise convert_errno(f"config write at {off:#x}")

    def bar_read(self, uint32_t off, uint32_t length=4):
        cdef uint64_t val = 0
        self._live()
        if length not in (4, 8) or off % 4 or off + length > ANV_BAR0_SIZE:
            raise _exc.InterfaceError(
                f"register read of {length} bytes at {off:#x}: length must be 4 or 8, "
                f"dword aligned, below {ANV_BAR0_SIZE:#x}")
        if self.dev.ops.bar_read(&self.dev, off, length, &val) < 0:
            raise convert_errno(f"register read at {off:#x}")
        return val

    def bar_write(self, uint32_t off, uint32_t length, uint64_t val):
        self._live()
        if length not in (4, 8) or off % 4 or off + length > ANV_BAR0_SIZE:
            raise _exc.InterfaceError(
                f"register write of {length} bytes at {off:#x}: length must be 4 or 8, "
                f"dword aligned, below {ANV_BAR0_SIZE:#x}")
        if self.dev.ops.bar_write(&self.dev, off, length, val) < 0:
            raise convert_errno(f"register write at {off:#x}")

    def reset(self, int kind):
        self._live()
        if self.dev.ops.reset(&self.dev, kind) < 0:
            raise convert_errno(f"reset of kind {kind}")

    def control(self, bytes request, int reply_cap=1 << 20):
        """A JSON request to the simulator's control plane; returns the reply bytes."""
        cdef uint64_t rval = 0
        cdef uint32_t rlen = 0
        cdef char *rbuf
        cdef int rc
        self._live()
        if self.backend != "sim":
            raise _exc.InterfaceError(f"control requests go to the simulator, not to {self.backend}")
        rbuf = <char *>malloc(reply_cap)
        if rbuf == NULL:
            raise MemoryError()
        try:
            rc = anv_sim_call(&self.dev, ANV_SIM_OP_CONTROL, 0, 0, 0, <const char *>request,
                              len(request), &rval, rbuf, reply_cap, &rlen)
            if rc < 0:
                raise convert_errno("simulator control request")
            return rbuf[:rlen]
        finally:
            free(rbuf)
