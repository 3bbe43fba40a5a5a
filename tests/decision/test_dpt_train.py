"""DPT through the CLI: prepare bandit tasks, `thrifty train` a nano policy, audit its ledger in
transitions, and deploy it with `thrifty bandit-eval`."""

import json
from pathlib import Path

import torch

from thrifty.cli.main import main
from thrifty.data.bandits import transition_features
from thrifty.eval.bandit_deploy import load_policy

CONFIG = str(Path(__file__).parents[2] / "configs" / "dpt-bandit.yaml")


def test_prepare_train_audit_and_deploy(tmp_path, capsys):
    data, runs = tmp_path / "bandits", tmp_path / "runs"
    argv = ["bandit-task", "--out", str(data), "--arms", "3", "--horizon", "8", "--tasks", "300"]
    assert main([*argv, "--seed", "1", "--quiet"]) == 0
    argv = [
        "train",
        CONFIG,
        f"data.path={data}",
        f"runs_dir={runs}",
        "name=dpt",
        "model.size=nano",  # the config's width, nano's preset otherwise
        "model.max_seq_len=16",
        "train.max_steps=40",
        "train.batch_size=30",
        "train.lr=3e-3",
        "train.warmup_steps=5",
        "train.eval_every=20",
        "train.log_every=20",
    ]
    assert main(argv) == 0
    run = runs / "dpt"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["val_accuracy_full"] > 0.5  # chance is 1/3
    state = json.loads(next((run / "checkpoints").glob("step_*/state.json")).read_text())
    assert state["model_kind"] == "policy"

    ledger = json.loads((run / "ledger.json").read_text())
    assert ledger["unit"] == "transitions"
    assert ledger["words_seen"] == 40 * 30 * 8  # each task seen charges its 8 transitions
    capsys.readouterr()
    assert main(["audit", str(run)]) == 0
    assert "transitions" in capsys.readouterr().out

    policy = load_policy(run)
    empty = policy.logits(torch.zeros(1, 0, dtype=torch.long), torch.zeros(1, 0))
    assert empty.shape == (1, 1, 3)
    assert (torch.softmax(empty[0, 0], -1) - 1 / 3).abs().max() < 0.1  # symmetric prior
    full = policy.logits(torch.tensor([[0, 1, 2] * 2]), torch.tensor([[0.1, 0.9, 0.2] * 2]))
    assert full[0, -1].argmax() == 1  # the arm that paid best

    out = tmp_path / "bandit.json"
    assert main(["bandit-eval", str(run), "--seeds", "3", "--tasks", "20", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["online"]) == {"dpt", "thompson", "ucb", "uniform"}
    assert len(result["online"]["dpt"]["mean"]) == 8 and result["seeds"] == 3
    assert set(result["offline"]) == {"dpt", "lcb", "greedy"}
    assert "| dpt |" in capsys.readouterr().out


def test_transition_tokens_put_the_query_first():
    tokens = transition_features(torch.tensor([[2]]), torch.tensor([[0.5]]), 3)
    assert tokens.tolist() == [[[0, 0, 0, 0, 1], [0, 0, 1, 0.5, 0]]]
