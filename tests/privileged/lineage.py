"""An event's lineage against /proc: the ppid, and start times compared in clock ticks.

/proc/<pid>/stat field 22 is the start time in clock ticks (``SC_CLK_TCK``) since boot, from the
task's boot-time clock; an event's ``start_ns`` is the kernel's CLOCK_MONOTONIC start time. The two
differ by the time the machine spent suspended (measured now, 0 on a machine never suspended), so
the event's time plus that gap, divided down to ticks, must equal the field.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from guard.lsm import abi


def start_ticks(pid: int) -> int:
    """Field 22 of /proc/<pid>/stat (read while the process lives)."""
    text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 onwards
    return int(fields[22 - 3])


def to_ticks(monotonic_ns: int) -> int:
    """A CLOCK_MONOTONIC time as /proc's start-time ticks."""
    # whole milliseconds: the two clock reads are not one atomic read
    suspended_ms = round((time.clock_gettime(time.CLOCK_BOOTTIME) - time.monotonic()) * 1e3)
    return (monotonic_ns + suspended_ms * 1_000_000) // (1_000_000_000 // os.sysconf("SC_CLK_TCK"))


def assert_lineage(event: abi.Event, ticks: int, *, parent: int) -> None:
    """The event names its process's start and its real parent (pid and start)."""
    assert event.start_ns > 0
    assert to_ticks(event.start_ns) == ticks, (event.start_ns, ticks)
    assert event.ppid == parent
    assert to_ticks(event.parent_start_ns) == start_ticks(parent), (
        event.parent_start_ns,
        start_ticks(parent),
    )
