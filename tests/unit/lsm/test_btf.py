"""Unit tests for guard.lsm.btf, on BTF blobs built by tests.unit.lsm.btfblob."""

from __future__ import annotations

import contextlib
import functools
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard.errors import BtfError, BtfLookupError
from guard.lsm.btf import DEFAULT_BTF_PATH, Btf, BtfKind, FuncProto, Member, MemberOffset, Param
from tests.unit.lsm.btfblob import HEADER_LEN, KIND_PTR, KIND_TYPEDEF, BtfBuilder


@dataclass
class Model:
    builder: BtfBuilder
    ids: dict[str, int]

    def blob(self, *, big_endian: bool = False) -> bytes:
        return self.builder.build(big_endian=big_endian)


def make_model() -> Model:
    b = BtfBuilder()
    t: dict[str, int] = {}
    t["int"] = b.add_int("int", 4, signed=True)
    t["uint"] = b.add_int("unsigned int", 4)
    t["char"] = b.add_int("char", 1, signed=True, char=True)
    t["ulong"] = b.add_int("long unsigned int", 8)
    t["uchar"] = b.add_int("unsigned char", 1)
    t["ushort"] = b.add_int("short unsigned int", 2)
    t["bool"] = b.add_int("_Bool", 1, bool_=True)
    t["__u32"] = b.add_typedef("__u32", t["uint"])
    t["u32"] = b.add_typedef("u32", t["__u32"])
    t["u8"] = b.add_typedef("u8", t["uchar"])
    t["double"] = b.add_float("double", 8)

    # struct path { struct vfsmount *mnt; struct dentry *dentry; }
    t["dentry"] = b.add_struct("dentry", 192, [("d_flags", t["uint"], 0, 0)])
    t["vfsmount"] = b.add_struct("vfsmount", 32, [])
    t["dentry*"] = b.add_ptr(t["dentry"])
    t["vfsmount*"] = b.add_ptr(t["vfsmount"])
    t["path"] = b.add_struct("path", 16, [("mnt", t["vfsmount*"], 0, 0), ("dentry", t["dentry*"], 64, 0)])
    t["const path"] = b.add_const(t["path"])
    t["path_t"] = b.add_typedef("path_t", t["path"])

    t["cred"] = b.add_fwd("cred")
    t["const cred"] = b.add_const(t["cred"])
    t["const cred*"] = b.add_ptr(t["const cred"])
    t["const char"] = b.add_const(t["char"])
    t["const char*"] = b.add_ptr(t["const char"])
    t["char[16]"] = b.add_array(t["char"], t["int"], 16)
    t["void(int)"] = b.add_func_proto(0, [("", t["int"])])
    t["void(*)(int)"] = b.add_ptr(t["void(int)"])
    t["volatile int"] = b.add_volatile(t["int"])

    # struct llist_node { struct llist_node *next; } -- forward reference to the next id
    t["llist_node*"] = b.add_ptr(b.type_count + 2)
    t["llist_node"] = b.add_struct("llist_node", 8, [("next", t["llist_node*"], 0, 0)])
    assert t["llist_node"] == t["llist_node*"] + 1

    t["anon_union"] = b.add_union(
        "", 8, [("f_llist", t["llist_node"], 0, 0), ("f_iocb_flags", t["uint"], 0, 0)]
    )
    t["inner_anon_union"] = b.add_union("", 4, [("f_deep", t["u32"], 0, 0), ("f_deep2", t["ushort"], 0, 0)])
    t["anon_struct"] = b.add_struct("", 8, [("f_a", t["int"], 0, 0), ("", t["inner_anon_union"], 32, 0)])
    t["file"] = b.add_struct(
        "file",
        88,
        [
            ("", t["anon_union"], 0, 0),
            ("f_path", t["const path"], 64, 0),
            ("f_cred", t["const cred*"], 192, 0),
            ("f_mode", t["u32"], 256, 0),
            ("f_flags", t["uint"], 288, 3),
            ("f_pos_lock", t["uint"], 291, 5),
            ("f_name", t["char[16]"], 320, 0),
            ("f_cb", t["void(*)(int)"], 448, 0),
            ("", t["anon_struct"], 512, 0),
            ("f_count", t["volatile int"], 576, 0),
            ("f_owner", t["const char*"], 640, 0),
        ],
    )
    t["file_t"] = b.add_typedef("file_t", t["file"])
    t["file*"] = b.add_ptr(t["file"])

    # Old-style bitfields: no kind_flag, the INT type carries bit size and offset.
    t["uint:4"] = b.add_int("unsigned int", 4, bits=4)
    t["uint:12@2"] = b.add_int("unsigned int", 4, bits=12, offset=2)
    t["oldbits"] = b.add_struct(
        "oldbits", 4, [("lo", t["uint:4"], 0, 0), ("hi", t["uint:12@2"], 8, 0)], kflag=False
    )

    # struct in6_addr { union { u8 u6_addr8[16]; __u32 u6_addr32[4]; } in6_u; }
    t["u8[16]"] = b.add_array(t["u8"], t["int"], 16)
    t["__u32[4]"] = b.add_array(t["__u32"], t["int"], 4)
    t["in6_u"] = b.add_union("", 16, [("u6_addr8", t["u8[16]"], 0, 0), ("u6_addr32", t["__u32[4]"], 0, 0)])
    t["in6_addr"] = b.add_struct("in6_addr", 16, [("in6_u", t["in6_u"], 0, 0)])
    t["sockaddr_in6"] = b.add_struct(
        "sockaddr_in6",
        28,
        [
            ("sin6_family", t["ushort"], 0, 0),
            ("sin6_port", t["ushort"], 16, 0),
            ("sin6_flowinfo", t["__u32"], 32, 0),
            ("sin6_addr", t["in6_addr"], 64, 0),
            ("sin6_scope_id", t["__u32"], 192, 0),
        ],
    )
    t["sockaddr"] = b.add_struct("sockaddr", 16, [("sa_family", t["ushort"], 0, 0)])
    t["sockaddr*"] = b.add_ptr(t["sockaddr"])
    t["socket"] = b.add_struct("socket", 128, [])
    t["socket*"] = b.add_ptr(t["socket"])
    t["u_sock"] = b.add_union("u_sock", 8, [("a", t["int"], 0, 0), ("b", t["ulong"], 0, 0)])

    # More declarators.
    t["char*"] = b.add_ptr(t["char"])
    t["char*[4]"] = b.add_array(t["char*"], t["int"], 4)
    t["char(*)[16]"] = b.add_ptr(t["char[16]"])
    t["char*const"] = b.add_const(t["char*"])
    t["const volatile int"] = b.add_const(t["volatile int"])
    t["char*restrict"] = b.add_restrict(t["char*"])
    t["file*(int)"] = b.add_func_proto(t["file*"], [("", t["int"])])
    t["file*(*)(int)"] = b.add_ptr(t["file*(int)"])
    t["int(const char*, ...)"] = b.add_func_proto(t["int"], [("fmt", t["const char*"])], variadic=True)
    t["int(void)"] = b.add_func_proto(t["int"], [])
    t["int[2][3]"] = b.add_array(b.type_count + 2, t["int"], 2)
    t["int[3]"] = b.add_array(t["int"], t["int"], 3)
    t["__user char"] = b.add_type_tag("user", t["char"])
    t["__user char*"] = b.add_ptr(t["__user char"])
    t["enum sock_type"] = b.add_enum("sock_type", 4, [("SOCK_STREAM", 1), ("SOCK_DGRAM", 2)])
    t["enum big"] = b.add_enum64("big", 8, [("BIG", 1 << 40)])
    t["union fwd_u"] = b.add_fwd("fwd_u", union=True)
    t["char[0]"] = b.add_array(t["char"], t["int"], 0)

    # Functions: LSM hooks and a plain function.
    t["open_proto"] = b.add_func_proto(t["int"], [("file", t["file*"])])
    t["bpf_lsm_file_open"] = b.add_func("bpf_lsm_file_open", t["open_proto"])
    t["connect_proto"] = b.add_func_proto(
        t["int"], [("sock", t["socket*"]), ("address", t["sockaddr*"]), ("addrlen", t["int"])]
    )
    t["bpf_lsm_socket_connect"] = b.add_func("bpf_lsm_socket_connect", t["connect_proto"])
    t["bpf_lsm_noargs"] = b.add_func("bpf_lsm_noargs", t["int(void)"])
    t["printk"] = b.add_func("printk", t["int(const char*, ...)"])
    t["cb_proto"] = b.add_func_proto(
        t["void(*)(int)"], [("cb", t["void(*)(int)"]), ("buf", t["char[16]"]), ("u", t["__user char*"])]
    )
    t["register_cb"] = b.add_func("register_cb", t["cb_proto"])

    # Variables, data sections and decl tags exist in vmlinux too.
    t["var"] = b.add_var("jiffies", t["ulong"])
    t["datasec"] = b.add_datasec(".data", 8, [(t["var"], 0, 8)])
    t["decl_tag"] = b.add_decl_tag("kfunc", t["printk"])
    return Model(b, t)


