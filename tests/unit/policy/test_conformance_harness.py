"""The elastic-eql harness itself: loading, comparison and reporting, with fake evaluators."""

from __future__ import annotations

import ast
import json
import re
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from guard.errors import ConformanceError, GuardError, PolicySemanticError
from guard.policy import conformance
from guard.policy import corpus as corpus_module
from guard.policy.conformance import DEFAULT_SIZE, Match, check, render_join_key, run_corpus
from guard.policy.corpus import (
    SPEC_FILES,
    Case,
    Dataset,
    default_corpus,
    format_date_millis,
    load_corpus,
    parse_date_millis,
)

README_COUNTS = {
    "test_queries.toml": 133,
    "additional_test_queries.toml": 61,
    "test_queries_date.toml": 4,
    "test_extra.toml": 40,
    "test_missing_events.toml": 26,
}


@pytest.fixture(scope="module")
def corpus() -> Path:
    return default_corpus()


@pytest.fixture(scope="module")
def loaded(corpus: Path) -> tuple[list[Case], dict[str, Dataset]]:
    return load_corpus(corpus)


@pytest.fixture(scope="module")
def cases(loaded: tuple[list[Case], dict[str, Dataset]]) -> dict[str, Case]:
    return {c.name: c for c in loaded[0]}


@pytest.fixture(scope="module")
def datasets(loaded: tuple[list[Case], dict[str, Dataset]]) -> dict[str, Dataset]:
    return loaded[1]


def perfect(cases: Sequence[Case]) -> Callable[[str, Dataset], list[Match]]:
    """A fake evaluator that answers every query with its first expected alternative."""
    by_query = {(c.query, c.dataset): c for c in cases}

    def evaluate(query: str, dataset: Dataset) -> list[Match]:
        case = by_query[(query, dataset.name)]
        ids = case.expected[0]
        keys = case.join_keys or ()
        if not keys:
            return [Match((i,)) for i in ids]
        return [Match(ids, keys)]  # one row carrying all ids and keys: flattening makes it equivalent

    return evaluate


def make_case(expected: Sequence[Sequence[int]], join_keys: Sequence[str | None] | None = None) -> Case:
    return Case(
        file="test_extra.toml",
        name="handmade",
        query="sequence [a where true] [b where true]",
        expected=tuple(tuple(alt) for alt in expected),
        join_keys=None if join_keys is None else tuple(join_keys),
        dataset="extra",
    )


# --------------------------------------------------------------------------- the real corpus


def test_spec_table_matches_the_readme(corpus: Path) -> None:
    readme = (corpus / "README.md").read_text()
    rows = re.findall(r"^\| (\S+\.toml) \| (\d+)[^|]*\| data/(\S+?)\.\S+ \| (\w+) \|$", readme, re.MULTILINE)
    table = {file: (int(count), data, tiebreaker) for file, count, data, tiebreaker in rows}
    assert table == {s.file: (s.count, s.dataset, s.tiebreaker) for s in SPEC_FILES}
    assert {s.file: s.count for s in SPEC_FILES} == README_COUNTS
    assert "Total: 264 queries" in readme


def test_loads_264_cases_with_the_readme_counts(loaded: tuple[list[Case], dict[str, Dataset]]) -> None:
    all_cases, _ = loaded
    assert len(all_cases) == 264
    assert Counter(c.file for c in all_cases) == README_COUNTS
    assert len({c.id for c in all_cases}) == 264
    assert [c.file for c in all_cases] == sorted(
        (c.file for c in all_cases), key=[s.file for s in SPEC_FILES].index
    )


def test_commented_out_queries_are_not_cases(cases: dict[str, Case]) -> None:
    for name in ("missingField1", "equalsNullHead", "sequenceSameKeyBothOptionalAndNonOptional"):
        assert name not in cases
    assert "withByKey_tail_head" not in cases


