"""Data verification: stamps, the CRC32C table, and its updates (aionvme.verify)."""
import asyncio
import os
import random

import pytest

import aionvme
from aionvme.exceptions import status as S
from aionvme import _core
from aionvme.exceptions import VerifyError
from simconf import wait_for_state

NSID = 1


def table(ns):
    return ns._verifier.table


async def written(ns, q, lba, n, fill=0x5A):
    buf = aionvme.Buffer(n * ns.lba_size)
    buf.fill(fill)
    await ns.write(q, buf, lba, n)
    return buf


# -- CRC32C -------------------------------------------------------------------------
def test_crc32c_check_value():
    # The CRC-32C check value (RFC 3720, B.4: iSCSI) of "123456789".
    assert _core.crc32c(b"123456789") == 0xE3069283
    assert _core.crc32c(b"123456789", portable=True) == 0xE3069283


def test_crc32c_instruction_and_tables_agree():
    rng = random.Random(7)
    for size in (1, 7, 8, 23, 24, 512, 520, 4096, 4099, 65536):
        data = rng.randbytes(size)
        assert _core.crc32c(data) == _core.crc32c(data, portable=True)
        half = size // 2
        assert _core.crc32c(data[half:], _core.crc32c(data[:half])) == _core.crc32c(data)


# -- writes and reads ---------------------------------------------------------------
async def test_write_stamps_each_lba(nvme0n1, qpair, verify):
    buf = await written(nvme0n1, qpair, 200, 4)
    size = nvme0n1.lba_size
    tokens = set()
    for i in range(4):
        assert buf.data(i * size + 7, i * size) == 200 + i
        tokens.add(buf.data(i * size + 15, i * size + 8))
        assert buf[i * size + 16] == 0x5A
    assert len(tokens) == 1 and 0 not in tokens
    assert all(table(nvme0n1).get(200 + i) > 2 for i in range(4))
    other = await written(nvme0n1, qpair, 200, 1)
    assert other.data(15, 8) not in tokens  # every write has its own token


async def test_read_back_is_no_false_alarm(nvme0n1, qpair, verify):
    w = await written(nvme0n1, qpair, 0, 64)
    # the reads below are checked: each LBA has a CRC32C entry to compare with
    assert all(table(nvme0n1).get(lba) > 2 for lba in range(64))
    r = aionvme.Buffer(64 * 512)
    await nvme0n1.read(qpair, r, 0, 64)
    assert r[:] == w[:]
    for lba in range(0, 64, 8):
        await nvme0n1.read(qpair, r, lba, 8)
        assert r[0:8 * 512] == w[lba * 512:(lba + 8) * 512]


@pytest.mark.sim_only("corrupting the media")
async def test_corruption_in_the_middle_of_a_read_names_the_lba(nvme0, nvme0n1, qpair, verify):
    await written(nvme0n1, qpair, 1000, 16)
    nvme0.sim.corrupt(NSID, 1009, offset=300)
    r = aionvme.Buffer(16 * 512)
    with pytest.raises(VerifyError, match="namespace 1 LBA 1009: the data differs") as e:
        await nvme0n1.read(qpair, r, 1000, 16)
    assert (e.value.nsid, e.value.lba) == (NSID, 1009)
    assert e.value.expected["crc"] != e.value.found["crc"]
    # The LBAs around it are intact.
    await nvme0n1.read(qpair, r, 1000, 9)
    await nvme0n1.read(qpair, r, 1010, 6)


@pytest.mark.sim_only("corrupting the media")
async def test_corrupt_stamp_reports_expected_and_found_lba_and_token(nvme0, nvme0n1, qpair,
                                                                      verify):
    buf = await written(nvme0n1, qpair, 1100, 2)
    token = buf.data(15, 8)
    nvme0.sim.corrupt(NSID, 1101, offset=0, xor=0x01)  # LBA 1101 -> 1100 in the stamp
    with pytest.raises(VerifyError, match="expected LBA 1101 token .* found LBA 1100 token") as e:
        await nvme0n1.read(qpair, aionvme.Buffer(1024), 1100, 2)
    assert e.value.expected == {"lba": 1101, "token": token, "crc": e.value.expected["crc"]}
    assert (e.value.found["lba"], e.value.found["token"]) == (1100, token)


