"""Ring-buffer records: one ``struct guard_event`` decodes; any other size is counted and warned about once."""

from __future__ import annotations

import ctypes

import pytest
from structlog.testing import capture_logs

from guard.errors import MapError
from guard.lsm import abi
from guard.lsm.abi import Decision
from guard.lsm.fake import FakeBackend
from guard.lsm.ring import EVENT_SIZE, RingDecoder
from guard.model import Hook


def record(**fields: int) -> bytes:
    event = abi.Event(**fields)
    return bytes(event)


def test_the_record_size_is_the_event_struct() -> None:
    assert ctypes.sizeof(abi.Event) == EVENT_SIZE


def test_a_record_of_the_event_size_decodes() -> None:
    ring = RingDecoder("lsm")
    event = ring.decode(record(hook=Hook.SOCKET_CONNECT.abi, decision=Decision.DENIED, rule_id=7, port=443))
    assert event is not None
    assert (event.hook, event.decision, event.rule_id, event.port) == (
        Hook.SOCKET_CONNECT.abi,
        Decision.DENIED,
        7,
        443,
    )
    assert ring.counters() == {"ring_bad_size": 0}


@pytest.mark.parametrize("size", [0, 1, EVENT_SIZE - 1, EVENT_SIZE + 1, EVENT_SIZE + 8])
def test_a_record_of_another_size_is_counted_not_decoded(size: int) -> None:
    ring = RingDecoder("compat")
    assert ring.decode(bytes(size)) is None
    assert ring.counters() == {"ring_bad_size": 1}


def test_a_bad_size_is_warned_about_once() -> None:
    ring = RingDecoder("lsm")
    with capture_logs() as logs:
        for _ in range(3):
            assert ring.decode(bytes(EVENT_SIZE - 4)) is None
        assert ring.decode(record(rule_id=1)) is not None
    assert ring.bad_size == 3
    assert logs == [
        {
            "event": "ring_record_bad_size",
            "log_level": "warning",
            "plane": "lsm",
            "size": EVENT_SIZE - 4,
            "expected": EVENT_SIZE,
        }
    ]


def test_the_fake_decodes_submitted_records_like_a_real_plane() -> None:
    fake = FakeBackend()
    fake.load()
    assert fake.plane_counters() == {"ring_bad_size": 0}
    with capture_logs() as logs:
        fake.submit(record(hook=Hook.BPRM_CHECK_SECURITY.abi, rule_id=3))
        fake.submit(bytes(EVENT_SIZE + 16))
    assert [(e.hook, e.rule_id) for e in fake.poll_events()] == [(Hook.BPRM_CHECK_SECURITY.abi, 3)]
    assert fake.plane_counters() == {"ring_bad_size": 1}
    assert [(entry["event"], entry["plane"]) for entry in logs] == [("ring_record_bad_size", "fake")]
    fake.load()  # a fresh load starts from zero
    assert fake.plane_counters() == {"ring_bad_size": 0}


def test_an_unloaded_fake_has_no_ring() -> None:
    fake = FakeBackend()
    with pytest.raises(MapError):
        fake.submit(record())
    with pytest.raises(MapError):
        fake.plane_counters()