def test_case_fields(cases: dict[str, Case]) -> None:
    c = cases["simpleQueryEqual"]
    assert (c.file, c.dataset, c.query, c.expected, c.join_keys) == (
        "test_queries.toml",
        "endgame-140",
        "process where serial_event_id == 1",
        ((1,),),
        None,
    )
    assert cases["processWhereFalse"].expected == ((),)
    # multi-line queries are trimmed, and an EQL `//` comment at their start is kept
    assert cases["basic"].query.startswith("sequence by transID\n")
    assert cases["regexWOCharClasses"].query.startswith("//")
    assert cases["betweenAdditional1"].dataset == "endgame-140"
    assert cases["filterOnDateExactWithMillis"].file == "test_queries_date.toml"


def test_join_keys_with_bare_and_quoted_null(cases: dict[str, Case]) -> None:
    assert cases["basic"].join_keys == ("1234", "1235")
    assert cases["byDate"].join_keys == ("1970-01-01T00:00:00.000Z",)
    assert cases["sequenceOptionalFieldAsKeyAndFirstFilter"].join_keys == ("null", "null")
    assert cases["sequenceWithOptionalMultivalue_simple"].join_keys == (None,)
    assert cases["sequenceWithOptionalMultivalue_multiPlusOptional"].join_keys == ("tag1", None)
    assert cases["sequenceWithOptionalMultivalue_optionalPlusMulti"].join_keys == (None, "tag1")
    assert cases["optionalNoDocsFieldNullEquality"].join_keys is None
    # the query text keeps its own `null`s
    assert "== null" in cases["optionalNoDocsFieldNullEquality"].query


def test_missing_event_slots(cases: dict[str, Case]) -> None:
    assert cases["missingInBetween_noMatches"].expected == ((1, -1, 2, 2, -1, 4),)
    assert cases["leadingSimple"].expected == ((-1, 2, -1, 5, -1, 6),)
    assert cases["withByKey_runsOnMissing"].expected[0][:5] == (2, 4, -1, -1, 5)
    assert cases["withByKey1"].join_keys == ("foo", "foo")
    assert cases["multipleMissing4"].expected == ((),)


def test_every_expected_id_exists_in_its_dataset(
    loaded: tuple[list[Case], dict[str, Dataset]],
) -> None:
    all_cases, by_name = loaded
    for case in all_cases:
        dataset = by_name[case.dataset]
        ids = {dataset.event_id(e) for e in dataset.events}
        for alt in case.expected:
            allowed = ids | ({-1} if case.file == "test_missing_events.toml" else set())
            assert set(alt) <= allowed, case.id
            assert len(alt) < DEFAULT_SIZE, case.id


def test_datasets(datasets: dict[str, Dataset]) -> None:
    assert {n: (len(d.events), d.tiebreaker) for n, d in datasets.items()} == {
        "endgame-140": (102, "serial_event_id"),
        "extra": (23, "sequence"),
        "missing-events": (48, "sequence"),
    }
    for d in datasets.values():
        assert d.aliases["event.category"] == "event_type"
        assert d.aliases["event.sequence"] == d.tiebreaker
        category = d.fields["event.category"]
        assert (category.type, category.path, category.randomized, category.is_alias) == (
            "keyword",
            "event_type",
            True,
            True,
        )
        assert d.fields["@timestamp"].type == "date"
        assert (d.timestamp_field, d.category_field) == ("@timestamp", "event.category")


