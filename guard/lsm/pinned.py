"""Pinned plane state: the maps a plane pins, the bpf filesystem, and modes read or written without a plane.

A plane pins every map but the ring buffers under ``<pin_dir>/layout-<hash>`` so a restarted plane
adopts them (:mod:`guard.lsm.bcc_backend`). :class:`PinnedControl` reads and writes hook and rule
modes in those pins with raw ``bpf(2)`` calls, for ``guardctl enforce|detect|off`` when no agent
runs; it never loads a plane and never imports bcc.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Self

from guard.errors import KernelError, KernelUnsupportedError, MapError
from guard.lsm import abi, bpfsys
from guard.lsm.abi import ModeId
from guard.lsm.probe import mount_bpffs, parse_mountinfo
from guard.model import HOOKS, Hook

__all__ = [
    "BPFFS",
    "PINNED_MAPS",
    "RULE_ID_MAX",
    "PinnedControl",
    "cgroup2_root",
    "check_mode",
    "check_rule_id",
    "check_rule_modes",
    "ensure_bpffs",
    "remove_pins",
]

#: Every map pinned under a plane's pin directory (the ring buffers and scratch space are not).
PINNED_MAPS = (
    "guard_config",
    "guard_scope_cgroups",
    "guard_scope_pids",
    "guard_paths",
    "guard_prefixes",
    "guard_suffixes",
    "guard_inodes",
    "guard_nets",
    "guard_ptrace_targets",
    "guard_subtrees",
    "guard_protect_exes",
    "guard_protect_names",
    "guard_dfas",
    "guard_dfa_rules",
    "guard_entities",
    "guard_dynamic",
    "guard_rule_modes",
    "guard_exempt",
    "guard_counters",
    "guard_decision_drops",
)


#: The largest rule id a map key holds (``__u32``); 0 means "no rule".
RULE_ID_MAX: Final = 0xFFFF_FFFF


def check_rule_id(rule_id: int) -> int:
    """Return ``rule_id`` when a map key can hold it (1..2^32-1), else raise MapError."""
    if isinstance(rule_id, bool) or not isinstance(rule_id, int) or not 0 < rule_id <= RULE_ID_MAX:
        raise MapError(f"guard_rule_modes: rule id {rule_id!r} is not in 1..{RULE_ID_MAX}")
    return rule_id


def check_mode(mode: object, what: str) -> ModeId:
    """Return ``mode`` as a ModeId, or raise MapError naming ``what``."""
    if isinstance(mode, bool) or not isinstance(mode, int):
        raise MapError(f"{what}: mode {mode!r} is not a ModeId")
    try:
        return ModeId(mode)
    except ValueError:
        raise MapError(f"{what}: mode {mode!r} is not a ModeId") from None


def check_rule_modes(modes: Mapping[int, ModeId], limit: int) -> dict[int, ModeId]:
    """Return rule id -> mode after checking ids (1..2^32-1), modes and the map's capacity."""
    out = {check_rule_id(rule): check_mode(mode, f"rule {rule}") for rule, mode in modes.items()}
    if len(out) > limit:
        raise MapError(f"guard_rule_modes: {len(out)} rule modes, over the map's {limit}")
    return out


def cgroup2_root() -> Path:
    """Return the cgroup v2 mount point (hybrid hosts mount it at /sys/fs/cgroup/unified)."""
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError as exc:
        raise KernelError(f"/proc/self/mountinfo: {exc.strerror}") from exc
    for entry in parse_mountinfo(text):
        if entry.fstype == "cgroup2":
            return Path(entry.mount_point)
    raise KernelUnsupportedError("cgroup v2", "no cgroup2 filesystem is mounted")


#: Where the bpf filesystem is mounted when the host has not mounted it.
BPFFS: Final = Path("/sys/fs/bpf")


def ensure_bpffs(path: Path) -> None:
    """Make sure ``path`` lies on a bpf filesystem, mounting one at /sys/fs/bpf when none is."""
    try:
        mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    except OSError as exc:
        raise KernelError(f"/proc/self/mountinfo: {exc.strerror}") from exc
    points = [Path(m.mount_point) for m in mounts if m.fstype == "bpf"]
    if any(path == p or p in path.parents for p in points):
        return
    if not (path == BPFFS or BPFFS in path.parents):
        raise MapError(
            f"{path}: not on a bpf filesystem (mounted at: {', '.join(map(str, points)) or 'none'})"
        )
    mount_bpffs(BPFFS)


def remove_pins(directory: Path) -> None:
    """Remove a layout directory's pins and the directory (what is already gone is fine)."""
    for pin in directory.iterdir():
        with contextlib.suppress(FileNotFoundError):
            pin.unlink()
    with contextlib.suppress(FileNotFoundError):
        directory.rmdir()


