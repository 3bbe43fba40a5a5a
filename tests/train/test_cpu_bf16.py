"""``train.precision=bf16`` on a CPU: the loop's step takes the fast bf16 paths (the fused LM
head, the training attention function of short windows) and trains as the fp32 run does, to
bf16 precision."""

import json

import pytest

from thrifty.models.attention import cpu_training
from thrifty.objectives import token_loss
from thrifty.train.loop import train

STEPS = ("train.max_steps=30", "train.log_every=5", "train.eval_every=0")


def losses(cfg) -> list[float]:
    rows = [json.loads(x) for x in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


# gpt_bert's masked rows take the function's bidirectional mode, which its own tests cover
@pytest.mark.parametrize(
    "objective", ["causal_lm", pytest.param("gpt_bert", marks=pytest.mark.slow)]
)
def test_bf16_training_takes_the_fast_paths_and_tracks_fp32(nano_cfg, monkeypatch, objective):
    fp32 = nano_cfg("name=fp32", f"objective.name={objective}", *STEPS)
    train(fp32)
    calls = {"head": 0, "attention": 0}
    head, attention = token_loss._HeadCrossEntropy.apply, cpu_training.rope_attention

    def counted(name, original):
        def call(*args):
            calls[name] += 1
            return original(*args)

        return call

    monkeypatch.setattr(token_loss._HeadCrossEntropy, "apply", counted("head", head))
    monkeypatch.setattr(cpu_training, "rope_attention", counted("attention", attention))
    bf16 = nano_cfg("name=bf16", f"objective.name={objective}", "train.precision=bf16", *STEPS)
    train(bf16)
    assert calls["head"] >= 30 and calls["attention"] >= 30 * fp32.model.n_layers
    want, got = losses(fp32), losses(bf16)
    assert len(want) == len(got) == 6
    assert got == pytest.approx(want, rel=0.01)  # 0.2% apart after 30 steps
    assert got[-1] < got[0] - 0.5  # it learns