def test_mapping_details(datasets: dict[str, Dataset]) -> None:
    endgame, extra, missing = datasets["endgame-140"], datasets["extra"], datasets["missing-events"]
    assert endgame.fields["source_address"].type == "ip"
    assert endgame.fields["pid"].type == "long"
    file_name = endgame.fields["file_name"]
    assert file_name.type == "text"
    assert [(s.name, s.type, s.ignore_above) for s in file_name.subfields] == [
        ("file_name.keyword", "keyword", 256)
    ]
    assert endgame.fields["unique_pid"].origin == "dynamic"
    assert endgame.field("no_such_field") is None
    assert extra.fields["optional_field_default_null"].null_value == "NULL"
    assert extra.fields["optional_field_mapping_only"].type == "keyword"
    assert (extra.fields["version"].type, extra.fields["version"].origin) == ("version", "upstream")
    assert extra.fields["date_tags"].type == "date"
    assert extra.fields["transID"].type == "long"
    assert extra.fields["process.pid"].type == "long"
    assert extra.fields["tags"].type == "text"
    assert missing.fields["tag"].type == "keyword"
    assert missing.fields["sequence"].origin == "upstream"


def test_alias_fields_are_materialised_and_values_kept_as_stored(datasets: dict[str, Dataset]) -> None:
    for d in datasets.values():
        for event in d.events:
            nested = event["event"]
            assert isinstance(nested, dict)
            assert nested["category"] == event["event_type"]
            assert nested["sequence"] == event[d.tiebreaker]
    assert datasets["extra"].events[0]["@timestamp"] == "1"
    assert datasets["extra"].events[0]["transID"] == [1234, 599999]
    assert datasets["extra"].events[9]["process.pid"] == 123  # a literal dotted key, as stored
    assert datasets["endgame-140"].events[0]["@timestamp"] == 0
    assert datasets["missing-events"].events[4]["@timestamp"] == "2022-05-04T12:00:00.000Z"
    assert datasets["extra"].events[6]["optional_field_default_null"] is None


def test_ordering(datasets: dict[str, Dataset]) -> None:
    endgame = datasets["endgame-140"]
    assert [endgame.event_id(e) for e in endgame.ordered()][-4:] == [75273, 75304, 75305, 75303]
    extra = datasets["extra"]
    assert [extra.event_id(e) for e in extra.ordered()][:6] == [1, 10, 11, 2, 12, 3]
    missing = datasets["missing-events"]
    test2 = [e for e in missing.events if e["event_type"] == "test2"]
    assert missing.timestamp_millis(test2[0]) == 1651665600000
    assert missing.sort_key(test2[1]) == (1651665600001, 2)
    # tie-breakers repeat across the groups of missing-events: equal keys keep file order
    first_two = missing.ordered()[:2]
    assert [(e["event_type"], missing.event_id(e)) for e in first_two] == [("test1", 1), ("test4", 1)]


# --------------------------------------------------------------------------- check


def test_check_accepts_the_right_ids_and_rejects_the_wrong_order() -> None:
    case = make_case([[1, 2, 3]])
    ok = check(case, [Match((1,)), Match((2,)), Match((3,))])
    assert (ok.passed, ok.actual, ok.reason) == (True, (1, 2, 3), "")
    bad = check(case, [Match((2,)), Match((1,)), Match((3,))])
    assert (bad.passed, bad.actual, bad.reason) == (False, (2, 1, 3), "ids differ")
    assert not check(case, [Match((1, 2))]).passed


def test_check_accepts_any_alternative() -> None:
    case = make_case([[1, 2], [3, 4]])
    assert check(case, [Match((3, 4))]).passed
    assert check(case, [Match((1, 2))]).passed
    assert not check(case, [Match((1, 4))]).passed


def test_check_empty() -> None:
    assert check(make_case([[]]), []).passed
    assert not check(make_case([[]]), [Match((1,))]).passed


def test_check_join_keys() -> None:
    case = make_case([[1, 2, 4, 5]], ["1234", "1235"])
    assert check(case, [Match((1, 2), ("1234",)), Match((4, 5), ("1235",))]).passed
    wrong = check(case, [Match((1, 2), ("1234",)), Match((4, 5), ("9999",))])
    assert not wrong.passed
    assert wrong.reason.startswith("join keys differ")
    assert "9999" in wrong.reason
    assert (wrong.expected_join_keys, wrong.actual_join_keys) == (("1234", "1235"), ("1234", "9999"))
    assert not check(case, [Match((1, 2)), Match((4, 5))]).passed  # keys missing altogether
    # ids are compared first, as Elasticsearch's tests do
    assert check(case, [Match((2, 1), ("1234",)), Match((4, 5), ("x",))]).reason == "ids differ"


