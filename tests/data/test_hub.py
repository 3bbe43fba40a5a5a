"""Offline behaviour of the Hub paths: `thrifty demo` and `hf:` sources fail in one line that
says what to do instead, and a complete demo cache is used without contacting the Hub."""

import json
import sys
import types

import pytest

from thrifty.cli.main import main
from thrifty.data.corpus import resolve_source
from thrifty.data.hub import BLIMP_PARADIGMS, fetch_demo_data
from thrifty.errors import UserError

OFFLINE = "Couldn't reach 'nyu-mll/blimp' on the Hub (LocalEntryNotFoundError)\nTraceback ..."


@pytest.fixture
def offline(monkeypatch):
    """A `datasets` module whose every network call fails, recording what was tried."""
    calls = []

    def unreachable(*args, **kwargs):
        calls.append(args)
        raise ConnectionError(OFFLINE)

    fake = types.ModuleType("datasets")
    fake.load_dataset = unreachable
    fake.get_dataset_config_names = unreachable
    monkeypatch.setitem(sys.modules, "datasets", fake)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("THRIFTY_DATA", raising=False)
    return calls


def test_demo_offline_without_data_says_what_to_do(offline, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("THRIFTY_CACHE", str(tmp_path / "cache"))
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot download the demo data")
    assert "ConnectionError: Couldn't reach" in err[0] and "Traceback" not in err[0]
    assert "--data" in err[0] and "THRIFTY_DATA" in err[0]
    assert offline  # it did try the Hub, and the attempt failed
    assert not (tmp_path / "demo").exists()
    assert not list((tmp_path / "cache").rglob("*.tmp"))


def test_a_complete_cache_never_contacts_the_hub(offline, tmp_path):
    root = tmp_path / "demo-data"
    (root / "babylm").mkdir(parents=True)
    (root / "babylm" / "strict_small.train").write_text("the cat sat\n")
    (root / "blimp").mkdir()
    for i in range(BLIMP_PARADIGMS):
        (root / "blimp" / f"paradigm_{i}.jsonl").write_text(json.dumps({"pairID": 0}) + "\n")
    assert fetch_demo_data(tmp_path) == root
    assert offline == []
    (root / "blimp" / "paradigm_0.jsonl").unlink()  # an incomplete cache goes to the Hub
    with pytest.raises(UserError, match="cannot download the demo data"):
        fetch_demo_data(tmp_path)
    assert offline


def test_hub_source_offline_is_one_line(offline):
    (source,) = resolve_source("hf:owner/corpus:config@train")
    with pytest.raises(UserError) as error:
        list(source.documents())
    message = str(error.value)
    assert "\n" not in message and message.startswith("hf:owner/corpus:config@train: cannot load")
    assert "ConnectionError" in message and "local copy" in message
