"""The training step never reads a device value back to the host between logging steps.

On a GPU each read (``.item()``, ``bool(t)``, ``.tolist()``, ``.cpu()``, a boolean mask, a
``nonzero``) stalls the host until the device has caught up, so the next step cannot be queued
while this one runs. This machine has no GPU, so the reads are counted on CPU: a dispatch mode
marks every tensor computed from the model's parameters or from a batch's inputs (what would
live on the device) and counts the operations that read a marked tensor's values on the host
or size an output by them. The count of a run that logs once must not grow with its steps
(but for the one wait MCL's self-correction needs, named below).
"""

import weakref
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from thrifty.objectives import base, token_loss
from thrifty.train.loop import train

aten = torch.ops.aten
READS = {aten._local_scalar_dense.default, aten.nonzero.default, aten.masked_select.default}


class HostReads(TorchDispatchMode):
    """Counts host reads of tensors that would be on the device (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.on_device: dict[int, weakref.ref] = {}  # by id: tensors compare elementwise
        self.reads: list[str] = []

    def mark(self, tensors) -> None:
        for t in tensors:
            if isinstance(t, torch.Tensor):
                key = id(t)
                self.on_device[key] = weakref.ref(t, lambda _, k=key: self.on_device.pop(k, None))

    def is_marked(self, t) -> bool:
        if not isinstance(t, torch.Tensor):
            return False
        ref = self.on_device.get(id(t))
        return t.requires_grad or (ref is not None and ref() is t)

    def note(self, what: str) -> None:
        self.reads.append(what)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        flat, _ = tree_flatten((args, kwargs or {}))
        marked = any(self.is_marked(t) for t in flat)
        boolean_index = func is aten.index.Tensor and any(
            isinstance(t, torch.Tensor) and t.dtype == torch.bool for t in flat[1:]
        )
        if marked and (func in READS or boolean_index):
            self.note(str(func))
        out = func(*args, **(kwargs or {}))
        if marked:
            self.mark(tree_flatten(out)[0])
        return out


def count_reads(cfg, monkeypatch) -> list[str]:
    mode = HostReads()
    original_of = base.Batch.of.__func__

    def batch_of(cls, fields, **kwargs):  # a batch's inputs are on the device: copies of
        fields = {k: v.clone() for k, v in fields.items()}  # the host's (kept in `host`)
        mode.mark(fields.values())
        return original_of(cls, fields, **kwargs)

    monkeypatch.setattr(base.Batch, "of", classmethod(batch_of))
    # The CPU's fused head is a kernel of its own that reads its accuracy on the host (free
    # there); off, the head runs as it does on a GPU.
    monkeypatch.setattr(token_loss, "_cpu_head_dtype", lambda hidden, head: None)
    for name in ("tolist", "cpu", "numpy"):  # reads that do not pass the dispatcher
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            if mode.is_marked(self):
                mode.note(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    with mode:
        train(cfg)
    monkeypatch.undo()
    return mode.reads


# MCL's self-correction resamples the positions the discriminator got wrong: the device
# chooses them, so the host waits once per step to learn where they are (a nonzero and its
# copy back). Every other objective here reads nothing.
READS_PER_STEP = {"mcl": ["aten.nonzero.default", "cpu"]}


# gpt_bert covers the masked head and electra the generator's positions in the default run;
# the objectives that reuse those paths are in the slow tier
SLOW = pytest.mark.slow


def reads_of_six_more_steps(nano_cfg, monkeypatch, *overrides: str) -> tuple[Counter, list]:
    """The reads a 9-step run makes beyond a 3-step one (both logging once, at their end), and
    all of the 9-step run's; bf16 autocast is the path a GPU run takes."""
    common = ("train.precision=bf16", "train.eval_every=0", *overrides)
    reads = {}
    for steps in (3, 9):
        cfg = nano_cfg(
            f"name=s{steps}", *common, f"train.max_steps={steps}", f"train.log_every={steps}"
        )
        reads[steps] = count_reads(cfg, monkeypatch)
    return Counter(reads[9]) - Counter(reads[3]), sorted(reads[9])


@pytest.mark.parametrize(
    "objective",
    ["causal_lm", "gpt_bert", "electra", "mcl"]
    + [pytest.param(o, marks=SLOW) for o in ("masked_lm", "electra-gdes", "dobf", "meta_lm")],
)
def test_steps_between_logs_read_nothing_back(nano_cfg, monkeypatch, objective):
    name, _, sharing = objective.partition("-")
    overrides = (f"objective.name={name}",)
    overrides += (f"objective.embedding_sharing={sharing}",) if sharing else ()
    extra, reads = reads_of_six_more_steps(nano_cfg, monkeypatch, *overrides)
    assert extra == Counter(READS_PER_STEP.get(name, []) * 6), reads


def test_mixture_of_experts_reads_only_its_group_sizes(nano_cfg, monkeypatch):
    """A MoE layer splits its tokens by expert, which needs the group sizes on the host: one
    read per layer and step; its routing metrics and capacity drops stay on the device."""
    moe = ("model.mlp=moe", "model.mlp.capacity_factor=1.0")
    extra, reads = reads_of_six_more_steps(nano_cfg, monkeypatch, *moe)
    layers = nano_cfg().model.n_layers
    assert extra == Counter(["tolist"] * layers * 6), reads


@pytest.mark.parametrize(
    "config,source",
    [("mae-digits", "digits"), pytest.param("classify-digits", "digits", marks=SLOW),
     pytest.param("multimae-scenes", "scenes", marks=SLOW)],
)  # fmt: skip
def test_image_objectives_read_nothing_back(tmp_path, monkeypatch, config, source):
    from thrifty.config import load_config
    from thrifty.data.images import prepare_images

    data = tmp_path / "data"
    prepare_images(source, data, count=120 if source == "scenes" else None)
    root = Path(__file__).parents[2] / "configs"
    reads = {}
    for steps in (3, 9):
        cfg = load_config(root / f"{config}.yaml", [
            f"data.path={data}", f"runs_dir={tmp_path / 'runs'}", f"name=s{steps}",
            "train.threads=1", "train.precision=bf16", "train.eval_every=0",
            "train.max_epochs=null", f"train.max_steps={steps}", f"train.log_every={steps}",
        ])  # fmt: skip
        reads[steps] = count_reads(cfg, monkeypatch)
    assert len(reads[9]) == len(reads[3]), sorted(reads[9])
