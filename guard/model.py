"""Core value types shared by every layer: hooks, modes and backend names."""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["HOOKS", "BackendName", "Hook", "Mode"]


class Hook(enum.StrEnum):
    """The four LSM hooks the agent enforces on; the value is the kernel's hook name."""

    BPRM_CHECK_SECURITY = "bprm_check_security"
    FILE_OPEN = "file_open"
    SOCKET_CONNECT = "socket_connect"
    PTRACE_ACCESS_CHECK = "ptrace_access_check"

    @property
    def lsm_function(self) -> str:
        """Return the kernel function a BPF-LSM program attaches to (``bpf_lsm_<hook>``)."""
        return f"bpf_lsm_{self.value}"


#: Hooks in the order they are reported.
HOOKS: Final[tuple[Hook, ...]] = tuple(Hook)


class Mode(enum.StrEnum):
    """Enforcement mode: off (hooks return at once), detect (record only) or enforce (deny)."""

    OFF = "off"
    DETECT = "detect"
    ENFORCE = "enforce"


class BackendName(enum.StrEnum):
    """Kernel backends, strongest first."""

    LSM = "lsm"
    COMPAT = "compat"
    FAKE = "fake"