@pytest.fixture(scope="module")
def model() -> Model:
    return make_model()


@pytest.fixture(scope="module")
def btf(model: Model) -> Btf:
    return Btf.from_bytes(model.blob())


# -- basics -------------------------------------------------------------------------------------------------


def test_default_path() -> None:
    assert DEFAULT_BTF_PATH == "/sys/kernel/btf/vmlinux"


def test_type_count_source_and_kinds(btf: Btf, model: Model) -> None:
    assert btf.type_count == model.builder.type_count
    assert btf.source == "<bytes>"
    assert btf.kind_of(0) is BtfKind.UNKN
    assert btf.kind_of(model.ids["file"]) is BtfKind.STRUCT
    assert btf.kind_of(model.ids["anon_union"]) is BtfKind.UNION
    assert btf.kind_of(model.ids["u32"]) is BtfKind.TYPEDEF
    assert btf.kind_of(model.ids["bpf_lsm_file_open"]) is BtfKind.FUNC
    assert btf.kind_of(model.ids["enum big"]) is BtfKind.ENUM64
    assert btf.kind_of(model.ids["decl_tag"]) is BtfKind.DECL_TAG
    assert btf.name_of(model.ids["file"]) == "file"
    assert btf.name_of(model.ids["anon_union"]) == ""
    assert btf.name_of(0) == "void"


