"""``guardctl btf offset|hook|size``: read the kernel's BTF."""

from __future__ import annotations

import argparse

from guard.cli.command import Handler, Subparsers, group
from guard.cli.output import emit
from guard.config import GuardConfig
from guard.errors import BtfLookupError
from guard.lsm.btf import DEFAULT_BTF_PATH, Btf

__all__ = ["register"]


def _cmd_btf_offset(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    btf = Btf.from_file(args.btf)
    results = []
    for spec in args.member:
        struct, sep, path = spec.partition(".")
        if not sep or not path:
            raise BtfLookupError(f"{spec!r}: expected STRUCT.MEMBER[.MEMBER...]")
        results.append(btf.member_offset(struct, path))

    def text() -> str:
        lines = []
        for r in results:
            bits = f" (bitfield: bit {r.bit_offset}, {r.bitfield_size} bits)" if r.bitfield_size else ""
            lines.append(f"{r.struct}.{r.path}: offset {r.offset}, size {r.size}, type {r.type}{bits}")
        return "\n".join(lines)

    emit(
        args,
        lambda: [
            {"struct": r.struct, "member": r.path, "offset": r.offset, "size": r.size, "type": r.type}
            | ({"bit_offset": r.bit_offset, "bitfield_size": r.bitfield_size} if r.bitfield_size else {})
            for r in results
        ],
        text,
    )
    return 0


def _cmd_btf_hook(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    btf = Btf.from_file(args.btf)
    protos = [btf.lsm_hook(name) for name in args.hook]
    emit(
        args,
        lambda: [
            {
                "hook": h,
                "function": p.name,
                "return_type": p.return_type,
                "params": [{"name": a.name, "type": a.type} for a in p.params],
            }
            for h, p in zip(args.hook, protos, strict=True)
        ],
        lambda: "\n".join(p.render() for p in protos),
    )
    return 0


def _cmd_btf_size(args: argparse.Namespace, _cfg: GuardConfig) -> int:
    btf = Btf.from_file(args.btf)
    sizes = {name: btf.type_size(name) for name in args.type}
    emit(args, lambda: sizes, lambda: "\n".join(f"{name}: {size}" for name, size in sizes.items()))
    return 0


_SUBCOMMANDS: tuple[tuple[str, Handler, str, str, str], ...] = (
    ("offset", _cmd_btf_offset, "byte offset of struct members", "member", "STRUCT.MEMBER[.MEMBER...]"),
    ("hook", _cmd_btf_hook, "prototype of LSM hooks (bpf_lsm_<hook>)", "hook", "hook name, e.g. file_open"),
    ("size", _cmd_btf_size, "size of types", "type", "type name, e.g. 'struct file' or task_struct"),
)


def register(sub: Subparsers) -> None:
    """Add ``guardctl btf offset|hook|size``."""
    btf_sub = group(sub, "btf", "read the kernel's BTF: member offsets, type sizes, LSM hook prototypes")
    for name, handler, help_text, arg, arg_help in _SUBCOMMANDS:
        q = btf_sub.add_parser(name, help=help_text, description=help_text)
        q.set_defaults(handler=handler)
        q.add_argument(arg, nargs="+", help=arg_help)
        q.add_argument("--json", action="store_true", help="print JSON")
        q.add_argument(
            "--btf", default=DEFAULT_BTF_PATH, metavar="PATH", help="BTF file (default: %(default)s)"
        )
