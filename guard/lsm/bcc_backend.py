"""Load the BPF data planes with bcc: the only module that imports bcc.

Two planes share one map layout and decision (``bpf/include``): :class:`LsmBackend` attaches the
BPF-LSM programs of ``bpf/guard.bpf.c``; :class:`CompatBackend`, for kernels whose BPF-LSM is
unusable, attaches ``bpf/compat.bpf.c``: cgroup sock_addr programs on the scope's cgroups (an
inline deny for connect and sendmsg) and raw tracepoints for exec, file open and ptrace (telemetry,
and a kill reaction from the kernel for a deny under enforce).

bcc compiles the text :mod:`guard.lsm.source` assembles (our own includes inlined) against a
generated stub kernel tree (``stubtree.py``) with struct offsets from the running kernel's BTF passed
as ``-D`` flags, loads it and attaches the programs; the maps are pinned as :mod:`guard.lsm.pinned`
lays them out. Every deny is gated on map contents, so the programs, attached before the maps are
filled, allow everything until the agent writes a mode, a scope and verdicts. Load failures are
translated once, here, into :class:`~guard.errors.BpfLoadError` with the real cause (bcc itself says
"need super-user privileges" for every EPERM).

Size: over 700 lines on purpose. It is one concept, the bcc plane: the shared ``_BccPlane`` (load,
adopt pins, write every map a policy needs in the no-gap order, arm, read counters and the ring) and
its two attach strategies, which differ only in how programs reach the kernel. Splitting them would
put bcc imports in a second module or spread one map layout across files.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
from array import array
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Self

from guard.errors import BpfLoadError, BtfError, KernelError, KernelUnsupportedError, MapError
from guard.lsm import abi, bpfsys
from guard.lsm.abi import ModeId
from guard.lsm.backend import DropKey
from guard.lsm.btf import Btf
from guard.lsm.pinned import PINNED_MAPS, cgroup2_root, check_rule_modes, ensure_bpffs, remove_pins
from guard.lsm.probe import lsm_d_path
from guard.lsm.ring import RingDecoder
from guard.lsm.source import (
    COMPAT_OFFSETS,
    PROC_OFFSETS,
    WALK_OFFSETS,
    assemble_source,
    bpf_source_dir,
    offset_flags,
)
from guard.lsm.stubtree import ensure_stub_tree
from guard.lsm.verdicts import (
    Action,
    DfaProgram,
    DynamicVerdict,
    VerdictTables,
    VerdictValue,
    atom_masks,
    cond_masks,
    subject_bits,
)
from guard.model import HOOKS, BackendName, Hook, Telemetry

__all__ = ["SOCK_ADDR_PROGRAMS", "CompatBackend", "LsmBackend"]


class _BccPlane:
    """What both planes share: compilation, typed access to the maps, pinning and adoption.

    With ``pin_dir`` every map but the ring buffers is pinned in a subdirectory named after the
    layout (the C sources and every size flag), so a plane loaded again with the same layout adopts
    the maps a previous instance left: modes, scope, static and armed verdicts carry over, and the
    first :meth:`apply` removes whatever the new policy no longer holds. A different layout starts
    from empty maps (the stale layout's pins are removed).
    """

    name: BackendName
    entry = "guard.bpf.c"

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
        max_rule_modes: int = 4096,
        max_exempt: int = 4096,
        dfa_trans: int = 65536,
        dfa_states: int = 16384,
        dfa_max_rules: int = 8192,
        ringbuf_pages: int = 64,
        decision_ringbuf_pages: int = 64,
        proc_ringbuf_pages: int = 64,
        max_decision_drops: int = 4096,
        pin_dir: Path | None = None,
    ) -> None:
        for what, n in (("dfa_trans", dfa_trans), ("dfa_states", dfa_states)):
            if n <= 0 or n & (n - 1):
                raise MapError(f"{what}: {n} is not a power of two (the DFA walk masks its indexes)")
        self.btf = btf
        self.cache_dir = cache_dir
        self._dfa_slots: dict[Hook, int] = {}
        self.limits = {
            "paths": max_paths,
            "prefixes": max_prefixes,
            "suffixes": max_prefixes,
            "inodes": max_inodes,
            "nets": max_nets,
            "ptrace": max_ptrace,
            "scopes": max_scopes,
            "rule_modes": max_rule_modes,
            "exemptions": max_exempt,
            "dfa_trans": dfa_trans,
            "dfa_states": dfa_states,
            "dfa_rules": dfa_max_rules,
            "subtrees": SUBTREES_MAX,
            "protect_exes": PROTECT_MAX,
            "protect_names": PROTECT_MAX,
            "subject_atoms": SUBJECT_ATOMS_MAX,
        }
        self.cflags = [
            *offset_flags(btf),
            *offset_flags(btf, WALK_OFFSETS),
            *offset_flags(btf, PROC_OFFSETS),
            *offset_flags(btf, COMPAT_OFFSETS),  # the fd table and syscall registers (both planes)
            f"-DGUARD_MAX_PATHS={max_paths}",
            f"-DGUARD_MAX_PREFIXES={max_prefixes}",
            f"-DGUARD_MAX_INODES={max_inodes}",
            f"-DGUARD_MAX_NETS={max_nets}",
            f"-DGUARD_MAX_PTRACE={max_ptrace}",
            f"-DGUARD_MAX_SCOPES={max_scopes}",
            f"-DGUARD_MAX_ENTITIES={max_entities}",
            f"-DGUARD_MAX_DYNAMIC={max_dynamic}",
            f"-DGUARD_MAX_RULE_MODES={max_rule_modes}",
            f"-DGUARD_MAX_EXEMPT={max_exempt}",
            f"-DGUARD_DFA_TRANS={dfa_trans}",
            f"-DGUARD_DFA_STATES={dfa_states}",
            f"-DGUARD_DFA_MAX_RULES={dfa_max_rules}",
            f"-DGUARD_RINGBUF_PAGES={ringbuf_pages}",
            f"-DGUARD_DECISION_RINGBUF_PAGES={decision_ringbuf_pages}",
            f"-DGUARD_PROC_RINGBUF_PAGES={proc_ringbuf_pages}",
            f"-DGUARD_MAX_DECISION_DROPS={max_decision_drops}",
        ]
        #: False where the kernel's BPF-LSM refuses bpf_d_path (5.10): path verdicts are unavailable.
        self.path_verdicts = True
        self.degraded: list[str] = []
        #: Whether governed chmods are reported (GUARD_EVENT_CHMOD events under GUARD_HF_EMIT_CHMOD).
        self.chmod_events = False
        #: Optional programs this plane runs without, and why (telemetry only: no verdict depends on them).
        self.unavailable: dict[str, str] = {}
        self._rule_modes: dict[int, ModeId] = {}
        self._bpf: Any = None
        self._events: list[abi.Event] = []
        self._decisions: list[abi.Event] = []
        self._procs: list[abi.ProcRecord] = []
        self._proc_links: list[int] = []
        self._syscall_links: list[int] = []
        #: whether governed forks, execs and exits are reported (GUARD_CF_PROCESS_EVENTS)
        self._process_events = False
        self._env_vars = False
        self._dns = False
        self._syscalls = False
        self._modify = False
        self._ring = RingDecoder(str(self.name))
        self._modes: dict[Hook, ModeId] = {}
        self._agent_tgid = 0
        self._hook_flags: dict[Hook, int] = {}
        self._tables = VerdictTables()
        #: the bank of subject-test bits the written conditioned entries read (guard_abi.h)
        self._subject_bank = 0
        self._bank = 0
        self._scope_cgroups: set[int] = set()
        self._scope_pids: set[int] = set()
        self._all_tasks = False
        self.pin_root = pin_dir
        #: the layout's pin directory once loaded (None: nothing pinned)
        self.pinned: Path | None = None
        #: True when load() found this layout's maps pinned and took them over
        self.adopted = False
        self._stale_tables = False

    # ------------------------------------------------------------------ lifecycle

    def load(self) -> None:
        """Compile, load and attach; raise BpfLoadError with the cause on failure."""
        self._load_plane([])

    def _load_plane(self, extra_cflags: list[str]) -> None:
        os.environ["BCC_KERNEL_SOURCE"] = str(ensure_stub_tree(self.cache_dir))
        text = assemble_source(bpf_source_dir() / self.entry)
        cflags = [*self.cflags, *extra_cflags]
        if self.pin_root is not None:
            self.pinned = self._prepare_pins(self.pin_root, text, cflags)
            cflags.append(f'-DGUARD_PIN_DIR="{self.pinned}"')
        self._bpf = self._compile(text, cflags)
        # the decision ring first: a consume walks the rings in this order
        self._bpf[b"guard_decisions"].open_ring_buffer(self._on_decision)
        self._bpf[b"guard_events"].open_ring_buffer(self._on_event)
        self._bpf[b"guard_procs"].open_ring_buffer(self._on_proc)
        self._attach_process_programs()
        if self.adopted:
            self._adopt()

    def _attach_process_programs(self) -> None:
        """Load the process-record programs (bpf/hooks/process.bpf.c, syscall_events.bpf.c, dns.bpf.c).

        All are loaded (verified) here, so a program the kernel refuses fails the load. The three
        scheduler tracepoints are attached at once; the syscall tracepoints' programs, which run on
        every syscall of every task, only while process events are on (:meth:`set_process_events`).
        bcc keeps one program per raw tracepoint, and the plane has its own on these (lineage,
        exec): these are opened directly, their link fds kept until detached or :meth:`close`.
        """
        from bcc import BPF

        for tracepoint, program in (*PROCESS_PROGRAMS, *SYSCALL_PROGRAMS):
            try:
                fn = self._bpf.load_func(program.encode(), BPF.RAW_TRACEPOINT)
                if (tracepoint, program) in PROCESS_PROGRAMS:
                    self._proc_links.append(bpfsys.raw_tracepoint_open(fn.fd, tracepoint))
            except Exception as exc:  # bcc raises bare Exception for load errors
                self.close()
                raise BpfLoadError(f"loading {self.entry}: {program} on {tracepoint}: {exc}") from exc

    def _attach_syscall_programs(self, on: bool) -> None:
        """Attach the syscall tracepoints' programs (on), or detach them."""
        if not on:
            for fd in self._syscall_links:
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._syscall_links.clear()
            return
        if self._syscall_links or self._bpf is None:
            return
        for tracepoint, program in SYSCALL_PROGRAMS:
            try:
                fd = int(self._bpf.funcs[program.encode()].fd)
                self._syscall_links.append(bpfsys.raw_tracepoint_open(fd, tracepoint))
            except OSError as exc:
                self._attach_syscall_programs(False)
                raise KernelError(f"attaching {program} to {tracepoint}: {exc.strerror}") from exc

    def _prepare_pins(self, root: Path, text: str, cflags: list[str]) -> Path:
        """Return this layout's pin directory (created), removing other layouts' pins under ``root``."""
        ensure_bpffs(root)
        digest = hashlib.sha256("\0".join([text, *cflags]).encode()).hexdigest()[:16]
        here = root / f"layout-{digest}"
        try:
            root.mkdir(parents=True, exist_ok=True)
            for other in root.glob("layout-*"):
                if other != here:
                    remove_pins(other)
            present = {p.name for p in here.iterdir()} if here.is_dir() else set()
            self.adopted = set(PINNED_MAPS) <= present
            if present and not self.adopted:
                remove_pins(here)  # a partial set (an interrupted first load): start clean
            here.mkdir(exist_ok=True)
        except OSError as exc:
            raise MapError(f"{root}: cannot prepare the pin directory: {exc.strerror}") from exc
        return here

    def _adopt(self) -> None:
        """Take over a previous instance's state from the pinned maps (modes, scope, DFA bank)."""
        table = self._table("guard_config")
        leaf = table[table.Key(0)]
        self._modes = {hook: ModeId(leaf.mode[hook.abi]) for hook in HOOKS}
        loader_bits = abi.HF_HAS_SUFFIXES | abi.HF_HAS_EXEMPTIONS
        self._hook_flags = {hook: int(leaf.hook_flags[hook.abi]) & ~loader_bits for hook in HOOKS}
        self._all_tasks = bool(leaf.flags & abi.CF_ALL_TASKS)
        self._process_events = bool(leaf.flags & abi.CF_PROCESS_EVENTS)
        self._env_vars = bool(leaf.flags & abi.CF_ENV_VARS)
        self._dfa_slots = {hook: int(leaf.dfa_slot[hook.abi]) for hook in HOOKS if leaf.dfa_slot[hook.abi]}
        self._agent_tgid = int(leaf.agent_tgid)
        if self._dfa_slots:
            self._bank = (min(self._dfa_slots.values()) - 1) // abi.HOOK_COUNT
        self._scope_cgroups = {int(k.value) for k in self._table("guard_scope_cgroups")}
        self._scope_pids = {int(k.value) for k in self._table("guard_scope_pids")}
        self._rule_modes = {int(k.value): ModeId(v.value) for k, v in self._table("guard_rule_modes").items()}
        self._stale_tables = True

    def modes(self) -> dict[Hook, ModeId]:
        """Return every hook's mode as last written (or adopted from the pinned config)."""
        return {hook: self._modes.get(hook, ModeId.OFF) for hook in HOOKS}

    def rule_modes(self) -> dict[int, ModeId]:
        """Return every rule's mode override as last written (or adopted from the pinned map)."""
        return dict(self._rule_modes)

    def set_rule_modes(self, modes: Mapping[int, ModeId]) -> None:
        """Replace every rule's mode override: new and changed entries first, then stale ones removed.

        A rule with an entry decides in its own mode instead of its hook's (off: as if it had not
        matched; detect: would-block; enforce: deny even while the hook detects); a hook that is
        off stays off. Each change is one map write.
        """
        new = check_rule_modes(modes, self.limits["rule_modes"])
        table = self._table("guard_rule_modes")
        for rule, mode in new.items():
            if self._rule_modes.get(rule) != mode:
                table[table.Key(rule)] = table.Leaf(int(mode))
        for rule in self._rule_modes.keys() - new.keys():
            with contextlib.suppress(KeyError):
                del table[table.Key(rule)]
        self._rule_modes = new

    def scope(self) -> tuple[frozenset[int], frozenset[int]]:
        """Return the governed (cgroups, pids)."""
        return frozenset(self._scope_cgroups), frozenset(self._scope_pids)

    def unpin(self) -> None:
        """Remove this plane's pins (the maps live on while a loaded program holds them)."""
        if self.pinned is not None:
            remove_pins(self.pinned)

    def _compile(self, text: str, cflags: list[str]) -> Any:
        from bcc import BPF

        try:
            return BPF(text=text.encode(), cflags=cflags)
        except Exception as exc:  # bcc raises bare Exception for compile and load errors
            message = str(exc)
            if "super-user" in message:
                message = (
                    f"the kernel refused to load the {self.name.value} plane's programs (EPERM); "
                    "see `guardctl probe`"
                )
            raise BpfLoadError(f"loading {self.entry}: {message}") from exc

    def close(self) -> None:
        """Detach and unload."""
        self._attach_syscall_programs(False)
        for fd in self._proc_links:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._proc_links.clear()
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None

    def __enter__(self) -> Self:
        self.load()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def program_fd(self, hook: Hook) -> int:
        """Return the fd of a hook's loaded LSM program (for its run-time statistics)."""
        if self._bpf is None:
            raise MapError(f"{hook.value}: the data plane is not loaded")
        return int(self._bpf.funcs[_program(hook.lsm.attach[0]).encode()].fd)

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
        for hook in HOOKS:
            leaf.mode[hook.abi] = int(self._modes.get(hook, ModeId.OFF))
            leaf.hook_flags[hook.abi] = self._hook_flags.get(hook, 0)
            leaf.dfa_slot[hook.abi] = self._dfa_slots.get(hook, 0)
        leaf.agent_tgid = self._agent_tgid
        leaf.flags = (
            (abi.CF_ALL_TASKS if self._all_tasks else 0)
            | (abi.CF_PROCESS_EVENTS if self._process_events else 0)
            | (abi.CF_ENV_VARS if self._env_vars else 0)
            | (abi.CF_SYSCALL_EVENTS if self._syscalls else 0)
            | (abi.CF_MODIFY_EVENTS if self._modify else 0)
            | (abi.CF_DNS_EVENTS if self._dns else 0)
        )
        table[table.Key(0)] = leaf

    def set_process_events(
        self,
        on: bool,
        *,
        env_vars: bool = False,
        syscalls: bool = True,
        modify: bool = False,
        dns: bool = False,
    ) -> None:
        """Report governed forks, execs and exits (with their context) to the process ring, or stop.

        With them, what the flags ask for (see :meth:`KernelBackend.set_process_events`). The
        syscall tracepoints' programs are attached while one of ``syscalls``, ``modify`` and ``dns``
        is on, and only then: they run on every syscall of every task.
        """
        wanted = (on, env_vars and on, syscalls and on, modify and on, dns and on)
        if wanted != (self._process_events, self._env_vars, self._syscalls, self._modify, self._dns):
            self._attach_syscall_programs(any(wanted[2:]))
            self._process_events, self._env_vars, self._syscalls, self._modify, self._dns = wanted
            self._write_config()

    def configure(self, modes: Mapping[Hook, ModeId], *, agent_tgid: int) -> None:
        """Write every hook's mode (missing: off) and the agent's tgid in one map update."""
        self._modes = dict(modes)
        self._agent_tgid = agent_tgid
        self._write_config()

    def set_scope(
        self, *, cgroups: Iterable[int] = (), pids: Iterable[int] = (), all_tasks: bool = False
    ) -> None:
        """Replace the governed cgroups (v2 ids) and tgids: new entries first, then stale ones removed.

        ``all_tasks`` governs every task but the agent (one config bit; the scope maps are kept).
        """
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
        if all_tasks != self._all_tasks:
            self._all_tasks = all_tasks
            self._write_config()

    def _check_capacity(self, tables: VerdictTables) -> None:
        if not self.path_verdicts:
            used = [n for n in ("paths", "prefixes", "suffixes", "dfas") if getattr(tables, n)]
            if used:
                raise KernelUnsupportedError(
                    "path verdicts",
                    f"this kernel's BPF-LSM refuses bpf_d_path; the policy has {', '.join(used)}",
                )
        for name in (
            "paths", "prefixes", "suffixes", "inodes", "nets", "ptrace", "exemptions",
            "subtrees", "protect_exes", "protect_names",
        ):  # fmt: skip
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
                    raise MapError(f"DFA of {hook.short}: {used_n} {what}, over the table's {limit}")
        atoms = len(atom_masks(tables.subjects, subject_bits(tables.subjects)))
        if atoms > self.limits["subject_atoms"]:
            raise MapError(
                f"tests of the caller: {atoms} values, over the map's {self.limits['subject_atoms']}"
            )
        if tables.subjects and "subject_conditions" in self.unavailable:
            raise KernelUnsupportedError("subject conditions", self.unavailable["subject_conditions"])
        rules = sum(len(p.rules) for p in tables.dfas.values())
        if rules > self.limits["dfa_rules"] // 2:
            raise MapError(f"DFA: {rules} rules, over the {self.limits['dfa_rules'] // 2} one bank holds")

    def apply(self, tables: VerdictTables) -> None:
        """Replace every static verdict table and the interest flags, with no instant where neither applies.

        Capacity and kernel support are checked before anything is written, so a refused policy
        leaves the active one untouched. Then, in three phases: every map gets the new policy's
        entries (an entry present in both is overwritten in place: one atomic update) and the DFAs
        go into the bank the hooks are not reading; one config write switches the hooks to the new
        DFAs and flags; only then are the old policy's stale entries removed. So at every instant
        the old policy, the new one, or both apply (a bundle deploy's atomic swap).
        """
        self._check_capacity(tables)
        old = self._read_tables() if self._stale_tables else self._tables
        maps = (
            ("guard_inodes", old.inodes, tables.inodes, self._inode_key),
            ("guard_paths", old.paths, tables.paths, self._path_key),
            ("guard_prefixes", old.prefixes, tables.prefixes, self._lpm_key),
            ("guard_suffixes", old.suffixes, tables.suffixes, self._lpm_key),
            ("guard_nets", old.nets, tables.nets, self._net_key),
            ("guard_ptrace_targets", old.ptrace, tables.ptrace, self._u32_key),
            ("guard_subtrees", old.subtrees, tables.subtrees, self._inode_key),
            ("guard_protect_exes", old.protect_exes, tables.protect_exes, self._inode_key),
            ("guard_protect_names", old.protect_names, tables.protect_names, self._comm_key),
        )
        cond_hooks = tables.cond_hooks() | old.cond_hooks()
        if any(not self._hook_flags.get(h, 0) & abi.HF_HAS_CONDS for h in cond_hooks):
            for hook in cond_hooks:  # the callers are read before any conditioned entry is there
                self._hook_flags[hook] = self._hook_flags.get(hook, 0) | abi.HF_HAS_CONDS
            self._write_config()
        masks = self._write_subjects(old, tables)
        for name, before, after, key_of in maps:
            self._sync_map(name, before, after, key_of, remove=False, masks=masks)
        self._sync_exemptions(old.exemptions, tables.exemptions, remove=False)
        self._write_dfas(tables.dfas)
        self._hook_flags = {
            hook: int(tables.hook_flags.get(hook, 0)) | (abi.HF_HAS_CONDS if hook in cond_hooks else 0)
            for hook in HOOKS
        }
        for value in {**old.suffixes, **tables.suffixes}.values():  # old suffixes stay until removed
            for hook in HOOKS:
                if value.deny[hook.abi] or value.notify[hook.abi]:
                    self._hook_flags[hook] |= abi.HF_HAS_SUFFIXES
        if tables.exemptions:
            for hook in HOOKS:
                self._hook_flags[hook] |= abi.HF_HAS_EXEMPTIONS
        for value in {**old.subtrees, **tables.subtrees}.values():  # old subtrees stay until removed
            for hook in HOOKS:
                if value.deny[hook.abi] or value.notify[hook.abi]:
                    self._hook_flags[hook] |= abi.HF_HAS_SUBTREES
        self._write_config()
        for name, before, after, key_of in maps:
            self._sync_map(name, before, after, key_of, add=False)
        self._sync_exemptions(old.exemptions, tables.exemptions, add=False)
        self._forget_subjects(tables)
        if (
            old.suffixes.keys() - tables.suffixes.keys()
            or old.subtrees.keys() - tables.subtrees.keys()
            or old.cond_hooks() - tables.cond_hooks()
        ):
            now = tables.cond_hooks()
            self._hook_flags = {
                hook: flags
                & ~(0 if _has_suffixes(tables, hook) else abi.HF_HAS_SUFFIXES)
                & ~(0 if _has_subtrees(tables, hook) else abi.HF_HAS_SUBTREES)
                & ~(0 if hook in now else abi.HF_HAS_CONDS)
                for hook, flags in self._hook_flags.items()
            }
            self._write_config()
        self._tables = tables
        self._stale_tables = False

    def _read_tables(self) -> VerdictTables:
        """Read the static verdict maps as they are (adopted pins), keyed as build_tables keys them.

        Conditioned entries keep their rule ids, not their tests: an adopted plane's entries read
        the bank they name, and the next apply writes the other bank and rewrites them all.
        """

        def read(name: str, key_of: Any) -> dict[Any, VerdictValue]:
            out = {}
            for key, leaf in self._table(name).items():
                value = VerdictValue(deny=list(leaf.deny), notify=list(leaf.notify))
                value.cond = [
                    tuple(
                        int(leaf.cond[h * abi.COND_SLOTS + i].rule)
                        for i in range(abi.COND_SLOTS)
                        if leaf.cond[h * abi.COND_SLOTS + i].rule
                    )
                    for h in range(abi.HOOK_COUNT)
                ]
                for entry in leaf.cond:
                    if entry.rule:
                        banks.add(int(entry.bank))
                out[key_of(key)] = value
            return out

        banks: set[int] = set()

        def lpm(key: Any) -> tuple[int, bytes]:
            return int(key.prefixlen), bytes(key.path).ljust(abi.PATH_MAX, b"\0")

        tables = VerdictTables(
            paths=read("guard_paths", lambda k: bytes(k.path)),
            prefixes=read("guard_prefixes", lpm),
            suffixes=read("guard_suffixes", lpm),
            inodes=read("guard_inodes", lambda k: (int(k.dev), int(k.ino))),
            nets=read("guard_nets", lambda k: (int(k.prefixlen), bytes(k.data))),
            ptrace=read("guard_ptrace_targets", lambda k: int(k.value)),
            subtrees=read("guard_subtrees", lambda k: (int(k.dev), int(k.ino))),
            protect_exes=read("guard_protect_exes", lambda k: (int(k.dev), int(k.ino))),
            protect_names=read("guard_protect_names", lambda k: bytes(k.comm).ljust(abi.COMM_LEN, b"\0")),
            exemptions={(int(k.rule_id), int(k.dev), int(k.ino)) for k in self._table("guard_exempt")},
        )
        self._subject_bank = max(banks) if banks else 0
        return tables

    def _write_subjects(self, old: VerdictTables, new: VerdictTables) -> dict[int, tuple[int, int]]:
        """Write the new policy's subject-test bits into the bank the old entries do not read.

        Returns the conditioned rules' (need, forbid) masks; every conditioned entry written from
        now on names the new bank, so old entries and new ones each read their own bits.
        """
        atoms_table = self._table("guard_subject_atoms")
        bits = subject_bits(new.subjects)
        atoms = atom_masks(new.subjects, bits)
        if not new.subjects and not old.subjects:
            return {}
        bank = 1 - self._subject_bank
        for (field_, raw), mask in atoms.items():
            key = atoms_table.Key()
            key.field, key.value = int(field_), raw
            leaf = atoms_table.get(key) or atoms_table.Leaf()
            leaf.bank[bank] = mask
            atoms_table[key] = leaf
        for key, leaf in list(atoms_table.items()):  # values the new policy does not test
            tested = (abi.SubjectField(int(key.field)), bytes(key.value).ljust(abi.SUBJECT_TEXT, b"\0"))
            if tested not in atoms and leaf.bank[bank]:
                leaf.bank[bank] = 0
                atoms_table[key] = leaf
        self._subject_bank = bank
        return cond_masks(new.subjects, bits)

    def _forget_subjects(self, new: VerdictTables) -> None:
        """Once no entry reads the old bank: clear it, and drop values neither bank tests."""
        atoms_table = self._table("guard_subject_atoms")
        bank = self._subject_bank
        for key, leaf in list(atoms_table.items()):
            if leaf.bank[1 - bank]:
                leaf.bank[1 - bank] = 0
                if leaf.bank[bank]:
                    atoms_table[key] = leaf
            if not leaf.bank[bank]:
                with contextlib.suppress(KeyError):
                    del atoms_table[key]

    def _sync_exemptions(
        self,
        old: set[tuple[int, int, int]],
        new: set[tuple[int, int, int]],
        *,
        add: bool = True,
        remove: bool = True,
    ) -> None:
        table = self._table("guard_exempt")

        def key(entry: tuple[int, int, int]) -> Any:
            k = table.Key()
            k.rule_id, k.dev, k.ino = entry
            return k

        for entry in new - old if add else ():
            table[key(entry)] = table.Leaf(1)
        for entry in old - new if remove else ():
            with contextlib.suppress(KeyError):
                del table[key(entry)]

    def _sync_map(
        self,
        name: str,
        old: Mapping[Any, VerdictValue],
        new: Mapping[Any, VerdictValue],
        key_of: Any,
        *,
        add: bool = True,
        remove: bool = True,
        masks: Mapping[int, tuple[int, int]] | None = None,
    ) -> None:
        table = self._table(name)
        if add:
            for key, value in new.items():
                # a conditioned entry is rewritten at every apply: it names the bank just written
                if old.get(key) != value or any(value.cond):
                    leaf = value.to_abi(masks, self._subject_bank)
                    table[key_of(table, key)] = table.Leaf.from_buffer_copy(leaf)
        if remove:
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
    def _comm_key(table: Any, entry: bytes) -> Any:
        key = table.Key()
        key.comm = entry.rstrip(b"\0")
        return key

    @staticmethod
    def _u32_key(table: Any, entry: int) -> Any:
        return table.Key(entry)

    def _write_dfas(self, dfas: Mapping[Hook, DfaProgram]) -> None:
        """Write every hook's DFA into the bank the hooks are not reading; the config switches them."""
        bank = 1 - self._bank
        table, rules = self._table("guard_dfas"), self._table("guard_dfa_rules")
        rule_base = bank * (self.limits["dfa_rules"] // 2)
        slots: dict[Hook, int] = {}
        for hook, program in sorted(dfas.items(), key=lambda item: item[0].abi):
            t = program.tables
            slot = bank * abi.HOOK_COUNT + hook.abi
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

    def _dyn_key(self, group: int, hook: Hook, dev: int, ino: int) -> Any:
        table = self._table("guard_dynamic")
        key = table.Key()
        key.group, key.hook, key.dev, key.ino = group, hook.abi, dev, ino
        return key

    def arm(self, verdict: DynamicVerdict) -> None:
        """Arm a per-entity verdict (replacing one with the same group, hook and target)."""
        table = self._table("guard_dynamic")
        leaf = table.Leaf()
        leaf.rule_id, leaf.action, leaf.expires_ns = verdict.rule_id, int(verdict.action), verdict.expires_ns
        table[self._dyn_key(verdict.group, verdict.hook, verdict.dev, verdict.ino)] = leaf

    def disarm(self, group: int, hook: Hook, *, dev: int = 0, ino: int = 0) -> None:
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
            DynamicVerdict(
                k.group, Hook.from_abi(k.hook), v.rule_id, Action(v.action), v.expires_ns, k.dev, k.ino
            )
            for k, v in items
        ]

    # ------------------------------------------------------------------ counters and events

    def counters(self, hook: Hook) -> dict[abi.Counter, int]:
        """Per-hook counters summed over CPUs."""
        table = self._table("guard_counters")
        out = {}
        for counter in abi.Counter:
            values = table.getvalue(table.Key(hook.abi * abi.COUNTER_COUNT + int(counter)))
            out[counter] = int(sum(values))
        return out

    def _on_event(self, _ctx: object, data: int, size: int) -> None:
        event = self._ring.decode(ctypes.string_at(data, size))
        if event is not None:
            self._events.append(event)

    def _on_decision(self, _ctx: object, data: int, size: int) -> None:
        event = self._ring.decode(ctypes.string_at(data, size))
        if event is not None:
            self._decisions.append(event)

    def _on_proc(self, _ctx: object, data: int, size: int) -> None:
        event = self._ring.decode_proc(ctypes.string_at(data, size))
        if event is not None:
            self._procs.append(event)

    def plane_counters(self) -> dict[str, int]:
        """Return the plane's own counters (``ring_bad_size``: ring records of the wrong size)."""
        return self._ring.counters()

    def poll_events(self, timeout_ms: int = 100) -> list[abi.Event]:
        """Read what the rings hold, decisions first (waiting up to ``timeout_ms`` when all are empty).

        One consume drains the decision ring, then the event ring, then the process ring (the order
        they were opened in); only when it found nothing does the plane wait, on all at once. The
        batch holds every decision read ahead of any telemetry; the process records read are kept
        for :meth:`process_records`.
        """
        if self._bpf is None:
            raise MapError("guard_events: the data plane is not loaded")
        self._bpf.ring_buffer_consume()
        if not self._decisions and not self._events and not self._procs:
            self._bpf.ring_buffer_poll(timeout_ms)
        batch = self._decisions + self._events
        self._decisions, self._events = [], []
        return batch

    def process_program_fds(self) -> dict[str, int]:
        """Return the fds of the process-record programs (bpf/hooks/process.bpf.c, syscall_events.bpf.c)."""
        if self._bpf is None:
            raise MapError("guard_procs: the data plane is not loaded")
        return {
            program: int(self._bpf.funcs[program.encode()].fd)
            for _, program in (*PROCESS_PROGRAMS, *SYSCALL_PROGRAMS)
        }

    def process_records(self) -> list[abi.ProcRecord]:
        """Return (and forget) the process records the polls so far read."""
        records, self._procs = self._procs, []
        return records

    def decision_drops(self) -> dict[DropKey, int]:
        """Return guard_decision_drops: decisions the decision ring had no room for, by key."""
        return {
            (int(k.rule_id), Hook.from_abi(int(k.hook)), abi.Decision(k.decision)): int(v.value)
            for k, v in self._table("guard_decision_drops").items()
        }

    def decision_drops_epoch(self) -> str:
        """Return ``<boot id>/<map id>`` of guard_decision_drops: the same only while the same map lives."""
        map_id = bpfsys.map_id(self._table("guard_decision_drops").map_fd)
        try:
            boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        except OSError as exc:
            raise KernelError(f"/proc/sys/kernel/random/boot_id: {exc.strerror}") from exc
        return f"{boot}/{map_id}"


class LsmBackend(_BccPlane):
    """The compiled, attached BPF-LSM programs and typed access to their maps (a KernelBackend)."""

    name = BackendName.LSM
    entry = "guard.bpf.c"

    def load(self) -> None:
        """Compile, load and attach; raise BpfLoadError with the cause on failure.

        Where the verifier refuses bpf_d_path in BPF-LSM programs (probed first with a minimal
        program), the plane is built without path verdicts (inode, network, ptrace and armed
        verdicts still apply) and says so in :attr:`degraded`; :meth:`apply` then refuses path
        rules. Any other load failure is raised, never degraded around.
        """
        extra = []
        try:
            self.btf.lsm_hook(Telemetry.CHMOD.value)
        except BtfError as exc:
            self.unavailable["chmod_events"] = f"no {Telemetry.CHMOD.value} LSM hook in this kernel ({exc})"
        else:
            extra.append("-DGUARD_HAS_PATH_CHMOD")
            self.chmod_events = True
        try:
            for name in ("path_link", "path_rename"):
                self.btf.lsm_hook(name)
        except BtfError as exc:
            self.unavailable["new_names"] = (
                f"no {name} LSM hook in this kernel ({exc}): links and renames of protected files go unjudged"
            )
        else:
            extra.append("-DGUARD_HAS_PATH_NAMES")
        d_path, why = lsm_d_path(self.btf)
        if not d_path:
            extra.append("-DGUARD_NO_D_PATH")
            self.path_verdicts = False
            self.degraded.append(
                f"path verdicts unavailable ({why}); inode, network, ptrace and armed verdicts still apply"
            )
        self._load_plane(extra)


#: (tracepoint, program) of the process events, attached by name on both planes.
PROCESS_PROGRAMS: Final = (
    ("sched_process_fork", "guard_proc_fork"),
    ("sched_process_exec", "guard_proc_exec"),
    ("sched_process_exit", "guard_proc_exit"),
)
#: (tracepoint, program) of the syscall events (and TCP closes), modifications and DNS, attached
#: while one of them is asked for.
SYSCALL_PROGRAMS: Final = (
    ("sys_enter", "guard_change_enter"),
    ("sys_exit", "guard_change_exit"),
    ("sys_exit", "guard_sys_exit"),
    ("sys_enter", "guard_modify_close"),
    ("sys_exit", "guard_modify_exit"),
    ("sys_enter", "guard_dns_enter"),
    ("sys_exit", "guard_dns_exit"),
    ("inet_sock_set_state", "guard_tcp_state"),
)

#: ``GUARD_MAX_SUBTREES`` and ``GUARD_MAX_PROTECT`` (bpf/include/guard_maps.h): directories with a
#: subtree verdict; executables, and names, protected at exec.
SUBTREES_MAX: Final = 4096
PROTECT_MAX: Final = 1024
#: guard_maps.h's default size of guard_subject_atoms (GUARD_MAX_SUBJECT_ATOMS)
SUBJECT_ATOMS_MAX: Final = 16384

#: (program, attach type) of the compat plane's cgroup sock_addr programs.
SOCK_ADDR_PROGRAMS: Final = (
    ("guard_connect4", bpfsys.AttachType.CGROUP_INET4_CONNECT),
    ("guard_connect6", bpfsys.AttachType.CGROUP_INET6_CONNECT),
    ("guard_sendmsg4", bpfsys.AttachType.CGROUP_UDP4_SENDMSG),
    ("guard_sendmsg6", bpfsys.AttachType.CGROUP_UDP6_SENDMSG),
)


class CompatBackend(_BccPlane):
    """The plane for kernels without usable BPF-LSM (a KernelBackend), from ``bpf/compat.bpf.c``.

    - connect / sendmsg: cgroup sock_addr programs attached (``BPF_F_ALLOW_MULTI``) to every cgroup
      in scope, and to the cgroup v2 root while pids are in scope; the programs check the scope
      themselves, so a child cgroup of a governed one is not governed (as with the LSM plane).
      A deny is an inline EPERM.
    - exec, file open, ptrace: raw tracepoints (sched_process_exec, sys_exit of the open calls,
      sys_enter of ptrace/process_vm_*) feed the same events; a deny under enforce sends SIGKILL
      from the kernel (event decision ``killed``), a kill reaction, not a deny.

    On :meth:`close` every attachment is removed. If the agent dies instead, the cgroup programs
    stay attached with their (pinned) maps: network verdicts keep applying (fail-closed), while the
    tracepoints, held by the dead process's fds, are gone: exec, open and ptrace fail open (no kill
    without an agent to audit it). A new instance on the same pin directory adopts the maps,
    attaches its own programs and then detaches its predecessor's (found by the pinned maps they
    use), so network enforcement has no gap across a restart.
    """

    name = BackendName.COMPAT
    entry = "compat.bpf.c"

    def __init__(self, btf: Btf, cache_dir: Path, *, cgroup_root: Path | None = None, **sizes: Any) -> None:
        super().__init__(btf, cache_dir, **sizes)
        self.unavailable["chmod_events"] = (
            "the compat plane has no chmod event: no tracepoint sees the inode a chmod(2) path names"
        )
        self.cgroup_root = cgroup_root
        self._progs: dict[str, Any] = {}
        self._attached: dict[int, int] = {}  # cgroup id -> open directory fd
        self._cgroup_dirs: dict[int, Path] = {}

    def load(self) -> None:
        """Compile and load; attach the tracepoints and, for an adopted scope, the cgroup programs."""
        from bcc import BPF

        self._root()
        extra = []
        if not _sock_addr_reads_task():
            extra.append("-DGUARD_SOCK_ADDR_NO_TASK")
            self.unavailable["network_lineage"] = (
                "this kernel refuses bpf_get_current_task to cgroup programs: "
                "connect and sendmsg events carry no ppid or start times"
            )
            self.unavailable["subject_conditions"] = (
                "this kernel refuses bpf_get_current_task to cgroup programs: the compat plane "
                "cannot test who connects (process.name, process.parent.name, user.id)"
            )
        self._load_plane(extra)
        try:
            for name, attach_type in SOCK_ADDR_PROGRAMS:
                self._progs[name] = self._bpf.load_func(
                    name.encode(), BPF.CGROUP_SOCK_ADDR, None, int(attach_type)
                )
        except Exception as exc:  # bcc raises bare Exception for load errors
            self.close()
            raise BpfLoadError(f"loading the compat plane's cgroup sock_addr programs: {exc}") from exc
        if self.adopted:
            self._forget_removed_cgroups()
        self._sync_attachments()
        if self.adopted:
            self._detach_predecessors()

    def close(self) -> None:
        """Detach every cgroup program, then the tracepoints (pinned maps stay)."""
        for cgroup in list(self._attached):
            self._detach(cgroup)
        self._progs.clear()
        super().close()

    def set_scope(
        self, *, cgroups: Iterable[int] = (), pids: Iterable[int] = (), all_tasks: bool = False
    ) -> None:
        """Replace the governed set and attach the cgroup programs where it needs them."""
        super().set_scope(cgroups=cgroups, pids=pids, all_tasks=all_tasks)
        self._sync_attachments()

    def attachments(self) -> frozenset[int]:
        """Return the cgroup ids this plane's sock_addr programs are attached to."""
        return frozenset(self._attached)

    def program_fd(self, hook: Hook) -> int:
        """Return the fd of the program deciding a hook (connect: the IPv4 connect program)."""
        if self._bpf is None:
            raise MapError(f"{hook.value}: the data plane is not loaded")
        name = _program(hook.compat.attach[0])
        if name in self._progs:
            return int(self._progs[name].fd)
        return int(self._bpf.funcs[name.encode()].fd)

    # ------------------------------------------------------------------ cgroup attachments

    def _targets(self) -> set[int]:
        targets = set(self._scope_cgroups)
        if self._scope_pids or self._all_tasks:
            targets.add(self._root_id())
        return targets

    def _root(self) -> Path:
        if self.cgroup_root is None:
            self.cgroup_root = cgroup2_root()
        return self.cgroup_root

    def _root_id(self) -> int:
        return os.stat(self._root()).st_ino

    def _cgroup_dir(self, cgroup: int) -> Path:
        """Find a cgroup v2 directory by id (its inode number)."""
        root = self._root()
        known = self._cgroup_dirs.get(cgroup)
        if known is not None and known.exists() and known.stat().st_ino == cgroup:
            return known
        for top, dirs, _files in os.walk(root):
            if os.stat(top).st_ino == cgroup:
                self._cgroup_dirs[cgroup] = Path(top)
                return Path(top)
            dirs.sort()
        raise MapError(f"scope: no cgroup with id {cgroup} under {root}")

    def _sync_attachments(self) -> None:
        if not self._progs:
            return
        wanted = self._targets()
        for cgroup in sorted(wanted - self._attached.keys()):
            fd = os.open(self._cgroup_dir(cgroup), os.O_RDONLY | os.O_DIRECTORY)
            try:
                for name, attach_type in SOCK_ADDR_PROGRAMS:
                    bpfsys.prog_attach(self._progs[name].fd, fd, attach_type, bpfsys.F_ALLOW_MULTI)
            except KernelError:
                for name, attach_type in SOCK_ADDR_PROGRAMS:
                    with contextlib.suppress(KernelError):
                        bpfsys.prog_detach(self._progs[name].fd, fd, attach_type)
                os.close(fd)
                raise
            self._attached[cgroup] = fd
        for cgroup in self._attached.keys() - wanted:
            self._detach(cgroup)

    def _forget_removed_cgroups(self) -> None:
        """Drop adopted scope cgroups that no longer exist (their tasks and attachments went with them)."""
        gone = set()
        for cgroup in self._scope_cgroups:
            try:
                self._cgroup_dir(cgroup)
            except MapError:
                gone.add(cgroup)
        if gone:
            table = self._table("guard_scope_cgroups")
            for cgroup in gone:
                with contextlib.suppress(KeyError):
                    del table[table.Key(cgroup)]
            self._scope_cgroups -= gone
            self.degraded.append(f"adopted scope: cgroups {sorted(gone)} no longer exist; dropped")

    def _detach(self, cgroup: int) -> None:
        fd = self._attached.pop(cgroup)
        for name, attach_type in SOCK_ADDR_PROGRAMS:
            prog = self._progs.get(name)
            if prog is not None:
                with contextlib.suppress(KernelError):  # a removed cgroup already dropped it
                    bpfsys.prog_detach(prog.fd, fd, attach_type)
        os.close(fd)

    def _detach_predecessors(self) -> None:
        """Detach sock_addr programs of an earlier instance: those using our pinned config map."""
        config_id = bpfsys.map_id(self._table("guard_config").map_fd)
        ours = {bpfsys.prog_identity(p.fd)[0] for p in self._progs.values()}
        for fd in self._attached.values():
            for _name, attach_type in SOCK_ADDR_PROGRAMS:
                for prog_id in bpfsys.prog_query(fd, attach_type):
                    if prog_id in ours:
                        continue
                    with (
                        contextlib.suppress(KernelError),
                        bpfsys.owned_fd(bpfsys.prog_get_fd_by_id(prog_id)) as pfd,
                    ):
                        if config_id in bpfsys.prog_map_ids(pfd):
                            bpfsys.prog_detach(pfd, fd, attach_type)


#: ``BPF_FUNC_get_current_task``.
_BPF_FUNC_GET_CURRENT_TASK: Final = 35


def _sock_addr_reads_task() -> bool:
    """Whether cgroup sock_addr programs may call bpf_get_current_task (for the lineage in events)."""
    try:
        fd = bpfsys.prog_load(
            bpfsys.ProgType.CGROUP_SOCK_ADDR,
            [bpfsys.call_helper(_BPF_FUNC_GET_CURRENT_TASK), bpfsys.mov64_imm(0, 1), bpfsys.exit_insn()],
            name="guard_probe",
            expected_attach_type=bpfsys.AttachType.CGROUP_INET4_CONNECT,
        )
    except BpfLoadError:
        return False
    bpfsys.close_fd(fd)
    return True


def _has_suffixes(tables: VerdictTables, hook: Hook) -> bool:
    return any(v.deny[hook.abi] or v.notify[hook.abi] for v in tables.suffixes.values())


def _has_subtrees(tables: VerdictTables, hook: Hook) -> bool:
    return any(v.deny[hook.abi] or v.notify[hook.abi] for v in tables.subtrees.values())


def _program(attach: str) -> str:
    """Return the bcc function attached at ``<type>/<target>`` (``lsm/file_open``: ``lsm__file_open``)."""
    kind, _, target = attach.partition("/")
    return f"guard_{target}" if kind == "cgroup" else f"{kind}__{target}"
