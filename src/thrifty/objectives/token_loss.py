"""``token_term``: the cross-entropy of token targets read from hidden states, the loss of every
language-modelling objective (causal, masked, GPT-BERT, DOBF, meta-tokens, replay).

Three paths give the same values: on CPU (fp32, or bf16 autocast) a fused, chunked head +
loss (an autograd function of its own, far less memory traffic than logits then log-softmax);
with ``dense`` the head over every position, IGNORE ones masked out (no count read back from a
GPU); otherwise the supervised positions gathered first (masked objectives, about 15% of them),
by indices counted on the host when the caller drew the mask there. Written by hand because
the chunked fused head is not in PyTorch and the gather-by-host-indices is thrifty's own
no-wait contract.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from thrifty.losses import LossTerm, safe_count
from thrifty.models.transformer import Transformer
from thrifty.objectives.base import IGNORE
from thrifty.objectives.positions import Positions
from thrifty.transfer import to_device

# Tokens per chunk of the fused head: about 4M fp32 logits (16 MB), which stay in cache.
HEAD_CHUNK_LOGITS = 1 << 22


class _HeadCrossEntropy(torch.autograd.Function):
    """Tied LM head + cross-entropy over token chunks, with the gradient taken in the forward pass.

    The unfused path materialises (N, V) logits, their log-softmax and a zero-filled gradient of
    the same size: for a batch of 32 x 128 tokens and V = 8192 that is 134 MB each, streamed
    through DRAM several times per step. Here each chunk of logits is used while it is still
    in cache: loss and accuracy, then d(loss)/d(logits) in place, which goes straight into the
    two gradient matmuls. The loss is linear in the per-token losses (``coef`` holds d loss /
    d token loss), so backward only scales the stored gradients. Same fp32 math as
    ``F.cross_entropy`` (gradients agree to ~3e-7 relative); under bf16 autocast the matmuls
    run in bf16 as autocast would run them and the softmax in fp32, as autocast's
    cross-entropy does (the loss is the unfused path's, gradients agree at bf16 precision).
    Accuracy counts a target tied with the top logit as a hit (argmax would pick one of the
    tied classes; ties are rare outside bf16). On a 2-core CPU it took the
    benchmark step (mini, 32 x 128 tokens, V = 8192) from 1.49 s to 1.31 s (median of
    interleaved steps); see BENCHMARKS.md.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, coef, z_loss, need_grad, matmul_dtype):
        N, V = hidden.shape[0], weight.shape[0]
        chunk = max(1, HEAD_CHUNK_LOGITS // V)
        losses = hidden.new_empty(N, dtype=torch.float32)
        correct = torch.zeros((), dtype=torch.long)
        grad_h = torch.empty_like(hidden) if need_grad and ctx.needs_input_grad[0] else None
        grad_w = torch.zeros_like(weight) if need_grad and ctx.needs_input_grad[1] else None
        # bf16 autocast: the matmuls in bf16 as autocast would run them, the softmax in fp32
        h_all, w = hidden.to(matmul_dtype), weight.to(matmul_dtype)
        # Both chunk buffers are allocated once per call: on a 2-core CPU the logits matmul
        # into a fresh 16 MB block per chunk ran ~1.5x slower than into memory already
        # written (mini's head, 32 x 128 tokens).
        rows = min(chunk, N)
        logits_buffer = hidden.new_empty(rows, V, dtype=matmul_dtype)
        probs_buffer = hidden.new_empty(rows, V, dtype=torch.float32)
        unit = not z_loss and bool((coef == 1).all())  # the gradient is softmax − onehot itself
        for s in range(0, N, chunk):
            h, y, c = h_all[s : s + chunk], targets[s : s + chunk], coef[s : s + chunk]
            n = len(y)
            logits = torch.mm(h, w.T, out=logits_buffer[:n])  # (n, V), bf16 under autocast
            if logits.dtype != torch.float32:
                # Cast once into the fp32 buffer (exact) and work in fp32 from here: on CPU
                # amax reads bf16 ~2x slower than fp32, and softmax's own cast is slower still
                # (bf16 mini step with AMX: 358 -> 327 ms).
                logits = probs_buffer[:n].copy_(logits)
            # Values-only maxima: max-with-indices is ~3x slower on CPU than amax.
            top = logits.amax(-1)
            target_logit = logits.gather(1, y[:, None]).squeeze(1)
            correct += (target_logit >= top).sum()  # a tie for the top logit counts as a hit
            # torch.softmax's fused kernel is ~2x faster on CPU than max-subtract + exp_ + sum.
            probs = torch.softmax(logits, -1, out=probs_buffer[:n])  # in place under bf16
            if z_loss:
                # logsumexp = top - log p_top, and p_top >= 1/V, so the log is well conditioned.
                lse = top - probs.amax(-1).log()
                loss = lse - target_logit + z_loss * lse.square()
            else:
                loss = _target_nll(probs, y, top, target_logit)
            losses[s : s + chunk] = loss
            if grad_h is None and grad_w is None:
                continue
            # d loss_i / d logits = softmax · (1 + 2·z·lse) − onehot(y), times coef_i
            if not unit:
                probs.mul_((c * (1 + 2 * z_loss * lse) if z_loss else c)[:, None])
            probs.scatter_add_(1, y[:, None], -c[:, None])
            # fp32: the gradient is probs itself; bf16: cast into the logits' buffer, now free
            g = probs if probs.dtype == matmul_dtype else logits_buffer[:n].copy_(probs)
            if grad_h is not None:
                if g.dtype == grad_h.dtype:
                    torch.mm(g, w, out=grad_h[s : s + chunk])
                else:
                    grad_h[s : s + chunk] = g @ w
            if grad_w is not None:
                if g.dtype == grad_w.dtype:
                    grad_w.addmm_(g.T, h)
                else:  # each chunk's bf16 product summed in fp32
                    grad_w += g.T @ h
        ctx.save_for_backward(grad_h, grad_w)
        ctx.mark_non_differentiable(losses, correct)
        return (coef * losses).sum(), losses, correct

    @staticmethod
    def backward(ctx, grad_loss, _losses, _correct):
        grad_h, grad_w = ctx.saved_tensors
        return (
            None if grad_h is None else grad_h * grad_loss,
            None if grad_w is None else grad_w * grad_loss,
            None,
            None,
            None,
            None,
            None,
        )


# Below this probability the log of the softmax's own value loses precision (fp32's smallest
# normal is ~1.2e-38): such targets (a loss above ~69 nats) take logsumexp - logit instead.
_SMALLEST_TARGET_PROB = 1e-30


def _target_nll(probs, targets, top, target_logit) -> torch.Tensor:
    """-log p(target) per row from the softmax just computed: a gather and a log, where
    logsumexp - logit would read the whole row once more for its maximum probability."""
    p = probs.gather(1, targets[:, None]).squeeze(1)
    loss = -p.log()
    far = p < _SMALLEST_TARGET_PROB
    if far.any():  # rare; a host read is free on this CPU-only path
        lse = top[far] - probs[far].amax(-1).log()
        loss[far] = lse - target_logit[far]
    return loss


def token_term(
    model: Transformer,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor | None,
    z_loss: float = 0.0,
    reweight: Callable | None = None,
    dense: bool = False,
    supervised: torch.Tensor | None = None,
) -> tuple[LossTerm, torch.Tensor, dict]:
    """Cross-entropy of ``targets`` (B, T; IGNORE where unsupervised) read from ``hidden``.

    The LM head runs only on supervised positions (MLM supervises ~15% of them). Returns the
    loss as a term (sum of token losses over supervised tokens, or Σ_i w_i · row-mean_i over
    Σ_i w_i when weights are given), the detached per-row mean losses, and accuracy metrics.
    ``reweight`` (``Batch.reweight``) turns the per-row losses into the weights w_i, with no
    gradient through them; that needs the losses before the gradient, so it takes the unfused
    path below (one pass; the fused head wants its token coefficients up front).

    ``dense``: the targets supervise (nearly) every position, as next-token prediction's do.
    Off the CPU fused path the head then reads every position, IGNORE ones masked out of the
    sums, instead of gathering the supervised ones first: gathering sizes a tensor by a count
    the host must read from the device, a wait in every step. ``supervised``: ``targets !=
    IGNORE`` on the host, when the caller made the targets from a mask it drew there (masked
    objectives): the supervised positions are then gathered by indices sent to the device,
    with no count read back. Metrics are 0-dim tensors where they come from the device, so the
    loop reads them only when it logs.
    """
    head = model.embed.weight  # the tied head: model.logits(h) == h @ head.T
    matmul_dtype = _cpu_head_dtype(hidden, head)
    cpu_fused = matmul_dtype is not None and reweight is None
    if dense and not cpu_fused:
        return _dense_token_term(model, hidden, targets, weights, z_loss, reweight)
    h, y, rows, counts = _supervised_positions(hidden, targets, supervised)
    if cpu_fused and y.numel():
        # On CPU: the fused, chunked head + loss (same values, far less memory traffic).
        # Token weights: the sum is Σ_t coef_t · loss_t, coef_t = w_row / count_row or 1.
        coef = (weights / counts)[rows].float() if weights is not None else torch.ones(y.shape)
        grad = torch.is_grad_enabled()
        fused = _HeadCrossEntropy.apply(h, head, y, coef, z_loss, grad, matmul_dtype)
        total, losses, correct = fused
        per_row = torch.zeros(targets.shape[0]).index_add(0, rows, losses) / counts
        count = weights.sum() if weights is not None else torch.tensor(float(y.numel()))
        metrics = {"accuracy": correct.item() / y.numel(), "supervised": float(y.numel())}
        return LossTerm(total, count.detach()), per_row, metrics
    logits = model.logits(h).float()  # (N, V)
    losses = F.cross_entropy(logits, y, reduction="none")  # (N,)
    if z_loss:
        losses = losses + z_loss * torch.logsumexp(logits, dim=-1).pow(2)
    per_row = (
        torch.zeros(targets.shape[0], device=losses.device).index_add(0, rows, losses) / counts
    )
    if reweight is not None:
        weights = reweight(per_row.detach(), weights)
    if weights is not None:
        term = LossTerm((weights * per_row).sum(), weights.sum().detach())
    else:
        term = LossTerm(losses.sum(), losses.new_full((), float(y.numel())))
    with torch.no_grad():
        acc = (logits.argmax(-1) == y).float().mean() if y.numel() else 0.0
    return term, per_row.detach(), {"accuracy": acc, "supervised": float(y.numel())}


def _cpu_head_dtype(hidden: torch.Tensor, head: torch.Tensor) -> torch.dtype | None:
    """The dtype the fused CPU head multiplies in: fp32, or bf16 under bf16 autocast; None
    off the CPU or in other precisions (the unfused path)."""
    if hidden.device.type != "cpu" or head.dtype != torch.float32:
        return None
    if not torch.is_autocast_enabled("cpu"):
        return torch.float32 if hidden.dtype == torch.float32 else None
    bf16 = torch.get_autocast_dtype("cpu") == torch.bfloat16
    return torch.bfloat16 if bf16 and hidden.dtype in (torch.float32, torch.bfloat16) else None


def _supervised_positions(
    hidden: torch.Tensor, targets: torch.Tensor, supervised: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The (N, C) hidden states and (N,) targets of the supervised positions, each one's row
    and every row's count (at least 1). With the host's ``supervised`` mask, by indices copied
    to the device; else by the device's mask, whose count the host must wait for."""
    if supervised is None:
        supervised = targets != IGNORE  # (B, T)
        rows = supervised.nonzero()[:, 0]
        counts = supervised.sum(1).clamp(min=1)
        return hidden[supervised], targets[supervised], rows, counts
    device = hidden.device
    at = Positions.drawn(supervised, device)  # counted on the host: no wait
    rows = to_device(at.host // targets.shape[1], device)
    return at.take(hidden), at.take(targets), rows, to_device(supervised.sum(1).clamp(1), device)


def _dense_token_term(
    model: Transformer,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    weights: torch.Tensor | None,
    z_loss: float,
    reweight: Callable | None,
) -> tuple[LossTerm, torch.Tensor, dict]:
    """``token_term`` on every position (``dense=True``): the same values, with no count
    read back to the host."""
    supervised = targets != IGNORE  # (B, T)
    logits = model.logits(hidden).float()  # (B, T, V)
    flat = F.cross_entropy(
        logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE, reduction="none"
    )
    losses = flat.view_as(targets)  # 0 where unsupervised
    if z_loss:
        losses = losses + z_loss * torch.logsumexp(logits, dim=-1).pow(2) * supervised
    per_row_count = supervised.sum(1)
    per_row = losses.sum(1) / per_row_count.clamp(min=1)
    if reweight is not None:
        weights = reweight(per_row.detach(), weights)
    count = per_row_count.sum()
    if weights is not None:
        term = LossTerm((weights * per_row).sum(), weights.sum().detach())
    else:
        term = LossTerm(losses.sum(), count.to(losses.dtype))
    with torch.no_grad():
        hits = ((logits.argmax(-1) == targets) & supervised).sum()
        acc = hits / safe_count(count)
    return term, per_row.detach(), {"accuracy": acc, "supervised": count}
