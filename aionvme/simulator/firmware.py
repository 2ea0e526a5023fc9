"""Firmware Image Download (5.13) and Firmware Commit (5.12), the Firmware
Slot Information log (5.16.1.4).  Slot 1 is read-only (FRMW bit 0)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from aionvme.simulator import identify

from aionvme.simulator.command import err
from aionvme.spec import status as S

if TYPE_CHECKING:
    from aionvme.simulator.command import Cmd
    from aionvme.simulator.device import SimDevice



class Firmware:
    def __init__(self, dev: "SimDevice") -> None:
        self.dev = dev
        self.slots: dict[int, str] = {1: dev.cfg.firmware}
        self.active = 1
        self.next_active: int | None = None
        self.image = bytearray()

    def active_revision(self) -> str:
        return self.slots.get(self.active, "")

    def download(self, cmd: "Cmd") -> tuple[int, int]:
        numd, ofst = cmd.cdw10 + 1, cmd.cdw11
        offset, length = ofst * 4, numd * 4
        if offset != len(self.image):
            # Pieces must come in order without overlap (5.13: Overlapping Range).
            if offset < len(self.image):
                return err(S.OVERLAPPING_RANGE)
            return err(S.INVALID_FIELD)
        if offset + length > 64 << 20:
            return err(S.INVALID_FIELD)
        status, data = self.dev.admin.from_host(cmd, length)
        if status:
            return (status, 0)
        self.image += data
        return (0, 0)

    @staticmethod
    def revision_of(image: bytes | bytearray) -> str:
        """The revision an image carries: its first 8 bytes, printable ASCII."""
        rev = image[:8].decode("ascii", "replace").strip(" \0")
        if not rev or not rev.isprintable():
            return ""
        return rev

    def commit(self, cmd: "Cmd") -> tuple[int, int]:
        fs, ca = cmd.cdw10 & 0x7, (cmd.cdw10 >> 3) & 0x7
        if ca > 3:
            return err(S.INVALID_FIELD)  # boot partitions are not supported
        if fs == 0:
            fs = next((s for s in range(2, identify.FW_SLOTS + 1) if s not in self.slots), 2)
        if fs > identify.FW_SLOTS:
            return err(S.INVALID_FIRMWARE_SLOT)
        if ca in (0, 1, 3):  # replace the image in slot fs
            if fs == 1:
                return err(S.INVALID_FIRMWARE_SLOT)  # slot 1 is read only
            rev = self.revision_of(self.image)
            if not rev:
                return err(S.INVALID_FIRMWARE_IMAGE)
            self.slots[fs] = rev
            self.image = bytearray()
        elif fs not in self.slots:
            return err(S.INVALID_FIRMWARE_SLOT)
        if ca == 0:
            return (0, 0)
        if ca == 3:  # activate now, without reset (FRMW bit 4)
            self.active = fs
            self.next_active = None
            # 5.27.1.8: Firmware Activation Notices (AEC bit 9) enable the event.
            if self.dev.state.features.current(0x0B) & (1 << 9):
                self.dev.admin.event(2, 0x01, 0x03)  # Notice: firmware activation starting
            return (0, 0)
        # CA 001b/010b: activated at the next Controller Level Reset.
        self.next_active = fs
        return (0, 0)

    def controller_reset(self) -> None:
        if self.next_active is not None:
            self.active = self.next_active
            self.next_active = None

    def slot_log(self) -> bytes:
        d = bytearray(512)
        d[0] = self.active | ((self.next_active or 0) << 4)
        for slot, rev in self.slots.items():
            d[8 * slot:8 * slot + 8] = rev.encode()[:8].ljust(8, b" ")
        return bytes(d)
