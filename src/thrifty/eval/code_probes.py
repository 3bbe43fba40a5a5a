"""Probes of the ObscuraCoder small-scale check (``papers/obscuracoder.md`` §4) on held-out files.

All three read the files a ``thrifty code-task`` dataset held out (its manifest lists them with
their sha256; they are re-read from the corpus folder and checked), so every arm of a
comparison is probed on the same code:

- ``plain_loss``: mean next-token loss (nats per token) on the held-out files as plain code, in
  windows of ``seq_len`` tokens, each file starting with ``<s>``.
- ``identifier_recovery``: exact-match accuracy of greedily decoded names. For every name renamed
  in a held-out unit, the model reads ``<s> obf <sep>`` and then, teacher-forced, the original
  (``prompt="pair"``, ObscuraCoder's translation) or the name map (``prompt="map"``, DOBF's
  output) up to the name's first use; it is right when its greedy tokens there are exactly the
  name's tokens (with the space or punctuation the tokenizer joins to it).
- ``swap_accuracy``: for functions of the held-out files with two adjacent one-line statements,
  the share where the model gives the function as written a higher log-likelihood than the same
  function with those two statements swapped.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from thrifty.data.code_corpus import CodeFile, read_code
from thrifty.data.code_task import Unit, units
from thrifty.data.tokenizer import BOS_ID, PAD_ID, SEP_ID
from thrifty.data.tokens import load_manifest
from thrifty.errors import UserError
from thrifty.eval.scoring import score_sentences

IGNORE = -100  # target of no loss, as in torch cross_entropy


def held_out_files(data: Path) -> list[CodeFile]:
    """The held-out files of a ``thrifty code-task`` dataset, re-read and checked by sha256."""
    manifest = load_manifest(data)
    task = manifest.get("code_task")
    if task is None:
        raise UserError(f"{data}: not a thrifty code-task dataset (no code_task in its manifest)")
    root = Path(task["root"])
    files = []
    for entry in task["valid_files"]:
        path = root / entry["path"]
        if not path.is_file():
            raise UserError(f"{path}: held-out file of {data} is missing")
        code = read_code(path, root, strip_docstrings=task["strip_docstrings"],
                         strip_comments=task["strip_comments"])  # fmt: skip
        if code.sha256 != entry["sha256"]:
            raise UserError(f"{path}: changed since {data} was prepared (sha256 differs)")
        files.append(code)
    return files


def probe_units(
    files: Sequence[CodeFile], tok: Tokenizer, seq_len: int, limit: int, seed: int = 0
) -> list[Unit]:
    """A seeded sample of at most ``limit`` units with names, cut as for training."""
    found = [u for f in files for u in units(f, tok, seq_len)[0] if u.names]
    pick = np.random.default_rng(seed).permutation(len(found))[:limit]
    return [found[i] for i in sorted(pick)]


@torch.no_grad()
def plain_loss(
    model, tok: Tokenizer, files: Sequence[CodeFile], seq_len: int, batch_size: int = 32
) -> float:
    """Mean next-token loss (nats) over the held-out files' tokens."""
    rows = []
    for e in tok.encode_batch([f.text for f in files], add_special_tokens=False):
        ids = [BOS_ID, *e.ids]
        rows += [ids[s : s + seq_len + 1] for s in range(0, len(ids) - 1, seq_len)]
    total, count = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        width = max(len(r) for r in batch)
        ids = torch.full((len(batch), width), IGNORE, dtype=torch.long)
        for r, row in enumerate(batch):
            ids[r, : len(row)] = torch.tensor(row)
        inputs = ids[:, :-1].clamp(min=0)  # right padding: a causal model never reads it
        logits = model.logits(model(inputs, causal=True)).float()  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten(), reduction="sum")
        total, count = total + loss.item(), count + int((ids[:, 1:] != IGNORE).sum())
    return total / max(count, 1)


@dataclass(frozen=True)
class _Probe:
    prefix: list[int]
    target: list[int]


