"""PinnedControl without a kernel: the pinned maps are dictionaries behind a fake bpf(2) layer."""

from __future__ import annotations

import ctypes
from pathlib import Path

import pytest

from guard.errors import MapError
from guard.lsm import abi, bpfsys, pinned
from guard.lsm.abi import ModeId
from guard.lsm.pinned import PinnedControl
from guard.model import Hook


class FakeMaps:
    """Pinned maps by path: obj_get hands out fds, the element calls act on dictionaries."""

    def __init__(self, layout: Path, *, config_value_size: int | None = None) -> None:
        self.sizes = {
            str(layout / "guard_config"): (4, config_value_size or ctypes.sizeof(abi.Config)),
            str(layout / "guard_rule_modes"): (4, 4),
        }
        self.data: dict[str, dict[bytes, bytes]] = {path: {} for path in self.sizes}
        self.fds: dict[int, str] = {}
        self.closed: list[int] = []
        self.updates = 0
        self.calls = 0

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in (
            "obj_get",
            "map_info",
            "map_lookup_elem",
            "map_update_elem",
            "map_delete_elem",
            "map_keys",
        ):
            monkeypatch.setattr(bpfsys, name, getattr(self, name))
        monkeypatch.setattr(bpfsys, "close_fd", self.closed.append)

    def obj_get(self, path: Path) -> int:
        self.calls += 1
        fd = 100 + len(self.fds)
        self.fds[fd] = str(path)
        return fd

    def map_info(self, fd: int) -> bpfsys.MapInfo:
        key_size, value_size = self.sizes[self.fds[fd]]
        return bpfsys.MapInfo(1, fd, key_size, value_size, 1, "x")

    def map_lookup_elem(self, fd: int, key: bytes, value_size: int) -> bytes | None:
        self.calls += 1
        return self.data[self.fds[fd]].get(key)

    def map_update_elem(self, fd: int, key: bytes, value: bytes) -> None:
        self.calls += 1
        self.updates += 1
        self.data[self.fds[fd]][key] = value

    def map_delete_elem(self, fd: int, key: bytes) -> bool:
        self.calls += 1
        return self.data[self.fds[fd]].pop(key, None) is not None

    def map_keys(self, fd: int, key_size: int) -> list[bytes]:
        self.calls += 1
        return list(self.data[self.fds[fd]])

    def config(self, layout: Path) -> abi.Config:
        raw = self.data[str(layout / "guard_config")].get(bytes(4))
        return abi.Config() if raw is None else abi.Config.from_buffer_copy(raw)


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    here = tmp_path / "pins" / "layout-0123456789abcdef"
    here.mkdir(parents=True)
    for name in ("guard_config", "guard_rule_modes"):
        (here / name).touch()
    return here


@pytest.fixture
def maps(layout: Path, monkeypatch: pytest.MonkeyPatch) -> FakeMaps:
    fake = FakeMaps(layout)
    fake.install(monkeypatch)
    return fake


def test_modes_are_read_from_the_pinned_config(layout: Path, maps: FakeMaps) -> None:
    config = abi.Config()
    config.mode[Hook.FILE_OPEN.abi] = ModeId.ENFORCE
    config.hook_flags[Hook.FILE_OPEN.abi] = abi.HF_EMIT_CHMOD
    maps.data[str(layout / "guard_config")][bytes(4)] = bytes(config)
    with PinnedControl(layout) as control:
        assert control.modes() == {
            Hook.BPRM_CHECK_SECURITY: ModeId.OFF,
            Hook.FILE_OPEN: ModeId.ENFORCE,
            Hook.SOCKET_CONNECT: ModeId.OFF,
            Hook.PTRACE_ACCESS_CHECK: ModeId.OFF,
        }


