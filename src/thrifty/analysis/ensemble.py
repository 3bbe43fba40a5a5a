"""Logit-averaged ensembles of independently trained runs (Kim et al. 2025, card §2.3).

The ensemble predicts p(x_t | x_<t) = softmax((1/K) Σ_k z_k), where z_k are member k's
*logits* (pre-softmax outputs), not its probabilities. Each member's logits are its final
hidden state times its tied head, so the average is one matmul of the members' hidden states
side by side with their heads side by side: (1/K) [h_1 … h_K] [W_1 … W_K]^T. That lets an
ensemble stand in for a model anywhere thrifty scores text (validation loss, BLiMP through
``eval.scoring``): ``forward`` returns the concatenated hidden states, ``logits`` averages.
With K = 1 it computes exactly what the single model computes. Members may differ in width
or depth but must share the tokenizer.

Low memory: an evaluation is a deterministic sequence of forward calls. The members are
loaded one at a time and each one's hidden states for every call are written to disk; a final
pass replays them (checking that each call sees the same ids) against the stacked heads. Only
one member (plus the K heads) is in memory at once, and the numbers are the same.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from thrifty.errors import UserError
from thrifty.eval.scoring import head_rows
from thrifty.runs import LoadedModel, load_model

AVERAGES = ("logits", "probs")


class _Combined(nn.Module):
    """The stacked heads and the averaging; subclasses provide ``forward``."""

    def __init__(self, heads: Sequence[torch.Tensor], cfg) -> None:
        super().__init__()
        self.widths = [int(h.shape[1]) for h in heads]
        self.register_buffer("head", torch.cat(list(heads), dim=1))  # (V, ΣC)
        # scoring code reads cfg.vocab_size / cfg.max_seq_len and needs one parameter's device
        self.cfg = cfg
        self._anchor = nn.Parameter(torch.zeros(0, device=self.head.device), requires_grad=False)

    @property
    def k(self) -> int:
        return len(self.widths)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(…, ΣC) -> (…, V): the mean of the members' logits."""
        return F.linear(hidden, self.head) / self.k

    def log_probs(self, hidden: torch.Tensor, average: str = "logits") -> torch.Tensor:
        """(M, ΣC) -> (M, V) log-probabilities; ``probs`` averages probabilities instead (the
        paper's choice is logits; this is for comparison)."""
        if average == "logits":
            return torch.log_softmax(self.logits(hidden).float(), dim=-1)
        if average != "probs":
            raise UserError(f"average must be one of {', '.join(AVERAGES)}, got {average!r}")
        parts = zip(hidden.split(self.widths, dim=-1), self.head.split(self.widths, dim=1))
        per = torch.stack([torch.log_softmax(F.linear(h, w).float(), -1) for h, w in parts])
        return torch.logsumexp(per, dim=0) - math.log(self.k)


