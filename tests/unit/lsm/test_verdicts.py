"""guard.lsm.verdicts: policy data -> the exact contents of the verdict maps, and the key encodings."""

from __future__ import annotations

import ipaddress
import os

import pytest

from guard.errors import PolicyCompileError
from guard.lsm import abi
from guard.lsm.verdicts import (
    Action,
    DynamicVerdict,
    InodeRule,
    KernelPolicy,
    NetRule,
    PathKind,
    PathRule,
    PtraceRule,
    VerdictValue,
    build_tables,
    encode_path,
    kernel_dev,
    lpm_path_key,
    net_key,
    net_lookup_keys,
    normalise_ip,
)
from guard.model import Hook

EXEC, OPEN, CONNECT, PTRACE = (
    Hook.BPRM_CHECK_SECURITY,
    Hook.FILE_OPEN,
    Hook.SOCKET_CONNECT,
    Hook.PTRACE_ACCESS_CHECK,
)
DENY, NOTIFY = Action.DENY, Action.NOTIFY


def pad(data: bytes) -> bytes:
    return data.ljust(abi.PATH_MAX, b"\0")


def rows(value: VerdictValue) -> tuple[list[int], list[int]]:
    return value.deny, value.notify


def lpm_lookup(table: dict[tuple[int, bytes], VerdictValue], key: bytes) -> VerdictValue | None:
    """What an LPM trie returns for a byte key: only the longest matching entry (whole bytes here)."""
    found = [(bits, v) for (bits, data), v in table.items() if key.startswith(data[: bits // 8])]
    return max(found, key=lambda item: item[0])[1] if found else None


def v4mapped(text: str) -> bytes:
    return b"\0" * 10 + b"\xff\xff" + ipaddress.IPv4Address(text).packed


# ------------------------------------------------------------------ build_tables: one kind at a time


def test_empty_policy_gives_empty_tables_and_zero_flags() -> None:
    tables = build_tables(KernelPolicy())
    assert tables.paths == {}
    assert tables.prefixes == {}
    assert tables.suffixes == {}
    assert tables.inodes == {}
    assert tables.nets == {}
    assert tables.ptrace == {}
    assert tables.dfas == {}
    assert tables.hook_flags == {EXEC: 0, OPEN: 0, CONNECT: 0, PTRACE: 0}


def test_hook_flags_are_copied_per_hook() -> None:
    policy = KernelPolicy(
        hook_flags={CONNECT: abi.HF_EMIT_ALL, OPEN: abi.HF_LONG_PATH_DENY | abi.HF_EMIT_ALL}
    )
    assert build_tables(policy).hook_flags == {EXEC: 0, OPEN: 3, CONNECT: 1, PTRACE: 0}


def test_exact_path_is_keyed_by_its_bytes_on_its_hook_only() -> None:
    tables = build_tables(KernelPolicy(paths=(PathRule(EXEC, "exact", "/usr/bin/nc", 11),)))
    assert list(tables.paths) == [b"/usr/bin/nc"]
    assert rows(tables.paths[b"/usr/bin/nc"]) == ([11, 0, 0, 0], [0, 0, 0, 0])


def test_one_path_on_two_hooks_shares_one_key() -> None:
    policy = KernelPolicy(
        paths=(
            PathRule(EXEC, "exact", "/bin/sh", 4),
            PathRule(OPEN, "exact", "/bin/sh", 6, NOTIFY),
        )
    )
    tables = build_tables(policy)
    assert rows(tables.paths[b"/bin/sh"]) == ([4, 0, 0, 0], [0, 6, 0, 0])


def test_non_utf8_path_is_encoded_with_surrogateescape() -> None:
    name = os.fsdecode(b"/tmp/\xff")
    tables = build_tables(KernelPolicy(paths=(PathRule(OPEN, "exact", name, 2),)))
    assert list(tables.paths) == [b"/tmp/\xff"]


def test_prefix_key_is_bit_length_and_padded_bytes() -> None:
    tables = build_tables(KernelPolicy(paths=(PathRule(OPEN, "prefix", "/tmp/", 5),)))
    assert list(tables.prefixes) == [(40, pad(b"/tmp/"))]
    assert len(next(iter(tables.prefixes))[1]) == abi.PATH_MAX
    assert rows(tables.prefixes[(40, pad(b"/tmp/"))]) == ([0, 5, 0, 0], [0, 0, 0, 0])


def test_suffix_is_stored_reversed() -> None:
    tables = build_tables(KernelPolicy(paths=(PathRule(EXEC, "suffix", ".sh", 8),)))
    assert list(tables.suffixes) == [(24, pad(b"hs."))]
    assert tables.suffixes[(24, pad(b"hs."))].deny[EXEC.abi] == 8


def test_inode_rule() -> None:
    dev = kernel_dev(os.makedev(8, 1))
    tables = build_tables(KernelPolicy(inodes=(InodeRule(EXEC, dev, 1234, 3, NOTIFY),)))
    assert list(tables.inodes) == [((8 << 20) | 1, 1234)]
    assert rows(tables.inodes[((8 << 20) | 1, 1234)]) == ([0, 0, 0, 0], [3, 0, 0, 0])


def test_net_rule_is_on_the_connect_hook() -> None:
    tables = build_tables(KernelPolicy(nets=(NetRule(ipaddress.ip_network("10.0.0.0/8"), 22, 31),)))
    key = (16 + 96 + 8, b"\x00\x16" + v4mapped("10.0.0.0") + b"\0\0")
    assert list(tables.nets) == [key]
    assert rows(tables.nets[key]) == ([0, 0, 31, 0], [0, 0, 0, 0])


def test_ptrace_rule_is_keyed_by_tgid() -> None:
    tables = build_tables(KernelPolicy(ptrace=(PtraceRule(4242, 14),)))
    assert list(tables.ptrace) == [4242]
    assert rows(tables.ptrace[4242]) == ([0, 0, 0, 14], [0, 0, 0, 0])


def test_contains_and_glob_rules_become_one_dfa_per_hook() -> None:
    policy = KernelPolicy(
        paths=(
            PathRule(OPEN, "contains", "/.ssh/", 20),
            PathRule(OPEN, "glob", "/home/*/.bashrc", 21, NOTIFY),
            PathRule(EXEC, "glob", "*/NC", 22, case_insensitive=True),
        )
    )
    tables = build_tables(policy)
    assert set(tables.dfas) == {OPEN, EXEC}
    assert (tables.paths, tables.prefixes, tables.suffixes) == ({}, {}, {})
    open_dfa = tables.dfas[OPEN]
    assert open_dfa.rules == ((20, DENY), (21, NOTIFY))
    assert open_dfa.tables.walk(b"/root/.ssh/id_rsa").first == 1
    assert open_dfa.tables.walk(b"/home/ann/.bashrc").first == 2
    assert open_dfa.tables.walk(b"/home/ann/.profile").first == 0
    exec_dfa = tables.dfas[EXEC]
    assert exec_dfa.rules == ((22, DENY),)
    assert exec_dfa.tables.walk(b"/usr/bin/nc").first == 1
    assert exec_dfa.tables.walk(b"/usr/bin/ncat").first == 0


# ------------------------------------------------------------------ merging: smallest rule, LPM closure


def test_smallest_rule_id_wins_per_action() -> None:
    policy = KernelPolicy(
        paths=(
            PathRule(OPEN, "exact", "/etc/shadow", 7),
            PathRule(OPEN, "exact", "/etc/shadow", 3),
            PathRule(OPEN, "exact", "/etc/shadow", 9),
            PathRule(OPEN, "exact", "/etc/shadow", 12, NOTIFY),
            PathRule(OPEN, "exact", "/etc/shadow", 10, NOTIFY),
        )
    )
    assert rows(build_tables(policy).paths[b"/etc/shadow"]) == ([0, 3, 0, 0], [0, 10, 0, 0])


def test_lpm_closure_longer_prefix_carries_the_shorter_ones_rules() -> None:
    policy = KernelPolicy(
        paths=(
            PathRule(OPEN, "prefix", "/tmp/", 5),
            PathRule(OPEN, "prefix", "/tmp/a/", 9, NOTIFY),
        )
    )
    tables = build_tables(policy)
    assert rows(tables.prefixes[(40, pad(b"/tmp/"))]) == ([0, 5, 0, 0], [0, 0, 0, 0])
    assert rows(tables.prefixes[(56, pad(b"/tmp/a/"))]) == ([0, 5, 0, 0], [0, 9, 0, 0])
    # an LPM lookup sees only the longest entry, and that one holds both rules
    seen = lpm_lookup(tables.prefixes, b"/tmp/a/x")
    assert seen is not None
    assert rows(seen) == ([0, 5, 0, 0], [0, 9, 0, 0])
    seen = lpm_lookup(tables.prefixes, b"/tmp/b")
    assert seen is not None
    assert rows(seen) == ([0, 5, 0, 0], [0, 0, 0, 0])


def test_lpm_closure_keeps_the_smallest_deny_and_ignores_non_prefixes() -> None:
    policy = KernelPolicy(
        paths=(
            PathRule(OPEN, "prefix", "/var/", 50),
            PathRule(OPEN, "prefix", "/var/log/", 40),
            PathRule(OPEN, "prefix", "/var/log/secure/", 45),
            PathRule(OPEN, "prefix", "/usr/", 1),
        )
    )
    tables = build_tables(policy)
    assert tables.prefixes[(8 * 16, pad(b"/var/log/secure/"))].deny[OPEN.abi] == 40
    assert tables.prefixes[(8 * 9, pad(b"/var/log/"))].deny[OPEN.abi] == 40
    assert tables.prefixes[(8 * 5, pad(b"/var/"))].deny[OPEN.abi] == 50
    assert tables.prefixes[(8 * 5, pad(b"/usr/"))].deny[OPEN.abi] == 1


def test_suffix_closure_works_on_reversed_bytes() -> None:
    policy = KernelPolicy(
        paths=(PathRule(EXEC, "suffix", ".so", 2), PathRule(EXEC, "suffix", "evil.so", 3, NOTIFY))
    )
    tables = build_tables(policy)
    assert rows(tables.suffixes[(8 * 7, pad(b"os.live"))]) == ([2, 0, 0, 0], [3, 0, 0, 0])
    assert rows(tables.suffixes[(8 * 3, pad(b"os."))]) == ([2, 0, 0, 0], [0, 0, 0, 0])


def test_net_closure_is_bitwise_and_per_port() -> None:
    policy = KernelPolicy(
        nets=(
            NetRule(ipaddress.ip_network("10.0.0.0/8"), 0, 30),
            NetRule(ipaddress.ip_network("10.128.0.0/9"), 0, 33, NOTIFY),
            NetRule(ipaddress.ip_network("10.0.0.0/9"), 0, 34, NOTIFY),
            NetRule(ipaddress.ip_network("10.128.0.0/9"), 443, 35, NOTIFY),
        )
    )
    tables = build_tables(policy)
    upper = net_key(ipaddress.ip_network("10.128.0.0/9"), 0)
    lower = net_key(ipaddress.ip_network("10.0.0.0/9"), 0)
    on_443 = net_key(ipaddress.ip_network("10.128.0.0/9"), 443)
    assert rows(tables.nets[upper]) == ([0, 0, 30, 0], [0, 0, 33, 0])
    assert rows(tables.nets[lower]) == ([0, 0, 30, 0], [0, 0, 34, 0])
    # a port-specific entry does not extend an any-port one: the kernel looks both up
    assert rows(tables.nets[on_443]) == ([0, 0, 0, 0], [0, 0, 35, 0])


def test_net_closure_compares_the_bits_inside_a_byte() -> None:
    policy = KernelPolicy(
        nets=(
            NetRule(ipaddress.ip_network("10.0.0.0/9"), 0, 36),
            NetRule(ipaddress.ip_network("10.64.0.0/16"), 0, 37, NOTIFY),
            NetRule(ipaddress.ip_network("10.128.0.0/16"), 0, 38, NOTIFY),
        )
    )
    tables = build_tables(policy)
    assert rows(tables.nets[net_key(ipaddress.ip_network("10.64.0.0/16"), 0)]) == (
        [0, 0, 36, 0],
        [0, 0, 37, 0],
    )
    # 10.128/16 lies outside 10.0/9 (bit 9 differs): it must not inherit the deny
    assert rows(tables.nets[net_key(ipaddress.ip_network("10.128.0.0/16"), 0)]) == (
        [0, 0, 0, 0],
        [0, 0, 38, 0],
    )


def test_lpm_closure_carries_a_shorter_notify_into_a_longer_deny() -> None:
    policy = KernelPolicy(
        paths=(PathRule(EXEC, "prefix", "/opt/", 8, NOTIFY), PathRule(EXEC, "prefix", "/opt/bad/", 9)),
    )
    tables = build_tables(policy)
    assert rows(tables.prefixes[(8 * 9, pad(b"/opt/bad/"))]) == ([9, 0, 0, 0], [8, 0, 0, 0])


def test_dfa_ids_are_numbered_denies_first_so_the_smallest_id_is_a_deny() -> None:
    policy = KernelPolicy(
        paths=(
            PathRule(OPEN, "contains", "secret", 1, NOTIFY),
            PathRule(OPEN, "contains", "secret", 9),
            PathRule(OPEN, "glob", "*.key", 4),
            PathRule(OPEN, "glob", "*.pem", 2, NOTIFY),
        )
    )
    program = build_tables(policy).dfas[OPEN]
    assert program.rules == ((4, DENY), (9, DENY), (1, NOTIFY), (2, NOTIFY))
    # rule 1 (notify) and rule 9 (deny) both match; the walk's smallest id is the deny
    first = program.tables.walk(b"/srv/secret.txt").first
    assert program.rules[first - 1] == (9, DENY)
    first = program.tables.walk(b"/srv/x.pem").first
    assert program.rules[first - 1] == (2, NOTIFY)
    first = program.tables.walk(b"/srv/secret.key").first
    assert program.rules[first - 1] == (4, DENY)


def test_dfa_patterns_sharing_a_rule_share_an_id() -> None:
    policy = KernelPolicy(
        paths=(PathRule(EXEC, "contains", "/tmp/", 6), PathRule(EXEC, "contains", "/dev/shm/", 6)),
    )
    program = build_tables(policy).dfas[EXEC]
    assert program.rules == ((6, DENY),)
    assert program.tables.walk(b"/dev/shm/x").first == 1
    assert program.tables.walk(b"/tmp/x").first == 1


def test_dfa_state_limit_is_a_compile_error() -> None:
    policy = KernelPolicy(paths=(PathRule(OPEN, "glob", "/a*b*c*d", 3),))
    with pytest.raises(PolicyCompileError, match="DFA states"):
        build_tables(policy, max_dfa_states=2)


def test_verdict_value_add_treats_the_abi_constant_as_deny() -> None:
    value = VerdictValue()
    value.add(OPEN, 7, abi.ACTION_DENY)  # type: ignore[arg-type]  # the ABI int, not an Action
    value.add(OPEN, 8, abi.ACTION_NOTIFY)  # type: ignore[arg-type]  # the ABI int, not an Action
    assert rows(value) == ([0, 7, 0, 0], [0, 8, 0, 0])


def test_a_rule_whose_action_is_the_abi_int_is_still_a_deny() -> None:
    rule = PathRule(EXEC, "exact", "/bin/nc", 12, abi.ACTION_DENY)  # type: ignore[arg-type]  # the ABI int
    assert rows(build_tables(KernelPolicy(paths=(rule,))).paths[b"/bin/nc"]) == ([12, 0, 0, 0], [0, 0, 0, 0])


def test_verdict_value_add_refuses_an_unknown_action() -> None:
    with pytest.raises(ValueError, match="3 is not a valid Action"):
        VerdictValue().add(OPEN, 7, 3)  # type: ignore[arg-type]  # no such action, on purpose


def test_verdict_value_to_abi() -> None:
    value = VerdictValue()
    value.add(PTRACE, 5, DENY)
    value.add(EXEC, 6, NOTIFY)
    raw = value.to_abi()
    assert list(raw.deny) == [0, 0, 0, 5]
    assert list(raw.notify) == [6, 0, 0, 0]


# ------------------------------------------------------------------ key encodings


def test_encode_path_bounds() -> None:
    assert encode_path("/" + "a" * 254) == b"/" + b"a" * 254
    with pytest.raises(PolicyCompileError, match=r"1\.\.255 bytes, is 256"):
        encode_path("/" + "a" * 255)
    with pytest.raises(PolicyCompileError, match="is 0"):
        encode_path("")
    with pytest.raises(PolicyCompileError, match="NUL"):
        encode_path("/a\0b")


def test_lpm_path_key() -> None:
    bits, data = lpm_path_key(b"/tmp/")
    assert bits == 40
    assert data == b"/tmp/" + b"\0" * 251


def test_normalise_ip_maps_ipv4_into_ipv6() -> None:
    assert normalise_ip("10.1.2.3") == ipaddress.IPv6Address("::ffff:10.1.2.3")
    assert normalise_ip(ipaddress.IPv4Address("10.1.2.3")).packed == v4mapped("10.1.2.3")
    assert normalise_ip("::ffff:10.1.2.3") == ipaddress.IPv6Address("::ffff:10.1.2.3")
    assert normalise_ip("2001:db8::1") == ipaddress.IPv6Address("2001:db8::1")


def test_net_key_ipv4_cidr_is_v4_mapped_with_96_more_bits() -> None:
    bits, data = net_key(ipaddress.ip_network("192.168.0.0/16"), 443)
    assert bits == 16 + 96 + 16
    assert data == b"\x01\xbb" + v4mapped("192.168.0.0") + b"\0\0"
    assert len(data) == abi.NET_DATA


def test_net_key_ipv6_cidr_bits_and_port_zero() -> None:
    bits, data = net_key(ipaddress.ip_network("2001:db8::/32"), 0)
    assert bits == 16 + 32
    assert data == b"\0\0" + ipaddress.IPv6Address("2001:db8::").packed + b"\0\0"


def test_net_key_v4_mapped_ipv6_network_equals_the_ipv4_one() -> None:
    assert net_key(ipaddress.ip_network("::ffff:10.0.0.0/104"), 0) == net_key(
        ipaddress.ip_network("10.0.0.0/8"), 0
    )


def test_net_lookup_keys_port_then_any_port() -> None:
    keys = net_lookup_keys("10.1.2.3", 80)
    assert keys == [
        (144, b"\x00\x50" + v4mapped("10.1.2.3") + b"\0\0"),
        (144, b"\x00\x00" + v4mapped("10.1.2.3") + b"\0\0"),
    ]
    assert net_lookup_keys("::ffff:10.1.2.3", 80) == keys
    assert net_lookup_keys("10.1.2.3", 0) == [keys[1], keys[1]]


def test_kernel_dev_is_mkdev() -> None:
    assert kernel_dev(os.makedev(259, 3)) == (259 << 20) | 3
    assert kernel_dev(os.makedev(0, 45)) == 45


# ------------------------------------------------------------------ errors name the rule


def test_over_long_prefix_names_the_rule() -> None:
    with pytest.raises(PolicyCompileError, match=r"^rule 17 prefix '/a+': must be 1..255 bytes, is 300$"):
        PathRule(OPEN, "prefix", "/" + "a" * 299, 17)


@pytest.mark.parametrize("kind", ["exact", "suffix"])
def test_over_long_exact_and_suffix_name_the_rule(kind: PathKind) -> None:
    with pytest.raises(PolicyCompileError, match=rf"^rule 18 {kind} "):
        PathRule(EXEC, kind, "/" + "b" * 256, 18)


@pytest.mark.parametrize("rule_id", [0, -1, 2**32, True, "5"])
def test_bad_rule_id_is_named(rule_id: object) -> None:
    with pytest.raises(PolicyCompileError, match=rf"^rule id {rule_id!r}: must be an integer"):
        PathRule(OPEN, "exact", "/x", rule_id)  # type: ignore[arg-type]  # bad ids on purpose


def test_largest_rule_id_is_accepted() -> None:
    assert PtraceRule(1, 2**32 - 1).rule_id == 2**32 - 1


@pytest.mark.parametrize("hook", [CONNECT, PTRACE])
def test_path_rule_on_a_non_path_hook_names_the_rule_and_hook(hook: Hook) -> None:
    with pytest.raises(
        PolicyCompileError,
        match=rf"^rule 19: path rules apply to exec and file_open, not {hook.short.upper()}$",
    ):
        PathRule(hook, "exact", "/x", 19)


def test_inode_rule_on_a_non_path_hook_names_the_rule() -> None:
    with pytest.raises(
        PolicyCompileError, match=r"^rule 23: inode rules apply to exec and file_open, not CONNECT$"
    ):
        InodeRule(CONNECT, 1, 2, 23)


def test_unknown_path_kind_names_the_rule() -> None:
    with pytest.raises(PolicyCompileError, match=r"^rule 24: unknown path match kind 'regex'$"):
        PathRule(OPEN, "regex", "/x", 24)  # type: ignore[arg-type]  # no such kind, on purpose


def test_case_insensitive_exact_is_refused() -> None:
    with pytest.raises(PolicyCompileError, match=r"^rule 25: exact paths are case-sensitive"):
        PathRule(OPEN, "exact", "/x", 25, case_insensitive=True)


@pytest.mark.parametrize("port", [-1, 65536])
def test_net_rule_port_out_of_range_names_the_rule(port: int) -> None:
    with pytest.raises(PolicyCompileError, match=rf"^rule 26: port {port} out of range"):
        NetRule(ipaddress.ip_network("10.0.0.0/8"), port, 26)


@pytest.mark.parametrize("tgid", [0, 2**32])
def test_ptrace_rule_tgid_out_of_range_names_the_rule(tgid: int) -> None:
    with pytest.raises(PolicyCompileError, match=rf"^rule 27: tgid {tgid} out of range"):
        PtraceRule(tgid, 27)


def test_dynamic_verdict_group_out_of_range_names_the_rule() -> None:
    with pytest.raises(PolicyCompileError, match=r"^rule 28: entity group 0 out of range"):
        DynamicVerdict(group=0, hook=OPEN, rule_id=28)
