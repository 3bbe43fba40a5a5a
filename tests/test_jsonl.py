"""The shared reader of appended JSON-lines files: a torn last line is dropped (and, with
repair, cut from the file); anything else that does not parse is an error naming the line."""

import json

import pytest

from thrifty.errors import UserError
from thrifty.jsonl import read_jsonl

ROWS = [{"step": 1, "loss": 3.5}, {"step": 2, "loss": 3.25}]
WHOLE = "".join(json.dumps(r) + "\n" for r in ROWS)


def test_whole_file_and_missing_file(tmp_path):
    (tmp_path / "m.jsonl").write_text(WHOLE + "\n")  # blank lines are not rows
    assert read_jsonl(tmp_path / "m.jsonl") == ROWS
    assert read_jsonl(tmp_path / "absent.jsonl") == []


@pytest.mark.parametrize("tail", ['{"step": 3, "lo', "{", '{"step": 3, "text": "\\u00', "[1, 2"])
def test_a_torn_last_line_is_dropped_and_repair_cuts_it(tmp_path, tail):
    path = tmp_path / "m.jsonl"
    path.write_text(WHOLE + tail)
    assert read_jsonl(path) == ROWS
    assert path.read_text() == WHOLE + tail  # reading alone changes nothing
    assert read_jsonl(path, repair=True) == ROWS
    assert path.read_text() == WHOLE


def test_a_torn_multibyte_character_is_a_torn_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_bytes(WHOLE.encode() + '{"text": "é'.encode()[:-1])
    assert read_jsonl(path) == ROWS


def test_repair_ends_a_complete_last_row_with_its_newline(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(WHOLE.rstrip("\n"))
    assert read_jsonl(path, repair=True) == ROWS
    assert path.read_text() == WHOLE


@pytest.mark.parametrize("bad", ['{"step": 1', "not json", "[1, 2]"])
def test_damage_before_the_last_line_names_file_and_line(tmp_path, bad):
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n\n" + bad + "\n" + json.dumps(ROWS[1]) + "\n")
    with pytest.raises(UserError, match=rf"^{path}:3: not a JSON object, and not the last line"):
        read_jsonl(path, repair=True)
    assert bad in path.read_text()  # a damaged file is never rewritten
