"""The CLI's transfer bar takes the store's byte counts; off a terminal it draws nothing."""

from __future__ import annotations

import pytest

from aip.cli.progress import transfer_progress


def test_the_bar_counts_bytes_on_a_terminal(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # Rich: treat stderr as a terminal
    monkeypatch.setenv("COLUMNS", "120")
    with transfer_progress(3 << 20, "model.onnx") as advance:
        for _ in range(3):
            advance(1 << 20)
    drawn = capsys.readouterr()
    assert drawn.out == ""  # stdout stays scriptable
    assert "model.onnx" in drawn.err and "3.1/3.1 MB" in drawn.err


def test_off_a_terminal_or_disabled_nothing_is_drawn(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for enabled in (True, False):
        with transfer_progress(10, "x", enabled=enabled) as advance:
            advance(10)
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("FORCE_COLOR", "1")
    with transfer_progress(None, "json output", enabled=False) as advance:
        advance(5)
    assert capsys.readouterr().err == ""