def test_kind_values() -> None:
    assert int(BtfKind.INT) == 1
    assert int(BtfKind.FUNC_PROTO) == 13
    assert int(BtfKind.ENUM64) == 19


def test_find(btf: Btf, model: Model) -> None:
    assert btf.find("file", BtfKind.STRUCT) == model.ids["file"]
    assert btf.find("u32", BtfKind.TYPEDEF) == model.ids["u32"]
    # Several INTs named "unsigned int" (old-style bitfields): the first one wins.
    assert btf.find("unsigned int", BtfKind.INT) == model.ids["uint"]
    with pytest.raises(BtfLookupError, match=r"^<bytes>: no struct 'nope' in BTF$"):
        btf.find("nope", BtfKind.STRUCT)
    with pytest.raises(BtfLookupError, match="no union 'file'"):
        btf.find("file", BtfKind.UNION)


def test_bad_type_ids(btf: Btf) -> None:
    for bad in (-1, btf.type_count + 1, 10**9):
        with pytest.raises(BtfLookupError, match="no type id"):
            btf.kind_of(bad)
        with pytest.raises(BtfLookupError):
            btf.name_of(bad)
        with pytest.raises(BtfLookupError):
            btf.render_type(bad)


def test_repr(btf: Btf) -> None:
    assert "<bytes>" in repr(btf)


# -- sizes --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("struct file", 88),
        ("file", 88),
        ("  struct   file ", 88),
        ("path", 16),
        ("struct path", 16),
        ("path_t", 16),
        ("union u_sock", 8),
        ("u_sock", 8),
        ("u32", 4),
        ("__u32", 4),
        ("int", 4),
        ("unsigned int", 4),
        ("long unsigned int", 8),
        ("char", 1),
        ("_Bool", 1),
        ("double", 8),
        ("enum sock_type", 4),
        ("sock_type", 4),
        ("enum big", 8),
        ("struct file *", 8),
        ("char *", 8),
        ("struct sockaddr_in6", 28),
    ],
)
def test_type_size(btf: Btf, name: str, size: int) -> None:
    assert btf.type_size(name) == size


def test_type_size_errors(btf: Btf) -> None:
    with pytest.raises(BtfLookupError, match="no struct 'nope'"):
        btf.type_size("struct nope")
    with pytest.raises(BtfLookupError, match="no type 'nope'"):
        btf.type_size("nope")
    with pytest.raises(BtfLookupError, match="no union 'file'"):
        btf.type_size("union file")