class PinnedControl:
    """Hook and rule modes of a pinned plane, read and written without loading one.

    For ``guardctl enforce`` and friends when no agent runs: it opens the layout directory's
    pinned ``guard_config`` and ``guard_rule_modes`` (``BPF_OBJ_GET``) and nothing else. Every
    write is one map update, which the next hook call of whatever programs use those maps sees
    (the cgroup programs a dead agent left attached, or a running plane). A running agent keeps
    its own copy of the modes: its next ``configure()`` or ``set_rule_modes()`` writes its view
    back. A value of another size than this build's ABI is refused, never reinterpreted.
    """

    def __init__(self, layout_dir: Path) -> None:
        self.layout_dir = layout_dir
        self._fds: dict[str, int] = {}
        try:
            for name, key_size, value_size in (
                ("guard_config", 4, ctypes.sizeof(abi.Config)),
                ("guard_rule_modes", 4, 4),
            ):
                pin = layout_dir / name
                if not pin.exists():
                    raise MapError(f"{pin}: not pinned (is {layout_dir} a plane's layout directory?)")
                try:
                    fd = bpfsys.obj_get(pin)
                except KernelError as exc:
                    raise MapError(f"{pin}: cannot open the pinned map: {exc}") from exc
                self._fds[name] = fd
                info = bpfsys.map_info(fd)
                if (info.key_size, info.value_size) != (key_size, value_size):
                    raise MapError(
                        f"{pin}: key/value sizes {info.key_size}/{info.value_size}, this build expects "
                        f"{key_size}/{value_size} (another version's layout)"
                    )
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_pin_dir(cls, pin_dir: Path) -> PinnedControl:
        """Open the one layout under a plane's ``pin_dir`` (``<pin_dir>/layout-<hash>``)."""
        layouts = sorted(pin_dir.glob("layout-*")) if pin_dir.is_dir() else []
        if len(layouts) != 1:
            found = ", ".join(p.name for p in layouts) or "none"
            raise MapError(f"{pin_dir}: expected one pinned layout-* directory, found {found}")
        return cls(layouts[0])

    def close(self) -> None:
        """Close the map fds (the pinned maps stay)."""
        for fd in self._fds.values():
            bpfsys.close_fd(fd)
        self._fds.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fd(self, name: str) -> int:
        fd = self._fds.get(name)
        if fd is None:
            raise MapError(f"{self.layout_dir / name}: closed")
        return fd

    def _config(self) -> abi.Config:
        raw = bpfsys.map_lookup_elem(self._fd("guard_config"), bytes(4), ctypes.sizeof(abi.Config))
        return abi.Config() if raw is None else abi.Config.from_buffer_copy(raw)

    def modes(self) -> dict[Hook, ModeId]:
        """Return every hook's mode as the pinned config holds it."""
        config = self._config()
        return {hook: check_mode(int(config.mode[hook.abi]), f"hook {hook.short}") for hook in HOOKS}

    def set_modes(self, modes: Mapping[Hook, ModeId]) -> None:
        """Set the named hooks' modes (the others keep theirs) in one update of the config."""
        checked = {}
        for hook, mode in modes.items():
            if not isinstance(hook, Hook):
                raise MapError(f"guard_config: {hook!r} is not a hook")
            checked[hook] = check_mode(mode, f"hook {hook!r}")
        config = self._config()
        for hook, mode in checked.items():
            config.mode[hook.abi] = int(mode)
        bpfsys.map_update_elem(self._fd("guard_config"), bytes(4), bytes(config))

    def rule_modes(self) -> dict[int, ModeId]:
        """Return every rule's mode override."""
        fd = self._fd("guard_rule_modes")
        out = {}
        for key in bpfsys.map_keys(fd, 4):
            raw = bpfsys.map_lookup_elem(fd, key, 4)
            if raw is not None:  # deleted between the walk and the lookup
                rule = int.from_bytes(key, "little")
                out[rule] = check_mode(int.from_bytes(raw, "little"), f"rule {rule}")
        return out

    def set_rule_mode(self, rule_id: int, mode: ModeId | None) -> None:
        """Give one rule its own mode (None: it follows its hook's again); one map update."""
        key = check_rule_id(rule_id).to_bytes(4, "little")
        fd = self._fd("guard_rule_modes")
        if mode is None:
            bpfsys.map_delete_elem(fd, key)
        else:
            bpfsys.map_update_elem(fd, key, int(check_mode(mode, f"rule {rule_id}")).to_bytes(4, "little"))
