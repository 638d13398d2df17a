"""Unit tests for guard.lsm.dfa: semantics, agreement with reference_match, minimality, layout."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard.errors import PolicyCompileError
from guard.lsm.dfa import (
    BLOB_MAGIC,
    BLOB_VERSION,
    MAX_PATH,
    DfaTables,
    Pattern,
    WalkResult,
    compile_patterns,
    contains,
    glob,
    prefix,
    reference_match,
    suffix,
)


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 - reproducible test data, not secrets


def ids(tables: DfaTables, path: str | bytes) -> frozenset[int]:
    return tables.walk(path).rule_ids


def kernel_loop(blob: bytes, path: bytes) -> tuple[int, bool]:
    """The BPF loop of the module docstring, written against the serialised blob only."""
    (magic, version, max_path, ns, nc, start, anchored_start, dead, n_acc, _n_step) = struct.unpack_from(
        "<10I", blob
    )
    assert (magic, version, max_path) == (BLOB_MAGIC, BLOB_VERSION, MAX_PATH)
    pos = 40
    byte_class = blob[pos : pos + 256]
    pos += 256

    def table(count: int) -> tuple[int, ...]:
        nonlocal pos
        out = struct.unpack_from(f"<{count}I", blob, pos)
        pos += 4 * count
        return out

    transitions = table(ns * nc)
    accept_first = table(ns)
    table(ns)  # accept_offsets
    table(n_acc)  # accept_ids
    step_first = table(ns)
    s, a, best = start, anchored_start, 0
    for i in range(min(len(path), max_path)):
        c = byte_class[path[i]]
        s = transitions[s * nc + c]
        h = step_first[s]
        if h and (not best or h < best):
            best = h
        if a != dead:
            a = transitions[a * nc + c]
            h = step_first[a]
            if h and (not best or h < best):
                best = h
    for h in (accept_first[s], accept_first[a]):
        if h and (not best or h < best):
            best = h
    return best, len(path) > max_path


# --------------------------------------------------------------------------------------------
# Semantics


def test_contains_at_start_middle_end() -> None:
    t = compile_patterns([contains("/etc/shadow", 7)])
    for path in ("/etc/shadow", "/chroot/etc/shadow/x", "/chroot/etc/shadow", "/etc/shadow-"):
        assert ids(t, path) == {7}, path
    for path in ("/etc/shado", "/etc/Shadow", "", "/etc/sha/dow"):
        assert ids(t, path) == frozenset(), path


def test_aho_corasick_classic_overlaps() -> None:
    pats = [contains("he", 1), contains("she", 2), contains("his", 3), contains("hers", 4)]
    t = compile_patterns(pats)
    cases = {
        "ushers": {1, 2, 4},
        "his": {3},
        "hershe": {1, 2, 4},
        "shis": {3},
        "sh": set(),
        "h": set(),
        "ahishers": {1, 2, 3, 4},
    }
    for path, want in cases.items():
        result = t.walk(path)
        assert result.rule_ids == want, path
        assert result.first == (min(want) if want else 0)


@pytest.mark.parametrize(
    ("pattern", "hits", "misses"),
    [
        ("*.so", ["/lib/libc.so", ".so", "/a.so/b.so"], ["/lib/libc.so.6", "/lib/libc.s", "so"]),
        ("/tmp/*", ["/tmp/", "/tmp/x", "/tmp/a/b/c"], ["/tmp", "/tmpx", "/var/tmp/x", "tmp/x"]),
        (
            "/home/*/.ssh/*",
            ["/home/al/.ssh/id", "/home/a/b/.ssh/", "/home//.ssh/k"],
            ["/home/.ssh/x", "/home/a/.ssh"],
        ),
        (
            "/proc/*/mem",
            ["/proc/1/mem", "/proc/self/task/1/mem", "/proc//mem"],
            ["/proc/1/mem2", "/proc/mem"],
        ),
        ("/dev/sd?", ["/dev/sda", "/dev/sd/", "/dev/sd*"], ["/dev/sd", "/dev/sdab", "/dev/sda/"]),
        ("a*b*c", ["abc", "aXbYc", "abbc", "acbc"], ["ab", "acb", "abcd", "bc"]),
        ("*", ["", "/", "/any/thing"], []),
        ("", [""], ["/", "x"]),
        ("?*", ["x", "/usr"], [""]),
        ("*?", ["x", "/usr"], [""]),
        ("**x**", ["x", "axb", "/x/"], ["", "/"]),
    ],
)
def test_globs(pattern: str, hits: list[str], misses: list[str]) -> None:
    t = compile_patterns([glob(pattern, 3)])
    for path in hits:
        assert ids(t, path) == {3}, path
        assert reference_match([glob(pattern, 3)], path) == {3}, path
    for path in misses:
        assert ids(t, path) == frozenset(), path
        assert reference_match([glob(pattern, 3)], path) == frozenset(), path


def test_literal_wildcard_bytes_in_contains_are_literal() -> None:
    t = compile_patterns([contains("a*b?", 1)])
    assert ids(t, "xa*b?y") == {1}
    assert ids(t, "axxbz") == frozenset()


def test_case_insensitive_folds_ascii_letters_only() -> None:
    pats = [
        glob("*.exe", 1, case_insensitive=True),
        contains("SHADOW", 2, case_insensitive=True),
        contains("Key", 3),
    ]
    t = compile_patterns(pats)
    assert ids(t, "/mnt/c/SETUP.EXE") == {1}
    assert ids(t, "/mnt/c/setup.Exe") == {1}
    assert ids(t, "/etc/shadow") == {2}
    assert ids(t, "/etc/ShAdOw-") == {2}
    assert ids(t, "/Key") == {3}
    assert ids(t, "/key") == frozenset()
    # Bytes outside A-Z/a-z are not folded: É (c3 89) is not é (c3 a9); '@' (0x40) is not '`' (0x60).
    u = compile_patterns([contains("é", 4, case_insensitive=True), contains("@", 5, case_insensitive=True)])
    assert ids(u, "/é") == {4}
    assert ids(u, "/É") == frozenset()
    assert ids(u, "`") == frozenset()


def test_several_rules_all_ids_and_smallest_first() -> None:
    pats = [
        glob("/home/*", 30),
        contains("/.ssh/", 20),
        suffix("id_rsa", 10),
        contains("id_", 40),
        glob("*.pub", 50),
        contains("/home/", 30),  # a second pattern of rule 30
    ]
    t = compile_patterns(pats)
    result = t.walk("/home/al/.ssh/id_rsa")
    assert result.rule_ids == {10, 20, 30, 40}
    assert result.first == 10
    assert not result.over_long
    result = t.walk("/home/al/.ssh/id_rsa.pub")
    assert result.rule_ids == {20, 30, 40, 50}
    assert result.first == 20
    assert t.walk("/usr/bin/ls") == WalkResult(
        frozenset(), 0, False, t.walk("/usr/bin/ls").final_state, t.dead
    )


def test_prefix_and_suffix_are_globs() -> None:
    assert prefix("/tmp/", 5) == glob("/tmp/*", 5)
    assert suffix(".so", 6, case_insensitive=True) == glob("*.so", 6, case_insensitive=True)
    assert prefix(b"/x", 1) == Pattern("glob", b"/x*", 1)
    t = compile_patterns([prefix("/tmp/", 5), suffix(".so", 6)])
    assert ids(t, "/tmp/x.so") == {5, 6}
    assert ids(t, "/tmp") == frozenset()
    assert ids(t, "/lib/x.so") == {6}
    with pytest.raises(PolicyCompileError, match="cannot be compiled"):
        prefix("/tmp/*x", 1)
    with pytest.raises(PolicyCompileError, match="cannot be compiled"):
        suffix("?.so", 1)


def test_empty_pattern_list_never_accepts() -> None:
    t = compile_patterns([])
    assert t.num_states == 1
    assert t.start == t.anchored_start == t.dead == 0
    for path in ("", "/", "/etc/shadow", b"\xff" * 300):
        result = t.walk(path)
        assert result.rule_ids == frozenset()
        assert result.first == 0
    assert t.walk(b"x" * 300).over_long


def test_empty_literal_and_empty_path() -> None:
    t = compile_patterns([contains("", 1), glob("", 2), glob("*", 3)])
    assert ids(t, "") == {1, 2, 3}
    assert ids(t, "/x") == {1, 3}
    assert t.step_first[t.start] == 0


def test_over_long_paths_walk_only_the_first_max_path_bytes() -> None:
    head = b"/" + b"d" * (MAX_PATH - 11)  # 246 bytes: room for a 10-byte literal before byte 256
    assert len(head) == MAX_PATH - 10
    pats = [
        contains("/inside/", 1),  # ends at byte 254: matches
        contains("STRADDLE", 2),  # bytes 252..259: does not match
        contains("/beyond/", 3),  # after byte 256: does not match
        glob("/d*", 4),  # prefix: matches whatever comes later
        glob("*.so", 5),  # matches when the first 256 bytes end in ".so"
        glob("*.py", 6),  # the whole path ends in .py, the walked part does not: no match
    ]
    t = compile_patterns(pats)
    path = head + b"/inside/" + b"x" * 20 + b"/beyond/.py"
    result = t.walk(path)
    assert result.over_long
    assert result.rule_ids == {1, 4}
    assert result.first == 1
    assert reference_match(pats, path) == {1, 4}
    assert reference_match(pats, path, limit=None) == {1, 3, 4, 6}

    straddle = head + b"123456STRADDLE"
    assert ids(t, straddle) == {4}
    assert reference_match(pats, straddle, limit=None) == {2, 4}

    truncated_so = head + b"1234567.so" + b"/real/name.py"
    assert len(truncated_so[:MAX_PATH]) == MAX_PATH
    assert truncated_so[:MAX_PATH].endswith(b".so")
    whole, cut = t.walk(truncated_so), t.walk(truncated_so[:MAX_PATH])
    assert (whole.rule_ids, whole.first, whole.over_long, cut.over_long) == (
        cut.rule_ids,
        cut.first,
        True,
        False,
    )
    assert ids(t, truncated_so) == {4, 5}  # a false positive the over_long flag warns about
    exactly = head + b"1234567.so"
    assert len(exactly) == MAX_PATH
    assert not t.walk(exactly).over_long
    assert t.walk(exactly + b"x").over_long


def test_str_paths_are_utf8_with_surrogateescape() -> None:
    t = compile_patterns([contains(b"\xff\xfe", 1), contains("ü", 2)])
    assert ids(t, "/a\udcff\udcfe/b") == {1}
    assert ids(t, b"/a\xc3\xbc") == {2}
    assert ids(t, "/aü") == {2}


def test_pattern_validation() -> None:
    with pytest.raises(ValueError, match="rule id"):
        contains("x", 0)
    with pytest.raises(ValueError, match="rule id"):
        glob("x", -1)
    with pytest.raises(ValueError, match="rule id"):
        glob("x", 2**32)
    with pytest.raises(TypeError):
        glob("x", True)
    with pytest.raises(ValueError, match="kind"):
        Pattern("regex", b"x", 1)  # type: ignore[arg-type]  # bad arguments on purpose, here and below
    with pytest.raises(TypeError):
        Pattern("glob", "x", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        compile_patterns(["x"])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="max_states"):
        compile_patterns([], max_states=0)
    assert str(glob("/tmp/*", 3, case_insensitive=True)) == "glob '/tmp/*' (rule 3, case-insensitive)"


def test_single_lane_layout_agrees() -> None:
    pats = [contains("/.ssh/", 1), glob("/tmp/*", 2), glob("*.so", 3), glob("/proc/*/mem", 4)]
    split = compile_patterns(pats)
    single = compile_patterns(pats, split_anchored=False)
    assert single.anchored_start == single.dead
    assert split.anchored_start != split.dead
    for path in ("/tmp/.ssh/x.so", "/proc/1/mem", "/usr/lib/a.so", "/tmp", "/x/.ssh/", ""):
        assert split.walk(path).rule_ids == single.walk(path).rule_ids == reference_match(pats, path), path


# --------------------------------------------------------------------------------------------
# Agreement with the reference definition

ALPHABET = b"/ab.*?xA"
PATH_ALPHABET = b"/abAxB.*?\xff"


def random_patterns(rng: random.Random) -> list[Pattern]:
    out = []
    for _ in range(rng.randint(1, 7)):
        text = bytes(rng.choice(ALPHABET) for _ in range(rng.randint(0, 6)))
        ci = rng.random() < 0.25
        rule = rng.randint(1, 6)
        if rng.random() < 0.4:
            out.append(contains(text, rule, case_insensitive=ci))
        else:
            out.append(glob(text, rule, case_insensitive=ci))
    return out


def random_path(rng: random.Random, patterns: list[Pattern]) -> bytes:
    """A path built from pattern fragments and alphabet bytes, so that matches are frequent."""
    parts = []
    for _ in range(rng.randint(0, 4)):
        if patterns and rng.random() < 0.6:
            text = rng.choice(patterns).text
            star = bytes(rng.choices(PATH_ALPHABET, k=rng.randint(0, 3)))
            filled = bytes(rng.choice(PATH_ALPHABET) if ch == 0x3F else ch for ch in text.replace(b"*", star))
            if rng.random() < 0.3:
                filled = filled.swapcase()
            parts.append(filled)
        else:
            parts.append(bytes(rng.choices(PATH_ALPHABET, k=rng.randint(0, 4))))
    path = b"".join(parts)
    if rng.random() < 0.03:  # around the MAX_PATH boundary
        path = bytes(rng.choices(PATH_ALPHABET, k=rng.randint(MAX_PATH - 8, MAX_PATH + 4))) + path
    return path


def check_agreement(patterns: list[Pattern], paths: list[bytes], *, split_anchored: bool = True) -> int:
    tables = compile_patterns(patterns, split_anchored=split_anchored)
    for path in paths:
        result = tables.walk(path)
        want = reference_match(patterns, path)
        assert result.rule_ids == want, (patterns, path)
        assert result.first == (min(want) if want else 0)
        assert result.over_long == (len(path) > MAX_PATH)
    return len(paths)


def test_agreement_on_seeded_random_sets() -> None:
    rng = seeded(20240611)
    checked = 0
    for round_ in range(60):
        patterns = random_patterns(rng)
        paths = [random_path(rng, patterns) for _ in range(200)]
        checked += check_agreement(patterns, paths, split_anchored=round_ % 4 != 0)
    assert checked >= 10_000


pattern_st = st.builds(
    Pattern,
    kind=st.sampled_from(["contains", "glob"]),
    text=st.binary(max_size=6).map(lambda b: bytes(ALPHABET[x % len(ALPHABET)] for x in b)),
    rule_id=st.integers(1, 8),
    case_insensitive=st.booleans(),
)
path_st = st.lists(st.sampled_from(list(PATH_ALPHABET)), max_size=14).map(bytes)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    patterns=st.lists(pattern_st, max_size=6),
    paths=st.lists(path_st, max_size=12),
    seed=st.integers(0, 2**32 - 1),
    split_anchored=st.booleans(),
)
def test_agreement_hypothesis(
    patterns: list[Pattern], paths: list[bytes], seed: int, split_anchored: bool
) -> None:
    rng = seeded(seed)
    generated = [random_path(rng, patterns) for _ in range(70)]
    check_agreement(patterns, paths + generated, split_anchored=split_anchored)


@settings(max_examples=40, deadline=None, database=None)
@given(patterns=st.lists(pattern_st, max_size=5), seed=st.integers(0, 2**32 - 1))
def test_kernel_shaped_loop_over_the_blob_agrees_with_walk(patterns: list[Pattern], seed: int) -> None:
    tables = compile_patterns(patterns)
    blob = tables.to_bytes()
    rng = seeded(seed)
    for _ in range(30):
        path = random_path(rng, patterns)
        result = tables.walk(path)
        assert kernel_loop(blob, path) == (result.first, result.over_long)


# --------------------------------------------------------------------------------------------
# Minimisation and byte classes


def test_redundant_patterns_do_not_grow_the_dfa() -> None:
    dedup = [contains("/.ssh/", 1), glob("/tmp/*", 2), glob("*.so", 3)]
    redundant = [
        *dedup,
        contains("/.ssh/", 1),  # verbatim duplicate
        glob("*/.ssh/*", 1),  # the same pattern as contains("/.ssh/")
        contains("a/.ssh/", 1),  # implied by "/.ssh/" of the same rule, and decided at the same byte
        glob("/tmp/**", 2),
        prefix("/tmp/", 2),
        glob("**.so", 3),
        glob("*.so", 3),
    ]
    a, b = compile_patterns(dedup), compile_patterns(redundant)
    assert b.num_states <= a.num_states
    assert (b.num_states, b.num_classes) == (a.num_states, a.num_classes)
    # Suffix-implied literals of one rule collapse to the shortest: start, "d" seen, dead.
    c = compile_patterns([contains(w, 1) for w in ("abcd", "bcd", "cd", "d")])
    assert c.num_states == compile_patterns([contains("d", 1)]).num_states == 3
    # The same pattern under a second rule id changes labels, not the shape.
    d = compile_patterns([*dedup, contains("/.ssh/", 9)])
    assert d.num_states == a.num_states
    assert d.walk("/x/.ssh/k").rule_ids == {1, 9}
    # Not merged, by design: an implied pattern decided at a LATER byte (here "/tmp/?*" under rule 2)
    # reports its rule again one byte later, a different step output, so it may cost states.


def test_dfa_is_minimal_for_a_literal() -> None:
    # start, "a", "aa", "aaa" (reports rule 1); plus the dead state the empty anchored lane sits in.
    t = compile_patterns([contains("aaa", 1)])
    assert t.num_states == 5
    assert t.num_classes == 2
    assert t.anchored_start == t.dead


def test_byte_classes_for_tmp_only() -> None:
    t = compile_patterns([contains("/tmp/", 1), glob("/tmp/*", 2), prefix("/tmp/", 3)])
    assert t.num_classes <= 6
    assert len({t.byte_class[b] for b in b"/tmp"}) == 4
    assert t.byte_class[ord("x")] == t.byte_class[0] == t.byte_class[255]


def test_case_insensitive_letters_share_a_class() -> None:
    t = compile_patterns([contains("a", 1, case_insensitive=True)])
    assert t.num_classes == 2
    assert t.byte_class[ord("a")] == t.byte_class[ord("A")] != t.byte_class[ord("b")]


# --------------------------------------------------------------------------------------------
# Blow-up guard


def test_pathological_glob_raises_with_a_clear_message() -> None:
    # "*a" followed by 20 "?" needs 2**20 states: the guard must stop it, not hang.
    bad = glob("*a" + "?" * 20, 7)
    with pytest.raises(PolicyCompileError) as info:
        compile_patterns([contains("/etc/shadow", 1), bad])
    message = str(info.value)
    assert "\n" not in message
    assert "more than 131072 DFA states" in message
    assert "limit 65536" in message
    assert "glob '*a????????????????????' (rule 7)" in message.split("come from: ")[1].split(";")[0]


def test_state_budget_before_and_after_minimisation() -> None:
    pats = [contains("/etc/shadow", 1), glob("/tmp/*", 2)]
    assert compile_patterns(pats, max_states=19).num_states == 19
    with pytest.raises(
        PolicyCompileError, match=r"need at least 19 DFA states after minimisation, over the limit of 18;"
    ):
        compile_patterns(pats, max_states=18)
    with pytest.raises(
        PolicyCompileError, match=r"more than 16 DFA states before minimisation \(limit 8 after\)"
    ):
        compile_patterns(pats, max_states=8)


# --------------------------------------------------------------------------------------------
# Table layout


def test_table_sizes_and_blob_layout() -> None:
    pats = [contains("he", 1), contains("she", 2), glob("/tmp/*", 3), glob("*.so", 4), glob("/dev/sd?", 5)]
    t = compile_patterns(pats)
    t.check()
    ns, nc = t.num_states, t.num_classes
    assert len(t.byte_class) == 256
    assert len(t.transitions) == ns * nc
    assert all(0 <= x < ns for x in t.transitions)
    sizes = t.describe()["bytes"]
    assert sizes["transitions"] == ns * nc * 4
    assert (
        sizes["accept_first"]
        == sizes["accept_offsets"]
        == sizes["step_first"]
        == sizes["step_offsets"]
        == ns * 4
    )
    assert sizes["accept_ids"] == len(t.accept_ids) * 4
    assert sizes["step_ids"] == len(t.step_ids) * 4
    blob = t.to_bytes()
    assert (
        len(blob)
        == t.describe()["total_bytes"]
        == 40 + 256 + 4 * (ns * nc + 4 * ns + len(t.accept_ids) + len(t.step_ids))
    )
    header = struct.unpack_from("<10I", blob)
    assert header == (
        BLOB_MAGIC,
        BLOB_VERSION,
        MAX_PATH,
        ns,
        nc,
        0,
        t.anchored_start,
        t.dead,
        len(t.accept_ids),
        len(t.step_ids),
    )
    assert blob[:4] == b"GDFA"
    assert blob[40:296] == t.byte_class
    assert struct.unpack_from(f"<{ns * nc}I", blob, 296) == tuple(t.transitions)
    assert DfaTables.from_bytes(blob) == t


def test_accept_lists_are_zero_terminated_and_ascending() -> None:
    pats = [
        glob("/x*", 9),
        glob("/x*", 3),
        contains("x", 5),
        glob("*y", 4),
        glob("/?y", 2),
        contains("xy", 2),
    ]
    t = compile_patterns(pats)
    assert t.accept_ids[0] == 0
    assert t.step_ids[0] == 0
    for state in range(t.num_states):
        for first, listed in (
            (t.accept_first[state], t.accept_list(state)),
            (t.step_first[state], t.step_list(state)),
        ):
            assert listed == sorted(set(listed))
            assert first == (listed[0] if listed else 0)
    row = t.transitions[t.dead * t.num_classes : (t.dead + 1) * t.num_classes]
    assert set(row) == {t.dead}
    assert t.accept_first[t.dead] == t.step_first[t.dead] == 0
    assert t.step_first[t.start] == t.step_first[t.anchored_start] == 0


def test_from_bytes_rejects_malformed_blobs() -> None:
    blob = compile_patterns([contains("ab", 1), glob("/c*", 2)]).to_bytes()
    with pytest.raises(ValueError, match="too short"):
        DfaTables.from_bytes(blob[:100])
    with pytest.raises(ValueError, match="magic"):
        DfaTables.from_bytes(b"XXXX" + blob[4:])
    with pytest.raises(ValueError, match="header says"):
        DfaTables.from_bytes(blob + b"\0\0\0\0")
    bad = bytearray(blob)
    struct.pack_into("<I", bad, 296, 10_000)  # a transition out of range
    with pytest.raises(ValueError, match="transitions"):
        DfaTables.from_bytes(bytes(bad))
