"""Zero-shot classification and image–text retrieval of a CLIP-trained pair of towers (Radford
et al. 2021, section 3.1), on the held-out ``test`` split of a prepared pairs set.

- **Zero-shot**: each class's embedding is the mean of the normalised text embeddings of its
  caption in every template of the set (the paper's prompt ensemble), normalised again; an
  image is put in the class of highest cosine similarity. Chance is 1 / classes.
- **Retrieval**, recall at 1 and 5. Digits' captions repeat (a class in a template is one
  text), so a caption text is one candidate, not one per image: image -> text ranks the
  distinct caption texts of the split and hits when the image's own caption is in the top k;
  text -> image ranks the split's images for each distinct text and hits when one of the top k
  images has that caption. Chance of each is reported beside it (``chance``).

The towers are ``model`` (the image encoder) and the ``clip`` objective's ``owned`` heads
(``thrifty.objectives.clip.ClipHeads``); nothing here trains.
"""

from __future__ import annotations

from pathlib import Path

import torch

from thrifty.data.images import load_split
from thrifty.data.pairs import class_prompts, encode_captions, padding_of
from thrifty.data.tokenizer import load_tokenizer
from thrifty.data.tokens import load_manifest
from thrifty.errors import UserError
from thrifty.models.stem.patches import mean_features

RECALL_AT = (1, 5)


@torch.no_grad()
def embed_split(model, heads, tensors: dict, batch_size: int = 256):
    """(image (N, D), text (N, D)) normalised embeddings of a split's pairs."""
    device = next(model.parameters()).device
    model.eval()
    heads.eval()
    images, texts = [], []
    n, length = len(tensors["labels"]), tensors["captions"].shape[1]
    for s in range(0, n, batch_size):
        pixels = tensors["images"][s : s + batch_size].float().to(device) / 255.0
        images.append(heads.embed_image(mean_features(model, pixels)).cpu())
        captions = tensors["captions"][s : s + batch_size].to(device)
        padding = padding_of(tensors["caption_lengths"][s : s + batch_size], length).to(device)
        texts.append(heads.embed_text(captions, padding).cpu())
    return torch.cat(images), torch.cat(texts)


@torch.no_grad()
def class_embeddings(heads, tok, manifest: dict) -> torch.Tensor:
    """(classes, D): per class, the normalised mean of its templates' text embeddings."""
    device = next(heads.parameters()).device
    prompts = class_prompts(manifest)
    flat = [p for per_class in prompts for p in per_class]
    ids, lengths = encode_captions(tok, flat)
    ids = torch.from_numpy(ids).to(device)
    padding = padding_of(torch.from_numpy(lengths), ids.shape[1]).to(device)
    text = heads.embed_text(ids, padding).cpu().view(len(prompts), len(prompts[0]), -1)
    return torch.nn.functional.normalize(text.mean(1), dim=-1)


def recall(scores: torch.Tensor, hits: torch.Tensor, ks=RECALL_AT) -> dict[str, float]:
    """Share of queries (rows of ``scores``) with a hit (``hits`` (Q, C) bool) in the top k."""
    order = scores.argsort(1, descending=True)
    ranked = hits.gather(1, order)
    return {f"R@{k}": float(ranked[:, :k].any(1).float().mean()) for k in ks}


def chance_recall(hits: torch.Tensor, ks=RECALL_AT) -> dict[str, float]:
    """Expected recall at k of a random ranking: 1 - C(C - h, k) / C(C, k) per query."""
    C = hits.shape[1]
    out = {}
    for k in ks:
        miss = torch.ones(len(hits), dtype=torch.float64)
        for j in range(k):  # probability that the first k draws without replacement all miss
            miss *= (C - hits.sum(1).double() - j).clamp(min=0) / (C - j)
        out[f"R@{k}"] = float(1 - miss.mean())
    return out


def retrieval_hits(captions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(distinct (T,) index of each distinct caption's first pair, own (N, T) bool: pair i's
    caption is text t)."""
    _, inverse = torch.unique(captions, dim=0, return_inverse=True)
    T = int(inverse.max()) + 1
    first = torch.full((T,), len(captions), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(len(captions)), reduce="amin")
    own = torch.zeros(len(captions), T, dtype=torch.bool)
    own[torch.arange(len(captions)), inverse] = True
    return first, own


def zero_shot(model, heads, data_path: str | Path, split: str = "test") -> dict:
    """Zero-shot accuracy and retrieval recalls of the towers on ``split`` of a pairs set."""
    manifest = load_manifest(Path(data_path))
    if manifest.get("modality") != "pairs":
        raise UserError(
            f"{data_path}: zero-shot needs a prepared pairs set (thrifty prepare pairs:digits), "
            f"not modality {manifest.get('modality', 'text')!r}"
        )
    tok = load_tokenizer(Path(data_path))
    tensors = load_split(Path(data_path), split)
    image, text = embed_split(model, heads, tensors)
    classes = class_embeddings(heads, tok, manifest)
    predicted = (image @ classes.T).argmax(1)
    accuracy = float((predicted == tensors["labels"]).float().mean())
    first, own = retrieval_hits(tensors["captions"])
    similarity = image @ text[first].T  # (N images, T distinct texts)
    return {
        "split": split,
        "pairs": len(image),
        "distinct_captions": len(first),
        "zero_shot": {"accuracy": accuracy, "chance": 1 / len(manifest["classes"])},
        "image_to_text": recall(similarity, own) | {"chance": chance_recall(own)},
        "text_to_image": recall(similarity.T, own.T) | {"chance": chance_recall(own.T)},
    }


def arms_table(result: dict) -> list[str]:
    """The printed table: one line per arm, then chance."""
    head = (
        f"{'arm':12s} {'zero-shot':>9s}  {'i->t R@1':>8s} {'R@5':>6s}  {'t->i R@1':>8s} {'R@5':>6s}"
    )
    lines = [head]

    def line(name, acc, i2t, t2i):
        cells = (
            f"{acc:9.3f}  {i2t['R@1']:8.3f} {i2t['R@5']:6.3f}  {t2i['R@1']:8.3f} {t2i['R@5']:6.3f}"
        )
        return f"{name:12s} {cells}"

    for arm, r in result["arms"].items():
        lines.append(line(arm, r["zero_shot"]["accuracy"], r["image_to_text"], r["text_to_image"]))
    any_arm = next(iter(result["arms"].values()))
    lines.append(
        line(
            "chance",
            any_arm["zero_shot"]["chance"],
            any_arm["image_to_text"]["chance"],
            any_arm["text_to_image"]["chance"],
        )
    )
    return lines