class EnsembleModel(_Combined):
    """All members in memory; usable wherever a thrifty ``Transformer`` is scored."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        if not members:
            raise UserError("an ensemble needs at least one member")
        cfg = replace(members[0].cfg, max_seq_len=min(m.cfg.max_seq_len for m in members))
        super().__init__([m.embed.weight.detach() for m in members], cfg)
        self.members = nn.ModuleList(members)

    def forward(self, ids: torch.Tensor, causal: bool = True, padding=None) -> torch.Tensor:
        return torch.cat([m(ids, causal=causal, padding=padding) for m in self.members], dim=-1)


def _digest(ids: torch.Tensor) -> str:
    return hashlib.sha1(ids.detach().cpu().numpy().tobytes()).hexdigest()


class _Record(nn.Module):
    """One member, saving the hidden states of every forward call to ``folder``."""

    recording = True

    def __init__(self, member: nn.Module, index: int, folder: Path) -> None:
        super().__init__()
        self.member, self.index, self.folder, self.calls = member, index, folder, 0
        self.cfg = member.cfg

    def forward(self, ids: torch.Tensor, causal: bool = True, padding=None) -> torch.Tensor:
        hidden = self.member(ids, causal=causal, padding=padding)
        np.save(self.folder / f"{self.index}_{self.calls}.npy", hidden.float().cpu().numpy())
        stored = self.folder / f"ids_{self.calls}.txt"
        if self.index == 0:
            stored.write_text(_digest(ids))
        elif not stored.is_file() or stored.read_text() != _digest(ids):
            raise RuntimeError("low-memory ensemble: members saw different inputs")
        self.calls += 1
        return hidden

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.member.logits(hidden)


class _Replay(_Combined):
    """The ensemble in the last pass of a low-memory evaluation: hidden states from disk."""

    def __init__(self, heads: Sequence[torch.Tensor], cfg, folder: Path) -> None:
        super().__init__(heads, cfg)
        self.folder, self.calls = folder, 0

    def forward(self, ids: torch.Tensor, causal: bool = True, padding=None) -> torch.Tensor:
        stored = self.folder / f"ids_{self.calls}.txt"
        if not stored.is_file() or stored.read_text() != _digest(ids):
            raise RuntimeError("low-memory replay: the evaluation did not repeat its calls")
        parts = [np.load(self.folder / f"{k}_{self.calls}.npy") for k in range(self.k)]
        self.calls += 1
        return torch.from_numpy(np.concatenate(parts, axis=-1)).to(self.head.device)


class Ensemble:
    """K runs (run folders or checkpoints) evaluated as one logit-averaged model."""

    def __init__(
        self,
        runs: Sequence[str | Path],
        *,
        device: str = "cpu",
        low_memory: bool = False,
        cache_dir: str | Path | None = None,
    ) -> None:
        if not runs:
            raise UserError("an ensemble needs at least one run")
        self.runs = [str(r) for r in runs]
        self.device, self.low_memory, self.cache_dir = device, low_memory, cache_dir
        self._loaded: list[LoadedModel] | None = None
        first = self._load(0)
        self.cfg, self.tokenizer = first.cfg, first.tokenizer()
        self.tokenizer_sha = _tokenizer_sha(first)
        self.info = [self._describe(first)]
        members = [first]
        for i in range(1, len(self.runs)):
            member = self._load(i)  # in low-memory mode only to check it; dropped right after
            sha = _tokenizer_sha(member)
            if sha != self.tokenizer_sha:
                raise UserError(
                    f"ensemble members need one tokenizer: {self.runs[0]} uses "
                    f"{self.tokenizer_sha[:12]}, {self.runs[i]} uses {sha[:12]}"
                )
            self.info.append(self._describe(member))
            if not low_memory:
                members.append(member)
            del member
        self._loaded = None if low_memory else members

    @property
    def k(self) -> int:
        return len(self.runs)

    def _load(self, i: int) -> LoadedModel:
        return load_model(self.runs[i], self.device)

    @staticmethod
    def _describe(member: LoadedModel) -> dict[str, Any]:
        return {
            "run": str(member.run_dir),
            "checkpoint": member.checkpoint.name,
            "step": member.state.get("step"),
            "params": member.model.num_params(),
            "ledger": member.ledger(),
        }

    def model(self) -> EnsembleModel:
        """All members in one module (loads them if needed)."""
        members = self._loaded or [self._load(i) for i in range(self.k)]
        return EnsembleModel([m.model for m in members])

    def check_data(self, data_dir: Path) -> None:
        """A dataset must be tokenized with the members' tokenizer to be scored by them."""
        from thrifty.data.tokens import load_manifest

        sha = load_manifest(data_dir)["ledger"]["tokenizer"].get("sha256")
        if sha != self.tokenizer_sha:
            raise UserError(
                f"{data_dir} was tokenized with tokenizer {str(sha)[:12]}, the runs use "
                f"{self.tokenizer_sha[:12]}; prepare it with --tokenizer {self.runs[0]}"
            )

    def run(self, evaluation: Callable[[nn.Module], Any]) -> Any:
        """``evaluation(model)`` with the ensemble as ``model``; in low-memory mode it runs once
        per member (recording) and once more on the recorded hidden states."""
        if not self.low_memory:
            return evaluation(self.model())
        with tempfile.TemporaryDirectory(dir=self.cache_dir, prefix="thrifty-ensemble-") as tmp:
            folder = Path(tmp)
            heads, max_len = [], []
            for i in range(self.k):
                member = self._load(i).model
                evaluation(_Record(member, i, folder))
                heads.append(member.embed.weight.detach().clone())
                max_len.append(member.cfg.max_seq_len)
                del member
            cfg = replace(self.cfg.model, max_seq_len=min(max_len))
            return evaluation(_Replay(heads, cfg, folder))


