"""The kernel probe: what this kernel offers and which backend the agent would run.

Every check asks the kernel directly: BTF is parsed, the active LSM list is read
from securityfs (mounted privately when the host has not mounted it), and no-op
programs are loaded with the raw ``bpf(2)`` call so the errno and verifier log
reach the operator unchanged. The probe leaves nothing behind: programs, links,
maps, temporary mounts and its temporary cgroup are released before it returns.
Nothing it loads can deny anything: each program returns "allow".
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.util
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from guard.errors import BpfLoadError, BtfError, KernelError
from guard.lsm import bpfsys
from guard.lsm.btf import DEFAULT_BTF_PATH, Btf
from guard.model import HOOKS, BackendName, Hook

__all__ = [
    "COMPAT_NEEDS",
    "FEATURES",
    "LSM_NEEDS",
    "Feature",
    "HookStatus",
    "MountEntry",
    "ProbeReport",
    "choose_backend",
    "hook_enforcement",
    "lsm_d_path",
    "mount_bpffs",
    "parse_capabilities",
    "parse_mountinfo",
    "probe_kernel",
]

#: Feature names, in report order. The JSON report has exactly these keys.
FEATURES: Final[tuple[str, ...]] = (
    "btf",
    "capabilities",
    "securityfs",
    "lsm_active",
    "lsm_program",
    "ring_buffer",
    "cgroup_v2",
    "bpffs",
    "cgroup_sock_addr",
    "raw_tracepoint",
    "syscall_tracepoints",
    "send_signal",
    "landlock",
    "bcc",
    "lockdown",
)

#: What each backend needs (feature names).
_BPF_FUNC_D_PATH: Final = 147

LSM_NEEDS: Final[tuple[str, ...]] = ("btf", "lsm_active", "lsm_program", "ring_buffer", "bcc")
COMPAT_NEEDS: Final[tuple[str, ...]] = (
    "btf",
    "cgroup_v2",
    "cgroup_sock_addr",
    "raw_tracepoint",
    "ring_buffer",
    "bcc",
)

_CAP_NAMES: Final[dict[int, str]] = {21: "CAP_SYS_ADMIN", 38: "CAP_PERFMON", 39: "CAP_BPF", 5: "CAP_KILL"}
_BPF_FUNC_SEND_SIGNAL: Final = 109
_SIGKILL: Final = 9
_RINGBUF_BYTES: Final = 4096


@dataclass(frozen=True, slots=True)
class Feature:
    """One probed kernel feature: whether the agent can use it, and why (not)."""

    name: str
    available: bool
    detail: str


@dataclass(frozen=True, slots=True)
class HookStatus:
    """One LSM hook: does a BPF-LSM program load on it, its prototype, and what the backend can do there."""

    hook: Hook
    lsm_program: bool
    prototype: str
    detail: str
    enforcement: str


@dataclass(frozen=True, slots=True)
class MountEntry:
    """One line of /proc/self/mountinfo (the fields the probe uses)."""

    mount_point: str
    fstype: str
    source: str


@dataclass(frozen=True, slots=True)
class ProbeReport:
    """The whole probe result; :meth:`to_json` is the stable machine form."""

    kernel: str
    features: tuple[Feature, ...]
    hooks: tuple[HookStatus, ...]
    backend: BackendName
    reasons: tuple[str, ...]
    lsms: tuple[str, ...] = ()
    elapsed_s: float = 0.0
    schema: int = field(default=1)

    def feature(self, name: str) -> Feature:
        """Return a feature by name (KeyError if unknown)."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_json(self) -> dict[str, object]:
        """Return the report as JSON-ready data (schema 1)."""
        return {
            "schema": self.schema,
            "kernel": self.kernel,
            "backend": self.backend.value,
            "reasons": list(self.reasons),
            "active_lsms": list(self.lsms),
            "features": {f.name: {"available": f.available, "detail": f.detail} for f in self.features},
            "hooks": {
                h.hook.value: {
                    "lsm_program": h.lsm_program,
                    "enforcement": h.enforcement,
                    "prototype": h.prototype,
                    "detail": h.detail,
                }
                for h in self.hooks
            },
            "elapsed_s": round(self.elapsed_s, 3),
        }


