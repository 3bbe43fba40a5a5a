"""``thrifty report``: a self-contained HTML page and a markdown twin, from a run folder with
metrics, a checkpoint and eval/finetune/label-efficiency results (synthetic JSON written here)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys

import pytest

from thrifty.analysis.report import build_report
from thrifty.analysis.report_data import load_run
from thrifty.cli.main import main
from thrifty.errors import UserError

SECTIONS = (
    "Runs, budgets and compute",
    "Learning curves",
    "Zero-shot evaluation",
    "Fine-tuning",
    "Label efficiency",
)


def _dump(path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _metrics(run_dir, steps: int = 6, scale: float = 1.0) -> None:
    rows = []
    for step in range(1, steps + 1):
        words = 80.0 * step
        rows.append(
            {
                "step": step,
                "loss": scale * (6.0 - 0.3 * step),
                "tokens": 128 * step,
                "words": words,
                "lr": 1e-3,
            }
        )
        if step % 3 == 0:
            rows.append(
                {
                    "step": step,
                    "words": words,
                    "val_loss": scale * (6.1 - 0.2 * step),
                    "val_accuracy": 0.05 * step,
                    "val_mask_rate": 0.15,
                }
            )
    lines = [json.dumps(r) for r in rows]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 7, "lo')  # torn write


@pytest.fixture
def full_run(tiny_run, tmp_path):
    """A copy of the tiny run (the fixture is shared) with metrics and every kind of result."""
    run_dir = tmp_path / "runs" / "tiny"
    shutil.copytree(tiny_run.run_dir, run_dir)
    _metrics(run_dir)
    ev = run_dir / "eval"
    paradigms = {
        "anaphor_gender_agreement": {"accuracy": 0.7, "n": 10, "phenomenon": "anaphor_agreement"},
        "adjunct_island": {"accuracy": 0.45, "n": 10, "phenomenon": "island_effects"},
    }
    _dump(
        ev / "blimp_causal.json",
        {
            "task": "blimp",
            "backend": "causal",
            "variant": "original",
            "metric": "accuracy",
            "macro": 0.575,
            "score": 0.575,
            "step": 1,
            "paradigms": paradigms,
            "phenomena": {"anaphor_agreement": 0.7, "island_effects": 0.45},
        },
    )
    _dump(
        ev / "wug_mntp.json",
        {  # a task the report has never heard of
            "task": "wug",
            "backend": "mntp",
            "metric": "spearman",
            "score": 0.4242,
            "subtasks": {"wug_adj_nominalization": {"score": 0.4242, "n": 50}},
        },
    )
    _dump(
        ev / "finetune_rte.json",
        {
            "task": "rte",
            "metric": "accuracy",
            "metrics": ["accuracy"],
            "seeds": [0, 1, 2],
            "per_seed": [{"seed": s, "accuracy": a} for s, a in enumerate((0.57, 0.59, 0.59))],
            "mean": {"accuracy": 0.5833},
            "std": {"accuracy": 0.0123},
        },
    )
    _dump(
        ev / "finetune_mrpc.json",
        {
            "task": "mrpc",
            "metric": "f1",
            "metrics": ["accuracy", "f1"],
            "seeds": [0, 1],
            "per_seed": [
                {"seed": 0, "accuracy": 0.7, "f1": 0.8},
                {"seed": 1, "accuracy": 0.72, "f1": 0.81},
            ],
            "mean": {"accuracy": 0.71, "f1": 0.805},
            "std": {"accuracy": 0.01, "f1": 0.005},
        },
    )
    _dump(
        ev / "label_efficiency_sst2.json",
        {
            "task": "sst2",
            "metric": "auc",
            "sizes": [32, 64, 128],
            "arms": {
                "pretrained": {"32": [0.61, 0.63], "64": [0.7, 0.72], "128": [0.8, 0.82]},
                "random_init": {"32": [0.5, 0.52], "64": [0.55, 0.57], "128": [0.71, 0.69]},
            },
            "labels_saved": {"target": 0.7, "pretrained": 64, "random_init": 128, "factor": 2.0},
        },
    )
    return run_dir


def _images(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', page)


def test_html_is_self_contained_with_every_section(full_run, tmp_path):
    out = tmp_path / "out" / "report.html"
    written = build_report([full_run], out)
    page = out.read_text()
    assert written["sections"] == [*SECTIONS, "Problems reading the runs"]  # the torn metrics line
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in page
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page
    images = _images(page)
    assert len(images) == 4  # curves, validation metrics, BLiMP phenomena, label efficiency
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.parent.glob("*.tmp*")) and not list(out.parent.glob(".*"))


def test_numbers_reach_the_page(full_run, tiny_run, tmp_path):
    out = tmp_path / "report.html"
    build_report([full_run], out)
    page = out.read_text()
    # the ledger (fixture: budget 1000 words, 500 seen) and the model's size
    assert '<td>budget (words)</td><td class="num">1,000</td>' in page
    assert '<td>words seen</td><td class="num">500</td>' in page
    params = tiny_run.model.num_params()
    assert f"{params:,}" in page
    facts = load_run(full_run).model
    expected = tiny_run.model.flops_per_token(tiny_run.cfg.data.seq_len) * 128 * 6
    assert facts["params"] == params and facts["train_flops"] == pytest.approx(expected)
    assert "training FLOPs (total)" in page
    # zero-shot: BLiMP macro and phenomena, the unknown task by its headline score
    assert "blimp (causal)" in page and "57.5" in page and "island_effects" in page
    assert "wug (mntp)" in page and "0.424" in page
    # fine-tuning as mean ± std over seeds, label efficiency's labels saved
    assert "58.3 ± 1.2 (3 seeds)" in page and "80.5 ± 0.5 (2 seeds)" in page
    assert "2.00×" in page
    # the torn last line of metrics.jsonl is skipped and said so
    assert "Problems reading the runs" in page and "skipped 1 unreadable line" in page


def test_markdown_twin_references_existing_pngs(full_run, tmp_path):
    out = tmp_path / "report.html"
    build_report([full_run], out)
    md = (tmp_path / "report.md").read_text()
    refs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(refs) == 4 and all(r.startswith("report_files/") for r in refs)
    for ref in refs:
        assert (tmp_path / ref).read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in (tmp_path / "report_files").iterdir()) == sorted(
        r.split("/")[1] for r in refs
    )
    assert "| budget (words) | 1,000 |" in md and "## Fine-tuning" in md


def test_partial_runs_side_by_side(full_run, tmp_path, capsys):
    partial = tmp_path / "runs" / "still-training"
    partial.mkdir()
    _metrics(partial, steps=3, scale=1.1)
    out = tmp_path / "two.html"
    assert main(["report", str(full_run), str(partial), "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    page = out.read_text()
    assert "<th>tiny</th><th>still-training</th>" in page
    # only metrics: no zero-shot section from the partial run alone
    written = build_report([partial], tmp_path / "one.html")
    assert written["sections"] == [
        "Runs, budgets and compute",
        "Learning curves",
        "Problems reading the runs",
    ]


def test_errors_name_the_problem(tmp_path, capsys):
    with pytest.raises(UserError, match="run folder not found"):
        build_report([tmp_path / "nope"], tmp_path / "r.html")
    empty = tmp_path / "empty"
    (empty / "eval").mkdir(parents=True)
    (empty / "eval" / "blimp_causal.json").write_text("{not json")
    with pytest.raises(UserError, match=r"nothing to report.*blimp_causal\.json"):
        build_report([empty], tmp_path / "r.html")
    assert main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "r.html")]) == 2
    assert "run folder not found" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()


def test_missing_matplotlib_is_a_clear_error(full_run, tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(UserError, match=r"pip install 'thrifty\[report\]'"):
        build_report([full_run], tmp_path / "r.html")


def test_report_never_imports_the_training_loop(full_run, tmp_path):
    """DESIGN.md: analysis reads run folders and never imports train/ (checked in a fresh
    interpreter, since other tests import the loop into this one)."""
    code = (
        "import sys; from thrifty.analysis.report import build_report; "
        f"build_report([{str(full_run)!r}], {str(tmp_path / 'r.html')!r}); "
        "print(sorted(m for m in sys.modules if m.startswith('thrifty.train')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