def test_set_modes_changes_the_named_hooks_in_one_update_and_keeps_the_rest(
    layout: Path, maps: FakeMaps
) -> None:
    config = abi.Config()
    config.mode[Hook.SOCKET_CONNECT.abi] = ModeId.DETECT
    config.hook_flags[Hook.SOCKET_CONNECT.abi] = abi.HF_EMIT_ALL
    config.agent_tgid = 4242
    maps.data[str(layout / "guard_config")][bytes(4)] = bytes(config)
    control = PinnedControl(layout)
    control.set_modes({Hook.BPRM_CHECK_SECURITY: ModeId.ENFORCE})
    assert maps.updates == 1
    after = maps.config(layout)
    assert list(after.mode) == [ModeId.ENFORCE, ModeId.OFF, ModeId.DETECT, ModeId.OFF]
    assert (after.hook_flags[Hook.SOCKET_CONNECT.abi], after.agent_tgid) == (abi.HF_EMIT_ALL, 4242)
    control.close()
    assert sorted(maps.closed) == sorted(maps.fds)


def test_rule_modes_set_read_and_cleared(layout: Path, maps: FakeMaps) -> None:
    control = PinnedControl(layout)
    control.set_rule_mode(7, ModeId.DETECT)
    control.set_rule_mode(2**32 - 1, ModeId.OFF)
    assert maps.updates == 2
    assert control.rule_modes() == {7: ModeId.DETECT, 2**32 - 1: ModeId.OFF}
    control.set_rule_mode(7, None)
    control.set_rule_mode(7, None)  # absent is fine
    assert control.rule_modes() == {2**32 - 1: ModeId.OFF}


@pytest.mark.parametrize(
    ("rule_id", "mode"),
    [
        (0, ModeId.DETECT),
        (-3, ModeId.DETECT),
        (2**32, ModeId.DETECT),
        (True, ModeId.DETECT),
        (5, 3),
        (5, "on"),
    ],
)
def test_bad_rule_arguments_are_refused_before_any_syscall(
    layout: Path, maps: FakeMaps, rule_id: object, mode: object
) -> None:
    control = PinnedControl(layout)
    before = maps.calls
    with pytest.raises(MapError):
        control.set_rule_mode(rule_id, mode)  # type: ignore[arg-type]  # bad arguments on purpose
    assert maps.calls == before


@pytest.mark.parametrize("modes", [{Hook.BPRM_CHECK_SECURITY: 5}, {9: ModeId.OFF}])
def test_bad_hook_modes_are_refused_before_any_write(
    layout: Path, maps: FakeMaps, modes: dict[int, int]
) -> None:
    control = PinnedControl(layout)
    with pytest.raises(MapError):
        control.set_modes(modes)  # type: ignore[arg-type]  # bad hooks and modes on purpose
    assert maps.updates == 0


def test_an_unknown_stored_mode_is_an_error_not_a_guess(layout: Path, maps: FakeMaps) -> None:
    maps.data[str(layout / "guard_rule_modes")][(3).to_bytes(4, "little")] = (9).to_bytes(4, "little")
    with pytest.raises(MapError, match="rule 3"):
        PinnedControl(layout).rule_modes()


def test_a_missing_pin_is_refused_before_opening_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: Path
) -> None:
    maps = FakeMaps(layout)
    maps.install(monkeypatch)
    (layout / "guard_rule_modes").unlink()
    with pytest.raises(MapError, match="guard_rule_modes: not pinned"):
        PinnedControl(layout)
    assert sorted(maps.closed) == sorted(maps.fds)  # guard_config was opened, then closed
    with pytest.raises(MapError, match="not pinned"):
        PinnedControl(tmp_path / "nowhere")


def test_another_abi_is_refused(layout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    maps = FakeMaps(layout, config_value_size=ctypes.sizeof(abi.Config) + 8)
    maps.install(monkeypatch)
    with pytest.raises(MapError, match="another version"):
        PinnedControl(layout)
    assert sorted(maps.closed) == sorted(maps.fds)


def test_from_pin_dir_needs_exactly_one_layout(layout: Path, maps: FakeMaps) -> None:
    pin_dir = layout.parent
    assert PinnedControl.from_pin_dir(pin_dir).layout_dir == layout
    (pin_dir / "layout-ffffffffffffffff").mkdir()
    with pytest.raises(MapError, match="expected one pinned layout"):
        PinnedControl.from_pin_dir(pin_dir)
    with pytest.raises(MapError, match="found none"):
        PinnedControl.from_pin_dir(pin_dir / "absent")


def test_the_rule_modes_map_is_pinned_with_the_others() -> None:
    assert "guard_rule_modes" in pinned.PINNED_MAPS