def test_check_null_join_keys_render_as_null() -> None:
    bare = make_case([[11, 12]], [None])
    quoted = make_case([[11, 12]], ["null"])
    for case in (bare, quoted):
        assert check(case, [Match((11, 12), (None,))]).passed
        assert check(case, [Match((11, 12), ("null",))]).passed
        assert not check(case, [Match((11, 12), ("tag1",))]).passed


def test_check_ignores_keys_when_the_case_lists_none() -> None:
    assert check(make_case([[1, 2]], None), [Match((1, 2), ("anything",))]).passed
    assert check(make_case([[1, 2]], []), [Match((1, 2), ("anything",))]).passed


def test_check_missing_slots() -> None:
    case = make_case([[1, -1, 2, 2, -1, 4]])
    assert check(case, [Match((1, -1, 2)), Match((2, -1, 4))]).passed
    assert not check(case, [Match((1, 2)), Match((2, 4))]).passed
    assert not check(case, [Match((1, 3, 2)), Match((2, -1, 4))]).passed


def test_check_hints_at_the_size_limit() -> None:
    outcome = check(make_case([[1]]), [Match((i,)) for i in range(60)])
    assert not outcome.passed
    assert f"at most {DEFAULT_SIZE}" in outcome.reason


@pytest.mark.parametrize(
    "rows",
    [
        ["not a match"],
        [Match(("1",))],  # type: ignore[arg-type]  # a malformed row on purpose
        [Match((True,))],
        [Match((1,), (1234,))],  # type: ignore[arg-type]  # a malformed row on purpose
    ],
)
def test_check_rejects_malformed_rows(rows: list[Match]) -> None:
    with pytest.raises(TypeError):
        check(make_case([[1]]), rows)


# --------------------------------------------------------------------------- run_corpus


def test_run_with_a_perfect_fake_passes_everything(
    corpus: Path, loaded: tuple[list[Case], dict[str, Dataset]]
) -> None:
    report = run_corpus(corpus, perfect(loaded[0]))
    assert (report.passed, report.failed, report.total) == (264, 0, 264)
    assert {t.file: (t.passed, t.failed, t.total) for t in report.files} == {
        f: (n, 0, n) for f, n in README_COUNTS.items()
    }
    text = report.render_text()
    assert text.splitlines()[0] == "test_queries.toml: 133 passed, 0 failed"
    assert text.splitlines()[-1] == "elastic-eql: 264 passed, 0 failed"
    assert "FAIL" not in text
    summary = report.to_json()
    assert (summary["passed"], summary["failed"], summary["total"], summary["failures"]) == (264, 0, 264, [])
    json.dumps(summary)


def test_run_with_a_raising_fake_fails_everything_with_reasons(corpus: Path) -> None:
    calls: list[str] = []

    def evaluate(query: str, dataset: Dataset) -> list[Match]:
        calls.append(query)
        if len(calls) % 2:
            raise PolicySemanticError("unknown field")
        raise RuntimeError("boom")

    report = run_corpus(corpus, evaluate)
    assert (report.passed, report.failed, report.total) == (0, 264, 264)
    assert len(calls) == 264
    reasons = {o.reason for o in report.failures}
    assert reasons == {"error: PolicySemanticError: unknown field", "error: RuntimeError: boom"}
    assert all(o.actual is None for o in report.failures)
    text = report.render_text().splitlines()
    assert text[-1] == "elastic-eql: 0 passed, 264 failed"
    assert "test_extra.toml: 0 passed, 40 failed" in text
    assert "FAIL test_queries.toml::simpleQueryEqual: expected [1] got nothing " in "\n".join(text)
    summary = report.to_json()
    failures = summary["failures"]
    assert isinstance(failures, list)
    assert len(failures) == 264
    first = failures[0]
    assert first == {
        "file": "test_queries.toml",
        "name": "simpleQueryEqual",
        "query": "process where serial_event_id == 1",
        "expected": [[1]],
        "actual": None,
        "reason": "error: PolicySemanticError: unknown field",
    }
    assert summary["files"] == {f: {"passed": 0, "failed": n, "total": n} for f, n in README_COUNTS.items()}