def test_array_sizes_through_member_offset(btf: Btf) -> None:
    assert btf.member_offset("file", "f_name").size == 16
    assert btf.member_offset("sockaddr_in6", "sin6_addr.in6_u.u6_addr32").size == 16


# -- members and offsets ------------------------------------------------------------------------------------


def test_members(btf: Btf, model: Model) -> None:
    assert btf.members("path") == (
        Member("mnt", model.ids["vfsmount*"], 0, 0),
        Member("dentry", model.ids["dentry*"], 64, 0),
    )
    assert btf.members("struct path") == btf.members("path_t")
    members = btf.members("file")
    assert members[0] == Member("", model.ids["anon_union"], 0, 0)
    assert members[4] == Member("f_flags", model.ids["uint"], 288, 3)
    assert members[5] == Member("f_pos_lock", model.ids["uint"], 291, 5)
    assert [m.name for m in btf.members("union u_sock")] == ["a", "b"]
    assert btf.members_of(btf.find("path", BtfKind.STRUCT)) == btf.members("path")
    with pytest.raises(BtfLookupError, match="not a struct or union"):
        btf.members_of(model.ids["int"])
    with pytest.raises(BtfLookupError):
        btf.members_of(10**6)


def test_members_of_non_struct(btf: Btf) -> None:
    with pytest.raises(BtfLookupError, match="not a struct or union"):
        btf.members("u32")
    with pytest.raises(BtfLookupError, match="no struct or union 'nope'"):
        btf.members("nope")


def test_old_style_bitfields(btf: Btf) -> None:
    lo, hi = btf.members("oldbits")
    assert (lo.bit_offset, lo.bitfield_size) == (0, 4)
    assert (hi.bit_offset, hi.bitfield_size) == (10, 12)
    located = btf.member_offset("oldbits", "hi")
    assert (located.offset, located.bit_offset, located.bitfield_size) == (1, 10, 12)


def test_member_offset_simple(btf: Btf) -> None:
    assert btf.member_offset("path", "dentry") == MemberOffset(
        struct="path", path="dentry", offset=8, bit_offset=64, bitfield_size=0, size=8, type="struct dentry *"
    )
    assert btf.offsetof("struct path", "mnt") == 0


def test_member_offset_nested(btf: Btf) -> None:
    located = btf.member_offset("struct file", "f_path")
    assert (located.struct, located.offset, located.size, located.type) == (
        "file",
        8,
        16,
        "const struct path",
    )
    nested = btf.member_offset("file", "f_path.dentry")
    assert (nested.path, nested.offset, nested.bit_offset, nested.size) == ("f_path.dentry", 16, 128, 8)
    assert nested.type == "struct dentry *"
    assert btf.offsetof("file_t", "f_path.dentry") == 16
    assert btf.offsetof("file", " f_path . mnt ") == 8


def test_member_offset_through_anonymous_members(btf: Btf) -> None:
    assert btf.offsetof("file", "f_iocb_flags") == 0
    assert btf.offsetof("file", "f_llist.next") == 0
    assert btf.offsetof("file", "f_a") == 64
    deep = btf.member_offset("file", "f_deep")
    assert (deep.offset, deep.size, deep.type) == (68, 4, "u32")
    assert btf.offsetof("file", "f_deep2") == 68


def test_member_offset_named_union(btf: Btf) -> None:
    located = btf.member_offset("struct sockaddr_in6", "sin6_addr.in6_u.u6_addr32")
    assert (located.offset, located.type) == (8, "__u32[4]")
    assert btf.offsetof("sockaddr_in6", "sin6_scope_id") == 24
    assert btf.offsetof("union u_sock", "b") == 0


def test_member_offset_bitfields(btf: Btf) -> None:
    flags = btf.member_offset("file", "f_flags")
    assert (flags.offset, flags.bit_offset, flags.bitfield_size, flags.size) == (36, 288, 3, 4)
    assert btf.offsetof("file", "f_flags") == 36
    lock = btf.member_offset("file", "f_pos_lock")
    assert (lock.offset, lock.bit_offset, lock.bitfield_size) == (36, 291, 5)
    with pytest.raises(BtfLookupError, match="not byte aligned"):
        btf.offsetof("file", "f_pos_lock")


