"""Word log-probabilities from masked LMs by a multi-mask ending (Samuel 2024, GPT-BERT).

A reading-time predictor needs p(word | the words before it), which a masked model does not
define. The BabyLM 2025 pipeline (``evaluation_pipeline/reading/evaluation_functions.py``,
``get_p2_mlm`` / ``get_p2_mntp``) appends ``mask_tokens`` masks (3 by default) to the context and
reads the word's first token at the first mask (``mlm``) or at the position before it (``mntp``,
GPT-BERT's shifted prediction); a word of several tokens is read left to right, each later token
behind the same run of masks with the earlier ones shown. The trailing masks tell the model that
more text follows, so it does not predict the end of the sentence. Here, for token k of a word:

    <s> context w_1 .. w_{k-1} <mask> x mask_tokens    -> log p(w_k) at the first mask (mlm)
                                                          or just before it (mntp)

and the word's log-prob is the sum over its tokens. All copies of all words share batches, sorted
by length under the same token cap as :mod:`thrifty.eval.scoring`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from thrifty.data.tokenizer import BOS_ID, MASK_ID
from thrifty.errors import UserError
from thrifty.eval.readout import hidden_at
from thrifty.eval.scoring import CPU_BATCH_TOKENS, GPU_BATCH_TOKENS, _batches, _token_logprobs


def score_mask_ending(
    model,
    tokenizer,
    contexts: Sequence[str],
    words: Sequence[str],
    backend: str,
    *,
    mask_tokens: int = 3,
    max_batch_tokens: int | None = None,
    device: str | torch.device | None = None,
) -> list[float]:
    """log p(word | context) (nats) for ``mlm`` / ``mntp`` models; put the word's leading space
    in ``words`` (``"The cat", " sat"``), as for :func:`~thrifty.eval.scoring.score_continuations`.
    """
    if backend not in ("mlm", "mntp"):
        raise UserError(f"the mask ending applies to the mlm and mntp backends, not {backend!r}")
    if mask_tokens < 1:
        raise UserError(f"mask_tokens must be >= 1, got {mask_tokens}")
    if len(contexts) != len(words):
        raise UserError(f"{len(contexts)} contexts but {len(words)} words")
    shift = 1 if backend == "mntp" else 0
    ctx = tokenizer.encode_batch(list(contexts), add_special_tokens=False)
    wrd = tokenizer.encode_batch(list(words), add_special_tokens=False)
    rows, reads, targets, owners = [], [], [], []
    for i, (c, w) in enumerate(zip(ctx, wrd, strict=True)):
        for k, target in enumerate(w.ids):
            shown = [BOS_ID, *c.ids, *w.ids[:k]]
            rows.append(shown + [MASK_ID] * mask_tokens)
            reads.append(len(shown) - shift)
            targets.append(target)
            owners.append(i)
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    if len(rows) and lengths.max() > model.cfg.max_seq_len:
        i = owners[int(lengths.argmax())]
        raise UserError(
            f"{contexts[i] + words[i]!r} with {mask_tokens} masks is {lengths.max()} tokens, more "
            f"than the model's max_seq_len={model.cfg.max_seq_len}"
        )
    if device is not None:
        model.to(device)
    device = next(model.parameters()).device
    cap = max_batch_tokens or (CPU_BATCH_TOKENS if device.type == "cpu" else GPU_BATCH_TOKENS)
    scores = np.zeros(len(words))
    order = np.argsort(lengths, kind="stable")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for part in _batches(lengths[order], cap):
                copies = order[part]
                width = int(lengths[copies].max())
                ids = np.zeros((len(copies), width), dtype=np.int64)  # right-padded with <pad>
                for r, j in enumerate(copies):
                    ids[r, : lengths[j]] = rows[j]
                valid = np.arange(width) < lengths[copies, None]
                padding = None if valid.all() else torch.from_numpy(valid).to(device)
                read = torch.tensor([reads[j] for j in copies], device=device)
                h = hidden_at(model, torch.from_numpy(ids).to(device), padding, read)  # (B, C)
                wanted = torch.tensor([targets[j] for j in copies], device=device)
                logp = _token_logprobs(model, h, wanted).double().cpu().numpy()
                np.add.at(scores, [owners[j] for j in copies], logp)
    finally:
        model.train(was_training)
    return scores.tolist()