# --------------------------------------------------------------------------- parsing (pure)


def _unescape_mount(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def parse_mountinfo(text: str) -> tuple[MountEntry, ...]:
    """Parse /proc/<pid>/mountinfo text."""
    entries: list[MountEntry] = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        fields = left.split()
        rfields = right.split()
        if len(fields) < 5 or len(rfields) < 2:
            continue
        entries.append(MountEntry(_unescape_mount(fields[4]), rfields[0], rfields[1]))
    return tuple(entries)


def parse_capabilities(status_text: str) -> frozenset[str]:
    """Return the names of the BPF-relevant effective capabilities in /proc/self/status text."""
    for line in status_text.splitlines():
        if line.startswith("CapEff:"):
            bits = int(line.split()[1], 16)
            return frozenset(name for bit, name in _CAP_NAMES.items() if bits >> bit & 1)
    return frozenset()


def hook_enforcement(
    backend: BackendName, hook: Hook, features: Mapping[str, Feature], lsm_loads: bool
) -> str:
    """Say what ``backend`` can do on ``hook`` given the kernel's features (the hook's plane facts)."""

    def has(names: Iterable[str]) -> bool:
        return all(name in features and features[name].available for name in names)

    if backend is BackendName.LSM:
        return hook.lsm.reaction.value if lsm_loads else "none (hook program refused)"
    if backend is BackendName.COMPAT:
        facts = hook.compat
        if not has(facts.sees):
            return "none (no tracepoint sees this hook's calls)"
        return facts.reaction.value if has(facts.needs) else "detect only"
    return "none (fake backend: nothing is enforced)"


def choose_backend(features: Mapping[str, Feature]) -> tuple[BackendName, tuple[str, ...]]:
    """Pick the strongest backend the features allow, with the reasons for the choice."""
    reasons: list[str] = []
    missing_lsm = [n for n in LSM_NEEDS if not (n in features and features[n].available)]
    if not missing_lsm:
        return BackendName.LSM, (
            "lsm: BPF-LSM programs load and attach, the bpf LSM is active, ring buffer ok",
        )
    for n in missing_lsm:
        detail = features[n].detail if n in features else "not probed"
        reasons.append(f"lsm unusable: {n}: {detail}")
    missing_compat = [n for n in COMPAT_NEEDS if not (n in features and features[n].available)]
    if not missing_compat:
        reasons.append(
            "compat: cgroup connect/sendmsg programs give an inline deny for network; "
            "exec, file open and ptrace get tracepoint telemetry and a kill reaction"
        )
        return BackendName.COMPAT, tuple(reasons)
    for n in missing_compat:
        detail = features[n].detail if n in features else "not probed"
        reasons.append(f"compat unusable: {n}: {detail}")
    reasons.append("fake: nothing can be enforced on this kernel")
    return BackendName.FAKE, tuple(reasons)


# --------------------------------------------------------------------------- system access

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _mount(source: str, target: str, fstype: str) -> None:
    if _libc.mount(source.encode(), target.encode(), fstype.encode(), 0, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def mount_bpffs(target: Path) -> None:
    """Mount the bpf filesystem at ``target`` (raise KernelError naming the errno)."""
    try:
        target.mkdir(parents=True, exist_ok=True)
        _mount("bpf", str(target), "bpf")
    except OSError as exc:
        raise KernelError(f"mount -t bpf bpf {target}: {exc.strerror}") from exc


def _umount(target: str) -> None:
    _libc.umount2(target.encode(), 0)


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _securityfs_files(mounts: Iterable[MountEntry]) -> tuple[Feature, dict[str, str]]:
    """Read lsm and lockdown from securityfs, mounting it privately if nobody has."""
    names = ("lsm", "lockdown")
    for m in mounts:
        if m.fstype == "securityfs":
            out = {n: (_read(f"{m.mount_point}/{n}") or "").strip() for n in names}
            return Feature("securityfs", True, f"mounted at {m.mount_point}"), out
    tmp = tempfile.mkdtemp(prefix="guard-securityfs-")
    try:
        _mount("securityfs", tmp, "securityfs")
    except OSError as exc:
        os.rmdir(tmp)
        return Feature("securityfs", False, f"not mounted, and a private mount failed: {exc.strerror}"), {}
    try:
        out = {n: (_read(f"{tmp}/{n}") or "").strip() for n in names}
    finally:
        _umount(tmp)
        os.rmdir(tmp)
    return Feature("securityfs", True, "not mounted on this host; read through a private mount"), out


def _probe_btf(path: str) -> tuple[Feature, Btf | None]:
    try:
        btf = Btf.from_file(path)
    except BtfError as exc:
        return Feature("btf", False, str(exc)), None
    size = os.path.getsize(path)
    return Feature("btf", True, f"{path}: {btf.type_count} types, {size / 1e6:.1f} MB"), btf


def _load_error_text(exc: BpfLoadError, caps: frozenset[str]) -> str:
    text = str(exc)
    log = exc.verifier_log.strip().splitlines()
    text += f"; verifier log: {log[-1]}" if log else "; empty verifier log"
    if exc.errno == 1 and {"CAP_BPF", "CAP_SYS_ADMIN"} <= caps:
        text += " (this process holds CAP_BPF and CAP_SYS_ADMIN: the kernel itself refuses it)"
    elif exc.errno == 1:
        text += " (missing CAP_BPF/CAP_SYS_ADMIN)"
    return text


def _noop_lsm(btf: Btf, hook: Hook, *, attach: bool) -> str:
    """Load (and optionally attach, then detach) an allow-all LSM program; return what happened."""
    fd = bpfsys.prog_load(
        bpfsys.ProgType.LSM,
        [bpfsys.mov64_imm(0, 0), bpfsys.exit_insn()],
        name="guard_probe",
        expected_attach_type=bpfsys.AttachType.LSM_MAC,
        attach_btf_id=btf.func_id(hook.lsm_function),
    )
    with bpfsys.owned_fd(fd):
        if not attach:
            return "loads"
        link = bpfsys.raw_tracepoint_open(fd, None)
        bpfsys.close_fd(link)
        return "loads and attaches (allow-all, detached at once)"


def lsm_d_path(btf: Btf) -> tuple[bool, str]:
    """Return whether BPF-LSM programs may call bpf_d_path here (5.10's verifier refuses it), and why.

    Loads (never attaches) a file_open program that resolves ``file->f_path`` into a stack buffer,
    exactly the call the data plane's file hooks make.
    """
    f_path = btf.offsetof("file", "f_path")
    insns = [
        bpfsys.Insn(0x7A, dst=10, off=-16),  # *(u64 *)(r10 - 16) = 0
        bpfsys.Insn(0x7A, dst=10, off=-8),  # *(u64 *)(r10 - 8) = 0
        bpfsys.Insn(0x79, dst=1, src=1),  # r1 = ctx[0]: struct file *
        bpfsys.Insn(0x07, dst=1, imm=f_path),  # r1 = &file->f_path
        bpfsys.Insn(0xBF, dst=2, src=10),  # r2 = r10
        bpfsys.Insn(0x07, dst=2, imm=-16),  # r2 = buffer
        bpfsys.mov64_imm(3, 16),
        bpfsys.call_helper(_BPF_FUNC_D_PATH),
        bpfsys.mov64_imm(0, 0),
        bpfsys.exit_insn(),
    ]
    try:
        fd = bpfsys.prog_load(
            bpfsys.ProgType.LSM,
            insns,
            name="guard_probe",
            expected_attach_type=bpfsys.AttachType.LSM_MAC,
            attach_btf_id=btf.func_id(Hook.FILE_OPEN.lsm_function),
        )
    except BpfLoadError as exc:
        log = exc.verifier_log.strip().splitlines()
        return False, f"bpf_d_path in BPF-LSM: {exc}" + (f"; verifier log: {log[-1]}" if log else "")
    bpfsys.close_fd(fd)
    return True, "bpf_d_path in BPF-LSM: loads"


@dataclass(frozen=True, slots=True)
class _HookProbe:
    loads: bool
    prototype: str
    detail: str


def _probe_hook(btf: Btf, hook: Hook, caps: frozenset[str]) -> _HookProbe:
    try:
        prototype = btf.lsm_hook(hook.value).render()
    except BtfError as exc:
        return _HookProbe(False, "", str(exc))
    try:
        return _HookProbe(True, prototype, _noop_lsm(btf, hook, attach=hook is Hook.FILE_OPEN))
    except BpfLoadError as exc:
        return _HookProbe(False, prototype, _load_error_text(exc, caps))
    except KernelError as exc:
        return _HookProbe(False, prototype, f"loads, but attach failed: {exc}")


def _probe_lsm(
    btf: Btf | None, caps: frozenset[str], lsms: tuple[str, ...]
) -> tuple[Feature, dict[Hook, _HookProbe]]:
    if btf is None:
        missing = _HookProbe(False, "", "no BTF: BPF-LSM programs attach by BTF id")
        return Feature("lsm_program", False, missing.detail), dict.fromkeys(HOOKS, missing)
    hooks = {h: _probe_hook(btf, h, caps) for h in HOOKS}
    first = hooks[Hook.FILE_OPEN]
    detail = f"no-op program on {Hook.FILE_OPEN.lsm_function}: {first.detail}"
    if first.loads and "bpf" not in lsms:
        detail += " (but 'bpf' is not an active LSM, so it would never run)"
    return Feature("lsm_program", first.loads, detail), hooks


def _probe_ringbuf() -> Feature:
    try:
        fd = bpfsys.map_create(bpfsys.MapType.RINGBUF, 0, 0, _RINGBUF_BYTES, name="guard_probe")
    except KernelError as exc:
        return Feature("ring_buffer", False, str(exc))
    bpfsys.close_fd(fd)
    return Feature("ring_buffer", True, "BPF_MAP_TYPE_RINGBUF creates")


def _probe_cgroup(mounts: tuple[MountEntry, ...]) -> tuple[Feature, str | None]:
    v2 = [m.mount_point for m in mounts if m.fstype == "cgroup2"]
    v1 = [m for m in mounts if m.fstype == "cgroup"]
    if not v2:
        layout = "legacy (v1 only)" if v1 else "no cgroup filesystem mounted"
        return Feature("cgroup_v2", False, f"no cgroup2 mount: {layout}"), None
    root = v2[0]
    layout = "hybrid (v1 controllers + v2)" if v1 else "unified"
    own = ""
    for line in (_read("/proc/self/cgroup") or "").splitlines():
        if line.startswith("0::"):
            own = line[3:]
    return Feature(
        "cgroup_v2", True, f"mounted at {root}, {layout} hierarchy, this process in {own or '?'}"
    ), root


def _probe_sock_addr(cgroup_root: str | None) -> Feature:
    insns = [bpfsys.mov64_imm(0, 1), bpfsys.exit_insn()]  # 1 = allow
    try:
        fd = bpfsys.prog_load(
            bpfsys.ProgType.CGROUP_SOCK_ADDR,
            insns,
            expected_attach_type=bpfsys.AttachType.CGROUP_INET4_CONNECT,
        )
    except BpfLoadError as exc:
        return Feature("cgroup_sock_addr", False, str(exc))
    with bpfsys.owned_fd(fd):
        if cgroup_root is None:
            return Feature(
                "cgroup_sock_addr", False, "connect4 program loads, but there is no cgroup v2 to attach to"
            )
        cg = tempfile.mkdtemp(prefix=f"guard-probe-{os.getpid()}-", dir=cgroup_root)
        try:
            cfd = os.open(cg, os.O_RDONLY | os.O_DIRECTORY)
            with bpfsys.owned_fd(cfd):
                bpfsys.prog_attach(fd, cfd, bpfsys.AttachType.CGROUP_INET4_CONNECT)
                bpfsys.prog_detach(fd, cfd, bpfsys.AttachType.CGROUP_INET4_CONNECT)
        except KernelError as exc:
            return Feature("cgroup_sock_addr", False, f"connect4 program loads, but {exc}")
        except OSError as exc:
            return Feature("cgroup_sock_addr", False, f"cannot use a test cgroup under {cgroup_root}: {exc}")
        finally:
            os.rmdir(cg)
    return Feature("cgroup_sock_addr", True, "connect4 program loads and attaches to an empty test cgroup")


def _probe_raw_tp() -> Feature:
    try:
        fd = bpfsys.prog_load(bpfsys.ProgType.RAW_TRACEPOINT, [bpfsys.mov64_imm(0, 0), bpfsys.exit_insn()])
    except BpfLoadError as exc:
        return Feature("raw_tracepoint", False, str(exc))
    with bpfsys.owned_fd(fd):
        try:
            link = bpfsys.raw_tracepoint_open(fd, "sched_process_exec")
        except KernelError as exc:
            return Feature("raw_tracepoint", False, f"loads, but attach failed: {exc}")
        bpfsys.close_fd(link)
    return Feature("raw_tracepoint", True, "no-op program loads and attaches to sched_process_exec")


def _probe_syscall_tracepoints() -> Feature:
    """Check sys_enter / sys_exit: the compat plane sees opens and ptrace there (syscall tracepoints)."""
    try:
        fd = bpfsys.prog_load(bpfsys.ProgType.RAW_TRACEPOINT, [bpfsys.mov64_imm(0, 0), bpfsys.exit_insn()])
    except BpfLoadError as exc:
        return Feature("syscall_tracepoints", False, str(exc))
    with bpfsys.owned_fd(fd):
        for name in ("sys_enter", "sys_exit"):
            try:
                bpfsys.close_fd(bpfsys.raw_tracepoint_open(fd, name))
            except KernelError as exc:
                return Feature("syscall_tracepoints", False, f"{name}: {exc}")
    return Feature("syscall_tracepoints", True, "no-op program attaches to sys_enter and sys_exit")


def _probe_send_signal() -> Feature:
    insns = [
        bpfsys.mov64_imm(1, _SIGKILL),
        bpfsys.call_helper(_BPF_FUNC_SEND_SIGNAL),
        bpfsys.mov64_imm(0, 0),
        bpfsys.exit_insn(),
    ]
    try:
        fd = bpfsys.prog_load(bpfsys.ProgType.RAW_TRACEPOINT, insns)  # loaded only, never attached
    except BpfLoadError as exc:
        return Feature("send_signal", False, str(exc))
    bpfsys.close_fd(fd)
    return Feature("send_signal", True, "bpf_send_signal passes the verifier in a raw tracepoint program")


def _probe_bpffs(mounts: tuple[MountEntry, ...]) -> Feature:
    points = [m.mount_point for m in mounts if m.fstype == "bpf"]
    if points:
        return Feature("bpffs", True, f"mounted at {', '.join(points)}")
    if "\tbpf\n" in (_read("/proc/filesystems") or ""):
        return Feature("bpffs", True, "supported, not mounted (the agent mounts it at /sys/fs/bpf)")
    return Feature("bpffs", False, "the bpf filesystem is not in /proc/filesystems: maps cannot be pinned")


def _probe_landlock() -> Feature:
    try:
        return Feature("landlock", True, f"ABI version {bpfsys.landlock_abi_version()}")
    except KernelError as exc:
        return Feature("landlock", False, str(exc))


def _probe_bcc() -> Feature:
    spec = importlib.util.find_spec("bcc")
    if spec is None or spec.origin is None:
        return Feature(
            "bcc", False, "Python module bcc not importable: run `make setup` (Debian python3-bpfcc)"
        )
    pkg = Path(spec.origin).parent
    if not (pkg / "libbcc.py").exists():
        return Feature("bcc", False, f"{pkg} is not BCC (PyPI's 'bcc' is an unrelated package): remove it")
    match = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", _read(str(pkg / "version.py")) or "")
    lib = ctypes.util.find_library("bcc")
    if lib is None:
        return Feature(
            "bcc", False, f"bcc {match.group(1) if match else '?'} found, but libbcc.so is missing"
        )
    return Feature("bcc", True, f"bcc {match.group(1) if match else '?'} ({lib})")


def _probe_caps() -> tuple[Feature, frozenset[str]]:
    caps = parse_capabilities(_read("/proc/self/status") or "")
    needed = {"CAP_BPF", "CAP_SYS_ADMIN"}
    have = ", ".join(sorted(caps)) or "none"
    return Feature("capabilities", needed <= caps, f"effective: {have}"), caps


def probe_kernel(
    btf_path: str = DEFAULT_BTF_PATH, *, clock: Callable[[], float] = time.monotonic
) -> ProbeReport:
    """Probe the running kernel (needs root) and choose a backend."""
    start = clock()
    mounts = parse_mountinfo(_read("/proc/self/mountinfo") or "")
    btf_feature, btf = _probe_btf(btf_path)
    caps_feature, caps = _probe_caps()
    sec_feature, sec = _securityfs_files(mounts)
    lsms = tuple(x for x in sec.get("lsm", "").split(",") if x)
    if not sec_feature.available:
        lsm_active = Feature("lsm_active", False, "cannot read the active LSM list: " + sec_feature.detail)
    elif "bpf" in lsms:
        lsm_active = Feature("lsm_active", True, ",".join(lsms))
    else:
        lsm_active = Feature(
            "lsm_active", False, f"'bpf' not among active LSMs ({','.join(lsms)}): add it to lsm="
        )
    lockdown = sec.get("lockdown", "")
    mode = m.group(1) if (m := re.search(r"\[(\w+)\]", lockdown)) else "unknown"
    lockdown_feature = Feature(
        "lockdown",
        mode != "confidentiality",
        f"{mode}" + (" (bpf_probe_write_user refused)" if mode != "none" else ""),
    )
    lsm_program, hooks = _probe_lsm(btf, caps, lsms)
    cgroup_feature, cgroup_root = _probe_cgroup(mounts)
    features = {
        f.name: f
        for f in (
            btf_feature,
            caps_feature,
            sec_feature,
            lsm_active,
            lsm_program,
            _probe_ringbuf(),
            cgroup_feature,
            _probe_bpffs(mounts),
            _probe_sock_addr(cgroup_root),
            _probe_raw_tp(),
            _probe_syscall_tracepoints(),
            _probe_send_signal(),
            _probe_landlock(),
            _probe_bcc(),
            lockdown_feature,
        )
    }
    backend, reasons = choose_backend(features)
    final_hooks = tuple(
        HookStatus(h, p.loads, p.prototype, p.detail, hook_enforcement(backend, h, features, p.loads))
        for h, p in hooks.items()
    )
    return ProbeReport(
        kernel=os.uname().release,
        features=tuple(features[n] for n in FEATURES),
        hooks=final_hooks,
        backend=backend,
        reasons=reasons,
        lsms=lsms,
        elapsed_s=clock() - start,
    )
