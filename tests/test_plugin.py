"""The pytest plugin: options, fixtures, and the cmdlog in a failing test's report."""
import textwrap

import pytest


def _suite(pytester: pytest.Pytester, body: str) -> None:
    pytester.makeini(textwrap.dedent("""
        [pytest]
        asyncio_mode = auto
        asyncio_default_fixture_loop_scope = session
        asyncio_default_test_loop_scope = session
    """))
    pytester.makepyfile(test_suite=textwrap.dedent(body))


def test_fixtures_of_the_seed(pytester: pytest.Pytester) -> None:
    _suite(pytester, """
        import aionvme

        async def test_all(pciaddr, nvme0, nvme0n1, pcie, subsystem, qpair, buf, verify, aer):
            assert pciaddr == "sim"
            assert isinstance(nvme0, aionvme.Controller)
            assert isinstance(nvme0n1, aionvme.Namespace) and nvme0n1.nsid == 1
            assert isinstance(pcie, aionvme.Pcie) and pcie.register(0, 2) != 0xFFFF
            assert isinstance(subsystem, aionvme.Subsystem)
            assert isinstance(qpair, aionvme.Qpair)
            assert len(buf) == 4096
            assert verify is True and aionvme.config().verify
            aer(lambda cdw0, status: None)
            await nvme0n1.write(qpair, buf, 0, 8)
            await nvme0n1.read(qpair, buf, 0, 8)
    """)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1)


def test_failing_test_report_carries_the_cmdlog(pytester: pytest.Pytester) -> None:
    _suite(pytester, """
        async def test_fails(nvme0, buf):
            await nvme0.identify(buf)
            assert False, "on purpose"
    """)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*aionvme cmdlog of sim*", "*IDENTIFY (06) sqid:0*"])


def test_uvloop_option(pytester: pytest.Pytester) -> None:
    _suite(pytester, """
        import asyncio

        async def test_loop(nvme0n1, qpair, buf):
            assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
            assert (await nvme0n1.read(qpair, buf, 0)).ok
    """)
    result = pytester.runpytest_subprocess("-q", "--loop", "uvloop")
    result.assert_outcomes(passed=1)


def test_needs_marker_skips_by_capability(pytester: pytest.Pytester) -> None:
    """A test marked ``needs`` runs where the backend has the capability and is
    skipped, naming it, where it has not (known without opening the device)."""
    _suite(pytester, """
        import pytest

        @pytest.mark.needs("fault_injection")
        def test_faults():
            pass

        @pytest.mark.needs("config_space")
        def test_cfg():
            pass
    """)
    result = pytester.runpytest_subprocess("-q", "-rs", "--pciaddr", "qemu:size=8M")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*needs fault injection: the qemu backend has none*"])
    result = pytester.runpytest_subprocess("-q", "--pciaddr", "sim")
    result.assert_outcomes(passed=2)


def test_needs_marker_refuses_an_unknown_capability(pytester: pytest.Pytester) -> None:
    _suite(pytester, """
        import pytest

        @pytest.mark.needs("teleport")
        def test_x():
            pass
    """)
    result = pytester.runpytest_subprocess("-q")
    assert result.ret != 0
    result.stderr.fnmatch_lines(["*names no capability*teleport*"])


def test_async_tests_run_with_no_configuration_of_the_user(pytester: pytest.Pytester) -> None:
    """The README's first example in a folder of the user's own, no pytest
    configuration at all (pytester runs outside this repository)."""
    pytester.makepyfile(test_mine="""
        async def test_outside(nvme0, nvme0n1, qpair, buf):
            assert nvme0[0x1c] & 1
            await nvme0n1.write(qpair, buf, 0, 8)
            assert (await nvme0n1.read(qpair, buf, 0, 8)).ok

        async def test_second(nvme0):
            assert nvme0[0x1c] & 1
    """)
    assert not (pytester.path / "pyproject.toml").exists()
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_a_project_keeps_its_own_asyncio_mode(pytester: pytest.Pytester) -> None:
    """A project that chose strict mode keeps it: an unmarked coroutine is not run."""
    pytester.makeini("""
        [pytest]
        asyncio_mode = strict
    """)
    pytester.makepyfile(test_strict="""
        import pytest

        async def test_unmarked():
            pass

        @pytest.mark.asyncio(loop_scope="session")
        async def test_marked(nvme0):
            assert nvme0[0x1c] & 1
    """)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 1 and "test_unmarked" in result.stdout.str()
