"""``replay``: continual pretraining with general-sample replay and GeRe's threshold-margin loss
(Zhang et al. 2025, arXiv 2508.04676; `papers/gere.md`).

Wraps a base objective (``base: {name: causal_lm}``). Start the run from a trained model with
``train.init_from`` and point ``data.path`` at the new domain (prepared with the start model's
tokenizer). A fixed replay set of general text — ``windows`` windows of the prepared dataset
``data``, drawn once with ``seed`` — is mixed into every micro-batch, ``ratio`` replay rows per
new-domain row, and the loss is

    L = (1 − λ)·CE_new + λ·CE_replay + w · C(h, h⁰)       λ = replay_weight (GeRe: 1/2)

where C compares the trained model's last hidden states h on the replayed rows with those of the
frozen start model, h⁰: ``tm`` (GeRe's threshold margin, with thresholds μ ± σ per dimension from
the start model on the replay set), ``kl`` (logit imitation at temperature 2), ``l1`` / ``l2``
(feature imitation), or ``none`` (plain replay). w is fixed (``weight``) or, with ``dynamic``,
GeRe's 'dy' balance w = CE / C so both terms have the same size. ``ratio: 0`` is the no-replay
baseline that still reports the old-domain loss.

The frozen start model and the replay set live here, not in ``owned``: they are not trained, so
they are never checkpointed, and ``setup`` rebuilds them (identically) whenever training starts
or resumes. Which replay rows a micro-batch gets depends only on (seed, micro-batch index), so
resume stays exact. Validation reports the base loss on the new domain (``val_loss``) and on
the old one (``val_old_loss``, the replay dataset's validation split): learning vs forgetting.

Ledger: the replay set's distinct words are charged as an auxiliary entry, and so is a teacher
other than ``train.init_from`` (the loop charges the start model). When the replay set comes from
the start model's own training data this counts those words twice — on the safe side. The replay
set's passes (``exposure``: the most-replayed window's count) go into the ledger's exposure, and
so do a separate teacher's passes over its own data, so the epoch rule sees every pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from thrifty.data.tokens import TokenStore
from thrifty.errors import UserError
from thrifty.models.transformer import Transformer
from thrifty.objectives.anchoring import (
    feature_imitation,
    hidden_thresholds,
    kl_imitation,
    margin_loss,
)
from thrifty.objectives.base import OBJECTIVES, Batch, Objective, Output
from thrifty.objectives.causal_lm import CausalLM
from thrifty.objectives.token_loss import token_term

log = logging.getLogger("thrifty.train")

VALID_BATCH = 32  # rows per forward when measuring the old-domain validation loss


@OBJECTIVES.register("replay")
class Replay(Objective):
    @dataclass(kw_only=True)
    class Config:
        base: dict = field(default_factory=lambda: {"name": "causal_lm"})
        """Objective trained on new-domain and replayed rows alike (an OBJECTIVES member)."""
        data: str | None = None
        """Prepared dataset of general text to replay, same tokenizer as the run (None: no
        replay set; the base objective alone)."""
        windows: int = 1000
        """Size of the fixed replay set, in windows of the run's seq_len (GeRe: 1,000)."""
        seed: int = 0
        """Seed that picks the replay set and the replay rows of every micro-batch."""
        ratio: float = 0.25
        """Replay rows per new-domain row in a micro-batch (0: no replay)."""
        replay_weight: float = 0.5
        """λ: share of the replayed rows' CE, (1 − λ)·CE_new + λ·CE_replay (GeRe: 1/2)."""
        constraint: Literal["none", "tm", "kl", "l1", "l2"] = "tm"
        """Term tying replayed hidden states (or logits, kl) to the frozen start model's."""
        weight: float = 100.0
        """Fixed weight w of the constraint (GeRe's default '100'), unless ``dynamic``."""
        dynamic: bool = True
        """GeRe's 'dy': w = CE / constraint each step, so both terms have the same size."""
        sigmas: float = 1.0
        """TM thresholds are μ ± sigmas·σ per hidden dimension."""
        temperature: float = 2.0
        """Softmax temperature of the kl constraint."""
        attention: Literal["auto", "causal", "bidirectional"] = "auto"
        """Attention of the hidden states compared (auto: bidirectional for masked_lm)."""
        teacher: str | None = None
        """Frozen start model (run or checkpoint; None: train.init_from)."""
        valid_windows: int = 64
        """Windows of the replay dataset's validation split for val_old_loss (0: none)."""

        def __post_init__(self) -> None:
            if self.ratio < 0 or not 0 <= self.replay_weight <= 1 or self.windows < 1:
                raise UserError(
                    "objective: ratio must be >= 0, replay_weight in [0, 1] and windows >= 1"
                )
            if self.base.get("name") == "replay":
                raise UserError("objective.base: a replay objective cannot wrap another one")
            OBJECTIVES.config(self.base, "objective.base")  # unknown keys fail at load time

    @classmethod
    def kind_for(cls, section: dict) -> str:
        base = section.get("base", {"name": "causal_lm"})
        return OBJECTIVES.get(base["name"]).kind_for(base)

    def __init__(self, cfg: Config, model: Transformer, *, seed: int = 0) -> None:
        self.base = OBJECTIVES.build(cfg.base, model, seed=seed)
        super().__init__(cfg, model, seed=seed)
        self.kind = self.base.kind  # export, eval and fine-tuning treat it as its base
        self.reweightable = self.base.reweightable  # the new-domain rows go through the base
        self.owned = self.base.owned
        self.causal = cfg.attention == "causal" or (
            cfg.attention == "auto" and self.base.kind != "mlm"
        )
        self.teacher: Transformer | None = None
        self.replay: torch.Tensor | None = None  # (N, T+1) the fixed replay set
        self.old_valid: torch.Tensor | None = None  # (M, T+1) old-domain validation windows
        self.low = self.high = None  # TM thresholds, (C,)
        self.world, self.rank = 1, 0
        self.served = np.zeros(0, dtype=np.int64)  # (N,) times each replay window was served
        self.counted = 0  # micro-batches counted into ``served``
        self.replay_entry: dict = {}  # the replay set's exposure entry, passes filled in later
        self.teacher_exposure: list[dict] = []  # passes of a teacher other than the start model

    def head_fraction(self) -> float:
        return self.base.head_fraction()

    def extra_flops_per_token(self, seq_len: int) -> float:
        """Per new-domain token: the base's own, plus the replayed rows (trained) and the
        frozen teacher's forward pass over them."""
        extra = self.base.extra_flops_per_token(seq_len)
        if self.cfg.data is None or self.cfg.ratio == 0:
            return extra
        model = getattr(self.model, "_orig_mod", self.model)
        trained = model.flops_per_token(seq_len, self.base.head_fraction())
        head = 1.0 if self.cfg.constraint == "kl" else 0.0
        teacher = model.flops_per_token(seq_len, head) / 3 if self.cfg.constraint != "none" else 0
        return extra + self.cfg.ratio * (trained + teacher)  # forward only: 1/3 of fwd + bwd

    # ---- setup: replay set, frozen teacher, thresholds
    def setup(self, *, seq_len, device, init_from=None, rank=0, world=1) -> dict[str, int]:
        self.rank, self.world = rank, world
        self.base.setup(seq_len=seq_len, device=device, init_from=init_from, rank=rank, world=world)
        if self.cfg.data is None:
            return {}
        store = TokenStore(self.cfg.data, "train")
        if store.vocab_size != self.model.cfg.vocab_size:
            raise UserError(
                f"objective.data={self.cfg.data}: vocabulary of {store.vocab_size} tokens, the "
                f"run's has {self.model.cfg.vocab_size}; prepare it with the run's tokenizer"
            )
        valid = TokenStore(self.cfg.data, "valid")
        if self.cfg.valid_windows and len(valid) > seq_len:  # forgetting, reported in any case
            m = min(self.cfg.valid_windows, valid.num_windows(seq_len))
            self.old_valid = valid.windows(range(m), seq_len)
        if self.cfg.ratio == 0:  # the no-replay baseline: nothing replayed, nothing charged
            return {}
        n = store.num_windows(seq_len)
        if self.cfg.windows > n:
            raise UserError(
                f"objective.windows={self.cfg.windows} is more than the {n} windows of "
                f"{seq_len} tokens in {self.cfg.data}"
            )
        chosen = np.random.default_rng([self.cfg.seed, 0]).choice(n, self.cfg.windows, False)
        self.replay = store.windows(chosen, seq_len)  # (N, T+1)
        words = round(self.cfg.windows * seq_len * store.words_per_token)
        name = f"replay set ({self.cfg.windows} windows of {self.cfg.data})"
        charges = {name: words}
        sources = store.manifest["ledger"]["sources"]
        files = sorted({s["sha256"] for s in sources if s.get("words_used") and s.get("sha256")})
        self.replay_entry = {"name": name, "words": words, "passes": 0, "sources": files}
        self.served, self.counted = np.zeros(len(self.replay), dtype=np.int64), 0
        if self.cfg.constraint != "none":
            charges |= self._load_teacher(store, init_from, device)
        return charges

    def _load_teacher(self, store: TokenStore, init_from: str | None, device) -> dict[str, int]:
        from thrifty.data.budget import Ledger
        from thrifty.data.tokenizer import load_tokenizer, tokenizer_sha256
        from thrifty.runs import load_model, resolve_checkpoint

        path = self.cfg.teacher or init_from
        if path is None:
            raise UserError(
                f"objective.constraint={self.cfg.constraint!r} compares with the frozen start "
                "model: set train.init_from (or objective.teacher)"
            )
        loaded = load_model(path, device)
        if loaded.model.cfg.d_model != self.model.cfg.d_model:
            raise UserError(f"objective.teacher={path}: width differs from the run's model")
        run_tokenizer = loaded.run_dir / "tokenizer.json"
        wanted = store.manifest["ledger"]["tokenizer"].get("sha256")
        if run_tokenizer.is_file() and tokenizer_sha256(load_tokenizer(run_tokenizer)) != wanted:
            raise UserError(
                f"objective.data={self.cfg.data} was not prepared with the tokenizer of {path}"
            )
        self.teacher = loaded.model.requires_grad_(False).eval()
        self.low, self.high = hidden_thresholds(
            self.teacher, self.replay, causal=self.causal, sigmas=self.cfg.sigmas
        )
        same = init_from is not None and resolve_checkpoint(init_from) == loaded.checkpoint
        if same:  # the loop already charges the start model
            return {}
        ledger = Ledger.from_dict(loaded.ledger()) if loaded.ledger() else Ledger()
        name = f"replay teacher {loaded.checkpoint}"
        self.teacher_exposure = ledger.passed_on(name)  # its states are the model's targets
        return {name: ledger.charged_words()}

    def exposure(self, micro_batches: int, rows: int) -> list[dict]:
        """The replay set's passes: how often its most-served window has been replayed in
        ``micro_batches`` micro-batches (the picks of ``replay_rows``, replayed here), and a
        separate teacher's passes over its own words."""
        if self.replay is None:
            return list(self.teacher_exposure)
        n, k = len(self.replay), max(1, round(self.cfg.ratio * rows))
        for micro in range(self.counted, micro_batches):  # incremental; from 0 after a resume
            rng = np.random.default_rng([self.cfg.seed, 1, micro])
            self.served[rng.choice(n, min(k * self.world, n), False)] += 1
        self.counted = max(self.counted, micro_batches)
        entry = {**self.replay_entry, "passes": int(self.served.max())}
        return [entry, *self.teacher_exposure]

    # ---- training step
    def replay_rows(self, micro: int, n_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(k, T+1) replay windows for micro-batch ``micro`` (a function of (seed, micro) only)
        and their positions in the global micro-batch, after its ``world · n_rows`` new rows."""
        k = max(1, round(self.cfg.ratio * n_rows))
        rng = np.random.default_rng([self.cfg.seed, 1, micro])
        picks = rng.choice(len(self.replay), min(k * self.world, len(self.replay)), False)
        first = self.rank * k if self.world > 1 else 0
        mine = picks[first : first + k]
        positions = self.world * n_rows + first + torch.arange(len(mine))
        return self.replay[torch.from_numpy(mine)], positions

    def __call__(self, batch: Batch) -> Output:
        new = self.base(batch)
        if not self.model.training or self.cfg.ratio == 0 or self.cfg.data is None:
            return new  # validation, or the no-replay baseline
        if self.replay is None:
            raise UserError("the replay objective was not set up (Objective.setup)")
        rows, positions = self.replay_rows(batch.micro, batch.ids.shape[0])
        rows = rows.to(batch.ids.device)
        lam = self.cfg.replay_weight
        reuse = isinstance(self.base, CausalLM) and self.causal  # one forward for CE and C
        h = None
        if self.cfg.constraint != "none" or reuse:
            h = self.model(rows[:, :-1], causal=self.causal)  # (k, T, C)
        if reuse:
            ce_replay = token_term(self.model, h, rows[:, 1:], None, self.base.cfg.z_loss)[0].value
        else:
            replayed = Batch(rows, progress=batch.progress, micro=batch.micro, rows=positions)
            ce_replay = self.base(replayed).loss
        ce = (1 - lam) * new.loss + lam * ce_replay
        metrics = {**new.metrics, "new_loss": new.loss.item(), "replay_loss": ce_replay.item()}
        metrics["replay_epochs"] = (batch.micro + 1) * len(rows) * self.world / len(self.replay)
        loss = ce
        if self.cfg.constraint != "none":
            term = self.constraint(rows, h)
            value = term.item()
            w = (ce.item() / value if value > 0 else 0.0) if self.cfg.dynamic else self.cfg.weight
            loss = ce + w * term
            metrics |= {"constraint": value, "constraint_weight": w}
        metrics["loss"] = loss.item()
        return Output(loss, metrics, new.sample_losses)

    def constraint(self, rows: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            h0 = self.teacher(rows[:, :-1], causal=self.causal)
        kind = self.cfg.constraint
        if kind == "tm":
            return margin_loss(h, h0, self.low, self.high)
        if kind == "kl":
            with torch.no_grad():
                target = self.teacher.logits(h0)
            student = self.model.logits(h).flatten(0, 1)  # (k·T, V)
            return kl_imitation(student, target.flatten(0, 1), self.cfg.temperature)
        return feature_imitation(h, h0, kind)

    # ---- forgetting: the base loss on the old domain
    @torch.no_grad()
    def extra_validation(self, autocast) -> dict[str, float]:
        if self.old_valid is None:
            return {}
        was_training = self.model.training
        self.model.eval()
        device = next(self.model.parameters()).device
        total, count = 0.0, 0
        try:  # negative micro-batch indices: the same masks at every evaluation
            for i, part in enumerate(self.old_valid.split(VALID_BATCH)):
                with autocast():
                    out = self.base(Batch(part.to(device), progress=1.0, micro=-1 - i))
                total += float(out.metrics["loss"]) * len(part)
                count += len(part)
        finally:
            self.model.train(was_training)
        return {"val_old_loss": total / count}