def test_run_reports_wrong_answers_and_bad_results(
    corpus: Path, loaded: tuple[list[Case], dict[str, Dataset]]
) -> None:
    good = perfect(loaded[0])
    basic = next(c.query for c in loaded[0] if c.id == "test_extra.toml::basic")

    def evaluate(query: str, dataset: Dataset) -> Sequence[Match]:
        if query == "process where serial_event_id == 1":
            return [Match((2,))]
        if query == basic:
            return [Match((1, 2, 3), ("1234",)), Match((4, 5, 6), ("9999",))]
        if query == "process where serial_event_id < 4":
            return ["junk"]  # type: ignore[list-item]  # an evaluator that breaks its contract
        return good(query, dataset)

    report = run_corpus(corpus, evaluate)
    assert (report.passed, report.failed) == (261, 3)
    lines = report.render_text().splitlines()
    assert "FAIL test_queries.toml::simpleQueryEqual: expected [1] got [2] (ids differ)" in lines
    assert any(
        line.startswith("FAIL test_extra.toml::basic: expected [1, 2, 3, 4, 5, 6] got [1, 2, 3, 4, 5, 6]")
        and "join keys differ" in line
        for line in lines
    )
    assert any("simpleQueryLt" in line and "error: bad result" in line for line in lines)
    assert "test_queries.toml: 131 passed, 2 failed" in lines
    failures = report.to_json()["failures"]
    assert isinstance(failures, list)
    keyed = [f for f in failures if f["name"] == "basic"]
    assert keyed[0]["actual_join_keys"] == ["1234", "9999"]


def test_run_detects_and_undoes_dataset_mutation(
    corpus: Path, loaded: tuple[list[Case], dict[str, Dataset]]
) -> None:
    good = perfect(loaded[0])
    seen: list[object] = []

    def evaluate(query: str, dataset: Dataset) -> Sequence[Match]:
        if query == "process where serial_event_id == 1":
            dataset.events[0]["serial_event_id"] = 999
        elif query == "process where serial_event_id < 4":
            seen.append(dataset.events[0]["serial_event_id"])
        return good(query, dataset)

    report = run_corpus(corpus, evaluate)
    assert [(o.case.name, o.reason) for o in report.failures] == [
        ("simpleQueryEqual", "error: the evaluator mutated the dataset")
    ]
    assert seen == [1]


def test_run_only_selects(corpus: Path, loaded: tuple[list[Case], dict[str, Dataset]]) -> None:
    good = perfect(loaded[0])
    by_file = run_corpus(corpus, good, only="test_extra.toml")
    assert (by_file.total, [t.file for t in by_file.files]) == (40, ["test_extra.toml"])
    assert run_corpus(corpus, good, only="test_missing_events").total == 26
    one = run_corpus(corpus, good, only="test_extra.toml::basic")
    assert [o.case.name for o in one.outcomes] == ["basic"]
    assert one.render_text().splitlines() == [
        "test_extra.toml: 1 passed, 0 failed",
        "elastic-eql: 1 passed, 0 failed",
    ]
    assert run_corpus(corpus, good, only="leadingSimple").total == 1
    with pytest.raises(ConformanceError, match="no case"):
        run_corpus(corpus, good, only="no_such_case")


# --------------------------------------------------------------------------- malformed corpora