def test_member_offset_types(btf: Btf) -> None:
    assert btf.member_offset("file", "f_cred").type == "const struct cred *"
    assert btf.member_offset("file", "f_cb").type == "void (*)(int)"
    assert btf.member_offset("file", "f_count").type == "volatile int"
    assert btf.member_offset("file", "f_owner").type == "const char *"
    assert btf.member_offset("file", "f_mode").size == 4


def test_member_offset_errors(btf: Btf) -> None:
    with pytest.raises(BtfLookupError, match="no struct or union 'nope'"):
        btf.member_offset("nope", "x")
    with pytest.raises(BtfLookupError, match=r"struct file has no member 'f_nope'"):
        btf.member_offset("file", "f_nope")
    with pytest.raises(BtfLookupError, match=r"struct path has no member 'nope'"):
        btf.member_offset("file", "f_path.nope")
    with pytest.raises(BtfLookupError, match=r"'f_path\.dentry' is a pointer \(struct dentry \*\)"):
        btf.member_offset("file", "f_path.dentry.d_flags")
    with pytest.raises(BtfLookupError, match="'f_mode' is not a struct or union"):
        btf.member_offset("file", "f_mode.x")
    with pytest.raises(BtfLookupError, match="is not a struct or union"):
        btf.member_offset("u32", "x")
    for bad in ("", ".", "f_path.", ".f_path"):
        with pytest.raises(BtfLookupError, match="bad member path"):
            btf.member_offset("file", bad)
    with pytest.raises(BtfLookupError):
        btf.offsetof("file", "f_nope")


def test_lookup_error_is_btf_error(btf: Btf) -> None:
    with pytest.raises(BtfError):
        btf.offsetof("file", "f_nope")


# -- rendering ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "rendered"),
    [
        ("int", "int"),
        ("uint", "unsigned int"),
        ("u32", "u32"),
        ("double", "double"),
        ("file", "struct file"),
        ("file*", "struct file *"),
        ("sockaddr*", "struct sockaddr *"),
        ("const char*", "const char *"),
        ("const cred*", "const struct cred *"),
        ("char[16]", "char[16]"),
        ("char*[4]", "char *[4]"),
        ("char(*)[16]", "char (*)[16]"),
        ("char*const", "char *const"),
        ("char*restrict", "char *restrict"),
        ("const volatile int", "const volatile int"),
        ("void(*)(int)", "void (*)(int)"),
        ("void(int)", "void (int)"),
        ("file*(*)(int)", "struct file *(*)(int)"),
        ("int(const char*, ...)", "int (const char *, ...)"),
        ("int(void)", "int (void)"),
        ("int[2][3]", "int[2][3]"),
        ("anon_union", "union {...}"),
        ("anon_struct", "struct {...}"),
        ("u_sock", "union u_sock"),
        ("__user char*", "char *"),
        ("enum sock_type", "enum sock_type"),
        ("enum big", "enum big"),
        ("union fwd_u", "union fwd_u"),
        ("cred", "struct cred"),
        ("bpf_lsm_file_open", "int bpf_lsm_file_open(struct file *)"),
        ("var", "jiffies"),
        ("datasec", ".data"),
        ("char[0]", "char[0]"),
    ],
)
def test_render_type(btf: Btf, model: Model, key: str, rendered: str) -> None:
    assert btf.render_type(model.ids[key]) == rendered


def test_render_void(btf: Btf) -> None:
    assert btf.render_type(0) == "void"


# -- functions and LSM hooks --------------------------------------------------------------------------------


def test_lsm_hook(btf: Btf) -> None:
    proto = btf.lsm_hook("file_open")
    assert proto == FuncProto("bpf_lsm_file_open", "int", (Param("file", "struct file *"),))
    assert proto.render() == "int bpf_lsm_file_open(struct file *file)"
    connect = btf.lsm_hook("socket_connect")
    assert [p.type for p in connect.params] == ["struct socket *", "struct sockaddr *", "int"]
    assert connect.render() == (
        "int bpf_lsm_socket_connect(struct socket *sock, struct sockaddr *address, int addrlen)"
    )
    assert btf.lsm_hook("noargs").render() == "int bpf_lsm_noargs(void)"


