"""The offline evaluator on small ECS streams: null and multi-value rules, case rules, sequences."""

from __future__ import annotations

import pytest

from guard.policy.analyzer import compile_query
from guard.policy.evaluator import DEFAULT_LIMIT, evaluate
from tests.fields import dig


def proc(seq: int, t: int, **fields: object) -> dict[str, object]:
    return {"@timestamp": t, "event": {"category": "process", "sequence": seq}, **fields}


def ids(query: str, events: list[dict[str, object]]) -> list[list[object]]:
    rows = evaluate(compile_query(query), events, tiebreaker_field="event.sequence")
    return [[None if e is None else dig(e, "event", "sequence") for e in r.events] for r in rows]


EVENTS = [
    proc(1, 10, process={"name": "Bash", "pid": 1, "args": ["-c", "id"]}),
    proc(2, 20, process={"name": "curl", "pid": 2, "args": ["http://x"]}),
    proc(3, 30, process={"pid": 3}),
    {"@timestamp": 40, "event": {"category": ["file", "process"], "sequence": 4}, "process.name": "sh"},
]


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ('process.name == "bash"', []),  # == is case-sensitive
        ('process.name : "bash"', [1]),  # : is not
        ('process.name in ("bash", "sh")', [4]),
        ('process.name in~ ("bash", "sh")', [1, 4]),
        ('process.name like "c*"', [2]),
        ('process.name like~ "B?SH"', [1]),
        ('process.name regex "[a-z]+"', [2, 4]),
        ("process.name == null", [3]),
        ("process.name != null", [1, 2, 4]),
        ('process.name != "curl"', [1, 3, 4]),  # a missing field is not "curl"
        ('process.name not in ("curl")', [1, 3, 4]),
        ('process.args == "-c"', [1]),  # any value of a multi-valued field
        ('process.args : "HTTP*"', [2]),
        ("process.pid > 1 and process.pid < 3", [2]),
        ("not process.pid > 1", [1]),  # a comparison with null is null, and not (null) stays null
        ('startsWith~(process.name, "b")', [1]),
        ("length(process.name) == 4", [1, 2]),
        ("process.pid + 1 == 3", [2]),
        ("?nope.field == null", [1, 2, 3, 4]),
    ],
)
def test_event_query_semantics(condition: str, expected: list[int]) -> None:
    assert ids(f"process where {condition}", EVENTS) == [[i] for i in expected]


def test_any_and_multi_valued_category() -> None:
    assert ids("file where true", EVENTS) == [[4]]
    assert ids("any where true | tail 2", EVENTS) == [[3], [4]]
    assert ids("any where true | head 1", EVENTS) == [[1]]


def test_default_limit() -> None:
    many = [proc(i, i) for i in range(1, 80)]
    assert len(ids("process where true", many)) == DEFAULT_LIMIT


def test_order_is_time_then_tiebreaker_not_input_order() -> None:
    shuffled = [proc(3, 5), proc(1, 5), proc(2, 1)]
    assert ids("process where true", shuffled) == [[2], [1], [3]]


def seq_event(seq: int, t: int, cat: str, pid: int, **fields: object) -> dict[str, object]:
    return {"@timestamp": t, "event": {"category": cat, "sequence": seq}, "process": {"pid": pid}, **fields}


STREAM = [
    seq_event(1, 1000, "process", 7),
    seq_event(2, 2000, "file", 7),
    seq_event(3, 2500, "process", 8),
    seq_event(4, 3000, "process", 7),  # a newer partial for pid 7 replaces the older one
    seq_event(5, 9000, "network", 7),
    seq_event(6, 9500, "network", 8),
]


def test_sequence_by_key_and_one_pending_match_per_state() -> None:
    assert ids("sequence by process.pid [process where true] [network where true]", STREAM) == [
        [4, 5],
        [3, 6],
    ]


def test_sequence_maxspan_expires_partials() -> None:
    q = "sequence by process.pid with maxspan=6500ms [process where true] [network where true]"
    assert ids(q, STREAM) == [[4, 5]]  # pid 8: 2500 -> 9500 is 7 s
    assert ids(q.replace("6500ms", "5s"), STREAM) == []


def test_sequence_until_drops_a_keys_partials() -> None:
    q = "sequence by process.pid [process where true] [network where true] until [file where true]"
    assert ids(q, STREAM) == [[4, 5], [3, 6]]  # the file event for pid 7 comes before the second start
    stream = [*STREAM[:4], seq_event(9, 4000, "file", 7), *STREAM[4:]]
    assert ids(q, stream) == [[3, 6]]


def test_sequence_missing_step_and_null_keys() -> None:
    q = "sequence by process.pid [process where true] ![file where true] [network where true]"
    assert ids(q, STREAM) == [[4, None, 5], [3, None, 6]]
    with_file = [*STREAM[:4], seq_event(9, 4000, "file", 7), *STREAM[4:]]
    assert ids(q, with_file) == [[3, None, 6]]
    no_pid = [{"@timestamp": 1, "event": {"category": "process", "sequence": 1}},
              {"@timestamp": 2, "event": {"category": "network", "sequence": 2}}]  # fmt: skip
    assert ids("sequence by process.pid [process where true] [network where true]", no_pid) == []
    assert ids("sequence by ?process.pid [process where true] [network where true]", no_pid) == [[1, 2]]


def test_a_function_error_on_one_event_is_null_for_that_event() -> None:
    events = [proc(1, 1, process={"name": "12"}), proc(2, 2, process={"name": "abc"})]
    assert ids("process where number(process.name) == 12", events) == [[1]]
    assert ids("process where number(process.name) == null", events) == [[2]]
