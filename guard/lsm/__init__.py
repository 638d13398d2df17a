"""Kernel side: BTF, the kernel probe, the bcc loader, maps, ring buffer and backends."""
