"""Write the seed corpus of fuzz_sim_io (ext/fuzz/corpus/sim_io/): one file per
case, in the input layout fuzz_sim_io.c describes.  Run from the repository
root: python3 ext/fuzz/make_seeds.py"""
import pathlib
import struct

OUT = pathlib.Path(__file__).resolve().parent / "corpus" / "sim_io"
RESERVED = 1 << 20
HOST = RESERVED + 0x10000          # HOST_IOVA: where the input's host memory lands
PAGE = 4096


def sqe(opcode, cid, nsid=1, prp1=0, prp2=0, cdw10=0, cdw11=0, cdw12=0, cdw13=0, cdw14=0,
        psdt=0):
    return struct.pack("<BBHIIIQQQIIIIII", opcode, psdt << 6, cid, nsid, 0, 0, 0, prp1, prp2,
                       cdw10, cdw11, cdw12, cdw13, cdw14, 0)


def case(flags, cmds, host=b"", fault=0, fault_op=0xFF):
    return bytes([flags, len(cmds), fault, fault_op]) + b"".join(cmds) + host


def desc(addr, length, dtype, sub=0):
    return struct.pack("<QI3xB", addr, length, (dtype << 4) | sub)


def sgl(addr, length, dtype):
    return {"prp1": addr, "prp2": length | (dtype << 60), "psdt": 1}


D = HOST + 4 * PAGE                  # data pages from here on
seeds = {
    "read_one_page": case(0x70, [sqe(0x02, 0, prp1=D, cdw12=7, cdw13=PAGE)]),
    "write_read_prp_list": case(0x70, [
        sqe(0x01, 0, prp1=D, prp2=HOST, cdw12=23, cdw13=3 * PAGE, cdw14=1),
        sqe(0x02, 1, prp1=D, prp2=HOST, cdw12=23, cdw13=3 * PAGE)],
        struct.pack("<QQ", D + PAGE, D + 2 * PAGE)),
    "prp_list_chaining_to_itself": case(0x70, [
        sqe(0x02, 0, prp1=D, prp2=HOST + PAGE - 8, cdw12=23, cdw13=3 * PAGE)],
        bytes(PAGE - 8) + struct.pack("<Q", HOST + PAGE - 8)),
    "two_prp_lists_chaining": case(0x00, [
        sqe(0x01, 0, prp1=D, prp2=HOST + PAGE - 8, cdw12=1023, cdw13=1 << 20, cdw14=1)],
        bytes(PAGE - 8) + struct.pack("<Q", HOST + 2 * PAGE - 8)
        + bytes(PAGE - 8) + struct.pack("<Q", HOST + PAGE - 8)),
    "sgl_data_block": case(0x71, [sqe(0x02, 0, cdw12=7, cdw13=PAGE, **sgl(D, PAGE, 0))]),
    "sgl_segments": case(0x71, [
        sqe(0x01, 0, cdw12=7, cdw13=PAGE, cdw14=1, **sgl(HOST, 32, 2))],
        desc(D, 1024, 0) + desc(HOST + 64, 32, 3) + bytes(32)
        + desc(D + 1024, 3072, 0) + desc(0, 512, 1)),
    "sgl_segment_chaining_to_itself": case(0x71, [
        sqe(0x02, 0, cdw12=7, cdw13=PAGE, **sgl(HOST, 32, 2))],
        desc(D, 0, 0) + desc(HOST, 32, 2)),
    "nvm_command_set": case(0x74, [
        sqe(0x09, 0, prp1=HOST, cdw10=1, cdw11=4),                   # DSM deallocate
        sqe(0x08, 1, cdw10=16, cdw12=7),                             # Write Zeroes
        sqe(0x04, 2, cdw10=32, cdw12=0),                             # Write Uncorrectable
        sqe(0x02, 3, prp1=D, cdw10=32, cdw12=0),                     # Read: unrecovered
        sqe(0x05, 4, prp1=D, cdw10=40, cdw12=0),                     # Compare
        sqe(0x0C, 5, cdw10=0, cdw12=7),                              # Verify
        sqe(0x00, 6),                                                # Flush
        sqe(0x00, 7, nsid=0xFFFFFFFF),                               # Flush, all
        sqe(0x01, 8, nsid=2, prp1=D, cdw10=3, cdw12=0, cdw14=1),     # 4 KiB LBA namespace
        sqe(0x02, 9, nsid=3, prp1=D),                                # Invalid Namespace
        sqe(0x7F, 10, prp1=D)],                                      # Invalid Opcode
        struct.pack("<IIQ", 0, 8, 100) + struct.pack("<IIQ", 0, 8, 200)),
    "faults": case(0x72, [sqe(0x02, i, prp1=D, cdw12=0) for i in range(8)], fault=4,
                   fault_op=0x02),
    "hang": case(0x70, [sqe(0x02, i, prp1=D, cdw12=0) for i in range(4)], fault=6,
                 fault_op=0x02),
}

OUT.mkdir(parents=True, exist_ok=True)
for name, data in seeds.items():
    (OUT / name).write_bytes(data)
print(f"{len(seeds)} seeds in {OUT}")
