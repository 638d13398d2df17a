"""Kernel artifacts for a guest: vmlinuz, its config, and a small initramfs built from the same packages.

The initramfs holds busybox (static), the kernel's own virtio/9p/netfs/fscache/overlay modules
(decompressed, loaded in dependency order read from each module's .modinfo) and /init, which mounts
the host root read-only over 9p under a RAM overlay, mounts the results share, securityfs, bpffs,
tracefs and cgroup2, runs /run/guard-vm/job.sh from the results share, records its exit code and
reboots (QEMU runs with -no-reboot, so a reboot ends it).
"""

from __future__ import annotations

import gzip
import hashlib
import lzma
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
#: Modules the guest needs; their dependencies are added from .modinfo. Absent ones must be built in.
ROOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay", "virtio_rng")
OPTIONAL_MODULES = frozenset({"virtio_rng"})
RESULTS_MOUNT = "/run/guard-vm"

INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /lower /rw /newroot
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "guard-vm: init $(uname -r)"
fail() { echo "guard-vm: FAILED: $*"; reboot -f; sleep 5; }
while read -r m; do
    insmod "/lib/modules/$m" || echo "guard-vm: insmod $m failed"
done < /modules.order
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /lower || fail "mount hostroot"
mount -t tmpfs -o size=75% tmpfs /rw && mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "mount overlay"
for d in proc sys dev run tmp; do mkdir -p /newroot/$d; done
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/shm /newroot/dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /newroot/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts /newroot/dev/pts
# /run and /tmp stay those of the RAM overlay: a tmpfs there would hide a project that lives under them.
mkdir -p /newroot/RESULTS
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results /newroot/RESULTS || fail "mount results"
mount -t securityfs securityfs /newroot/sys/kernel/security
mount -t bpf bpf /newroot/sys/fs/bpf
mount -t tracefs tracefs /newroot/sys/kernel/tracing 2>/dev/null
mount -t cgroup2 cgroup2 /newroot/sys/fs/cgroup
echo "guard-vm: job start"
chroot /newroot /bin/sh RESULTS/job.sh
rc=$?
echo "$rc" > /newroot/RESULTS/exit-code
sync
echo "guard-vm: job exit $rc"
reboot -f
sleep 10
""".replace("RESULTS", RESULTS_MOUNT.lstrip("/"))


class ImageError(Exception):
    """The kernel packages lack something the guest needs."""


@dataclass(frozen=True)
class Artifacts:
    """What QEMU boots."""

    release: str
    vmlinuz: Path
    initrd: Path
    config: Path


# --------------------------------------------------------------------------- cpio (newc)


class Cpio:
    """A minimal writer of the newc cpio format the kernel unpacks as initramfs."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        encoded = name.encode() + b"\0"
        fields = [self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(encoded), 0]
        header = b"070701" + b"".join(b"%08x" % f for f in fields)
        self._ino += 1
        blob = header + encoded
        blob += b"\0" * (-len(blob) % 4)
        blob += data + b"\0" * (-len(data) % 4)
        self._parts.append(blob)

    def directory(self, name: str) -> None:
        """Add a directory."""
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        """Add a regular file."""
        self._entry(name, stat.S_IFREG | mode, data)

    def chardev(self, name: str, major: int, minor: int) -> None:
        """Add a character device node."""
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def build(self) -> bytes:
        """Return the archive with its trailer."""
        self._entry("TRAILER!!!", 0)
        return b"".join(self._parts)


# --------------------------------------------------------------------------- modules


def module_name(path: Path) -> str:
    """The module's name as the kernel knows it: file stem without .ko[.xz|.zst|.gz], '-' as '_'."""
    name = path.name
    for suffix in (".xz", ".zst", ".gz"):
        name = name.removesuffix(suffix)
    return name.removesuffix(".ko").replace("-", "_")


def read_module(path: Path) -> bytes:
    """Return the module's ELF bytes, decompressed."""
    raw = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(raw)
    if path.name.endswith(".gz"):
        return gzip.decompress(raw)
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    return raw


def module_depends(elf: bytes) -> list[str]:
    """The ``depends=`` list of a module's .modinfo section."""
    at = elf.find(b"\0depends=")
    if at < 0:
        return []
    end = elf.index(b"\0", at + 1)
    value = elf[at + len(b"\0depends=") : end].decode()
    return [d.replace("-", "_") for d in value.split(",") if d]


