"""The one output helper: JSON under --json, else the text; an empty text prints nothing."""

from __future__ import annotations

import argparse

import pytest

from guard.cli.output import emit


def test_json_or_text(capsys: pytest.CaptureFixture[str]) -> None:
    emit(argparse.Namespace(json=True), lambda: {"b": 1, "a": "é"}, lambda: pytest.fail("text rendered"))
    assert capsys.readouterr().out == '{\n  "b": 1,\n  "a": "\\u00e9"\n}\n'
    emit(argparse.Namespace(json=False), lambda: pytest.fail("JSON built"), lambda: "one\ntwo")
    assert capsys.readouterr().out == "one\ntwo\n"


def test_no_json_flag_is_text_and_empty_text_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    emit(argparse.Namespace(), list, lambda: "")
    assert capsys.readouterr().out == ""


def test_non_ascii_kept_on_request(capsys: pytest.CaptureFixture[str]) -> None:
    emit(argparse.Namespace(json=True), lambda: ["é"], str, ensure_ascii=False)
    assert capsys.readouterr().out == '[\n  "é"\n]\n'
