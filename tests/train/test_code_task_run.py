"""The ObscuraCoder recipe from the command line: code-task, training with the dobf objective,
a bit-exact resume, export, the audit listing the derived words, and the probes."""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from thrifty.cli.main import main
from thrifty.eval import code_probes
from thrifty.runs import latest_checkpoint, load_model

NANO = str(Path(__file__).parents[2] / "configs" / "nano.yaml")
PEAK = "train.peak_flops=1e11"


def write_corpus(folder: Path, files: int = 30) -> Path:
    rng = random.Random(1)
    names = "alpha beta gamma delta total count item value".split()
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        fn, arg, acc = rng.sample(names, 3)
        body = [f"def {fn}({arg}, limit=2):", f"    {acc} = 0", f"    {acc} += len({arg})",
                f"    return {acc}", "", "class Box:", "    def grow(self, amount):",
                "        self.size = amount", "        return self.size", ""]  # fmt: skip
        (folder / f"m{i}.py").write_text("\n".join(body))
    return folder


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(latest_checkpoint(run_dir) / "model.safetensors"))


def test_code_task_trains_resumes_exports_audits_and_probes(tmp_path, capsys):
    corpus, data = write_corpus(tmp_path / "code"), tmp_path / "data"
    assert main(["code-task", str(corpus), "--out", str(data), "--format", "dobf", "--seq-len",
                 "32", "--vocab-size", "300", "--valid-fraction", "0.2"]) == 0  # fmt: skip
    common = [NANO, f"data.path={data}", f"runs_dir={tmp_path / 'runs'}", "train.threads=1",
              "objective.name=dobf", "train.max_steps=6", "train.checkpoint_every=3",
              "train.eval_every=3", "train.eval_batches=1", PEAK]  # fmt: skip
    assert main(["train", *common, "name=straight"]) == 0
    assert main(["train", *common, "name=broken"]) == 0
    broken, straight = tmp_path / "runs" / "broken", tmp_path / "runs" / "straight"
    shutil.rmtree(broken / "checkpoints" / "step_00000006")
    (broken / "checkpoints" / "latest").write_text("step_00000003")
    assert main(["train", *common, "name=broken", "--resume", "auto"]) == 0
    a, b = weights(straight), weights(broken)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    capsys.readouterr()
    assert main(["audit", str(straight)]) == 0
    audit = capsys.readouterr().out
    assert "derived:" in audit and "made by obfuscation from charged words" in audit
    ledger = json.loads((straight / "ledger.json").read_text())
    assert ledger["derived_words"]["obfuscation"] > 0 and ledger["max_epochs"] < 10
    assert main(["export", str(straight), "--out", str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "config.json").is_file()

    loaded = load_model(straight)
    tok = loaded.tokenizer()
    files = code_probes.held_out_files(data)
    assert files and math.isfinite(code_probes.plain_loss(loaded.model, tok, files, 32))
    units = code_probes.probe_units(files, tok, 32, limit=10)
    for prompt in ("pair", "map"):
        assert 0 <= code_probes.identifier_recovery(loaded.model, tok, units, prompt) <= 1
    pairs = code_probes.swap_pairs(files, tok, 64, limit=20)
    assert pairs and all(sorted(x.splitlines()) == sorted(y.splitlines()) for x, y in pairs)
    assert 0 <= code_probes.swap_accuracy(loaded.model, tok, pairs) <= 1
    assert main(["code-probe", str(straight), "--data", str(data), "--units", "5"]) == 0
    probed = json.loads((straight / "eval" / "code_probes.json").read_text())
    assert 0 <= probed["recovery_map"] <= 1 and probed["ledger"]["derived_words"]


@pytest.mark.slow
def test_code_task_on_this_interpreters_stdlib(tmp_path, capsys):
    data = tmp_path / "stdlib"
    assert main(["code-task", "stdlib", "--out", str(data), "--format", "grounded",
                 "--budget-words", "30000", "--seq-len", "32",
                 "--vocab-size", "1024"]) == 0  # fmt: skip
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["code_task"]["corpus"].startswith("Python ")
    assert manifest["ledger"]["budget_words"] == 30000
    assert sum(s["words_used"] for s in manifest["ledger"]["sources"]) <= 30000
    runs = tmp_path / "runs"
    assert main(["train", NANO, f"data.path={data}", f"runs_dir={runs}", "train.threads=1",
                 "objective.name=dobf", "objective.supervise=all", "train.max_steps=4",
                 "train.eval_every=0", PEAK, "name=std"]) == 0  # fmt: skip
    assert main(["audit", str(runs / "std")]) == 0
    assert "made by pair copy" in capsys.readouterr().out
