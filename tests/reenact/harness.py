"""Run the re-enactments of :mod:`tests.reenact.techniques` under a real agent and table what alerted.

:func:`import_rules` imports the rules the techniques name from the vendored Elastic sets
(detection-rules and protections-artifacts, unmodified) with
:func:`guard.policy.elastic.import_elastic`; a rule it skips is reported with the importer's reason.

:func:`reenact` starts an :class:`~guard.agent.daemon.Agent` on this kernel's plane (compat on a host
without BPF-LSM, lsm in the guests) in **detect** mode with only the caller's cgroup in scope, runs
each technique as ``bash -c`` in a child placed in that cgroup (and, as the technique asks, in
private mount and network namespaces and as nobody), waits for the agent to take its events, and
records which rules alerted meanwhile. :meth:`Report.render` is the table; a technique **alerted**
when every rule expected of it alerted.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from guard.agent.daemon import Agent, AgentSettings
from guard.agent.service import make_backend
from guard.audit.sink import MemoryAudit
from guard.config import GuardConfig
from guard.model import Mode
from guard.plan.compiler import compile_policy
from guard.policy.elastic import import_elastic
from guard.policy.engine import Alert, Engine
from guard.policy.loader import Policy, Rule
from guard.policy.semantics import Event
from tests.privileged.resolver import loopback_resolver
from tests.privileged.scoping import libc, loopback_up
from tests.reenact.techniques import RuleRef, Technique

__all__ = ["ELASTIC", "GOAL", "AlertLog", "Imported", "Report", "Row", "import_rules", "reenact"]

ELASTIC: Final = Path(__file__).resolve().parents[1] / "data" / "elastic-rules"
#: the share of techniques that must alert (the issue's goal)
GOAL: Final = 0.9
#: the PATH a technique sees after its own $T/bin (no user tool managers: the system's programs)
SYSTEM_PATH: Final = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NOBODY: Final = 65534

_CLONE_NEWNS, _CLONE_NEWNET = 0x00020000, 0x40000000
_MS_NOSUID, _MS_NODEV, _MS_BIND, _MS_REC, _MS_PRIVATE = 0x2, 0x4, 0x1000, 0x4000, 0x40000
_RUN_TIMEOUT_S: Final = 60.0


# ---------------------------------------------------------------------------------------- rules


@dataclass(frozen=True, slots=True)
class Imported:
    """The rules the techniques need, as one policy, and why each missing one is missing."""

    policy: Policy
    #: rule id -> why it is not in the policy
    missing: dict[str, str]


def import_rules(refs: Sequence[RuleRef]) -> Imported:
    """Import each rule file once, in order; a rule whose file holds another id counts as missing."""
    rules: list[Rule] = []
    missing: dict[str, str] = {}
    for ref in {r.rule_id: r for r in refs}.values():
        entry = import_elastic([ELASTIC / ref.path]).entries[0]
        if entry.rule is None:
            missing[ref.rule_id] = entry.reason or "not imported"
        elif entry.rule.id != ref.rule_id:
            missing[ref.rule_id] = f"{ref.path} holds rule {entry.rule.id}"
        else:
            rules.append(entry.rule)
    digest = hashlib.sha256("\n".join(f"{r.id}\n{r.query}" for r in rules).encode()).hexdigest()
    return Imported(Policy(tuple(rules), "tests/reenact", digest), missing)


def needed_rules(techniques: Sequence[Technique]) -> list[RuleRef]:
    """Return every rule the techniques name, in order, once."""
    out: dict[str, RuleRef] = {}
    for t in techniques:
        for ref in t.rules:
            out.setdefault(ref.rule_id, ref)
    return list(out.values())


# ---------------------------------------------------------------------------------------- alerts


class AlertLog:
    """The agent's alert sink: every alert line kept, by rule id (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[str] = []
        self._buffer = ""

    def write(self, text: str, /) -> int:
        """Take whole alert lines (one JSON document each)."""
        with self._lock:
            self._buffer += text
            *lines, self._buffer = self._buffer.split("\n")
            for line in lines:
                if line.strip():
                    rule = json.loads(line).get("rule") or {}
                    self._rules.append(str(rule.get("id", "")))
        return len(text)

    def flush(self) -> None:
        """Nothing buffered beyond a partial line."""

    def mark(self) -> int:
        """Return how many alerts there are so far."""
        with self._lock:
            return len(self._rules)

    def since(self, mark: int) -> list[str]:
        """Return the rule ids of the alerts after ``mark``, in order."""
        with self._lock:
            return self._rules[mark:]


