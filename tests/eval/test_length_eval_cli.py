"""From the command line: recall-task, a meta-token run, length-eval and audit."""

from __future__ import annotations

import json

from thrifty.cli.main import main


def test_meta_token_run_scores_past_its_length_and_passes_its_audit(tmp_path, capsys):
    data, runs = tmp_path / "recall", tmp_path / "runs"
    assert main(["recall-task", "--out", str(data), "--train-len", "32", "--test-lens", "32,64",
                 "--examples", "200", "--test-examples", "4", "--pairs", "3", "--queries", "2",
                 "--keys", "10", "--values", "5", "--filler", "5", "--quiet"]) == 0  # fmt: skip
    assert main(["train", "configs/meta-recall.yaml", f"data.path={data}", f"runs_dir={runs}",
                 "name=meta", "model.d_model=32", "model.n_layers=1", "model.n_heads=2",
                 "model.max_seq_len=32", "data.seq_len=32", "train.max_steps=4",
                 "train.batch_size=4", "train.eval_every=4", "train.eval_batches=1",
                 "train.checkpoint_every=4"]) == 0  # fmt: skip
    run = runs / "meta"
    assert main(["length-eval", str(run), "--recall", str(data), "--text", str(data),
                 "--lengths", "32,64", "--rope", "none,yarn", "--max-windows=2"]) == 0  # fmt: skip
    result = json.loads((run / "eval" / "length.json").read_text())
    assert result["meta_rate"] == 0.0625 and result["train_len"] == 32
    for key in ("recall", "heldout_loss"):
        assert set(result[key]) == {"none", "yarn"} and set(result[key]["yarn"]) == {"32", "64"}
    assert 0.0 <= result["recall"]["yarn"]["64"] <= 1.0
    assert main(["audit", str(run)]) == 0
    capsys.readouterr()
    assert main(["length-eval", str(run), "--rope", "ntk", "--recall", str(data)]) == 2
    assert "--rope ntk" in capsys.readouterr().err
