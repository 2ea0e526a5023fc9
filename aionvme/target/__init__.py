"""``aionvme serve``: the simulated SSD exported as an NVMe/TCP target."""
from aionvme.target.server import Target

__all__ = ("Target",)