class EventLog:
    """The ECS documents the agent's engine was given (kept only when asked: for ``--events``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._docs: list[Event] = []

    def wrap(self, engine: Engine) -> None:
        """Record every batch ``engine`` processes, then let it process the batch."""
        process = engine.process

        def recording(events: Sequence[Event]) -> list[Alert]:
            with self._lock:
                self._docs.extend(events)
            return process(events)

        engine.process = recording  # type: ignore[method-assign]

    def mark(self) -> int:
        """Return how many documents there are so far."""
        with self._lock:
            return len(self._docs)

    def since(self, mark: int) -> list[Event]:
        """Return the documents after ``mark``."""
        with self._lock:
            return self._docs[mark:]


@contextmanager
def running_agent(
    policy: Policy, cgroup: Path, cache: Path, backend: str, events: EventLog | None = None
) -> Iterator[tuple[Agent, AlertLog]]:
    """An agent in detect mode on ``backend``, governing only ``cgroup``; its loop in a thread."""
    alerts = AlertLog()
    agent = Agent(
        compile_policy(policy),
        make_backend(backend, GuardConfig(), cache, pin=False),
        MemoryAudit(),
        AgentSettings(mode=Mode.DETECT, scope_cgroups=(cgroup.stat().st_ino,)),
        alerts=alerts,
    )
    if events is not None:
        events.wrap(agent.engine)
    stop = threading.Event()
    agent.start()
    thread = threading.Thread(target=agent.run, args=(stop,), kwargs={"timeout_ms": 50}, daemon=True)
    thread.start()
    try:
        yield agent, alerts
    finally:
        stop.set()
        thread.join(timeout=30)
        agent.stop("re-enactment finished")


# ---------------------------------------------------------------------------------------- running


@dataclass(frozen=True, slots=True)
class Ran:
    """How a technique's script ended."""

    status: int | None  # exit status (negative: the signal), None when it could not start
    error: str = ""  # why it could not start, or its stderr's tail when it failed


def unavailable(t: Technique) -> str | None:
    """Why ``t`` cannot run on this machine (a program or an overlaid directory is missing), or None."""
    lacking = [tool for tool in (*t.tools, "bash") if shutil.which(tool, path=SYSTEM_PATH) is None]
    if t.standins and shutil.which("true", path=SYSTEM_PATH) is None:
        lacking.append("true")
    if lacking:
        return "missing program: " + ", ".join(lacking)
    absent = [d for d in t.overlays if not Path(d).is_dir()]
    if absent:
        return "missing directory to overlay: " + ", ".join(absent)
    if t.resolver and not Path("/etc/resolv.conf").exists():
        return "no /etc/resolv.conf to name the loopback resolver in"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _placement(t: Technique, cgroup: Path, resolv_conf: Path | None) -> Callable[[], None]:
    """What the child does before exec: join the cgroup, its namespaces and overlays, its user."""

    def place() -> None:
        (cgroup / "cgroup.procs").write_text("0")
        private_mounts = bool(t.overlays) or resolv_conf is not None
        flags = (_CLONE_NEWNS if private_mounts else 0) | (_CLONE_NEWNET if t.isolated_network else 0)
        if flags:
            _check(libc.unshare(flags), "unshare")
        if private_mounts:
            _check(libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "make / private")
        for d in t.overlays:
            _check(
                libc.mount(b"tmpfs", d.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=0755,size=16m"),
                f"tmpfs on {d}",
            )
        if resolv_conf is not None:
            _check(
                libc.mount(bytes(resolv_conf), b"/etc/resolv.conf", None, _MS_BIND, None),
                "bind resolv.conf",
            )
        if t.user == "nobody":
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)

    return place


def _remove(path: Path) -> None:
    """Remove a work directory, clearing an immutable flag a technique may have left first."""
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EACCES):
            raise
        chattr = shutil.which("chattr", path=SYSTEM_PATH)
        if chattr:
            subprocess.run([chattr, "-R", "-i", str(path)], capture_output=True, check=False)
        shutil.rmtree(path)


