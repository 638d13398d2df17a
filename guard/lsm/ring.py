"""Ring-buffer records to events: a record of the wrong size is counted, never dropped silently.

Every plane hands its raw records to a :class:`RingDecoder`. A record of another size means the
programs and :mod:`guard.lsm.abi` disagree on the event layout: it cannot be decoded, so it is
counted (``ring_bad_size``, in the plane's counters and the agent's status) and reported by one
warning, the first time.
"""

from __future__ import annotations

import ctypes
from typing import Final

import structlog

from guard.lsm import abi

__all__ = ["EVENT_SIZE", "RingDecoder"]

log = structlog.get_logger(__name__)

#: The size of every ring-buffer record the programs submit.
EVENT_SIZE: Final = ctypes.sizeof(abi.Event)


class RingDecoder:
    """Decodes a plane's ring-buffer records, counting those of the wrong size."""

    def __init__(self, plane: str) -> None:
        self.plane = plane
        #: records whose size is not ``EVENT_SIZE`` (not decoded)
        self.bad_size = 0

    def decode(self, record: bytes) -> abi.Event | None:
        """Return the record's event, or None for a record of the wrong size (counted; warned about once)."""
        if len(record) == EVENT_SIZE:
            return abi.Event.from_buffer_copy(record)
        self.bad_size += 1
        if self.bad_size == 1:
            log.warning("ring_record_bad_size", plane=self.plane, size=len(record), expected=EVENT_SIZE)
        return None

    def counters(self) -> dict[str, int]:
        """Return the decoder's counters, as the plane reports them."""
        return {"ring_bad_size": self.bad_size}