def test_lsm_hook_missing(btf: Btf) -> None:
    with pytest.raises(BtfLookupError, match=r"no LSM hook 'nope' \(bpf_lsm_nope not in BTF\)"):
        btf.lsm_hook("nope")


def test_func_id(btf: Btf, model: Model) -> None:
    assert btf.func_id("bpf_lsm_file_open") == model.ids["bpf_lsm_file_open"]
    assert btf.kind_of(btf.func_id("printk")) is BtfKind.FUNC
    with pytest.raises(BtfLookupError, match="no function 'nope' in BTF"):
        btf.func_id("nope")


def test_func_proto_rendering(btf: Btf) -> None:
    printk = btf.func_proto("printk")
    assert printk.params == (Param("fmt", "const char *"), Param("", "..."))
    assert printk.render() == "int printk(const char *fmt, ...)"
    cb = btf.func_proto("register_cb")
    assert cb.return_type == "void (*)(int)"
    assert [p.type for p in cb.params] == ["void (*)(int)", "char[16]", "char *"]
    assert cb.render() == "void (*register_cb(void (*cb)(int), char buf[16], char *u))(int)"


def test_func_proto_of_unnamed_params() -> None:
    b = BtfBuilder()
    i = b.add_int("int", 4, signed=True)
    p = b.add_ptr(i)
    b.add_func("f", b.add_func_proto(p, [("", i), ("", p)]))
    proto = Btf.from_bytes(b.build()).func_proto("f")
    assert proto.render() == "int *f(int, int *)"


def test_func_pointing_at_non_proto_is_corrupt() -> None:
    b = BtfBuilder()
    i = b.add_int("int", 4, signed=True)
    b.add_func("f", i)
    with pytest.raises(BtfError, match="not a function prototype"):
        Btf.from_bytes(b.build()).func_proto("f")


# -- byte order and files -----------------------------------------------------------------------------------


def test_big_endian_blob_parses_the_same(model: Model, btf: Btf) -> None:
    big = Btf.from_bytes(model.blob(big_endian=True))
    assert big.type_count == btf.type_count
    assert big.member_offset("file", "f_path.dentry") == btf.member_offset("file", "f_path.dentry")
    assert big.lsm_hook("file_open") == btf.lsm_hook("file_open")
    for type_id in range(btf.type_count + 1):
        assert big.render_type(type_id) == btf.render_type(type_id)


def test_from_file(tmp_path: Path, model: Model) -> None:
    path = tmp_path / "vmlinux"
    path.write_bytes(model.blob())
    btf = Btf.from_file(path)
    assert btf.source == str(path)
    assert btf.offsetof("file", "f_path") == 8
    with pytest.raises(BtfLookupError, match=f"^{path}: no struct 'nope'"):
        btf.find("nope", BtfKind.STRUCT)


def test_from_file_missing(tmp_path: Path) -> None:
    path = tmp_path / "nope"
    with pytest.raises(BtfError, match=f"^{path}: cannot read BTF: No such file or directory") as info:
        Btf.from_file(path)
    assert info.value.path == str(path)
    assert not isinstance(info.value, BtfLookupError)


def test_from_file_directory(tmp_path: Path) -> None:
    with pytest.raises(BtfError, match="cannot read BTF"):
        Btf.from_file(tmp_path)


def test_from_file_corrupt_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "garbage"
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(BtfError, match=f"^{path}: not a BTF blob: bad magic"):
        Btf.from_file(path)


