import logging

import pytest

from thrifty.progress import progress_bar, tracked


@pytest.fixture
def info_logs():
    logger = logging.getLogger("thrifty")
    old = logger.level
    logger.setLevel(logging.INFO)
    yield logger
    logger.setLevel(old)


def test_no_bar_off_a_terminal(capsys, info_logs, monkeypatch):
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("TTY_COMPATIBLE", raising=False)
    assert list(tracked(["blimp", "wug"], "eval")) == ["blimp", "wug"]
    with progress_bar("finetune", 4) as advance:
        advance(2)
    assert capsys.readouterr().err == ""


def test_bar_on_a_terminal_unless_logging_is_quieter_than_info(capsys, info_logs, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich treats stderr as a terminal
    assert list(tracked(["blimp", "wug"], "eval")) == ["blimp", "wug"]
    err = capsys.readouterr().err
    assert "eval" in err and "2/2" in err
    assert list(tracked(["blimp"], "eval", enabled=False)) == ["blimp"]  # --quiet
    info_logs.setLevel(logging.WARNING)
    assert list(tracked(["blimp"], "eval")) == ["blimp"]
    assert capsys.readouterr().err == ""
