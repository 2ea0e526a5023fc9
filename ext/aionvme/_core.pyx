# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""aionvme._core: the native driver core (arena, buffers, devices, queues)
and the simulated controller's data path.  This file only includes."""

include "errors.pyx"
include "buffer.pyx"
include "device.pyx"
include "qpair.pyx"
include "poller.pyx"
include "simcore.pyx"
include "verify.pyx"
include "ioworker.pyx"
include "kernel.pyx"
