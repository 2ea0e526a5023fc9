"""Shared test setup: the aionvme plugin supplies the fixtures (--pciaddr, nvme0, ...).

A test fails when the event loop's exception handler fired during it."""
from __future__ import annotations

import asyncio
from typing import Any, Iterator

import pytest


@pytest.fixture(autouse=True)
def loop_exceptions_fail_the_test() -> Iterator[None]:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        yield
        return
    seen: list[dict[str, Any]] = []
    old = loop.get_exception_handler()
    loop.set_exception_handler(lambda lp, ctx: seen.append(ctx))
    yield
    loop.set_exception_handler(old)
    if seen:
        pytest.fail(f"the event loop's exception handler fired: {seen[0].get('message')} "
                    f"{seen[0].get('exception')!r}")


pytest_plugins = ["pytester"]
