"""Helpers for the simulator conformance tests (tests/test_sim_*.py): a
``sim:PATH.toml`` address with chosen SimConfig fields, and bounded waits."""
from __future__ import annotations

import asyncio
import pathlib
from typing import Any, Awaitable, Callable


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(value)


def sim_address(tmp_path: pathlib.Path, namespaces: list[dict[str, Any]] | None = None,
                **fields: Any) -> str:
    """Write a simulator TOML with ``fields`` (SimConfig names) and return ``sim:PATH``."""
    lines = [f"{k} = {_toml(v)}" for k, v in fields.items()]
    for ns in namespaces or []:
        lines.append("[[namespace]]")
        lines += [f"{k} = {_toml(v)}" for k, v in ns.items()]
    path = tmp_path / "sim.toml"
    path.write_text("\n".join(lines) + "\n")
    return f"sim:{path}"


async def wait_for_state(probe: Callable[[], Awaitable[bool] | bool], what: str,
                         tries: int = 500, step: float = 0.01) -> None:
    """Poll ``probe`` until it is true; fail naming ``what`` after ``tries`` polls.

    The bound only keeps a broken device from hanging the suite: no test
    asserts how fast a state is reached.
    """
    for _ in range(tries):
        r = probe()
        if asyncio.iscoroutine(r):
            r = await r
        if r:
            return
        await asyncio.sleep(step)
    raise AssertionError(f"the device never reached: {what}")
