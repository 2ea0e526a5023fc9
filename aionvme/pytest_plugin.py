"""The aionvme pytest plugin (entry point ``pytest11``).

Options: ``--pciaddr`` (default ``sim``) names the device under test;
``--loop`` picks the event loop (``asyncio`` or ``uvloop``).

Fixtures (seed's table, made async; one event loop for the session):

========== ========= ====================================================
fixture    scope     what
========== ========= ====================================================
pciaddr    session   the address given by ``--pciaddr``
nvme0      session   the ``Controller``
nvme0n1    session   ``Namespace`` 1 of nvme0
pcie       session   the ``Pcie`` function of nvme0
subsystem  session   the ``Subsystem`` of nvme0
qpair      function  a ``Qpair`` of depth 64, deleted after the test
buf        function  a 4 KiB ``Buffer``
verify     function  data verification on for the test
aer        function  ``aer(func)`` registers an AER callback for the test
========== ========= ====================================================

A failing test's report carries the last commands of every queue of the
controllers it used.
"""
from __future__ import annotations

import asyncio
import weakref
from typing import Any, AsyncIterator, Callable, Iterator, Literal

import pytest
import pytest_asyncio

import aionvme
from aionvme import capabilities as caps
from aionvme.settings import config
from aionvme.transport import capabilities_of

_controllers: "weakref.WeakSet[aionvme.Controller]" = weakref.WeakSet()
CMDLOG_IN_REPORT = 16


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aionvme")
    group.addoption("--pciaddr", default="sim",
                    help="device under test: 'sim' (default), 'sim:PATH.toml', 'qemu', "
                         "'qemu:KEY=VAL,...'")
    group.addoption("--loop", default="asyncio", choices=("asyncio", "uvloop"),
                    help="event loop to run the tests on (default: asyncio)")


# What an aionvme suite needs from pytest-asyncio, unless the project says otherwise:
# async tests collected as such, and tests on the session's loop, where the
# session-scoped fixtures (nvme0, ...) made their queues.
ASYNCIO_DEFAULTS = {"asyncio_default_fixture_loop_scope": "session",
                    "asyncio_default_test_loop_scope": "session"}