@pytest.fixture
def scratch(corpus: Path, tmp_path: Path) -> Path:
    root = tmp_path / "elastic-eql"
    shutil.copytree(corpus, root)
    for path in root.rglob("*"):
        path.chmod(0o644 if path.is_file() else 0o755)
    root.chmod(0o755)
    return root


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        ("test_queries.toml", "[[queries]]\nname", "[[queries]\nname", "test_queries.toml: invalid TOML"),
        ("test_queries_date.toml", "expected_event_ids  = [97]", "", "test_queries_date.toml: query"),
        ("test_queries_date.toml", "expected_event_ids  = [97]", 'expected_event_ids = ["97"]', "ids"),
        ("test_queries_date.toml", "expected_event_ids  = [97]", "expected_event_ids = [97, [1]]", "ids"),
        ("test_extra.toml", 'join_keys = ["1234"]', "join_keys = [1234]", "test_extra.toml: query"),
        ("test_extra.toml", 'name = "basicWithFilter"', 'name = "basic"', "duplicate name 'basic'"),
        ("additional_test_queries.toml", 'name = "betweenAdditional2"', 'name = ""', "name"),
        ("test_missing_events.toml", "[[queries]]\nname", "#[[queries]]\n#name", "26"),
        ("data/extra.data", '"sequence": 5', '"sequence": "5"', "data/extra.data: event #5"),
        ("data/extra.data", '"@timestamp": "11"', '"@timestamp": "eleven"', "data/extra.data: event #5"),
        ("data/extra.data", "[\n {", "[\n {{", "data/extra.data: invalid JSON"),
        ("data/missing-events.data", "////test2", "/-/test2", "data/missing-events.data: invalid JSON"),
        ("data/extra.mapping", '"path": "event_type"', '"path": "nope"', "data/extra.mapping: alias"),
        ("data/endgame-140.mapping", '"properties" : {', '"props" : {', "data/endgame-140.mapping"),
        ("data/endgame-140.derived.json", '"serial_event_id": 1,', '"serial_event_id": true,', "event #1"),
    ],
)
def test_malformed_corpus_files_name_the_file(
    scratch: Path, file: str, old: str, new: str, message: str
) -> None:
    _replace(scratch / file, old, new)
    with pytest.raises(ConformanceError) as info:
        load_corpus(scratch)
    assert file.removeprefix("data/").split(":")[0] in str(info.value)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_count_check_can_be_turned_off(scratch: Path) -> None:
    _replace(scratch / "test_queries_date.toml", "[[queries]]\nname", "#[[queries]]\n#name")
    with pytest.raises(
        ConformanceError, match=r"test_queries_date.toml: 3 queries, the README's table says 4"
    ):
        load_corpus(scratch)
    cases, _ = load_corpus(scratch, check_counts=False)
    assert len(cases) == 263


def test_missing_files(scratch: Path, tmp_path: Path) -> None:
    (scratch / "test_extra.toml").unlink()
    with pytest.raises(ConformanceError, match=r"^test_extra.toml: missing from the corpus"):
        load_corpus(scratch)
    (scratch / "data" / "extra.data").unlink()
    with pytest.raises(ConformanceError, match=r"^data/extra.data: missing"):
        load_corpus(scratch)
    with pytest.raises(ConformanceError, match="does not exist"):
        load_corpus(tmp_path / "nowhere")


def test_a_present_missing_events_mapping_is_used(scratch: Path) -> None:
    (scratch / "data" / "missing-events.mapping").write_text(
        '{"properties": {"@timestamp": {"type": "date"}, "event_type": {"type": "keyword"},'
        ' "sequence": {"type": "long"}, "k1": {"type": "keyword"},'
        ' "event": {"properties": {"category": {"type": "alias", "path": "event_type"}}}}}'
    )
    _, datasets = load_corpus(scratch)
    fields = datasets["missing-events"].fields
    assert (fields["k1"].type, fields["k1"].origin) == ("keyword", "mapping")
    assert "event.sequence" not in datasets["missing-events"].aliases


