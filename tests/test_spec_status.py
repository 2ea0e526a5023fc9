"""The status codes are defined once (aionvme.spec.status, named by the tables of
aionvme.spec.names); the native core's enum (ext/include/aionvme/nvme.h) agrees."""
from __future__ import annotations

import re
from pathlib import Path

from aionvme.spec import names
from aionvme.spec import status as S

ROOT = Path(__file__).resolve().parent.parent


def _constants() -> dict[str, S.Status]:
    return {k: v for k, v in vars(S).items() if isinstance(v, S.Status)}


def test_every_constant_names_a_status_of_the_specification():
    for key, st in _constants().items():
        assert st.name != "Reserved", f"{key} = {st} is not in the status tables"
        assert names.status_name(st.sct, st.sc) == st.name


def test_constants_are_distinct():
    seen: dict[S.Status, str] = {}
    for key, st in _constants().items():
        assert st not in seen, f"{key} and {seen[st]} are the same status {st}"
        seen[st] = key


def test_status_field_layout():
    # CQE DW3 bits 31:17 without the phase tag: SC 7:0, SCT 10:8, More 13, DNR 14 (4.2.3)
    assert S.LBA_OUT_OF_RANGE.field() == (1 << 14) | 0x80
    assert S.INVALID_FIRMWARE_SLOT.field(dnr=False, more=True) == (1 << 13) | (1 << 8) | 0x06


def test_the_native_core_uses_the_same_codes():
    header = (ROOT / "ext/include/aionvme/nvme.h").read_text()
    codes = re.findall(r"ANV_SC_(\w+) = (0x[0-9a-fA-F]+),", header)
    assert len(codes) > 10
    tables = {**names.GENERIC_STATUS, **names.MEDIA_STATUS}
    for name, value in codes:
        assert int(value, 16) in tables, f"ANV_SC_{name} = {value} is in no status table"