def _ini_values(config: pytest.Config) -> Any:
    """The configuration-file values of this run, as a mutable mapping (``-o``
    overrides included).  pytest has no public setter for another plugin's ini
    default: ``Config.inicfg`` is that mapping up to pytest 9 (deprecated there,
    so its warning is silenced here); pytest 10 keeps only the private one."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ini = getattr(config, "inicfg", None)
    if ini is None:  # pragma: no cover - pytest >= 10
        from _pytest.config.findpaths import ConfigValue

        raw = config._inicfg  # type: ignore[attr-defined]

        class _Proxy:
            def __contains__(self, key: object) -> bool:
                return key in raw

            def __setitem__(self, key: str, value: Any) -> None:
                raw[key] = ConfigValue(value, origin="override", mode="toml")

        return _Proxy()
    return ini


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # Before pytest-asyncio reads them: a user who installed aionvme and writes
    # `async def test_x(nvme0)` in a folder of their own needs no configuration;
    # a project that sets any of these (file or -o) keeps its own.
    ini = _ini_values(config)
    if config.getoption("asyncio_mode", None) is None and "asyncio_mode" not in ini:
        config.option.asyncio_mode = "auto"
    for name, value in ASYNCIO_DEFAULTS.items():
        if name not in ini:
            ini[name] = value
    config.addinivalue_line(
        "markers", "sim_only(why): the test needs the simulator (fault injection, its "
        "settings or values); skipped on other devices")
    config.addinivalue_line(
        "markers", "needs(*capabilities): the test needs these capabilities of the device "
        "(names of aionvme.capabilities, e.g. 'config_space'); skipped, with the one "
        "missing, where the backend or transport lacks them")


@pytest.hookimpl
def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable]:
    if config.getoption("--loop") == "uvloop":
        import uvloop
        return {"uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    addr = config.getoption("--pciaddr")
    known = capabilities_of(addr)
    for item in items:
        for mark in item.iter_markers("needs"):
            unknown = [c for c in mark.args if c not in caps.ALL]
            if unknown:
                raise pytest.UsageError(f"{item.nodeid}: needs{tuple(mark.args)} names no "
                                        f"capability of aionvme.capabilities: {unknown}")
            missing = [c for c in mark.args if known is not None and c not in known[1]]
            if missing:
                item.add_marker(pytest.mark.skip(
                    reason=f"needs {missing[0].replace('_', ' ')}: the {known[0]} backend has none"))
    if addr.split(":", 1)[0] == "sim":
        return
    for item in items:
        mark = item.get_closest_marker("sim_only")
        if mark:
            why = mark.args[0] if mark.args else "fault injection"
            item.add_marker(pytest.mark.skip(
                reason=f"sim_only: needs the simulator ({why}); the device is {addr}"))


@pytest.fixture(scope="session")
def pciaddr(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--pciaddr"))


def _device_scope(fixture_name: str, config: pytest.Config) -> Literal["session", "function"]:
    """One device per session for the simulated ones; a real function (a PCI
    address: vfio) can be opened once at a time, and a test that opens its own
    Controller on it needs it free, so the device fixtures are per test there."""
    from aionvme.backends.vfio import parse_address
    return "function" if parse_address(config.getoption("--pciaddr")) else "session"


@pytest_asyncio.fixture(scope=_device_scope, loop_scope="session")
async def nvme0(pciaddr: str) -> AsyncIterator[aionvme.Controller]:
    async with aionvme.Controller(pciaddr) as ctrl:
        _controllers.add(ctrl)
        yield ctrl


@pytest_asyncio.fixture(scope=_device_scope, loop_scope="session")
async def nvme0n1(nvme0: aionvme.Controller) -> AsyncIterator[aionvme.Namespace]:
    ns = await aionvme.Namespace(nvme0, 1)
    yield ns
    ns.close()


@pytest.fixture(scope=_device_scope)
def pcie(nvme0: aionvme.Controller) -> aionvme.Pcie:
    return nvme0.pcie


@pytest.fixture(scope=_device_scope)
def subsystem(nvme0: aionvme.Controller) -> aionvme.Subsystem:
    return aionvme.Subsystem(nvme0)


@pytest_asyncio.fixture(loop_scope="session")
async def qpair(nvme0: aionvme.Controller) -> AsyncIterator[aionvme.Qpair]:
    q = await aionvme.Qpair(nvme0, 64)
    yield q
    await q.delete()


@pytest.fixture
def buf() -> Iterator[aionvme.Buffer]:
    b = aionvme.Buffer(4096)
    yield b


@pytest.fixture
def verify() -> Iterator[bool]:
    old = config().verify
    config(verify=True)
    yield True
    config(verify=old)


@pytest.fixture
def aer(nvme0: aionvme.Controller) -> Iterator[Callable[[Callable[[int, int], Any]], None]]:
    def register(func: Callable[[int, int], Any]) -> None:
        nvme0.register_aer_cb(func)
    yield register
    nvme0.register_aer_cb(None)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for ctrl in list(_controllers):
        if ctrl.closed:
            continue
        lines = []
        try:
            lines.append(str(ctrl.cmdlog(CMDLOG_IN_REPORT)))
            for q in list(ctrl._io_qpairs.values()):
                if q.reap:  # a worker's queue: its own log below
                    lines.append(str(q.cmdlog(CMDLOG_IN_REPORT)))
            for w in list(getattr(ctrl, "_ioworkers", ())):
                lines.append(str(w.cmdlog(CMDLOG_IN_REPORT)))
        except Exception as e:  # the report must not fail
            lines.append(f"(cmdlog unavailable: {e})")
        report.sections.append((f"aionvme cmdlog of {ctrl.addr}", "\n".join(x for x in lines if x)))