def test_run_corpus_propagates_a_malformed_corpus(scratch: Path) -> None:
    _replace(scratch / "test_extra.toml", "[[queries]]\nname", "[[queries]\nname")
    with pytest.raises(ConformanceError, match=r"test_extra\.toml"):
        run_corpus(scratch, lambda query, dataset: [])


# --------------------------------------------------------------------------- helpers


def test_default_corpus(tmp_path: Path) -> None:
    found = default_corpus()
    assert found.name == "elastic-eql"
    assert (found / "README.md").is_file()
    assert found == Path(corpus_module.__file__).resolve().parents[2] / "tests/data/conformance/elastic-eql"
    with pytest.raises(ConformanceError, match=r"corpus is missing: expected it at .*tests/data/conformance"):
        default_corpus(tmp_path / "project")
    assert issubclass(ConformanceError, GuardError)


@pytest.mark.parametrize(
    ("value", "millis"),
    [
        (0, 0),
        (1516116808349, 1516116808349),
        ("1", 1),
        (" 42 ", 42),
        (12.0, 12),
        ("2022-05-04T12:00:00.000Z", 1651665600000),
        ("2022-05-04T12:00:00.001Z", 1651665600001),
        ("2017-08-30T20:47:33Z", 1504126053000),
        ("2022-05-04T14:00:00.000+02:00", 1651665600000),
        ("2022-05-04T12:00:00", 1651665600000),
        ("1970-01-02", 86400000),
        ("2022-05-04T12:00:00.000999Z", 1651665600000),
    ],
)
def test_parse_date_millis(value: object, millis: int) -> None:
    assert parse_date_millis(value) == millis


@pytest.mark.parametrize("value", [None, True, "eleven", "1.5", 1.5, [1], "2022-13-45T00:00:00Z"])
def test_parse_date_millis_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="not a date"):
        parse_date_millis(value)


def test_format_date_millis() -> None:
    assert format_date_millis(0) == "1970-01-01T00:00:00.000Z"
    assert format_date_millis(86400000) == "1970-01-02T00:00:00.000Z"
    assert format_date_millis(1651665600001) == "2022-05-04T12:00:00.001Z"
    assert format_date_millis(-1) == "1969-12-31T23:59:59.999Z"


@pytest.mark.parametrize(
    ("value", "field_type", "rendered"),
    [
        (None, None, "null"),
        (True, None, "true"),
        (1234, None, "1234"),
        ("tag1", None, "tag1"),
        ("1.5.0", "version", "1.5.0"),
        (0, "date", "1970-01-01T00:00:00.000Z"),
        ("1970-01-02T00:00:00Z", "date", "1970-01-02T00:00:00.000Z"),
        (1.5, None, "1.5"),
        (3.0, None, "3.0"),
        (1e20, None, "1.0E20"),
        (12345678.0, None, "1.2345678E7"),
        (0.0001, None, "1.0E-4"),
    ],
)
def test_render_join_key(value: object, field_type: str | None, rendered: str) -> None:
    assert render_join_key(value, field_type=field_type) == rendered


def test_render_join_key_rejects_lists() -> None:
    with pytest.raises(TypeError):
        render_join_key(["a"])


@pytest.mark.parametrize(
    "source", [corpus_module.__file__, conformance.__file__], ids=["corpus", "conformance"]
)
def test_module_stays_out_of_forbidden_layers(source: str) -> None:
    tree = ast.parse(Path(source).read_text())
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
    ours = {m for m in imported if m.startswith("guard")}
    assert "guard.errors" in ours
    assert all(m == "guard.errors" or m.startswith("guard.policy.") for m in ours), ours
    assert not {m for m in imported if m.split(".")[0] in {"lark", "bcc"}}
