"""The QEMU kernel-matrix runner: fetch Debian kernels, build an initramfs, boot, collect results."""
