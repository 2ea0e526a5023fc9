"""Buffer: the seed's examples, bounds and use after free."""
import pytest

import aionvme
from aionvme.exceptions import BufferFreedError


def test_seed_examples():
    b = aionvme.Buffer(1024, "example")
    b[0] = 0x5A
    b[1:3] = [1, 2]
    b[4:] = [10, 11, 12, 13]
    assert b[:8:2] == b"Z\x02\n\x0c"
    assert b.data(2) == 2 and b[2] == 2
    assert b.data(2, 0) == 0x02015A
    assert len(b) == 1024
    assert repr(b) == "<buffer name: example>"
    b[8:] = b"xyc"
    assert b.dump(16).splitlines()[1].startswith("00000000  5a 01 02 00 0a 0b 0c 0d  78 79 63")


def test_set_dsm_range_layout():
    b = aionvme.Buffer(4096)
    b.set_dsm_range(1, 0x1234567887654321, 0xABCDEF12)
    assert b[16:32] == bytes(4) + bytes.fromhex("12efcdab") + bytes.fromhex("2143658778563412")


def test_starts_zeroed_and_page_aligned():
    b = aionvme.Buffer(8192)
    assert b[:] == bytes(8192)
    assert b.iova % 4096 == 0


@pytest.mark.parametrize("size", [0, -1])
def test_bad_size_names_the_argument(size):
    with pytest.raises(aionvme.InterfaceError, match="size"):
        aionvme.Buffer(size)


def test_size_above_the_arena_limit():
    with pytest.raises(aionvme.InterfaceError, match="limit"):
        aionvme.Buffer(1 << 40)


def test_use_after_free():
    b = aionvme.Buffer(512, "gone")
    b.free()
    for use in (lambda: b[0], lambda: b.iova, lambda: b.data(1), lambda: b.dump()):
        with pytest.raises(BufferFreedError, match="gone"):
            use()


def test_index_out_of_range():
    b = aionvme.Buffer(16)
    with pytest.raises(IndexError):
        b[16]
    with pytest.raises(aionvme.InterfaceError, match="byte_end"):
        b.data(16, 0)


def test_memoryview_shares_the_memory():
    b = aionvme.Buffer(64)
    mv = memoryview(b)
    mv[3] = 7
    assert b[3] == 7
    with pytest.raises(aionvme.InterfaceError, match="memoryview"):
        b.free()
    del mv
    b.free()
