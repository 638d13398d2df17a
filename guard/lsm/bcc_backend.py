"""Load the BPF data plane with bcc: the only module that imports bcc.

bcc compiles ``bpf/guard.bpf.c`` against a generated stub kernel tree (``stubtree.py``) with struct
offsets from the running kernel's BTF passed as ``-D`` flags, loads it and attaches the LSM
programs. bcc rewrites map methods (``table.lookup(...)``) only in its main file, so the loader
first performs the textual inclusion of our own quoted ``#include "..."`` lines itself (exactly what
the preprocessor would do, with ``#line`` markers so diagnostics still name the original files) and
gives bcc that one file. Every deny is gated on map contents, so the programs, attached before the maps are
filled, allow everything until the agent writes a mode, a scope and verdicts. Load failures are
translated once, here, into :class:`~guard.errors.BpfLoadError` with the real cause (bcc itself says
"need super-user privileges" for every EPERM).
"""

from __future__ import annotations

import ctypes
import os
import re
from importlib import resources
from pathlib import Path
from typing import Any

from guard.errors import BpfLoadError, MapError
from guard.lsm import abi
from guard.lsm.btf import Btf
from guard.lsm.stubtree import ensure_stub_tree

__all__ = ["BccDataPlane", "assemble_source", "bpf_source_dir", "offset_flags"]

#: (macro, struct, member path) for every struct offset the C code reads.
OFFSETS = (
    ("GUARD_OFF_FILE_F_PATH", "file", "f_path"),
    ("GUARD_OFF_FILE_F_INODE", "file", "f_inode"),
    ("GUARD_OFF_BINPRM_FILE", "linux_binprm", "file"),
    ("GUARD_OFF_INODE_I_INO", "inode", "i_ino"),
    ("GUARD_OFF_INODE_I_SB", "inode", "i_sb"),
    ("GUARD_OFF_SB_S_DEV", "super_block", "s_dev"),
)


def bpf_source_dir() -> Path:
    """Find the BPF C sources: ``guard/_bpf`` in a wheel, or the repository's ``bpf/``."""
    packaged = Path(str(resources.files("guard"))) / "_bpf"
    if (packaged / "guard.bpf.c").exists():
        return packaged
    repo = Path(__file__).resolve().parents[2] / "bpf"
    if (repo / "guard.bpf.c").exists():
        return repo
    raise BpfLoadError("BPF sources not found (neither guard/_bpf nor the repository's bpf/)")


_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$')


def assemble_source(entry: Path) -> str:
    """Inline our own ``#include "file"`` lines (each file once) into one C text with #line markers."""
    seen: set[Path] = set()

    def expand(path: Path) -> list[str]:
        path = path.resolve()
        if path in seen:
            return []
        seen.add(path)
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise BpfLoadError(f"{path}: cannot read BPF source: {exc.strerror}") from exc
        out = [f'#line 1 "{path}"']
        for number, line in enumerate(lines, 1):
            m = _INCLUDE.match(line)
            if m is None:
                out.append(line)
                continue
            out.extend(expand(path.parent / m.group(1)))
            out.append(f'#line {number + 1} "{path}"')
        return out

    return "\n".join(expand(entry)) + "\n"


def offset_flags(btf: Btf) -> list[str]:
    """``-D`` flags with the running kernel's struct offsets."""
    return [f"-D{macro}={btf.offsetof(struct, member)}" for macro, struct, member in OFFSETS]


