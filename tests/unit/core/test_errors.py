"""The error tree: exit codes, the documented hierarchy kept honest, and the classes' messages."""

from __future__ import annotations

import ast
import errno
import re
from pathlib import Path

import pytest

from guard import errors
from guard.errors import (
    AuditIntegrityError,
    ConfigError,
    GuardError,
    KernelUnsupportedError,
    PolicySyntaxError,
    PredicateError,
    PredicateTrap,
    PrivilegeError,
    SyscallError,
    exit_code_for,
)

GUARD = Path(errors.__file__).resolve().parent


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (KernelUnsupportedError("bpf_lsm", "refused"), 3),
        (PrivilegeError("root"), 4),
        (ConfigError("bad"), 5),
        (AuditIntegrityError("x", seq=3), 1),
        (GuardError("x"), 1),
    ],
)
def test_exit_codes(exc: GuardError, code: int) -> None:
    assert exit_code_for(exc) == code


def test_every_error_is_exported_and_documented() -> None:
    doc = errors.__doc__ or ""
    classes = [
        name for name, obj in vars(errors).items() if isinstance(obj, type) and issubclass(obj, GuardError)
    ]
    assert len(classes) >= 20
    for name in classes:
        assert name in errors.__all__, name
        assert name in doc, f"{name} missing from the tree in the module docstring"
        assert issubclass(getattr(errors, name), GuardError)


def test_syntax_error_position_and_caret() -> None:
    exc = PolicySyntaxError(
        "unexpected token 'whre'", path="p.toml", line=2, column=9, source="process\nprocess whre x == 1"
    )
    assert str(exc) == "p.toml:2:9: unexpected token 'whre'"
    assert exc.caret() == "process whre x == 1\n        ^"
    assert PolicySyntaxError("eof").caret() == ""


def _error_classes() -> dict[str, type[GuardError]]:
    return {
        name: obj
        for name, obj in vars(errors).items()
        if isinstance(obj, type) and issubclass(obj, GuardError)
    }


def _documented_tree() -> dict[str, str | None]:
    """The hierarchy drawn in the module docstring, as {class: parent}."""
    doc = (errors.__doc__ or "").split("::", 1)[1]
    parents: dict[str, str | None] = {}
    stack: list[str] = []
    for line in doc.splitlines():
        text = line[4:]
        if not text.strip():
            if stack:
                break
            continue
        at = max(text.find("├── "), text.find("└── "))
        depth = 0 if at < 0 else at // 4 + 1
        match = re.match(r"\w+", text if at < 0 else text[at + 4 :])
        assert match, line
        del stack[depth:]
        parents[match.group()] = stack[-1] if stack else None
        stack.append(match.group())
    return parents


def test_the_docstring_tree_is_the_class_tree() -> None:
    classes = _error_classes()
    tree = _documented_tree()
    assert set(tree) == set(classes)
    for name, cls in classes.items():
        base = cls.__bases__[0].__name__ if cls is not GuardError else None
        assert tree[name] == base, f"{name} is drawn under {tree[name]}, derives from {base}"


def _sources() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text())) for path in sorted(GUARD.rglob("*.py"))]


def test_every_guard_error_class_lives_in_errors() -> None:
    names = set(_error_classes())
    outside = [
        f"{path.relative_to(GUARD)}:{node.lineno} {node.name}"
        for path, tree in _sources()
        if path.name != "errors.py" or path.parent != GUARD
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(
            isinstance(b, ast.Name | ast.Attribute) and ast.unparse(b).split(".")[-1] in names
            for b in node.bases
        )
    ]
    assert outside == []


def test_every_error_class_is_raised_or_has_subclasses() -> None:
    """Prune classes nothing raises: each one is constructed somewhere in guard/, or is a parent."""
    constructed = {
        ast.unparse(node.func).split(".")[-1]
        for path, tree in _sources()
        if path != GUARD / "errors.py"
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
    }
    classes = _error_classes()
    parents = {cls.__bases__[0].__name__ for cls in classes.values() if cls is not GuardError}
    unused = sorted(name for name in classes if name not in constructed and name not in parents)
    assert unused == []


def test_a_predicate_trap_is_a_predicate_error_with_its_kind() -> None:
    trap = PredicateTrap("fuel", "instruction budget exhausted")
    assert isinstance(trap, PredicateError)
    assert (trap.kind, trap.detail) == ("fuel", "instruction budget exhausted")
    assert str(trap) == "fuel: instruction budget exhausted"
    assert exit_code_for(trap) == 1


def test_syscall_error_names_the_errno() -> None:
    exc = SyscallError("bpf(BPF_MAP_CREATE)", errno.EPERM)
    assert (exc.what, exc.errno) == ("bpf(BPF_MAP_CREATE)", errno.EPERM)
    assert str(exc) == "bpf(BPF_MAP_CREATE): EPERM (Operation not permitted)"
    assert str(SyscallError("x", 4242)).startswith("x: 4242 (")
