# The completion poller: the loop wakes it through an MSI-X vector's eventfd.
import os as _os_p


cdef class Poller:
    """Reaps the CQs bound to one MSI-X vector when its eventfd is readable.

    Registered with ``loop.add_reader``: no thread, no busy loop.  It never
    raises into the loop; a reap error fails the queue's commands instead.
    """
    cdef readonly int fd
    cdef readonly int vector
    cdef public list qpairs
    cdef object loop
    cdef bint _active
    cdef readonly unsigned long long wakeups

    def __cinit__(self, object loop, int fd, int vector):
        self.loop = loop
        self.fd = fd
        self.vector = vector
        self.qpairs = []
        self._active = False
        self.wakeups = 0

    def start(self):
        if not self._active:
            self.loop.add_reader(self.fd, self._on_irq)
            self._active = True

    def stop(self):
        if self._active:
            self.loop.remove_reader(self.fd)
            self._active = False

    def _on_irq(self):
        cdef CoreQpair qp
        self.wakeups += 1
        try:
            _os_p.read(self.fd, 8)  # drain first: a CQE posted after the reap rings again
        except BlockingIOError:
            pass
        except OSError:
            self.stop()
            return
        self.poll()

    def poll(self):
        """Reap every queue on this vector now."""
        cdef CoreQpair qp
        for qp in list(self.qpairs):
            try:
                qp.reap()
            except BaseException as e:
                err = e
                qp.fail_all(lambda cid: err)