class BccDataPlane:
    """The compiled, attached programs and typed access to their maps."""

    def __init__(
        self,
        btf: Btf,
        cache_dir: Path,
        *,
        max_paths: int = 16384,
        max_inodes: int = 16384,
        max_scopes: int = 1024,
        ringbuf_pages: int = 64,
    ) -> None:
        self.btf = btf
        self.cache_dir = cache_dir
        self.cflags = [
            *offset_flags(btf),
            f"-DGUARD_MAX_PATHS={max_paths}",
            f"-DGUARD_MAX_INODES={max_inodes}",
            f"-DGUARD_MAX_SCOPES={max_scopes}",
            f"-DGUARD_RINGBUF_PAGES={ringbuf_pages}",
        ]
        self._bpf: Any = None
        self._events: list[abi.Event] = []

    # ------------------------------------------------------------------ lifecycle

    def load(self) -> None:
        """Compile, load and attach; raise BpfLoadError with the cause on failure."""
        os.environ["BCC_KERNEL_SOURCE"] = str(ensure_stub_tree(self.cache_dir))
        from bcc import BPF

        source = bpf_source_dir() / "guard.bpf.c"
        text = assemble_source(source)
        try:
            self._bpf = BPF(text=text.encode(), cflags=self.cflags)
        except Exception as exc:  # bcc raises bare Exception for compile and load errors
            message = str(exc)
            if "super-user" in message:
                message = "the kernel refused to load the BPF-LSM programs (EPERM); see `guardctl probe`"
            raise BpfLoadError(f"loading {source.name}: {message}") from exc
        self._bpf[b"guard_events"].open_ring_buffer(self._on_event)

    def close(self) -> None:
        """Detach and unload."""
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None

    def __enter__(self) -> BccDataPlane:
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ maps

    def _table(self, name: str) -> Any:
        if self._bpf is None:
            raise MapError(f"{name}: the data plane is not loaded")
        return self._bpf[name.encode()]

    def table_types(self, name: str) -> tuple[type, type]:
        """Bcc's generated ctypes (key, leaf) for a map: the C side's view of the ABI structs."""
        table = self._table(name)
        return table.Key, table.Leaf

    def configure(self, modes: dict[abi.HookId, abi.ModeId], agent_tgid: int) -> None:
        """Write the per-hook modes and the agent's tgid in one map update."""
        table = self._table("guard_config")
        leaf = table.Leaf()
        for hook in abi.HookId:
            leaf.mode[hook] = int(modes.get(hook, abi.ModeId.OFF))
        leaf.agent_tgid = agent_tgid
        table[table.Key(0)] = leaf

    def add_scope_cgroup(self, cgroup_id: int) -> None:
        """Govern the tasks of a cgroup (v2 id = the directory's inode number)."""
        table = self._table("guard_scope_cgroups")
        table[table.Key(cgroup_id)] = table.Leaf(1)

    def deny_path(self, path: str, rule_id: int) -> None:
        """Add an exact-path verdict."""
        raw = path.encode()
        if not 0 < len(raw) < abi.PATH_MAX:
            raise MapError(f"path {path!r}: must be 1..{abi.PATH_MAX - 1} bytes")
        table = self._table("guard_deny_paths")
        key = table.Key()
        key.path = raw
        leaf = table.Leaf()
        leaf.rule_id = rule_id
        table[key] = leaf

    def deny_inode(self, dev: int, ino: int, rule_id: int) -> None:
        """Add an executable verdict by (device, inode); ``dev`` is the kernel dev_t (major << 20 | minor)."""
        table = self._table("guard_deny_inodes")
        key = table.Key()
        key.dev, key.ino = dev, ino
        leaf = table.Leaf()
        leaf.rule_id = rule_id
        table[key] = leaf

    def counters(self, hook: abi.HookId) -> dict[abi.Counter, int]:
        """Per-hook counters summed over CPUs."""
        table = self._table("guard_counters")
        out = {}
        for counter in abi.Counter:
            values = table.getvalue(table.Key(int(hook) * abi.COUNTER_COUNT + int(counter)))
            out[counter] = int(sum(values))
        return out

    # ------------------------------------------------------------------ events

    def _on_event(self, _ctx: object, data: int, size: int) -> None:
        if size >= ctypes.sizeof(abi.Event):
            self._events.append(abi.Event.from_buffer_copy(ctypes.string_at(data, ctypes.sizeof(abi.Event))))

    def poll_events(self, timeout_ms: int = 100) -> list[abi.Event]:
        """Read what the ring buffer holds (waiting up to ``timeout_ms``)."""
        if self._bpf is None:
            raise MapError("guard_events: the data plane is not loaded")
        self._bpf.ring_buffer_poll(timeout_ms)
        events, self._events = self._events, []
        return events
