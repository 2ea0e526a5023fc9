"""IO workers: a native IO engine in a subprocess per ``Namespace.ioworker``.

``args`` checks the arguments, ``worker`` runs and supervises the process,
``stats`` turns its shared statistics block into snapshots and results,
``__main__`` is the process's entry point."""
from aionvme.workers.args import IOWorkerArgs, check_args
from aionvme.workers.stats import IOWorkerResult, Snapshot
from aionvme.workers.worker import IOWorker

__all__ = ("IOWorker", "IOWorkerArgs", "IOWorkerResult", "Snapshot", "check_args")
