"""``mcl``: ELECTRA with several corruption courses and a self-correction pass (Chen et al. 2023).

MCL ("Pre-training Language Model as a Multi-perspective Course Learner", Findings of ACL 2023)
answers two weaknesses of ELECTRA: the discriminator sees only one kind of corruption (with
~85-95% "original" labels), and nothing flows back from the discriminator to the generator.
No training code was released, and only the abstract could be checked, so this module builds
the verified skeleton — ELECTRA + extra corruption courses + a correction pass + weight soups
(``thrifty soup``) — and the details below are **reconstructions**, not the paper's:

- **replace** (ELECTRA's RTD, verified): mask, sample from the generator, detect.
- **swap** (reconstructed): the shared masking module picks ``swap_rate`` of the tokens, which
  are paired at random within their row and exchange places. The corrupted row is a permutation
  of the input; labels mark tokens that changed (a token swapped with an identical one is
  original). The generator takes no part in this course.
- **insert** (reconstructed): ``round(insert_rate · T)`` <mask> slots are inserted at random
  positions (never before position 0), the generator (no gradient) fills them with samples, and
  the discriminator labels exactly the inserted tokens. Windows keep their length T, so the last
  k tokens of the input fall off: removing the inserted tokens gives the input's first T - k.
- **self-correction** (reconstructed): the "notebook" is the set of positions where the
  replace course's discriminator was wrong (at most ``mask_rate`` of a row's tokens, the
  highest-loss ones). The generator predicts the original tokens there from the corrupted row
  with those positions masked (``fix_gen``), its samples are written back into the corrupted row,
  and the discriminator detects again on the result (``fix_rtd``).

Loss = L_MLM + λ·(w_replace·L_replace + w_swap·L_swap + w_insert·L_insert)
       + a·L_fix_gen + λ·b·L_fix_rtd.
A weight of 0 switches its course (or pass) off and skips its forward passes. The course
weights, rates and correction weights of the paper were not found; the defaults here are ours.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from thrifty.data.tokenizer import MASK_ID, NUM_SPECIAL, PAD_ID
from thrifty.errors import UserError
from thrifty.objectives.base import OBJECTIVES, Batch
from thrifty.objectives.electra import Electra
from thrifty.objectives.masking import Masking, mask_tokens
from thrifty.objectives.positions import Positions
from thrifty.objectives.randomness import RowRandom
from thrifty.objectives.rtd import Term
from thrifty.transfer import to_device

# Select positions with the shared masking module, leaving every token in place.
_SELECT = Masking(span=False, random_fraction=0.0, keep_fraction=1.0)


def swap_tokens(
    ids: torch.Tensor, rate: float, vocab_size: int, random: RowRandom, host_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exchange random pairs among ``rate`` of each row's (non-special) tokens. The pairs are
    drawn on the host against ``host_ids`` (the same ids there), the exchange runs on the
    device.

    Returns (corrupted, labels): corrupted is a per-row permutation of ``ids``; labels mark the
    positions whose token changed.
    """
    _, chosen = mask_tokens(host_ids, rate, _SELECT, vocab_size, random)
    B, T = ids.shape
    keys = random.rand(T).masked_fill(~chosen, 2.0)
    order = to_device(keys.argsort(1), ids.device)  # each row's chosen first, in random order
    P = T // 2
    a, b = order[:, 0 : 2 * P : 2], order[:, 1 : 2 * P : 2]  # (B, P) disjoint positions
    pairs = to_device(chosen.sum(1) // 2, ids.device)
    valid = torch.arange(P, device=ids.device)[None] < pairs[:, None]
    ta, tb = ids.gather(1, a), ids.gather(1, b)
    corrupted = ids.clone()
    corrupted.scatter_(1, a, torch.where(valid, tb, ta))
    corrupted.scatter_(1, b, torch.where(valid, ta, tb))
    return corrupted, corrupted != ids


def insert_slots(
    ids: torch.Tensor, rate: float, random: RowRandom
) -> tuple[torch.Tensor, Positions]:
    """Insert ``max(1, round(rate · T))`` <mask> slots per row at random positions (not 0),
    drawn on the host.

    Returns (with_slots, inserted): rows keep length T (the last k input tokens fall off), and
    ``with_slots[~inserted]`` is each row's first T - k input tokens in order.
    """
    B, T = ids.shape
    k = min(max(1, round(rate * T)), T - 1)
    keys = random.rand(T)
    keys[:, 0] = 2.0  # position 0 (the window's first token, often <s>) stays first
    inserted = torch.zeros(B, T, dtype=torch.bool)
    inserted.scatter_(1, keys.argsort(1)[:, :k], True)
    source = ((~inserted).long().cumsum(1) - 1).clamp(min=0)  # index into ids of kept tokens
    at = Positions.drawn(inserted, ids.device)
    with_slots = ids.gather(1, to_device(source, ids.device)).masked_fill(at.mask, MASK_ID)
    return with_slots, at


def notebook(det_logits, labels, bce, ids, rate: float) -> torch.Tensor:
    """Positions the discriminator got wrong, at most ``rate`` of a row's real tokens (the
    highest-loss ones), never special tokens."""
    eligible = ids >= NUM_SPECIAL
    wrong = ((det_logits > 0) != labels) & eligible
    limit = (rate * (ids != PAD_ID).sum(1)).ceil().long().clamp(min=1)  # (B,)
    scores = bce.masked_fill(~wrong, float("-inf"))
    rank = scores.argsort(1, descending=True).argsort(1)  # 0 = highest loss
    return wrong & (rank < limit[:, None])


@OBJECTIVES.register("mcl")
class MCL(Electra):
    kind = "discriminator"
    """A discriminator has no token log-probs to score with; see ``thrifty eval``."""

    @dataclass(kw_only=True)
    class Config(Electra.Config):
        replace_weight: float = 1.0
        """Weight of the replace course (ELECTRA's RTD) in the discriminator loss; 0: off."""
        swap_weight: float = 1.0
        """Weight of the swap course (reconstructed); 0: off."""
        insert_weight: float = 1.0
        """Weight of the insert course (reconstructed); 0: off."""
        swap_rate: float = 0.15
        """Share of tokens the swap course moves (paired at random within the row)."""
        insert_rate: float = 0.15
        """Tokens the insert course adds to a window, as a share of its length."""
        correction_gen_weight: float = 1.0
        """a: generator loss on the notebook positions (reconstructed); 0 with b = 0: off."""
        correction_disc_weight: float = 1.0
        """b: discriminator loss after resampling the notebook positions (reconstructed)."""

        def __post_init__(self) -> None:
            super().__post_init__()
            courses = (self.replace_weight, self.swap_weight, self.insert_weight)
            fixes = (self.correction_gen_weight, self.correction_disc_weight)
            if min(courses + fixes) < 0:
                raise UserError("objective: course and correction weights must be >= 0")
            if not any(courses):
                raise UserError(
                    "objective: switch on at least one course (replace_weight, swap_weight or "
                    "insert_weight > 0)"
                )
            if any(fixes) and not self.replace_weight:
                raise UserError(
                    "objective: self-correction reads the replace course's errors; keep "
                    "replace_weight > 0 or set correction_gen_weight=0 correction_disc_weight=0"
                )

    @property
    def correcting(self) -> bool:
        return bool(self.cfg.correction_gen_weight or self.cfg.correction_disc_weight)

    def term_weights(self) -> dict[str, float]:
        c, lam = self.cfg, self.cfg.rtd_weight
        return {
            "gen": 1.0,
            "rtd": lam * c.replace_weight,
            "swap": lam * c.swap_weight,
            "insert": lam * c.insert_weight,
            "fix_gen": c.correction_gen_weight,
            "fix_rtd": lam * c.correction_disc_weight,
        }

    def terms(self, batch: Batch) -> tuple[dict[str, Term], dict[str, float]]:
        cfg, w = self.cfg, batch.weights
        ids = batch.ids[:, :-1]
        real = ids != PAD_ID
        c = self.corrupt(batch)  # the generator always trains: replace and insert sample it
        terms = {"gen": c.gen}
        metrics = {"gen_loss": c.gen.loss.detach(), "gen_acc": c.gen_accuracy}
        positives, tokens = 0.0, 0.0
        if cfg.replace_weight:
            d = self.detect(c.corrupted, c.labels, real, w)
            terms["rtd"] = d.term
            metrics |= {"replaced": d.metrics["positive"], "rtd_loss": d.term.loss.detach()}
            metrics |= {"rtd_p": d.metrics["precision"], "rtd_r": d.metrics["recall"]}
            metrics |= {"rtd_auc": d.metrics["auc"]}
            positives, tokens = positives + d.metrics["positive"], tokens + 1
        if cfg.swap_weight:
            random, host = self.random(batch, "swap"), batch.on_host()[:, :-1]
            swapped, labels = swap_tokens(
                ids, cfg.swap_rate, self.disc.cfg.vocab_size, random, host
            )
            s = self.detect(swapped, labels, real, w)
            terms["swap"] = s.term
            metrics |= {"swap_pos": s.metrics["positive"], "swap_loss": s.term.loss.detach()}
            positives, tokens = positives + s.metrics["positive"], tokens + 1
        if cfg.insert_weight:
            with_slots, inserted = insert_slots(ids, cfg.insert_rate, self.random(batch, "insert"))
            with torch.no_grad():
                logits = self.generator_logits(with_slots, inserted)
                samples = self.sample(logits, inserted, self.random(batch, "fill"))
                filled = inserted.put(with_slots, samples)
            i = self.detect(filled, inserted.mask, filled != PAD_ID, w)
            terms["insert"] = i.term
            metrics |= {"insert_pos": i.metrics["positive"], "insert_loss": i.term.loss.detach()}
            positives, tokens = positives + i.metrics["positive"], tokens + 1
        metrics["pos_rate"] = positives / tokens
        if self.correcting:
            fix = notebook(d.logits, c.labels, d.bce, ids, cfg.mask_rate)
            remasked = c.corrupted.masked_fill(fix, MASK_ID)
            # the device chose these positions: the step's one wait, to learn how many
            at, random = Positions.computed(fix), self.random(batch, "fix")
            c2 = self.generate(ids, remasked, at, w, random, base=c.corrupted)
            d2 = self.detect(c2.corrupted, c2.labels, real, w)
            terms |= {"fix_gen": c2.gen, "fix_rtd": d2.term}
            metrics |= {"fixed": fix.sum() / real.sum().clamp(min=1)}
            metrics |= {"fix_gen_loss": c2.gen.loss.detach(), "fix_rtd_loss": d2.term.loss.detach()}
        return terms, metrics

    def extra_flops_per_token(self, seq_len: int) -> float:
        """Every discriminator pass beyond the one the loop counts, and every generator pass
        (the insert course's fill runs forward only: a third of a training pass)."""
        cfg = self.cfg
        disc = self.disc.flops_per_token(seq_len, 0.0) + self.rtd_head_flops()
        gen = self.generator_flops(seq_len)
        passes = sum(bool(x) for x in (cfg.replace_weight, cfg.swap_weight, cfg.insert_weight))
        total = gen + passes * disc
        if cfg.insert_weight:
            total += gen / 3
        if self.correcting:
            total += gen + disc
        return total - self.disc.flops_per_token(seq_len, self.head_fraction())