def order_modules(
    roots: tuple[str, ...], available: dict[str, Path], builtin: set[str], optional: frozenset[str]
) -> list[tuple[str, bytes]]:
    """Resolve ``roots`` and their dependencies to (name, ELF) in load order (dependencies first)."""
    ordered: list[tuple[str, bytes]] = []
    done: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in done or name in builtin:
            return
        if name in chain:
            raise ImageError(f"module dependency cycle: {' -> '.join((*chain, name))}")
        if name not in available:
            if name in optional:
                return
            raise ImageError(
                f"module {name} (needed by {chain[-1] if chain else 'the guest'}) is not in the package"
            )
        elf = read_module(available[name])
        for dep in module_depends(elf):
            visit(dep, (*chain, name))
        ordered.append((name, elf))
        done.add(name)

    for root in roots:
        visit(root, ())
    return ordered


# --------------------------------------------------------------------------- building


def _extract(debs: tuple[Path, ...], into: Path) -> None:
    for deb in debs:
        subprocess.run(["dpkg-deb", "-x", str(deb), str(into)], check=True)


def _locate(root: Path, debs: tuple[Path, ...]) -> tuple[Path, Path | None, Path]:
    """Find vmlinuz, the config and the modules dir: boot/ (classic) or usr/lib/modules/<release>/ (split)."""
    names = ", ".join(d.name for d in debs)
    classic = sorted((root / "boot").glob("vmlinuz-*"))
    split = sorted(root.glob("usr/lib/modules/*/vmlinuz"))
    if classic:
        release = classic[0].name.removeprefix("vmlinuz-")
        vmlinuz, config = classic[0], root / "boot" / f"config-{release}"
    elif split:
        release = split[0].parent.name
        vmlinuz, config = split[0], split[0].parent / "config"
    else:
        raise ImageError(f"no vmlinuz in {names}")
    moddirs = [p for p in (root / "lib/modules" / release, root / "usr/lib/modules" / release) if p.exists()]
    if not moddirs or not any(moddirs[0].rglob("*.ko*")):
        raise ImageError(f"no modules for {release} in {names}")
    return vmlinuz, (config if config.exists() else None), moddirs[0]


def _key(spec: str) -> str:
    return hashlib.sha256(
        "\n".join([spec, INIT, *ROOT_MODULES, BUSYBOX.resolve().as_posix()]).encode()
    ).hexdigest()


def cached_artifacts(kernel_id: str, spec: str, cache: Path) -> Artifacts | None:
    """The artifacts built earlier from package ``spec`` (image=version) with this builder, if any."""
    out = cache / "kernels" / kernel_id
    stamp = out / "stamp"
    if not (stamp.exists() and stamp.read_text() == _key(spec)):
        return None
    art = Artifacts((out / "release").read_text(), out / "vmlinuz", out / "initrd.gz", out / "config")
    return art if art.vmlinuz.exists() and art.initrd.exists() else None


def build_artifacts(kernel_id: str, spec: str, debs: tuple[Path, ...], cache: Path) -> Artifacts:
    """Extract the packages once, build the initramfs, keep only what QEMU needs."""
    cached = cached_artifacts(kernel_id, spec, cache)
    if cached is not None:
        return cached
    out = cache / "kernels" / kernel_id
    stamp = out / "stamp"
    key = _key(spec)
    if not BUSYBOX.exists():
        raise ImageError(f"{BUSYBOX} is missing: install busybox-static (make setup)")
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        root = Path(tmp)
        _extract(debs, root)
        vmlinuz, config, moddir = _locate(root, debs)
        release = moddir.name
        available = {module_name(p): p for p in moddir.rglob("*.ko*")}
        builtin_file = moddir / "modules.builtin"
        builtin = (
            {module_name(Path(line)) for line in builtin_file.read_text().split()}
            if builtin_file.exists()
            else set()
        )
        modules = order_modules(ROOT_MODULES, available, builtin, OPTIONAL_MODULES)
        cpio = Cpio()
        for d in ("bin", "dev", "lib", "lib/modules", "proc", "sys"):
            cpio.directory(d)
        cpio.chardev("dev/console", 5, 1)
        cpio.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
        cpio.file("init", INIT.encode(), 0o755)
        for name, elf in modules:
            cpio.file(f"lib/modules/{name}.ko", elf)
        cpio.file("modules.order", "".join(f"{name}.ko\n" for name, _ in modules).encode())
        (out / "initrd.gz").write_bytes(gzip.compress(cpio.build(), compresslevel=6, mtime=0))
        shutil.copyfile(vmlinuz, out / "vmlinuz")
        if config is not None:
            shutil.copyfile(config, out / "config")
        else:
            (out / "config").write_text("")
    (out / "release").write_text(release)
    (out / "modules").write_text("\n".join(name for name, _ in modules) + "\n")
    stamp.write_text(key)
    return Artifacts(release, out / "vmlinuz", out / "initrd.gz", out / "config")
