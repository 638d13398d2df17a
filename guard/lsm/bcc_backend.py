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

import contextlib
import ctypes
import os
import re
from array import array
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from guard.errors import BpfLoadError, KernelUnsupportedError, MapError
from guard.lsm import abi
from guard.lsm.abi import HookId, ModeId
from guard.lsm.btf import Btf
from guard.lsm.probe import lsm_d_path
from guard.lsm.stubtree import ensure_stub_tree
from guard.lsm.verdicts import Action, DfaProgram, DynamicVerdict, VerdictTables, VerdictValue
from guard.model import HOOKS, BackendName

__all__ = ["LsmBackend", "assemble_source", "bpf_source_dir", "offset_flags"]

#: (macro, struct, member path) for every struct offset the C code reads.
OFFSETS = (
    ("GUARD_OFF_FILE_F_PATH", "file", "f_path"),
    ("GUARD_OFF_FILE_F_INODE", "file", "f_inode"),
    ("GUARD_OFF_BINPRM_FILE", "linux_binprm", "file"),
    ("GUARD_OFF_INODE_I_INO", "inode", "i_ino"),
    ("GUARD_OFF_INODE_I_SB", "inode", "i_sb"),
    ("GUARD_OFF_SB_S_DEV", "super_block", "s_dev"),
    ("GUARD_OFF_TASK_TGID", "task_struct", "tgid"),
    ("GUARD_OFF_TASK_PID", "task_struct", "pid"),
    ("GUARD_OFF_MSGHDR_MSG_NAME", "msghdr", "msg_name"),
    ("GUARD_OFF_MSGHDR_MSG_NAMELEN", "msghdr", "msg_namelen"),
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


class LsmBackend:
    """The compiled, attached BPF-LSM programs and typed access to their maps (a KernelBackend)."""

    name = BackendName.LSM

    def __init__(
        self,
        btf: Btf,
        cache_dir: Path,
        *,
        max_paths: int = 16384,
        max_prefixes: int = 4096,
        max_inodes: int = 16384,
        max_nets: int = 16384,
        max_ptrace: int = 1024,
        max_scopes: int = 1024,
        max_entities: int = 65536,
        max_dynamic: int = 65536,
        dfa_trans: int = 65536,
        dfa_states: int = 16384,
        dfa_max_rules: int = 8192,
        ringbuf_pages: int = 64,
    ) -> None:
        for what, n in (("dfa_trans", dfa_trans), ("dfa_states", dfa_states)):
            if n <= 0 or n & (n - 1):
                raise MapError(f"{what}: {n} is not a power of two (the DFA walk masks its indexes)")
        self.btf = btf
        self.cache_dir = cache_dir
        self._dfa_slots: dict[HookId, int] = {}
        self.limits = {
            "paths": max_paths,
            "prefixes": max_prefixes,
            "suffixes": max_prefixes,
            "inodes": max_inodes,
            "nets": max_nets,
            "ptrace": max_ptrace,
            "scopes": max_scopes,
            "dfa_trans": dfa_trans,
            "dfa_states": dfa_states,
            "dfa_rules": dfa_max_rules,
        }
        self.cflags = [
            *offset_flags(btf),
            f"-DGUARD_MAX_PATHS={max_paths}",
            f"-DGUARD_MAX_PREFIXES={max_prefixes}",
            f"-DGUARD_MAX_INODES={max_inodes}",
            f"-DGUARD_MAX_NETS={max_nets}",
            f"-DGUARD_MAX_PTRACE={max_ptrace}",
            f"-DGUARD_MAX_SCOPES={max_scopes}",
            f"-DGUARD_MAX_ENTITIES={max_entities}",
            f"-DGUARD_MAX_DYNAMIC={max_dynamic}",
            f"-DGUARD_DFA_TRANS={dfa_trans}",
            f"-DGUARD_DFA_STATES={dfa_states}",
            f"-DGUARD_DFA_MAX_RULES={dfa_max_rules}",
            f"-DGUARD_RINGBUF_PAGES={ringbuf_pages}",
        ]
        #: False where the kernel's BPF-LSM refuses bpf_d_path (5.10): path verdicts are unavailable.
        self.path_verdicts = True
        self.degraded: list[str] = []
        self._bpf: Any = None
        self._events: list[abi.Event] = []
        self._modes: dict[HookId, ModeId] = {}
        self._agent_tgid = 0
        self._hook_flags: dict[HookId, int] = {}
        self._tables = VerdictTables()
        self._bank = 0
        self._scope_cgroups: set[int] = set()
        self._scope_pids: set[int] = set()

    # ------------------------------------------------------------------ lifecycle

    def load(self) -> None:
        """Compile, load and attach; raise BpfLoadError with the cause on failure.

        Where the verifier refuses bpf_d_path in BPF-LSM programs (probed first with a minimal
        program), the plane is built without path verdicts (inode, network, ptrace and armed
        verdicts still apply) and says so in :attr:`degraded`; :meth:`apply` then refuses path
        rules. Any other load failure is raised, never degraded around.
        """
        os.environ["BCC_KERNEL_SOURCE"] = str(ensure_stub_tree(self.cache_dir))
        source = bpf_source_dir() / "guard.bpf.c"
        text = assemble_source(source)
        cflags = list(self.cflags)
        d_path, why = lsm_d_path(self.btf)
        if not d_path:
            cflags.append("-DGUARD_NO_D_PATH")
            self.path_verdicts = False
            self.degraded.append(
                f"path verdicts unavailable ({why}); inode, network, ptrace and armed verdicts still apply"
            )
        self._bpf = self._compile(text, cflags)
        self._bpf[b"guard_events"].open_ring_buffer(self._on_event)

    @staticmethod
    def _compile(text: str, cflags: list[str]) -> Any:
        from bcc import BPF

        try:
            return BPF(text=text.encode(), cflags=cflags)
        except Exception as exc:  # bcc raises bare Exception for compile and load errors
            message = str(exc)
            if "super-user" in message:
                message = "the kernel refused to load the BPF-LSM programs (EPERM); see `guardctl probe`"
            raise BpfLoadError(f"loading guard.bpf.c: {message}") from exc

    def close(self) -> None:
        """Detach and unload."""
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None

    def __enter__(self) -> LsmBackend:
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def program_fd(self, hook: HookId) -> int:
        """Return the fd of a hook's loaded LSM program (for its run-time statistics)."""
        if self._bpf is None:
            raise MapError(f"{HOOKS[hook].value}: the data plane is not loaded")
        return int(self._bpf.funcs[f"lsm__{HOOKS[hook].value}".encode()].fd)

    # ------------------------------------------------------------------ maps

    def _table(self, name: str) -> Any:
        if self._bpf is None:
            raise MapError(f"{name}: the data plane is not loaded")
        return self._bpf[name.encode()]

    def table_types(self, name: str) -> tuple[type, type]:
        """Bcc's generated ctypes (key, leaf) for a map: the C side's view of the ABI structs."""
        table = self._table(name)
        return table.Key, table.Leaf

    def _write_config(self) -> None:
        table = self._table("guard_config")
        leaf = table.Leaf()
        for hook in HookId:
            leaf.mode[hook] = int(self._modes.get(hook, ModeId.OFF))
            leaf.hook_flags[hook] = self._hook_flags.get(hook, 0)
            leaf.dfa_slot[hook] = self._dfa_slots.get(hook, 0)
        leaf.agent_tgid = self._agent_tgid
        table[table.Key(0)] = leaf

    def configure(self, modes: Mapping[HookId, ModeId], *, agent_tgid: int) -> None:
        """Write every hook's mode (missing: off) and the agent's tgid in one map update."""
        self._modes = dict(modes)
        self._agent_tgid = agent_tgid
        self._write_config()

    def set_scope(self, *, cgroups: Iterable[int] = (), pids: Iterable[int] = ()) -> None:
        """Replace the governed cgroups (v2 ids) and tgids: new entries first, then stale ones removed."""
        new_cgroups, new_pids = set(cgroups), set(pids)
        if max(len(new_cgroups), len(new_pids)) > self.limits["scopes"]:
            raise MapError(f"scope: more than {self.limits['scopes']} cgroups or pids")
        for name, old, new in (
            ("guard_scope_cgroups", self._scope_cgroups, new_cgroups),
            ("guard_scope_pids", self._scope_pids, new_pids),
        ):
            table = self._table(name)
            for item in new - old:
                table[table.Key(item)] = table.Leaf(1)
            for item in old - new:
                with contextlib.suppress(KeyError):
                    del table[table.Key(item)]
        self._scope_cgroups, self._scope_pids = new_cgroups, new_pids

    def _check_capacity(self, tables: VerdictTables) -> None:
        if not self.path_verdicts:
            used = [n for n in ("paths", "prefixes", "suffixes", "dfas") if getattr(tables, n)]
            if used:
                raise KernelUnsupportedError(
                    "path verdicts",
                    f"this kernel's BPF-LSM refuses bpf_d_path; the policy has {', '.join(used)}",
                )
        for name in ("paths", "prefixes", "suffixes", "inodes", "nets", "ptrace"):
            count = len(getattr(tables, name))
            if count > self.limits[name]:
                raise MapError(f"{name} verdicts: {count} entries, over the map's {self.limits[name]}")
        for hook, program in tables.dfas.items():
            t = program.tables
            for what, used_n, limit in (
                ("transitions", len(t.transitions), self.limits["dfa_trans"]),
                ("states", t.num_states, self.limits["dfa_states"]),
            ):
                if used_n > limit:
                    raise MapError(f"DFA of {hook.name.lower()}: {used_n} {what}, over the table's {limit}")
        rules = sum(len(p.rules) for p in tables.dfas.values())
        if rules > self.limits["dfa_rules"] // 2:
            raise MapError(f"DFA: {rules} rules, over the {self.limits['dfa_rules'] // 2} one bank holds")

    def apply(self, tables: VerdictTables) -> None:
        """Replace every static verdict table and the interest flags.

        Capacity and kernel support are checked before anything is written, so a refused policy
        leaves the active one untouched. Each map gets its new entries first (an entry present in
        both is overwritten in place) and loses its stale ones after; the DFA is written into the
        bank the hooks are not reading, and the config write that ends this switches them to it.
        """
        self._check_capacity(tables)
        old = self._tables
        self._sync_map("guard_inodes", old.inodes, tables.inodes, self._inode_key)
        self._sync_map("guard_paths", old.paths, tables.paths, self._path_key)
        self._sync_map("guard_prefixes", old.prefixes, tables.prefixes, self._lpm_key)
        self._sync_map("guard_suffixes", old.suffixes, tables.suffixes, self._lpm_key)
        self._sync_map("guard_nets", old.nets, tables.nets, self._net_key)
        self._sync_map("guard_ptrace_targets", old.ptrace, tables.ptrace, self._u32_key)
        self._write_dfas(tables.dfas)
        self._hook_flags = {hook: int(tables.hook_flags.get(hook, 0)) for hook in HookId}
        for value in tables.suffixes.values():
            for hook in HookId:
                if value.deny[hook] or value.notify[hook]:
                    self._hook_flags[hook] |= abi.HF_HAS_SUFFIXES
        self._write_config()
        self._tables = tables

    def _sync_map(
        self, name: str, old: Mapping[Any, VerdictValue], new: Mapping[Any, VerdictValue], key_of: Any
    ) -> None:
        table = self._table(name)
        for key, value in new.items():
            if old.get(key) != value:
                table[key_of(table, key)] = table.Leaf.from_buffer_copy(value.to_abi())
        for key in old.keys() - new.keys():
            with contextlib.suppress(KeyError):
                del table[key_of(table, key)]

    @staticmethod
    def _path_key(table: Any, path: bytes) -> Any:
        key = table.Key()
        key.path = path
        return key

    @staticmethod
    def _lpm_key(table: Any, entry: tuple[int, bytes]) -> Any:
        key = table.Key()
        key.prefixlen = entry[0]
        key.path = entry[1].rstrip(b"\0")
        return key

    @staticmethod
    def _net_key(table: Any, entry: tuple[int, bytes]) -> Any:
        key = table.Key()
        key.prefixlen = entry[0]
        ctypes.memmove(ctypes.addressof(key.data), entry[1], len(entry[1]))
        return key

    @staticmethod
    def _inode_key(table: Any, entry: tuple[int, int]) -> Any:
        key = table.Key()
        key.dev, key.ino = entry
        return key

    @staticmethod
    def _u32_key(table: Any, entry: int) -> Any:
        return table.Key(entry)

    def _write_dfas(self, dfas: Mapping[HookId, DfaProgram]) -> None:
        """Write every hook's DFA into the bank the hooks are not reading; the config switches them."""
        bank = 1 - self._bank
        table, rules = self._table("guard_dfas"), self._table("guard_dfa_rules")
        rule_base = bank * (self.limits["dfa_rules"] // 2)
        slots: dict[HookId, int] = {}
        for hook, program in sorted(dfas.items()):
            t = program.tables
            slot = bank * abi.HOOK_COUNT + int(hook)
            leaf = table.Leaf()
            leaf.num_states, leaf.num_classes = t.num_states, t.num_classes
            leaf.start, leaf.anchored_start, leaf.dead = t.start, t.anchored_start, t.dead
            leaf.rule_base = rule_base
            ctypes.memmove(ctypes.addressof(leaf.byte_class), t.byte_class, 256)
            states = array("I", [0]) * (2 * t.num_states)
            states[0::2], states[1::2] = t.step_first, t.accept_first
            ctypes.memmove(ctypes.addressof(leaf.states), states.tobytes(), len(states) * 4)
            ctypes.memmove(ctypes.addressof(leaf.trans), t.transitions.tobytes(), len(t.transitions) * 4)
            table[table.Key(slot)] = leaf
            for rule_id, action in program.rules:
                rules[rules.Key(rule_base)] = rules.Leaf(rule_id, int(action))
                rule_base += 1
            slots[hook] = slot + 1
        self._dfa_slots = slots
        self._bank = bank

    # ------------------------------------------------------------------ armed verdicts

    def track(self, tgid: int, group: int) -> None:
        """Put a process into an entity group; its children inherit it in the kernel."""
        table = self._table("guard_entities")
        table[table.Key(tgid)] = table.Leaf(group)

    def untrack(self, tgid: int) -> None:
        """Remove a process from its group (absent is fine)."""
        table = self._table("guard_entities")
        with contextlib.suppress(KeyError):
            del table[table.Key(tgid)]

    def _dyn_key(self, group: int, hook: HookId, dev: int, ino: int) -> Any:
        table = self._table("guard_dynamic")
        key = table.Key()
        key.group, key.hook, key.dev, key.ino = group, int(hook), dev, ino
        return key

    def arm(self, verdict: DynamicVerdict) -> None:
        """Arm a per-entity verdict (replacing one with the same group, hook and target)."""
        table = self._table("guard_dynamic")
        leaf = table.Leaf()
        leaf.rule_id, leaf.action, leaf.expires_ns = verdict.rule_id, int(verdict.action), verdict.expires_ns
        table[self._dyn_key(verdict.group, verdict.hook, verdict.dev, verdict.ino)] = leaf

    def disarm(self, group: int, hook: HookId, *, dev: int = 0, ino: int = 0) -> None:
        """Remove an armed verdict (absent is fine)."""
        table = self._table("guard_dynamic")
        with contextlib.suppress(KeyError):
            del table[self._dyn_key(group, hook, dev, ino)]

    def group_of(self, tgid: int) -> int | None:
        """Return the entity group a process is in (None: untracked)."""
        table = self._table("guard_entities")
        try:
            return int(table[table.Key(tgid)].group)
        except KeyError:
            return None

    def armed(self) -> list[DynamicVerdict]:
        """Return every armed verdict the map holds (an expired one stays until a hook meets it)."""
        items = self._table("guard_dynamic").items()
        return [
            DynamicVerdict(k.group, HookId(k.hook), v.rule_id, Action(v.action), v.expires_ns, k.dev, k.ino)
            for k, v in items
        ]

    # ------------------------------------------------------------------ counters and events

    def counters(self, hook: HookId) -> dict[abi.Counter, int]:
        """Per-hook counters summed over CPUs."""
        table = self._table("guard_counters")
        out = {}
        for counter in abi.Counter:
            values = table.getvalue(table.Key(int(hook) * abi.COUNTER_COUNT + int(counter)))
            out[counter] = int(sum(values))
        return out

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
