"""Decoders of the NVMe specification: command and status names."""
