"""``scalekd``: cross-architecture knowledge distillation from a frozen ViT teacher into a CNN,
MLP or ViT student (ScaleKD, Fan et al. 2024; `papers/scalekd.md`).

The student is the run's model (``conv`` or ``patches`` stem); its feature is the mean of its
final tokens and a linear head owned here gives its logits. The teacher is a finished image
encoder run (``objective.teacher``, normally a ``classify`` ViT), loaded frozen with its
classification head (``objective.safetensors``'s ``head.*``). The loss adds, each with its own
weight (0 turns a component off, so each of the card's arms is one setting):

- ``ce_weight`` · cross-entropy of the student's logits on the labels;
- ``kd_weight`` · logit KD: KL(teacher ‖ student) of T-softened logits, times T²;
- ``feature_weight`` · dual-view feature mimicking: the cross-attention projector (owned here,
  ``thrifty.objectives.projector``) maps the student's tokens onto the teacher's token grid,
  matched to the teacher's final tokens by MSE, plus ``frequency_weight`` · the MSE with the DC
  component removed;
- ``perception_weight`` · teacher parameter perception: the projected tokens, mean-pooled,
  go through the teacher's frozen head, and those logits are matched to the teacher's (KL, T²).

The name is ``scalekd``, not ``distill``: the design keeps ``distill`` for the text objective
that learns from an ensemble's logits.

Ledger: the teacher's charged images are charged to the student as an auxiliary model, and
its passes over them go into the student's exposure (``Ledger.passed_on``), so ``thrifty
audit`` sees both; a teacher trained on the student's own images shares their source files,
so the epoch rule adds its passes to the student's. The teacher lives here, not in ``owned``:
it is not trained or checkpointed, and ``setup`` reloads it whenever training starts or
resumes. A run that turns every teacher term off loads and charges no teacher.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from thrifty.bounds import bounded
from thrifty.errors import UserError
from thrifty.models.transformer import Transformer
from thrifty.objectives.base import (
    OBJECTIVES,
    Batch,
    LossTerm,
    Objective,
    Output,
    combine,
    row_term,
)
from thrifty.objectives.classify import checked_labels, image_stem, stem_tokens
from thrifty.objectives.projector import (
    CrossAttentionProjector,
    frequency_mse,
    softened_kl,
    spatial_mse,
)

HEAD = "objective.safetensors"  # where a classify teacher keeps head.weight and head.bias


@dataclass
class TeacherSpec:
    """What the student needs to know of its teacher before loading its weights."""

    checkpoint: Path
    tokens: int
    width: int
    heads: int
    classes: int | None  # its head's classes (None: it has no classification head)
    forward_flops: float  # one image's forward pass


def inspect_teacher(path: str, model: Transformer) -> TeacherSpec:
    """The teacher run's shape, read from its checkpoint's config (weights untouched); a
    UserError naming ``objective.teacher`` when it is not an image encoder of these images."""
    from safetensors import safe_open

    from thrifty.runs import model_kind, read_config, read_state, resolve_checkpoint

    try:
        ckpt = resolve_checkpoint(path)
        cfg, state = read_config(ckpt), read_state(ckpt, verify=False)
    except UserError as e:
        raise UserError(f"objective.teacher={path}: {e}") from None
    kind, stem = model_kind(state, cfg), cfg.model.stem
    if kind != "encoder" or stem.get("name") not in ("patches", "conv"):
        raise UserError(
            f"objective.teacher={path} holds a {kind} model with stem {stem.get('name')!r}, not "
            "an image encoder: train the teacher with objective.name=classify on an image set"
        )
    ours = model.cfg.stem
    theirs = (stem.get("channels"), stem.get("image_size"))
    if theirs != (ours.get("channels"), ours.get("image_size")):
        raise UserError(
            f"objective.teacher={path} reads images of {theirs[0]} channels, side {theirs[1]}; "
            f"this run's have {ours.get('channels')} channels, side {ours.get('image_size')}"
        )
    with torch.device("meta"):
        teacher = Transformer(cfg.model)
    tokens = stem_tokens(teacher.embed)
    classes = None
    if HEAD in state.get("files", {}):
        with safe_open(str(ckpt / HEAD), "pt") as f:
            if "head.weight" in f.keys():
                classes = f.get_slice("head.weight").get_shape()[0]
    forward = teacher.flops_per_token(tokens, 0.0) / 3 * tokens  # forward only: 1/3 of training
    return TeacherSpec(ckpt, tokens, cfg.model.d_model, cfg.model.n_heads, classes, forward)


class Parts:
    """The weighted loss terms of one batch, their per-row losses and the metrics."""

    def __init__(self, weights: torch.Tensor | None) -> None:
        self.weights = weights
        self.terms: dict[str, LossTerm] = {}
        self.rows: dict[str, torch.Tensor] = {}
        self.metrics: dict[str, float] = {}

    def add(self, name: str, per_image: torch.Tensor, weight: float) -> None:
        """A (B,) loss as a term of ``weight`` (reported, but not a term, at weight 0)."""
        term, per_row = row_term(per_image[:, None], self.weights)
        self.metrics[name] = term.value.detach()
        if weight:
            term.weight = weight
            self.terms[name], self.rows[name] = term, per_row.detach()

    def output(self) -> Output:
        loss = combine(self.terms)
        sample = sum(self.terms[k].weight * self.rows[k] for k in self.terms)
        return Output(loss, self.metrics | {"loss": loss.detach()}, sample, self.terms)


@OBJECTIVES.register("scalekd")
class ScaleKD(Objective):
    kind = "encoder"

    @dataclass(kw_only=True)
    class Config:
        teacher: str | None = None
        """Frozen teacher: a run or checkpoint folder of an image encoder (a classify ViT); a
        run folder means its latest checkpoint at every start, a checkpoint folder pins one."""
        classes: int = bounded(10, ge=2)
        """Classes of the student's head (the teacher's head must have as many)."""
        ce_weight: float = bounded(1.0, ge=0)
        """Weight of the cross-entropy on the labels."""
        kd_weight: float = bounded(1.0, ge=0)
        """Weight of logit KD against the teacher's logits (0: off)."""
        feature_weight: float = bounded(1.0, ge=0)
        """α: weight of dual-view feature mimicking through the projector (0: off)."""
        frequency_weight: float = bounded(1.0, ge=0)
        """Weight of the DC-free (frequency) view within the feature term."""
        perception_weight: float = bounded(1.0, ge=0)
        """β: weight of the KL of the projected tokens through the teacher's head (0: off)."""
        temperature: float = bounded(4.0, gt=0)
        """Softmax temperature of both KL terms."""
        projector_heads: int | None = bounded(None, ge=1)
        """Attention heads of the projector (None: the teacher's n_heads)."""

        def __post_init__(self) -> None:
            weights = (self.ce_weight, self.kd_weight, self.feature_weight, self.perception_weight)
            if not any(weights):
                raise UserError("objective: every loss weight is 0; set ce_weight or another")

    def __init__(self, cfg: Config, model, *, seed: int = 0) -> None:
        super().__init__(cfg, model, seed=seed)
        stem = image_stem(model, "scalekd")
        self.tokens = stem_tokens(stem)
        device = next(stem.parameters()).device
        owned = {"head": nn.Linear(model.cfg.d_model, cfg.classes)}
        self.needs_head = bool(cfg.kd_weight or cfg.perception_weight)
        self.spec: TeacherSpec | None = None
        if self.needs_head or cfg.feature_weight:
            if cfg.teacher is None:
                raise UserError("objective.teacher: set it to a trained image encoder run")
            self.spec = inspect_teacher(cfg.teacher, model)
            if self.needs_head and self.spec.classes != cfg.classes:
                has = f"a head of {self.spec.classes} classes"
                if self.spec.classes is None:
                    has = "no classification head"
                raise UserError(
                    f"objective.teacher={cfg.teacher} has {has}; logit KD and parameter "
                    f"perception need one of objective.classes={cfg.classes} (objective classify)"
                )
        if cfg.feature_weight or cfg.perception_weight:
            heads = cfg.projector_heads or self.spec.heads
            if self.spec.width % heads:
                raise UserError(
                    f"objective.projector_heads={heads} does not divide the teacher's width "
                    f"{self.spec.width}"
                )
            owned["projector"] = CrossAttentionProjector(
                model.cfg.d_model, self.tokens, self.spec.width, self.spec.tokens, heads
            )
        self.owned = nn.ModuleDict(owned).to(device)
        self.teacher: Transformer | None = None
        self.teacher_head: nn.Linear | None = None
        self.teacher_exposure: list[dict] = []

    # ---- setup: the frozen teacher and what it charges
    def setup(self, *, seq_len, device, init_from=None, rank=0, world=1) -> dict[str, int]:
        if self.spec is None:
            return {}
        from safetensors.torch import load_file

        from thrifty.data.budget import Ledger
        from thrifty.runs import load_model, resolve_checkpoint

        loaded = load_model(self.spec.checkpoint, device)  # checksums verified
        self.teacher = loaded.model.requires_grad_(False).eval()
        if self.needs_head:
            weights = load_file(str(self.spec.checkpoint / HEAD))
            head = nn.Linear(self.spec.width, self.cfg.classes)
            head.load_state_dict({"weight": weights["head.weight"], "bias": weights["head.bias"]})
            self.teacher_head = head.to(device).requires_grad_(False).eval()
        if init_from is not None and resolve_checkpoint(init_from) == loaded.checkpoint:
            return {}  # the loop already charges the start model
        ledger = Ledger.from_dict(loaded.ledger()) if loaded.ledger() else Ledger()
        name = f"scalekd teacher {loaded.checkpoint}"
        self.teacher_exposure = ledger.passed_on(name)  # its outputs are the student's targets
        return {name: ledger.charged_words()}

    def exposure(self, micro_batches: int, rows: int) -> list[dict]:
        return list(self.teacher_exposure)

    # ---- training step
    def __call__(self, batch: Batch) -> Output:
        cfg = self.cfg
        images = batch.inputs["images"]
        labels = checked_labels(batch, cfg.classes)
        tokens = self.model(images, causal=False, progress=batch.progress)  # (B, S, C)
        logits = self.owned["head"](tokens.mean(1))  # (B, K)
        parts = Parts(batch.weights)
        parts.add("ce", F.cross_entropy(logits.float(), labels, reduction="none"), cfg.ce_weight)
        parts.metrics["accuracy"] = (logits.argmax(-1) == labels).float().mean()
        if self.spec is not None:
            self.distil(images, labels, tokens, logits, parts)
        return parts.output()

    def distil(self, images, labels, tokens, logits, parts: Parts) -> None:
        """Add the teacher's terms: logit KD, dual-view features, teacher-head logits."""
        if self.teacher is None:
            raise UserError("the scalekd objective was not set up (Objective.setup)")
        cfg = self.cfg
        with torch.no_grad():
            teacher_tokens = self.teacher(images, causal=False)  # (B, N, C_t)
            teacher_logits = None
            if self.teacher_head is not None:
                teacher_logits = self.teacher_head(teacher_tokens.mean(1))
                hits = teacher_logits.argmax(-1) == labels
                parts.metrics["teacher_accuracy"] = hits.float().mean()
        if cfg.kd_weight:
            parts.add("kd", softened_kl(logits, teacher_logits, cfg.temperature), cfg.kd_weight)
        if "projector" not in self.owned:
            return
        projected = self.owned["projector"](tokens)  # (B, N, C_t): the teacher's grid
        if cfg.feature_weight:
            spatial = spatial_mse(projected, teacher_tokens)
            frequency = frequency_mse(projected, teacher_tokens)
            parts.metrics["feature_spatial"] = spatial.mean().detach()
            parts.metrics["feature_frequency"] = frequency.mean().detach()
            feature = spatial + cfg.frequency_weight * frequency
            parts.add("feature", feature, cfg.feature_weight)
        if cfg.perception_weight:
            perceived = self.teacher_head(projected.mean(1))  # frozen: grads reach the projector
            kl = softened_kl(perceived, teacher_logits, cfg.temperature)
            parts.add("perception", kl, cfg.perception_weight)

    # ---- FLOPs
    def head_fraction(self) -> float:
        return 0.0

    def extra_flops_per_token(self, seq_len: int) -> float:
        """Per student token: its head, and with a teacher the teacher's forward pass, the
        projector and the frozen head the projected tokens pass through (forward + backward)."""
        per_image = 6.0 * self.owned["head"].weight.numel()
        if self.spec is not None:
            head = self.spec.width * self.cfg.classes
            per_image += self.spec.forward_flops + (2.0 * head if self.needs_head else 0.0)
            if "projector" in self.owned:
                per_image += self.owned["projector"].flops_per_image()
            if self.cfg.perception_weight:
                per_image += 4.0 * head  # forward and the input gradient; the head is frozen
        return per_image / self.tokens
