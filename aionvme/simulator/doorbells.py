"""Doorbell Buffer Config (NVMe 2.0, 5.11): the host gives a Shadow Doorbell
page and an EventIdx page; the data path then reads I/O queue doorbells from
host memory and rings are needed only when EventIdx asks (ext/src/sim)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from aionvme.simulator.command import err
from aionvme.spec import status as S

if TYPE_CHECKING:
    from aionvme.simulator.admin import Admin
    from aionvme.simulator.command import Cmd



def doorbell_buffer_config(admin: "Admin", cmd: "Cmd") -> tuple[int, int]:
    dbs, eis = cmd.prp1, cmd.prp2
    # 5.11: PRP1 and PRP2 are memory page aligned addresses of one page each.
    if dbs & 0xFFF or eis & 0xFFF:
        return err(S.INVALID_FIELD)
    if not admin.core.dbbuf_config(dbs, eis):
        return err(S.INVALID_FIELD)
    return (0, 0)
