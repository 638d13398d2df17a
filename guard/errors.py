"""The exception hierarchy of kestrel-guard.

Our exception hierarchy::

    GuardError
    ├── ConfigError
    ├── PrivilegeError                  (a root-only command run without root)
    ├── AgentUnavailableError           (the agent runs but its control socket gave no answer in time)
    ├── SigningKeyError                 (a key file missing, unreadable or not Ed25519)
    ├── BundleError(check)              (a policy bundle refused: the failed check names why)
    ├── ConformanceError                (the EQL spec corpus is missing or malformed)
    ├── PolicyError
    │   ├── PolicySyntaxError(path, line, column, source)
    │   ├── PolicySemanticError
    │   └── PolicyCompileError
    ├── PredicateError
    │   └── PredicateTrap(kind)         (user code over its budget - fuel, memory, stack - or failed)
    ├── KernelError
    │   ├── KernelUnsupportedError(feature)
    │   ├── BpfLoadError(verifier_log)
    │   ├── BtfError(path)              (missing, unreadable or corrupt BTF)
    │   │   └── BtfLookupError          (no such type, member or function)
    │   ├── SyscallError(what, errno)   (a bpf(2) or landlock call failed)
    │   └── MapError
    └── AuditError
        └── AuditIntegrityError(seq)

A :class:`PredicateTrap` never leaves the batch predicate that ran the user code: it gives
the events of that call their rule's ``fail_mode`` and is counted (``trap_<kind>``).

Foreign exceptions (``LarkError``, bcc's bare ``Exception``, ``OSError`` from a
syscall, ``tomllib.TOMLDecodeError``) are translated once, at the boundary of the
subpackage that meets them, with ``raise ... from exc``. The CLI maps these classes
to exit codes (see :data:`EXIT_CODES`).
"""

from __future__ import annotations

import errno as errno_mod
import os
from typing import Final

__all__ = [
    "EXIT_CODES",
    "AgentUnavailableError",
    "AuditError",
    "AuditIntegrityError",
    "BpfLoadError",
    "BtfError",
    "BtfLookupError",
    "BundleError",
    "ConfigError",
    "ConformanceError",
    "GuardError",
    "KernelError",
    "KernelUnsupportedError",
    "MapError",
    "PolicyCompileError",
    "PolicyError",
    "PolicySemanticError",
    "PolicySyntaxError",
    "PredicateError",
    "PredicateTrap",
    "PrivilegeError",
    "SigningKeyError",
    "SyscallError",
    "exit_code_for",
]


class GuardError(Exception):
    """Base class for every error kestrel-guard raises on purpose."""


class ConfigError(GuardError):
    """A configuration file or setting is missing, unreadable or invalid."""


class PrivilegeError(GuardError):
    """A command that needs root (or a configured group) was run without it."""


class AgentUnavailableError(GuardError):
    """The agent runs but did not answer its control socket in time: guardctl did nothing itself."""


class SigningKeyError(GuardError):
    """A key file is missing, unreadable or not an Ed25519 key."""


class BundleError(GuardError):
    """A policy bundle was refused (or cannot be built, signed or kept).

    ``check`` is a short stable name of the failed check (``hash``, ``untrusted_key``,
    ``threshold``, ``expired``, ``downgrade``, ``archive``, ``entry``, ``size``, ...);
    the message is one line naming the file, entry or field.
    """

    def __init__(self, check: str, message: str, *, path: str | None = None) -> None:
        self.check = check
        self.path = path
        self.detail = message
        super().__init__(f"{path}: {check}: {message}" if path else f"{check}: {message}")


class ConformanceError(GuardError):
    """The conformance corpus is missing or malformed, or a run was asked for something it lacks."""


class PolicyError(GuardError):
    """A policy cannot be used."""


class PolicySyntaxError(PolicyError):
    """A rule does not parse; carries the position and a caret line."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: int | None = None,
        source: str | None = None,
    ) -> None:
        self.path = path
        self.line = line
        self.column = column
        self.source = source
        self.message = message
        super().__init__(self._format())

    def _format(self) -> str:
        where = self.path or "<query>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"

    def caret(self) -> str:
        """Return the offending source line with a caret under the column, or ''."""
        if self.source is None or self.line is None:
            return ""
        lines = self.source.splitlines()
        if not 1 <= self.line <= len(lines):
            return ""
        text = lines[self.line - 1]
        col = max(1, self.column or 1)
        return f"{text}\n{' ' * (col - 1)}^"


class PolicySemanticError(PolicyError):
    """A rule parses but is wrong: unknown field, type mismatch, bad function call."""


class PolicyCompileError(PolicyError):
    """A valid rule cannot be compiled to the requested target."""


class PredicateError(GuardError):
    """A predicate runtime failed."""


class PredicateTrap(PredicateError):
    """User code exceeded its budget or failed; ``kind`` is fuel | memory | stack | error."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


class KernelError(GuardError):
    """The kernel refused or lacks something the agent needs."""


class KernelUnsupportedError(KernelError):
    """A kernel feature the command needs is not available here."""

    def __init__(self, feature: str, reason: str) -> None:
        self.feature = feature
        self.reason = reason
        super().__init__(f"{feature}: {reason}")


class BpfLoadError(KernelError):
    """A BPF program failed to load; carries the verifier log when there is one."""

    def __init__(self, message: str, *, errno: int | None = None, verifier_log: str = "") -> None:
        self.errno = errno
        self.verifier_log = verifier_log
        super().__init__(message)


class BtfError(KernelError):
    """A BTF file is missing, unreadable or corrupt."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class BtfLookupError(BtfError):
    """A type, member or function is not in the BTF."""


class SyscallError(KernelError):
    """A system call failed; carries the errno and the call's description."""

    def __init__(self, what: str, err: int) -> None:
        self.what = what
        self.errno = err
        name = errno_mod.errorcode.get(err, str(err))
        super().__init__(f"{what}: {name} ({os.strerror(err)})")


class MapError(KernelError):
    """A BPF map operation failed."""


class AuditError(GuardError):
    """The audit trail cannot be written or read."""


class AuditIntegrityError(AuditError):
    """The audit chain is broken at a given sequence number."""

    def __init__(self, message: str, *, seq: int | None = None) -> None:
        self.seq = seq
        super().__init__(message)


#: CLI exit codes, most specific class first. 2 is argparse's usage error.
EXIT_CODES: Final[tuple[tuple[type[GuardError], int, str], ...]] = (
    (KernelUnsupportedError, 3, "a kernel feature the command needs is unavailable"),
    (PrivilegeError, 4, "the command needs root"),
    (ConfigError, 5, "the configuration is invalid or unreadable"),
    (AgentUnavailableError, 6, "the agent runs but did not answer: nothing was changed by guardctl"),
    (GuardError, 1, "any other error (policy, kernel, audit, ...)"),
)


def exit_code_for(exc: GuardError) -> int:
    """Return the CLI exit code documented for an error."""
    for cls, code, _ in EXIT_CODES:
        if isinstance(exc, cls):
            return code
    return 1