@pytest.mark.sim_only("corrupting the media")
async def test_every_bad_lba_is_counted(nvme0, nvme0n1, qpair, verify):
    await written(nvme0n1, qpair, 1200, 8)
    for lba in (1202, 1205, 1207):
        nvme0.sim.corrupt(NSID, lba, offset=17)
    with pytest.raises(VerifyError, match=r"LBA 1202: .*\(3 of the 8 LBAs"):
        await nvme0n1.read(qpair, aionvme.Buffer(4096), 1200, 8)


@pytest.mark.sim_only("corrupting the media")
async def test_overwrite_then_read(nvme0, nvme0n1, qpair, verify):
    await written(nvme0n1, qpair, 1300, 8, fill=0x11)
    await written(nvme0n1, qpair, 1302, 4, fill=0x22)
    r = aionvme.Buffer(4096)
    await nvme0n1.read(qpair, r, 1300, 8)
    assert r[2 * 512 + 16] == 0x22 and r[16] == 0x11
    nvme0.sim.corrupt(NSID, 1303, offset=511)
    with pytest.raises(VerifyError, match="LBA 1303"):
        await nvme0n1.read(qpair, r, 1300, 8)


async def test_stale_data_is_found(nvme0n1, qpair, verify):
    """A write the verifier did not see (raw send_cmd) leaves other data."""
    await written(nvme0n1, qpair, 1400, 1)
    raw = aionvme.Buffer(512)
    raw.fill(0x33)
    await nvme0n1.send_cmd(0x01, qpair, raw, NSID, cdw10=1400, cdw12=0)
    with pytest.raises(VerifyError, match="expected LBA 1400 token .* found LBA "
                                          "3689348814741910323 token"):
        await nvme0n1.read(qpair, aionvme.Buffer(512), 1400, 1)


@pytest.mark.sim_only("fault injection")
async def test_failed_write_leaves_the_lbas_unknown(nvme0, nvme0n1, qpair, verify):
    await written(nvme0n1, qpair, 1500, 4)
    with nvme0.sim.inject_status(sc=0x06, opcode=0x01, nsid=NSID) as fault:  # Internal Error
        with pytest.raises(S.InternalError, match="00/06"):
            await written(nvme0n1, qpair, 1500, 4, fill=0x44)
        assert fault.hits == 1
    assert [table(nvme0n1).get(1500 + i) for i in range(4)] == [0, 0, 0, 0]
    await nvme0n1.read(qpair, aionvme.Buffer(2048), 1500, 4)


async def test_overlapping_commands_in_flight_are_no_false_alarm(nvme0n1, qpair, verify):
    bufs = [aionvme.Buffer(8 * 512) for _ in range(8)]
    for i, b in enumerate(bufs):
        b.fill(i)
    for _ in range(20):
        cmds = []
        for i, b in enumerate(bufs):
            if i % 2:
                cmds.append(nvme0n1.write(qpair, b, 1600 + i, 8))
            else:
                cmds.append(nvme0n1.read(qpair, b, 1600 + i, 8))
        await asyncio.gather(*cmds)
    await nvme0n1.read(qpair, bufs[0], 1600, 8)



@pytest.mark.sim_only("fault injection (delay)")
async def test_read_completed_late_after_an_overlapping_write(nvme0, nvme0n1, qpair, verify):
    """The read ran before the write but completes after it: its old data is no alarm."""
    await written(nvme0n1, qpair, 1700, 4, fill=0x01)
    r = aionvme.Buffer(2048)
    with nvme0.sim.delay(delay_ms=200, opcode=0x02, nsid=NSID) as fault:
        read = nvme0n1.read(qpair, r, 1700, 4)
        await wait_for_state(lambda: fault.hits == 1, "the device ran the read")
        await written(nvme0n1, qpair, 1702, 4, fill=0x02)
        await read
    assert r[16] == 0x01
    await nvme0n1.read(qpair, r, 1700, 4)  # checked again once nothing overlaps


@pytest.mark.sim_only("fault injection (delay)")
async def test_overlapping_writes_in_flight_leave_the_lbas_unknown(nvme0, nvme0n1, qpair, verify):
    """Which of two overlapping writes lands last is unknown to the host."""
    with nvme0.sim.delay(delay_ms=200, opcode=0x01, nsid=NSID) as fault:
        first = written(nvme0n1, qpair, 1800, 4, fill=0x01)
        task = asyncio.ensure_future(first)
        await wait_for_state(lambda: fault.hits == 1, "the device ran the first write")
        await written(nvme0n1, qpair, 1801, 2, fill=0x02)
        await task
    assert table(nvme0n1).get(1800) > 2 and table(nvme0n1).get(1803) > 2
    assert table(nvme0n1).get(1801) == table(nvme0n1).get(1802) == 0
    await nvme0n1.read(qpair, aionvme.Buffer(2048), 1800, 4)