def _tokenizer_sha(member: LoadedModel) -> str:
    from thrifty.data.tokenizer import tokenizer_sha256

    return tokenizer_sha256(member.tokenizer())


def log_probs(model: nn.Module, hidden: torch.Tensor, average: str = "logits") -> torch.Tensor:
    """(M, C) hidden states -> (M, V) log-probabilities, for an ensemble or a single model."""
    if isinstance(model, _Combined):
        return model.log_probs(hidden, average)
    return torch.log_softmax(model.logits(hidden).float(), dim=-1)


@torch.inference_mode()
def token_nll(
    model: nn.Module,
    store,
    seq_len: int,
    *,
    batch_size: int = 32,
    max_windows: int | None = None,
    average: str = "logits",
) -> dict[str, float]:
    """Mean next-token loss (nats per token) over the first ``max_windows`` windows of a
    ``TokenStore`` split: every target of every window counts once (no batch averaging)."""
    n = store.num_windows(seq_len)
    n = min(n, max_windows) if max_windows else n
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for start in range(0, n, batch_size):
            ids = store.windows(range(start, min(start + batch_size, n)), seq_len).to(device)
            hidden = model(ids[:, :-1], causal=True)  # (B, T, C)
            if getattr(model, "recording", False):
                continue  # a low-memory recording pass only needs the hidden states
            h, y = hidden.reshape(-1, hidden.shape[-1]), ids[:, 1:].reshape(-1)
            rows = head_rows(model.cfg.vocab_size, h.device)
            for hc, yc in zip(h.split(rows), y.split(rows)):
                picked = log_probs(model, hc, average).gather(1, yc[:, None])
                total -= float(picked.double().sum())
            count += y.numel()
    finally:
        model.train(was_training)
    return {"loss": total / max(count, 1), "tokens": count, "windows": n}


def ensemble_loss(
    ensemble: Ensemble,
    data: str | Path | None = None,
    *,
    split: str = "valid",
    seq_len: int | None = None,
    batch_size: int = 32,
    max_windows: int | None = None,
    average: str = "logits",
) -> dict[str, Any]:
    """Validation loss of the ensemble on a prepared dataset (default: the first run's data)."""
    from thrifty.data.tokens import TokenStore

    data_dir = Path(data or ensemble.cfg.data.path)
    ensemble.check_data(data_dir)
    store = TokenStore(data_dir, split)
    seq_len = seq_len or ensemble.cfg.data.seq_len
    result = ensemble.run(
        lambda m: token_nll(
            m, store, seq_len, batch_size=batch_size, max_windows=max_windows, average=average
        )
    )
    return {"data": str(data_dir), "split": split, "seq_len": seq_len, **result}


def ensemble_blimp(
    ensemble: Ensemble,
    folder: str | Path,
    *,
    max_pairs_per_paradigm: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """BLiMP-style minimal pairs scored with the causal backend by the ensemble."""
    from thrifty.eval.minimal_pairs import evaluate_minimal_pairs

    return ensemble.run(
        lambda m: evaluate_minimal_pairs(
            m,
            ensemble.tokenizer,
            folder,
            backend="causal",
            max_pairs_per_paradigm=max_pairs_per_paradigm,
            seed=seed,
        )
    )
