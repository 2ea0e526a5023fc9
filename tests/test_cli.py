"""The aionvme command."""
import subprocess
import sys


def test_info_on_the_simulator():
    out = subprocess.run([sys.executable, "-m", "aionvme.cli", "info", "sim"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "AIONVME-SIM-0001" in out.stdout
    assert "namespace 1  2097152 LBAs of 512 bytes" in out.stdout


def test_info_bad_address_is_a_clear_error():
    out = subprocess.run([sys.executable, "-m", "aionvme.cli", "info", "nosuch"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert "no backend" in out.stderr