def test_from_file_empty(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    with pytest.raises(BtfError, match=f"^{path}: not a BTF blob: empty"):
        Btf.from_file(path)


# -- corrupt blobs ------------------------------------------------------------------------------------------


def _patch_header(blob: bytes, offset: int, fmt: str, value: int) -> bytes:
    data = bytearray(blob)
    struct.pack_into(fmt, data, offset, value)
    return bytes(data)


def _minimal() -> BtfBuilder:
    b = BtfBuilder()
    b.add_int("int", 4, signed=True)
    return b


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda blob: b"", "empty, shorter than the 24-byte header"),
        (lambda blob: blob[:10], "only 10 bytes"),
        (lambda blob: b"\x7fELF" + blob[4:], "bad magic 0x7f45"),
        (lambda blob: _patch_header(blob, 2, "<B", 2), "unsupported BTF version 2"),
        (lambda blob: _patch_header(blob, 4, "<I", 8), "header length 8 out of bounds"),
        (lambda blob: _patch_header(blob, 4, "<I", 10**6), "header length 1000000 out of bounds"),
        (lambda blob: _patch_header(blob, 12, "<I", 10**6), "type section .* out of bounds"),
        (lambda blob: _patch_header(blob, 8, "<I", 10**6), "type section .* out of bounds"),
        (lambda blob: _patch_header(blob, 20, "<I", 10**6), "string section .* out of bounds"),
        (lambda blob: _patch_header(blob, 16, "<I", 2**32 - 1), "string section .* out of bounds"),
        (lambda blob: _patch_header(blob, 12, "<I", 14), "truncated type record"),
        (lambda blob: _patch_header(blob, 12, "<I", 8), "truncated type record at type id 1"),
        (lambda blob: _patch_header(blob, 12, "<I", 12), "truncated type record at type id 1"),
        (lambda blob: _patch_header(blob, 20, "<I", 0), "string section must start with an empty string"),
        (lambda blob: blob[:-1] + b"x", "string section must .* end with a NUL"),
    ],
)
def test_corrupt_header(mutate: Callable[[bytes], bytes], message: str) -> None:
    with pytest.raises(BtfError, match=message) as info:
        Btf.from_bytes(mutate(_minimal().build()))
    assert not isinstance(info.value, BtfLookupError)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("<bytes>: ")


def test_unknown_kind() -> None:
    b = _minimal()
    b.add_raw(25, "weird")
    with pytest.raises(BtfError, match="unknown kind 25 at type id 2"):
        Btf.from_bytes(b.build())


def test_unknown_kind_zero() -> None:
    b = _minimal()
    b.add_raw(0)
    with pytest.raises(BtfError, match="unknown kind 0 at type id 2"):
        Btf.from_bytes(b.build())


def test_type_name_offset_out_of_range() -> None:
    b = _minimal()
    b.add_raw(KIND_TYPEDEF, size_or_type=1, name_off=5000)
    with pytest.raises(BtfError, match="string offset 5000 out of range at type id 2"):
        Btf.from_bytes(b.build())


def test_member_name_offset_out_of_range() -> None:
    b = _minimal()
    b.add_raw(4, "s", vlen=1, size_or_type=4, extra=[7777, 1, 0])
    with pytest.raises(BtfError, match="string offset out of range in a member of type id 2"):
        Btf.from_bytes(b.build())


def test_enumerator_name_offset_out_of_range() -> None:
    b = _minimal()
    b.add_raw(6, "e", vlen=1, size_or_type=4, extra=[7777, 1])
    with pytest.raises(BtfError, match="string offset out of range in an enumerator of type id 2"):
        Btf.from_bytes(b.build())


@pytest.mark.parametrize(
    "add",
    [
        lambda b: b.add_ptr(99),
        lambda b: b.add_array(99, 1, 4),
        lambda b: b.add_array(1, 99, 4),
        lambda b: b.add_struct("s", 4, [("x", 99, 0, 0)]),
        lambda b: b.add_func_proto(99, []),
        lambda b: b.add_func_proto(1, [("x", 99)]),
        lambda b: b.add_datasec(".data", 4, [(99, 0, 4)]),
    ],
)
def test_type_reference_out_of_range(add: Callable[[BtfBuilder], int]) -> None:
    b = _minimal()
    add(b)
    with pytest.raises(BtfError, match="refers to type id 99, but there are only 2 types"):
        Btf.from_bytes(b.build())


def test_vlen_on_kind_without_members() -> None:
    b = _minimal()
    b.add_raw(KIND_PTR, vlen=3, size_or_type=1)
    with pytest.raises(BtfError, match="PTR type id 2 has vlen 3"):
        Btf.from_bytes(b.build())


def test_vlen_beyond_section() -> None:
    b = _minimal()
    b.add_raw(4, "s", vlen=1000, size_or_type=4, extra=[0, 1, 0])
    with pytest.raises(BtfError, match=r"truncated type record at type id 2 \(STRUCT, vlen 1000\)"):
        Btf.from_bytes(b.build())


def test_invalid_utf8_name() -> None:
    b = _minimal()
    blob = bytearray(b.build())
    blob[blob.index(b"int\0")] = 0xFF
    btf = Btf.from_bytes(bytes(blob))
    with pytest.raises(BtfError, match="not valid UTF-8"):
        btf.find("int", BtfKind.INT)