# -- write zeroes, deallocate, write uncorrectable ---------------------------------
@pytest.mark.sim_only("corrupting the media")
async def test_write_zeroes(nvme0, nvme0n1, qpair, verify):
    await written(nvme0n1, qpair, 2000, 8)
    await nvme0n1.write_zeroes(qpair, 2002, 4)
    r = aionvme.Buffer(4096)
    await nvme0n1.read(qpair, r, 2000, 8)
    assert r[2 * 512:6 * 512] == bytes(4 * 512)
    assert table(nvme0n1).get(2003) == 1  # reads as zeroes
    nvme0.sim.corrupt(NSID, 2004, offset=100, xor=0x80)
    with pytest.raises(VerifyError, match="LBA 2004: expected zeroes, found 0x80 at byte 100"):
        await nvme0n1.read(qpair, r, 2000, 8)


@pytest.mark.sim_only("corrupting the media")
async def test_deallocate(nvme0, nvme0n1, qpair, verify):
    await written(nvme0n1, qpair, 2100, 8)
    await written(nvme0n1, qpair, 2300, 8)
    ranges = aionvme.Buffer(4096)
    ranges.set_dsm_range(0, 2102, 2)
    ranges.set_dsm_range(1, 2304, 4)
    await nvme0n1.dsm(qpair, ranges, 2, attribute=0x4)
    r = aionvme.Buffer(4096)
    await nvme0n1.read(qpair, r, 2100, 8)
    await nvme0n1.read(qpair, r, 2300, 8)
    assert r[4 * 512:] == bytes(4 * 512)
    # The simulator reports DLFEAT 001b: deallocated LBAs read as zeroes.  The
    # command is advisory (NVM 3.2.3): the old data is accepted too, so the
    # table keeps its CRC32C.
    assert nvme0n1.id_data(33) & 7 == 1
    assert table(nvme0n1).get(2103) > 2 and table(nvme0n1).get(2101) > 2
    nvme0.sim.corrupt(NSID, 2306, offset=3)
    with pytest.raises(VerifyError, match="LBA 2306: expected LBA 2306 token .* could also have "
                                          "read as all 00h"):
        await nvme0n1.read(qpair, r, 2300, 8)


@pytest.mark.sim_only("Write Uncorrectable (QEMU 7.2 has none)")
async def test_write_uncorrectable_read_fails_without_verify_error(nvme0n1, qpair, verify):
    await written(nvme0n1, qpair, 2400, 4)
    await nvme0n1.write_uncorrectable(qpair, 2401, 2)
    r = aionvme.Buffer(2048)
    with pytest.raises(S.UnrecoveredReadError, match="02/81") as e:
        await nvme0n1.read(qpair, r, 2400, 4)
    assert not isinstance(e.value, VerifyError)
    await nvme0n1.read(qpair, r, 2400, 1)
    await nvme0n1.read(qpair, r, 2403, 1)
    assert table(nvme0n1).get(2401) == 2
    await written(nvme0n1, qpair, 2401, 2)  # a write makes them readable again
    await nvme0n1.read(qpair, r, 2400, 4)


@pytest.mark.sim_only("Write Uncorrectable (QEMU 7.2 has none)")
async def test_uncorrectable_lba_that_reads_fine_is_an_error(nvme0n1, qpair, verify):
    """The device forgot a Write Uncorrectable: a raw write cleared it behind the verifier."""
    await nvme0n1.write_uncorrectable(qpair, 2500, 1)
    await nvme0n1.send_cmd(0x01, qpair, aionvme.Buffer(512), NSID, cdw10=2500)
    with pytest.raises(VerifyError, match="LBA 2500: the LBA was made uncorrectable"):
        await nvme0n1.read(qpair, aionvme.Buffer(512), 2500, 1)