def _probes(unit: Unit, tok: Tokenizer, prompt: str) -> list[_Probe]:
    if prompt == "pair":
        text, spans = (
            unit.orig_text,
            [(at, at + len(n)) for (_, n), at in zip(unit.names, unit.first_use)],
        )
    elif prompt == "map":
        text, spans, at = unit.map_text, [], 0
        for ph, name in unit.names:
            at += len(ph) + 1
            spans.append((at, at + len(name)))
            at += len(name) + 1
    else:
        raise UserError(f"prompt {prompt!r}: choose pair or map")
    enc = tok.encode(text, add_special_tokens=False)
    head = [BOS_ID, *unit.obf, SEP_ID]
    out = []
    for start, end in spans:
        inside = [k for k, (a, b) in enumerate(enc.offsets) if a < end and b > start]
        if inside:
            first, last = inside[0], inside[-1]
            out.append(_Probe([*head, *enc.ids[:first]], enc.ids[first : last + 1]))
    return out


@torch.no_grad()
def _greedy_right(model, probes: list[_Probe]) -> list[bool]:
    """Whether greedy decoding after each prefix yields exactly its target tokens."""
    steps = max(len(p.target) for p in probes)
    width = max(len(p.prefix) for p in probes) + steps
    ids = torch.full((len(probes), width), PAD_ID, dtype=torch.long)
    for r, p in enumerate(probes):
        ids[r, : len(p.prefix)] = torch.tensor(p.prefix)
    lengths = torch.tensor([len(p.prefix) for p in probes])
    right = torch.ones(len(probes), dtype=torch.bool)
    rows = torch.arange(len(probes))
    for t in range(steps):
        hidden = model(ids[:, : int(lengths.max())], causal=True)  # right padding: never seen
        chosen = model.logits(hidden[rows, lengths - 1]).argmax(-1)  # (N,)
        for r, p in enumerate(probes):
            if t < len(p.target):
                right[r] &= bool(chosen[r] == p.target[t])
                ids[r, lengths[r]] = p.target[t]  # teacher-forced, as the comparison is exact
        lengths = lengths + torch.tensor([t < len(p.target) for p in probes])
    return right.tolist()


def identifier_recovery(model, tok: Tokenizer, unit_list: Sequence[Unit], prompt: str) -> float:
    """Share of renamed names recovered exactly by greedy decoding (module docstring)."""
    right = []
    for unit in unit_list:
        found = _probes(unit, tok, prompt)
        if found:
            right += _greedy_right(model, found)
    if not right:
        raise UserError("no names to recover in the probe units")
    return float(np.mean(right))


def swap_pairs(
    files: Sequence[CodeFile], tok: Tokenizer, seq_len: int, limit: int
) -> list[tuple[str, str]]:
    """(function as written, the same with two adjacent one-line statements swapped), at most
    ``limit``, for functions that fit ``seq_len`` tokens with ``<s>``."""
    pairs = []
    for f in files:
        lines = f.text.splitlines(keepends=True)
        for node in ast.walk(ast.parse(f.text)):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            swapped = _swapped(node, lines)
            if swapped is not None:
                pairs.append(swapped)
    lengths = [len(e.ids) for e in tok.encode_batch([a for a, _ in pairs])] if pairs else []
    fitting = [p for p, n in zip(pairs, lengths) if n < seq_len]
    return fitting[:limit]


def _swapped(
    node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str]
) -> tuple[str, str] | None:
    body = node.body
    for a, b in zip(body, body[1:]):
        one_line = a.lineno == a.end_lineno and b.lineno == b.end_lineno == a.lineno + 1
        simple = not isinstance(a, ast.Expr) or not isinstance(a.value, ast.Constant)
        if one_line and simple and lines[a.lineno - 1].strip() != lines[b.lineno - 1].strip():
            start, end = node.lineno - 1, node.end_lineno
            text = lines[start:end]
            k = a.lineno - 1 - start
            swapped = [*text[:k], text[k + 1], text[k], *text[k + 2 :]]
            return textwrap.dedent("".join(text)), textwrap.dedent("".join(swapped))
    return None


def swap_accuracy(model, tok: Tokenizer, pairs: Sequence[tuple[str, str]]) -> float:
    """Share of pairs where the function as written is the likelier (ties wrong)."""
    if not pairs:
        raise UserError("no function with two adjacent one-line statements to swap")
    scores = score_sentences(model, tok, [t for p in pairs for t in p], "causal")
    return float(np.mean([a > b for a, b in zip(scores[::2], scores[1::2])]))