def test_cyclic_typedefs_are_corrupt_not_recursion() -> None:
    b = BtfBuilder()
    b.add_typedef("a", 2)
    b.add_typedef("b", 1)
    b.add_ptr(4)
    b.add_ptr(3)
    b.add_struct("s", 8, [("x", 1, 0, 0), ("p", 3, 0, 0)])
    btf = Btf.from_bytes(b.build())
    with pytest.raises(BtfError, match="cycle"):
        btf.type_size("a")
    with pytest.raises(BtfError, match="cycle"):
        btf.render_type(3)
    with pytest.raises(BtfError, match="cycle"):
        btf.member_offset("s", "x")


def test_cyclic_anonymous_members() -> None:
    b = BtfBuilder()
    b.add_struct("", 8, [("", 1, 0, 0)])
    b.add_struct("s", 8, [("", 1, 0, 0)])
    btf = Btf.from_bytes(b.build())
    with pytest.raises(BtfError, match="cycle"):
        btf.member_offset("s", "x")


def test_every_truncation_is_btf_error(model: Model) -> None:
    blob = model.blob()
    for length in range(len(blob)):
        with pytest.raises(BtfError):
            Btf.from_bytes(blob[:length])


def test_every_truncation_big_endian(model: Model) -> None:
    blob = model.blob(big_endian=True)
    for length in range(0, len(blob), 3):
        with pytest.raises(BtfError):
            Btf.from_bytes(blob[:length])


def test_trailing_bytes_are_ignored(model: Model) -> None:
    btf = Btf.from_bytes(model.blob() + b"\0" * 7)
    assert btf.offsetof("path", "dentry") == 8


def test_header_padding_is_accepted() -> None:
    b = _minimal()
    blob = b.build()
    padded = _patch_header(blob[:HEADER_LEN], 4, "<I", HEADER_LEN + 8) + b"\0" * 8 + blob[HEADER_LEN:]
    assert Btf.from_bytes(padded).type_size("int") == 4


# -- fuzzing: truncations and byte flips never escape as anything but BtfError ---------------------------

_FUZZ_BLOB = make_model().blob()


def _exercise(btf: Btf) -> None:
    """Call every query; each may fail, but only with BtfError."""
    queries: list[Callable[[], object]] = [
        lambda: btf.find("file", BtfKind.STRUCT),
        lambda: btf.type_size("struct file"),
        lambda: btf.type_size("u32"),
        lambda: btf.members("file"),
        lambda: btf.member_offset("file", "f_path.dentry"),
        lambda: btf.member_offset("file", "f_deep"),
        lambda: btf.offsetof("sockaddr_in6", "sin6_addr.in6_u.u6_addr32"),
        lambda: btf.lsm_hook("file_open").render(),
        lambda: btf.func_proto("register_cb").render(),
        lambda: btf.func_id("printk"),
    ]
    for type_id in range(btf.type_count + 1):
        queries += [
            functools.partial(btf.kind_of, type_id),
            functools.partial(btf.name_of, type_id),
            functools.partial(btf.render_type, type_id),
        ]
    for query in queries:
        with contextlib.suppress(BtfError):
            query()


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.integers(min_value=0, max_value=len(_FUZZ_BLOB)),
    flips=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=len(_FUZZ_BLOB) - 1), st.integers(min_value=0, max_value=255)
        ),
        max_size=8,
    ),
)
def test_fuzz_truncate_and_flip(cut: int, flips: list[tuple[int, int]]) -> None:
    data = bytearray(_FUZZ_BLOB)
    for position, value in flips:
        data[position] = value
    try:
        btf = Btf.from_bytes(bytes(data[:cut]))
    except BtfError:
        return
    _exercise(btf)


@settings(max_examples=200, deadline=None, database=None)
@given(
    flips=st.lists(
        st.tuples(
            st.integers(min_value=HEADER_LEN, max_value=len(_FUZZ_BLOB) - 1),
            st.integers(min_value=0, max_value=255),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_fuzz_flip_body(flips: list[tuple[int, int]]) -> None:
    data = bytearray(_FUZZ_BLOB)
    for position, value in flips:
        data[position] = value
    try:
        btf = Btf.from_bytes(bytes(data))
    except BtfError:
        return
    _exercise(btf)
