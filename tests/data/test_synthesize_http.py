"""The OpenAI-compatible generator against a stub server on 127.0.0.1 (never a real endpoint):
requests carry the document, seed and temperature; the ledger charges the declared words as
non-compliant; an unreachable or garbage-answering endpoint is one line naming it (exit 2) and
leaves only the resumable partial folder."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from thrifty.cli.main import main
from thrifty.data.budget import Ledger
from thrifty.data.synthesize import synthesize


class Stub(BaseHTTPRequestHandler):
    requests: list[dict] = []
    mode = "ok"

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Stub.requests.append({"path": self.path, **body})
        text = body["messages"][-1]["content"]
        if Stub.mode == "garbage":
            payload = b"<html>not a completion</html>"
        else:
            answer = ('{"summary": "s", "entities": ["Zorb", "Quil", "Mava"]}'
                      if '"entities"' in text else "Zorb lives in Quil, near Mava.")  # fmt: skip
            payload = json.dumps({"choices": [{"message": {"content": answer}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):  # quiet
        pass


@pytest.fixture
def server():
    Stub.requests, Stub.mode = [], "ok"
    httpd = HTTPServer(("127.0.0.1", 0), Stub)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"id": "d1", "text": "Zorb lives in Quil. Mava owns the Krell."}\n')
    return path


def test_endpoint_generates_grounded_texts_and_is_charged_as_declared(server, source, tmp_path):
    manifest = synthesize(source, tmp_path / "syn", generator=server, generator_words=1_000_000,
                          generator_model="stub-model", temperature=0.7, seed=3,
                          vocab_size=280, valid_fraction=0.0)  # fmt: skip
    first, *rest = Stub.requests
    assert all(r["path"] == "/v1/chat/completions" for r in Stub.requests)
    assert '"entities"' in first["messages"][-1]["content"]  # extraction asked as JSON
    assert len(rest) == 3 + 3 + 1  # three entities, three pairs, one triple
    assert all("Zorb lives in Quil. Mava owns the Krell." in r["messages"][-1]["content"]
               for r in Stub.requests)  # fmt: skip
    assert {r["temperature"] for r in rest} == {0.7} and {r["model"] for r in rest} == {
        "stub-model"
    }
    assert len({r["seed"] for r in rest}) == len(rest)  # one fixed seed per task
    ledger = Ledger.from_dict(manifest["ledger"])
    entry = next(m for m in ledger.aux_models if m["name"].startswith("EntiGraph generator http"))
    assert entry["words"] == 1_000_000 and entry["noncompliant"]
    assert any("not on record" in v for v in ledger.violations())
    assert ledger.synthetic_words == 7 * len("Zorb lives in Quil, near Mava.".split())


def test_endpoint_needs_declared_words(server, source, tmp_path):
    code = main(["synthesize", str(source), "--out", str(tmp_path / "x"), "--generator", server])
    assert code == 2 and not Stub.requests


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_endpoint_is_one_line_naming_it(source, tmp_path, capsys):
    url = f"http://127.0.0.1:{unused_port()}/v1"
    out = tmp_path / "syn"
    args = ["synthesize", str(source), "--out", str(out), "--generator", url,
            "--generator-words", "1000"]  # fmt: skip
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"generator {url}/chat/completions is unreachable" in err
    assert not out.exists() and (tmp_path / "syn.partial").is_dir()


def test_garbage_answers_are_one_line_and_the_rerun_resumes(server, source, tmp_path, capsys):
    out = tmp_path / "syn"
    args = ["synthesize", str(source), "--out", str(out), "--generator", server,
            "--generator-words", "1000", "--vocab-size", "280",
            "--valid-fraction", "0"]  # fmt: skip
    Stub.mode = "garbage"
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "answered garbage" in err and server in err
    assert not out.exists()
    Stub.mode = "ok"
    assert main(args) == 0 and (out / "manifest.json").is_file()
    assert not (tmp_path / "syn.partial").exists()