# -- format, 4096-byte LBAs ---------------------------------------------------------
async def test_format_leaves_anything_but_the_old_data(nvme0n1, qpair, verify):
    """Base 5.14: after Format NVM the controller shall not return user data
    written before; what it returns instead is not known."""
    old = await written(nvme0n1, qpair, 3000, 64)
    await nvme0n1.write_zeroes(qpair, 3100, 8)
    t = table(nvme0n1)
    await nvme0n1.format(512)
    assert table(nvme0n1) is t
    assert t.get(3000) == 3 and t.get(3100) == 0  # stamped: not the old data; zeroes: unknown
    await nvme0n1.read(qpair, aionvme.Buffer(64 * 512), 3000, 64)
    # A device that still returns the data written before the Format is caught.
    await nvme0n1.send_cmd(0x01, qpair, old, NSID, cdw10=3000, cdw12=63)  # behind the table
    with pytest.raises(VerifyError, match="LBA 3000: the data written before the Format NVM or "
                                          "Sanitize is still returned"):
        await nvme0n1.read(qpair, aionvme.Buffer(64 * 512), 3000, 64)
    await written(nvme0n1, qpair, 3000, 64)  # written again: exact again
    await nvme0n1.read(qpair, aionvme.Buffer(64 * 512), 3000, 64)


@pytest.mark.sim_only("corrupting the media")
async def test_4096_byte_lbas(nvme0, nvme0n1, qpair, verify):
    await written(nvme0n1, qpair, 10, 1)  # a 512-byte table exists before the format
    try:
        await nvme0n1.format(4096)
        assert nvme0n1.lba_size == 4096 and table(nvme0n1).lba_size == 4096
        buf = await written(nvme0n1, qpair, 50, 4)
        assert buf.data(4096 + 7, 4096) == 51
        r = aionvme.Buffer(4 * 4096)
        await nvme0n1.read(qpair, r, 50, 4)
        nvme0.sim.corrupt(NSID, 52, offset=4000)
        with pytest.raises(VerifyError, match="LBA 52"):
            await nvme0n1.read(qpair, r, 50, 4)
    finally:
        await nvme0n1.format(512)
    assert table(nvme0n1).lba_size == 512


# -- an 8 TB namespace --------------------------------------------------------------
@pytest.mark.sim_only("an 8 TB simulated namespace")
async def test_8tb_namespace(tmp_path, verify):
    toml = tmp_path / "8t.toml"
    toml.write_text('[[namespace]]\nsize = "8T"\nlba_size = 512\n')
    async with aionvme.Controller("sim:" + str(toml)) as nvme:
        ns = await aionvme.Namespace(nvme, 1)
        q = await aionvme.Qpair(nvme, 16)
        try:
            assert ns.nsze == (8 << 40) // 512
            last = ns.nsze - 8
            await written(ns, q, last, 8)
            await written(ns, q, 0, 8)
            r = aionvme.Buffer(4096)
            await ns.read(q, r, last, 8)
            await ns.read(q, r, ns.nsze // 2, 8)  # never written: unknown
            t = table(ns)
            assert t.nlba == ns.nsze and t.size > 12 * ns.nsze
            assert os.fstat(t.fd).st_blocks * 512 < 1 << 20
            nvme.sim.corrupt(1, ns.nsze - 1, offset=42)
            with pytest.raises(VerifyError, match=f"LBA {ns.nsze - 1}"):
                await ns.read(q, r, last, 8)
        finally:
            await q.delete()
            ns.close()


# -- off ----------------------------------------------------------------------------
@pytest.mark.sim_only("corrupting the media")
async def test_verification_off_checks_nothing(nvme0, nvme0n1, qpair):
    assert not aionvme.config().verify
    buf = await written(nvme0n1, qpair, 4000, 2)
    assert buf[0] == 0x5A  # not stamped
    nvme0.sim.corrupt(NSID, 4001, offset=9)
    r = aionvme.Buffer(1024)
    await nvme0n1.read(qpair, r, 4000, 2)
    assert r[512 + 9] == 0x5A ^ 0xFF
    assert nvme0n1._verifier is None


async def test_turning_verification_off_forgets_the_table(nvme0n1, qpair):
    aionvme.config(verify=True)
    try:
        await written(nvme0n1, qpair, 4100, 1)
        assert nvme0n1._verifier is not None
        aionvme.config(verify=False)
        await written(nvme0n1, qpair, 4100, 1, fill=0x77)  # not stamped, not recorded
        aionvme.config(verify=True)
        await nvme0n1.read(qpair, aionvme.Buffer(512), 4100, 1)  # no stale check
    finally:
        aionvme.config(verify=False)
