"""The run configuration: a typed dataclass tree, loaded from YAML, overridden by dotted args.

``thrifty train configs/mini-gptbert.yaml train.lr=1e-3 objective.name=masked_lm``. Every field
has an attribute docstring; unknown keys and wrong types are errors that name the dotted key and
suggest the closest valid one. Units are in the names (``seq_len`` tokens, ``max_words`` words).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from thrifty.bounds import bounded
from thrifty.config_dicts import (  # noqa: F401 (field_docs: re-exported)
    apply_overrides,
    field_docs,
    from_dict,
    read_yaml,
    to_dict,
)
from thrifty.errors import UserError
from thrifty.registry import suggest

# Named model sizes: (d_model, n_layers, n_heads). d_ff follows the SwiGLU 8/3 rule.
MODEL_SIZES: dict[str, tuple[int, int, int]] = {
    "nano": (64, 2, 2),
    "mini": (256, 4, 4),
    "small": (384, 12, 6),
    "base": (768, 12, 12),
}

# Block projections that `model.projections` can give their own linear parameterization.
PROJECTION_ROLES = ("qkv", "out", "gate_up", "down")

# Experiment trackers that `train.log_to` can feed (thrifty.train.tracking).
TRACKERS = ("tensorboard", "wandb")


@dataclass(kw_only=True)
class ModelConfig:
    size: Literal["nano", "mini", "small", "base"] = "mini"
    """Named size preset; explicit d_model / n_layers / n_heads / d_ff override it."""
    d_model: int | None = bounded(None, ge=1)
    """Width of the residual stream (None: from `size`)."""
    n_layers: int | None = bounded(None, ge=0)
    """Number of transformer blocks (None: from `size`; 0: the stem alone, e.g. a CNN with
    stem conv)."""
    n_heads: int | None = bounded(None, ge=1)
    """Attention heads; d_model must be divisible by it (None: from `size`)."""
    d_ff: int | None = bounded(None, ge=1)
    """SwiGLU hidden width (None: 8/3 · d_model rounded up to a multiple of 32)."""
    vocab_size: int | None = bounded(None, ge=1)
    """Vocabulary size (None: taken from the prepared dataset's tokenizer)."""
    max_seq_len: int = bounded(512, ge=1)
    """Longest sequence the RoPE tables are built for."""
    rope_theta: float = bounded(10000.0, gt=0)
    """RoPE base frequency."""
    rope_scaling: Literal["none", "linear", "yarn"] = "none"
    """Context extension past the training length: linear (position interpolation) or yarn
    (YaRN), by `rope_factor` over `rope_original_len` positions (thrifty.models.rope)."""
    rope_factor: float = bounded(1.0, ge=1)
    """How many times the original length the positions are stretched to (1: no change)."""
    rope_original_len: int | None = bounded(None, ge=1)
    """The length the model was trained at, which YaRN's ramp is measured against (None:
    max_seq_len / rope_factor)."""
    norm_eps: float = bounded(1e-5, gt=0)
    """RMSNorm epsilon."""
    init_std: float = bounded(0.02, gt=0)
    """Std of the normal init; output projections are scaled by 1/sqrt(2·n_layers)."""
    stem: dict = field(default_factory=lambda: {"name": "tokens"})
    """What turns the inputs into the blocks' sequence (a STEMS member: tokens)."""
    linear: dict = field(default_factory=lambda: {"name": "dense"})
    """Parameterization of every block linear layer (a LINEARS member)."""
    projections: dict = field(default_factory=dict)
    """Per-projection LINEARS sections that override `linear`, keyed by role: qkv, out,
    gate_up, down (e.g. {down: {name: lowrank, rank: 32}})."""
    attention: dict = field(default_factory=lambda: {"name": "mha"})
    """The block's attention (an ATTENTIONS member)."""
    mlp: dict = field(default_factory=lambda: {"name": "swiglu"})
    """The block's MLP (an MLPS member)."""
    block: dict = field(default_factory=lambda: {"name": "sequential"})
    """How attention and MLP are wired (a BLOCKS member: sequential, parallel)."""
    document_attention: bool = False
    """Tokens attend only within their own <s>-delimited document of a packed training window
    (GPT-BERT's block-diagonal mask). A text scored or exported as one document per sequence
    is computed the same either way, so exports need no change."""

    def __post_init__(self) -> None:
        d, n_layers, n_heads = MODEL_SIZES[self.size]
        self.d_model = self.d_model or d
        self.n_layers = n_layers if self.n_layers is None else self.n_layers
        self.n_heads = self.n_heads or n_heads
        self.d_ff = self.d_ff or 32 * -(-8 * self.d_model // 3 // 32)
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise UserError(
                f"model.d_model={self.d_model} must split into model.n_heads={self.n_heads} "
                "heads of even width"
            )
        self.projections = {
            role: {"name": section} if isinstance(section, str) else section
            for role, section in self.projections.items()
        }
        unknown = set(self.projections) - set(PROJECTION_ROLES)
        if unknown:
            role = sorted(unknown)[0]
            raise UserError(
                f"unknown projection model.projections.{role}"
                f"{suggest(role, list(PROJECTION_ROLES))}; choose from "
                f"{', '.join(PROJECTION_ROLES)}"
            )

    def linear_for(self, role: str) -> dict:
        """The LINEARS section of one projection role (qkv, out, gate_up, down)."""
        return self.projections.get(role, self.linear)


@dataclass(kw_only=True)
class DataConfig:
    path: str = "data/babylm-1m"
    """Prepared dataset folder (made by `thrifty prepare`)."""
    seq_len: int = bounded(128, ge=1)
    """Tokens per training window (the model sees seq_len+1 ids per row for shifting)."""
    sampler: dict = field(default_factory=lambda: {"name": "uniform"})
    """Which windows the loop sees, in which order (a SAMPLERS member)."""
    seq_len_curriculum: dict = field(default_factory=dict)
    """Longer windows later in training, {fraction of steps: seq_len} (GPT-BERT: {0.7: 256,
    0.9: 512}); rows per micro-batch shrink so tokens per step stay the same."""


@dataclass(kw_only=True)
class ReweightConfig:
    """Loss-based sample reweighting (Sow et al. 2025); see thrifty.objectives.reweighting."""

    strategy: Literal["none", "linupper", "quadratic", "extremes", "uniform"] = "none"
    """none: plain mean loss; linupper (recommended) down-weights low-loss samples."""
    temperature: float = bounded(1.0, gt=0)
    """r in w = softmax(g(ℓ̃) / r); smaller is sharper."""
    delta: float = bounded(1.0, gt=0)
    """δ: losses are normalised to [-δ, δ] with the global batch's min and max."""


@dataclass(kw_only=True)
class TrainConfig:
    batch_size: int = bounded(32, ge=1)
    """Sequences per micro-batch."""
    grad_accum: int = bounded(1, ge=1)
    """Micro-batches per optimizer step."""
    optimizer: Literal["adamw", "lamb"] = "adamw"
    """AdamW (decoupled weight decay) or LAMB as in GPT-BERT."""
    lr: float = bounded(3e-3, ge=0)
    """Peak learning rate."""
    min_lr_ratio: float = bounded(0.1, ge=0, le=1)
    """Final learning rate as a fraction of the peak."""
    schedule: Literal["cosine", "wsd", "constant"] = "cosine"
    """Learning-rate schedule after warmup."""
    warmup_steps: int = bounded(100, ge=0)
    """Linear warmup steps."""
    decay_fraction: float = bounded(0.2, ge=0, le=1)
    """WSD only: fraction of the run spent in the final linear decay."""
    betas: tuple[float, float] = bounded((0.9, 0.98), ge=0, lt=1)
    """Adam betas."""
    eps: float = bounded(1e-8, gt=0)
    """Adam epsilon."""
    weight_decay: float = bounded(0.1, ge=0)
    """Decoupled weight decay."""
    decay_norms_and_embeddings: bool = False
    """Also decay RMSNorm gains and embeddings (off: the usual practice)."""
    grad_clip: float = bounded(1.0, ge=0)
    """Global gradient-norm clip (0 disables)."""
    max_steps: int | None = bounded(None, ge=1)
    """Stop after this many optimizer steps."""
    max_tokens: int | None = bounded(None, ge=1)
    """Stop after this many training tokens."""
    max_words: int | None = bounded(None, ge=1)
    """Stop after this many words (tokens × words-per-token of the dataset)."""
    max_epochs: float | None = bounded(None, gt=0)
    """Stop after this many passes over the training split."""
    eval_every: int = bounded(100, ge=0)
    """Validation loss every N steps (0: only at the end)."""
    eval_batches: int = bounded(20, ge=1)
    """Micro-batches of the validation split per evaluation."""
    log_every: int = bounded(10, ge=1)
    """Console line and metrics.jsonl row every N steps."""
    checkpoint_every: int = bounded(200, ge=0)
    """Save a checkpoint every N steps (0: only at the end and at word marks)."""
    keep_last: int = bounded(3, ge=0)
    """Step checkpoints to keep; word-mark checkpoints are always kept."""
    babylm_marks: bool = False
    """Also checkpoint at BabyLM's word marks (every 1M words to 10M, every 10M to 100M, every
    100M to 1B)."""
    seed: int = bounded(0, ge=0)
    """Seed for init, data order and masking."""
    threads: int | None = bounded(None, ge=1)
    """torch CPU threads (None: torch's default)."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """auto: bf16 autocast on CUDA, fp32 on CPU (bf16 is faster on CPUs with AVX-512 BF16 or
    AMX, slower on others)."""
    compile: bool | Literal["regional"] = False
    """true: wrap the model in torch.compile; regional: compile each block in place, one
    graph that every block reuses (a third less start-up on CPU, steps as fast)."""
    parallel: Literal["ddp", "fsdp"] = "ddp"
    """Under torchrun: ddp keeps whole weights on every rank; fsdp shards weights, gradients
    and optimizer state over the ranks (FSDP2). One process (no torchrun): no effect."""
    peak_flops: float | None = bounded(None, gt=0)
    """Hardware peak FLOP/s for MFU (None: on CPU measured with a matmul at start, in bf16
    when the run trains in bf16, and measured once more if the run ever exceeds it)."""
    init_from: str | None = None
    """Start from this run's (or checkpoint's) model weights with a fresh optimizer and schedule
    (continual pretraining); its ledger's words are charged as an auxiliary entry, those of
    this run's own data among them once (the same prepared data is still one budget)."""
    ema_decay: float | None = bounded(None, gt=0, lt=1)
    """Keep a moving average of the weights with this decay (GPT-BERT: 0.999), saved beside
    each checkpoint as ema.safetensors (None: none)."""
    densify_at: float | None = bounded(None, gt=0, le=1)
    """Fraction of training after which every Monarch layer becomes its dense matrix and
    training continues dense (reverse sparsification; None: never)."""
    reweight: ReweightConfig = field(default_factory=ReweightConfig)
    """Per-sample loss weighting from the batch's own losses (off by default)."""
    log_to: list[str] = field(default_factory=list)
    """Experiment trackers fed every metrics.jsonl row: tensorboard, wandb (WANDB_MODE=offline
    logs without a network); files go under the run folder. Needs `pip install 'thrifty[track]'`."""

    def __post_init__(self) -> None:
        limits = (self.max_steps, self.max_tokens, self.max_words, self.max_epochs)
        if all(x is None for x in limits):
            raise UserError("train: set one of max_steps, max_tokens, max_words, max_epochs")
        if isinstance(self.log_to, str):  # `train.log_to=wandb` names a single tracker
            self.log_to = [self.log_to]
        if not isinstance(self.log_to, list):
            raise UserError(f"train.log_to: expected a list of trackers, got {self.log_to!r}")
        for name in self.log_to:
            if name not in TRACKERS:
                raise UserError(
                    f"unknown tracker train.log_to={name!r}{suggest(str(name), list(TRACKERS))}; "
                    f"choose from {', '.join(TRACKERS)}"
                )
        self.log_to = list(dict.fromkeys(self.log_to))  # each tracker once


@dataclass(kw_only=True)
class EvalConfig:
    blimp_data: str | None = None
    """Folder of BLiMP *.jsonl[.gz] scored at the end of training (None: skip)."""
    backend: Literal["auto", "causal", "mntp", "mlm"] = "auto"
    """Scoring backend; auto picks from the objective."""
    max_pairs_per_paradigm: int | None = bounded(None, ge=1)
    """Seeded subsample of each paradigm (None: all pairs)."""
    pathway_samples: int = bounded(64, ge=0)
    """Training windows whose MoE routing pathways are measured at every evaluation
    (pathway distance and consistency; MoE models only; 0: off)."""


@dataclass(kw_only=True)
class RunConfig:
    name: str = "run"
    """Run name; the run folder is <runs_dir>/<name>."""
    runs_dir: str = "runs"
    """Folder that holds run folders."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    objective: dict = field(default_factory=lambda: {"name": "causal_lm"})
    """Training objective (an OBJECTIVES member) and its settings."""
    train: TrainConfig = field(default_factory=lambda: TrainConfig(max_steps=1000))
    eval: EvalConfig = field(default_factory=EvalConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name


def load_config(path: str | Path | None, overrides: list[str] = ()) -> RunConfig:
    """Read a YAML config (or defaults when ``path`` is None), apply overrides, validate."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"config file not found: {path}")
        data = read_yaml(path)
    cfg = from_dict(RunConfig, apply_overrides(data, list(overrides)))
    validate_plugins(cfg)
    return cfg


def validate_plugins(cfg: RunConfig) -> None:
    """Check the registry sections (objective, linear, sampler) against their Config classes."""
    from thrifty.data.samplers import SAMPLERS
    from thrifty.models.attention import ATTENTIONS
    from thrifty.models.block import BLOCKS
    from thrifty.models.linear import LINEARS
    from thrifty.models.mlp import MLPS
    from thrifty.models.stem import STEMS
    from thrifty.objectives import OBJECTIVES

    OBJECTIVES.config(cfg.objective, "objective")
    m = cfg.model
    LINEARS.config(m.linear, "model.linear")
    for role, section in m.projections.items():
        LINEARS.config(section, f"model.projections.{role}")
    ATTENTIONS.config(m.attention, "model.attention")
    MLPS.config(m.mlp, "model.mlp")
    BLOCKS.config(m.block, "model.block")
    STEMS.config(m.stem, "model.stem")
    SAMPLERS.config(cfg.data.sampler, "data.sampler")


def dump_config(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)