@contextmanager
def workspace(t: Technique) -> Iterator[tuple[Path, Path]]:
    """``$T`` under /tmp (with $T/bin's stand-ins and $T/home) and ``$SHM`` under /dev/shm, removed after."""
    work = Path(tempfile.mkdtemp(prefix="kestrel-reenact-", dir="/tmp"))
    shm = Path(tempfile.mkdtemp(prefix="kestrel-reenact-", dir="/dev/shm"))
    try:
        for d in (work, shm):
            d.chmod(0o755)
        (work / "bin").mkdir(mode=0o755)
        (work / "home").mkdir(mode=0o755)
        if t.user == "nobody":
            os.chown(work / "home", NOBODY, NOBODY)
        true = shutil.which("true", path=SYSTEM_PATH)
        for name in t.standins:
            assert true is not None
            shutil.copy(true, work / "bin" / name)
            (work / "bin" / name).chmod(0o755)
        yield work, shm
    finally:
        _remove(work)
        _remove(shm)


def run_technique(t: Technique, cgroup: Path) -> Ran:
    """Run ``t``'s script in ``cgroup`` (and its namespaces); return how it ended."""
    bash = shutil.which("bash", path=SYSTEM_PATH)
    assert bash is not None
    with workspace(t) as (work, shm):
        env = {
            "PATH": f"{work}/bin:{SYSTEM_PATH}",
            "HOME": str(work / "home"),
            "T": str(work),
            "SHM": str(shm),
            "FREE_PORT": str(_free_port()),
            "LANG": "C",
            "TERM": "dumb",
        }
        # the trailing builtin keeps bash from exec'ing the last command in its own place: every
        # command of the script is a child of bash, as the rules' process.parent tests expect
        argv = [bash, "-c", t.script + "\n:"]
        with loopback_resolver() if t.resolver else contextlib.nullcontext() as server:
            resolv_conf = None
            if server is not None:
                resolv_conf = work / "resolv.conf"
                resolv_conf.write_text(f"nameserver {server}\noptions attempts:1 timeout:2\n")
            try:
                proc = subprocess.Popen(
                    argv, cwd=work, env=env, preexec_fn=_placement(t, cgroup, resolv_conf),
                    start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )  # fmt: skip
            except (OSError, subprocess.SubprocessError) as exc:
                return Ran(None, f"could not start: {exc}")
            try:
                _, stderr = proc.communicate(timeout=_RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                _, stderr = proc.communicate()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # anything the script left behind in its session
    tail = stderr.decode(errors="replace").strip().splitlines()[-3:]
    return Ran(proc.returncode, "" if proc.returncode == 0 else " | ".join(tail))


# ---------------------------------------------------------------------------------------- report


@dataclass(frozen=True, slots=True)
class Row:
    """One technique's outcome."""

    technique: Technique
    #: rule ids that alerted while it ran
    alerted: tuple[str, ...] = ()
    #: why it did not run (None: it ran)
    skipped: str | None = None
    ran: Ran | None = None
    #: the documents the engine was given while it ran (only with ``record_events``)
    events: tuple[Event, ...] = ()

    @property
    def expected(self) -> tuple[str, ...]:
        """Return the rule ids that must alert."""
        return tuple(r.rule_id for r in self.technique.rules)

    @property
    def hit(self) -> bool:
        """Return whether every expected rule alerted."""
        return self.skipped is None and all(r in self.alerted for r in self.expected)

    @property
    def partial(self) -> bool:
        """Return whether some, not all, expected rules alerted."""
        return not self.hit and any(r in self.alerted for r in self.expected)


@dataclass(frozen=True, slots=True)
class Report:
    """Every row, the imported rules and the backend they ran on."""

    rows: tuple[Row, ...]
    imported: Imported
    backend: str
    names: dict[str, str] = field(default_factory=dict)  # rule id -> file stem, for extras

    @property
    def ran(self) -> list[Row]:
        """Return the rows of techniques that ran."""
        return [r for r in self.rows if r.skipped is None]

    @property
    def hits(self) -> list[Row]:
        """Return the rows whose every expected rule alerted."""
        return [r for r in self.rows if r.hit]

    @property
    def ratio(self) -> float:
        """Return the share of techniques that ran and alerted."""
        ran = self.ran
        return len(self.hits) / len(ran) if ran else 0.0

    def render(self, *, events: bool = False) -> str:
        """Return the table: per technique the rules expected, whether each alerted, what else alerted
        (and, with ``events``, the documents the engine saw while it ran)."""
        width = max(len(r.technique.id) for r in self.rows)
        lines = [
            f"re-enactment on the {self.backend} plane: {len(self.rows)} techniques, "
            f"{len(self.imported.policy.rules)} rules imported"
            + (f", {len(self.imported.missing)} not imported" if self.imported.missing else ""),
            "",
            f"{'technique':<{width}}  {'att&ck':<9}  {'tactic':<20}  {'result':<8}  rule expected -> alerted",
        ]
        for row in self.rows:
            t = row.technique
            result = (
                "skipped" if row.skipped is not None else "ALERTED" if row.hit else "partial" if row.partial
                else "missed"
            )  # fmt: skip
            head = f"{t.id:<{width}}  {t.attack:<9}  {t.tactic:<20}  {result:<8}  "
            pad = " " * len(head)
            for i, ref in enumerate(t.rules):
                origin = "DR" if ref.origin == "detection-rules" else "PA"
                if ref.rule_id in self.imported.missing:
                    state = f"not imported ({self.imported.missing[ref.rule_id]})"
                elif row.skipped is not None:
                    state = "-"
                else:
                    state = "yes" if ref.rule_id in row.alerted else "no"
                lines.append(f"{head if i == 0 else pad}[{origin}] {ref.name} -> {state}")
            extra = sorted({self.names.get(r, r) for r in row.alerted if r not in row.expected})
            if extra:
                lines.append(f"{pad}also alerted: {', '.join(extra)}")
            if row.skipped is not None:
                lines.append(f"{pad}not run: {row.skipped}")
            elif row.ran is not None and row.ran.status != 0:
                lines.append(f"{pad}script exit {row.ran.status}: {row.ran.error}")
            if events:
                lines += [f"{pad}  {describe_event(doc)}" for doc in row.events]
        ran = self.ran
        lines += [
            "",
            f"alerted: {len(self.hits)} of {len(ran)} techniques run ({self.ratio:.0%}); "
            f"partial {sum(1 for r in ran if r.partial)}; missed {sum(1 for r in ran if not r.hit and not r.partial)}; "
            f"not run {len(self.rows) - len(ran)}; goal {GOAL:.0%}",
            "[DR] detection-rules rules/linux, [PA] protections-artifacts behavior/rules/linux",
        ]
        return "\n".join(lines)


def reenact(
    techniques: Sequence[Technique],
    cgroup: Path,
    cache: Path,
    backend: str,
    *,
    settle_turns: int = 3,
    record_events: bool = False,
) -> Report:
    """Import the techniques' rules, run each technique under a detect-mode agent, collect alerts."""
    refs = needed_rules(techniques)
    imported = import_rules(refs)
    names = {r.rule_id: r.name for r in refs}
    rows: list[Row] = []
    log = EventLog() if record_events else None
    loopback_up()  # a fresh guest boots with lo down; the web-server technique serves on 127.0.0.1
    with running_agent(imported.policy, cgroup, cache, backend, log) as (agent, alerts):
        for t in techniques:
            why = unavailable(t)
            if why is not None:
                rows.append(Row(t, skipped=why))
                continue
            mark, docs = alerts.mark(), log.mark() if log else 0
            ran = run_technique(t, cgroup)
            agent.wait_turns(settle_turns, timeout=30)
            seen = tuple(log.since(docs)) if log else ()
            rows.append(Row(t, tuple(dict.fromkeys(alerts.since(mark))), None, ran, seen))
    return Report(tuple(rows), imported, backend, names)


def _part(doc: object, key: str) -> dict[str, object]:
    value = doc.get(key) if isinstance(doc, dict) else None
    return value if isinstance(value, dict) else {}


def describe_event(doc: Event) -> str:
    """One line of an ECS document: category/type/action, the process, and its object."""
    event, process, file, dest = (_part(doc, k) for k in ("event", "process", "file", "destination"))
    kinds = ["/".join(str(x) for x in v) if isinstance(v, list) else str(v) for v in
             (event.get("category"), event.get("type"), event.get("action"))]  # fmt: skip
    what = [
        "/".join(kinds),
        f"pid={process.get('pid')} name={process.get('name')} exe={process.get('executable')}",
        f"args={process.get('args')} parent={_part(process, 'parent').get('name')}",
    ]
    if file:
        what.append(f"file={file.get('path')} ext={file.get('extension')}")
    if dest:
        what.append(f"dest={dest.get('ip')}:{dest.get('port')}")
    return " ".join(what)
