"""The ``qemu`` backend: QEMU's emulated NVMe controller (hw/nvme) as an
independent reference device, driven over qtest with no guest OS."""
