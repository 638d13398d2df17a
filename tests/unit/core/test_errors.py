from __future__ import annotations

import pytest

from guard import errors
from guard.errors import (
    AuditIntegrityError,
    ConfigError,
    GuardError,
    KernelUnsupportedError,
    PolicySyntaxError,
    PrivilegeError,
    exit_code_for,
)


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
