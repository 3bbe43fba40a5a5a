"""``multimae``: multi-modal masked autoencoding (Bachmann et al. 2022, MultiMAE;
``papers/multimae.md``).

Every modality is cut into the patch grid of the model's ``patches`` stem. RGB enters through
that stem (so the trained encoder reads plain images, as probes give it); every other modality
has its own patch projection and learned position table (which also plays the paper's learned
modality embedding). Of all modalities' tokens together, a fixed ``visible_tokens`` enter the
encoder (the run's model's blocks, each token rotated by RoPE at its patch position): a
Dirichlet(``alpha``) draw per row splits that budget across the modalities
(``split_budget``, exact to the token), then each modality shows that many patches chosen
uniformly. Both draws come from ``Objective.random``, so a data-parallel step equals the
one-process step.

One small decoder per modality (mae's ``PatchDecoder``, extended by ``ModalityDecoder``) puts
a query at every patch and attends jointly to the encoder's tokens of *all* modalities, so
depth can be predicted when none of it was visible: the paper's cross-attending decoder, done
as one self-attention over queries and context. Losses on the hidden patches only, one term
per modality, summed with equal weights: mean squared error for ``rgb``, ``depth`` and
``edges``, cross-entropy per pixel for ``segmentation`` (the paper uses L1 for depth).

Modalities (``objective.modalities``):

- ``rgb``: the batch's ``images``;
- ``depth``, ``segmentation``: the batch's exact maps (``thrifty prepare images:scenes``);
- ``edges``: a pseudo-label computed from any image, as the paper computes its depth and
  segmentation with off-the-shelf networks: the Sobel gradient magnitude of the grey image,
  scaled to [0, 1] (``sobel_edges``). ``[rgb, edges]`` runs on digits or any folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from thrifty.bounds import bounded
from thrifty.errors import UserError
from thrifty.losses import LossTerm
from thrifty.models.stem.patches import patchify
from thrifty.objectives.base import OBJECTIVES, Batch, Objective, Output
from thrifty.objectives.mae import PatchDecoder, patch_stem
from thrifty.objectives.randomness import RowRandom

MODALITIES = ("rgb", "depth", "segmentation", "edges")
SOBEL = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_edges(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) in [0, 1] -> (B, 1, H, W) Sobel gradient magnitude of the grey image, in
    [0, 1] (divided by its largest possible value, 4·√2, so the scale is the same everywhere)."""
    grey = images.mean(1, keepdim=True)
    kernels = torch.stack([SOBEL, SOBEL.T])[:, None].to(grey)  # (2, 1, 3, 3): d/dx, d/dy
    grads = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), kernels)
    return grads.square().sum(1, keepdim=True).sqrt() / (4 * 2**0.5)


def split_budget(shares: torch.Tensor, budget: int, capacity: int) -> torch.Tensor:
    """(B, M) shares summing to 1 -> (B, M) token counts that sum to exactly ``budget`` per row,
    none above ``capacity``: the floors of ``shares · budget``, then one token at a time to the
    modality with the largest remainder that still has room (``budget <= M · capacity``)."""
    ideal = shares.double() * budget
    counts = ideal.floor().clamp(max=capacity)
    while True:
        short = budget - counts.sum(1)  # (B,)
        if not (short > 0).any():
            return counts.long()
        gap = torch.where(counts < capacity, ideal - counts, -torch.inf)
        rows = (short > 0).nonzero()[:, 0]
        counts[rows, gap[rows].argmax(1)] += 1


def dirichlet_shares(random: RowRandom, modalities: int, alpha: float) -> torch.Tensor:
    """(B, M) shares ~ Dirichlet(alpha), one draw per row from that row's stream (numpy draws
    the Dirichlet from a seed taken from the stream; torch has no seeded Gamma sampler)."""
    seeds = random.randint(0, 2**62, 1)[:, 0].tolist()
    draws = [np.random.default_rng(s).dirichlet([alpha] * modalities) for s in seeds]
    return torch.tensor(np.array(draws).reshape(len(seeds), modalities))


class ModalityDecoder(PatchDecoder):
    """Encoder tokens of every modality -> the patches of one modality: a query (mask token +
    position) at each patch, attending together with the tokens, each given its patch's
    position and its modality's embedding; the queries are read out."""

    def __init__(self, model_cfg, width, depth, heads, num_patches, patch_dim, modalities):
        super().__init__(model_cfg, width, depth, heads, num_patches, patch_dim)
        self.modality = nn.Parameter(torch.randn(modalities, width) * 0.02)

    def forward(self, hidden: torch.Tensor, modality: torch.Tensor, patch: torch.Tensor):
        B, N = hidden.shape[0], self.position.shape[0]
        queries = (self.mask_token + self.position).expand(B, N, -1)  # (B, N, W)
        context = self.enter(hidden) + self.position[patch] + self.modality[modality]
        x = torch.cat([queries, context], 1)  # (B, N + K, W)
        at = torch.cat([torch.arange(N, device=patch.device).expand(B, N), patch], 1)
        cos, sin = self.rope_cos[at][:, None], self.rope_sin[at][:, None]
        for block in self.blocks:
            x = block(x, cos, sin, False, None)
        return self.out(self.norm(x[:, :N]))

    def flops_per_token(self, tokens: int) -> float:
        linears = self.enter.weight.numel() + self.out.weight.numel()
        return sum(b.flops_per_token(tokens) for b in self.blocks) + 6.0 * linears


@OBJECTIVES.register("multimae")
class MultiMAE(Objective):
    kind = "encoder"

    @dataclass(kw_only=True)
    class Config:
        modalities: list[str] = field(default_factory=lambda: ["rgb", "depth", "segmentation"])
        """Input and target modalities: rgb, depth, segmentation, edges (a Sobel pseudo-label)."""
        visible_tokens: int = bounded(32, ge=1)
        """Tokens of all modalities together that the encoder sees (the paper: 98 of 588)."""
        alpha: float = bounded(1.0, gt=0)
        """Dirichlet concentration of the budget's split across modalities (1: uniform)."""
        segmentation_classes: int = bounded(4, ge=2)
        """Classes of the segmentation maps, background included (scenes: 4)."""
        decoder_width: int = bounded(64, ge=2)
        decoder_depth: int = bounded(1, ge=1)
        decoder_heads: int = bounded(2, ge=1)
        norm_pix: bool = False
        """Normalise each RGB target patch by its own mean and std (MAE's target); off by
        default, since it removes the patch colours that segmentation predicts."""

    def __init__(self, cfg, model, *, seed: int = 0) -> None:
        super().__init__(cfg, model, seed=seed)
        stem = patch_stem(model)
        names = cfg.modalities
        if not isinstance(names, list) or not names or len(set(names)) != len(names):
            raise UserError(f"objective.modalities={names!r}: expected a list of distinct names")
        for name in names:
            if name not in MODALITIES:
                raise UserError(
                    f"objective.modalities: {name!r} is not one of {', '.join(MODALITIES)}"
                )
        if getattr(getattr(stem, "merge", None), "r", 0):  # token merging lives in forward
            raise UserError(
                "objective multimae runs the blocks on its own tokens: set model.stem.merge.r=0"
            )
        self.names, self.patch, self.num_patches = list(names), stem.patch, stem.num_patches
        total = len(names) * self.num_patches
        if cfg.visible_tokens >= total:
            raise UserError(
                f"objective.visible_tokens={cfg.visible_tokens}: must be below the {total} "
                f"tokens of {len(names)} modalities x {self.num_patches} patches"
            )
        p2, classes = self.patch**2, cfg.segmentation_classes
        dims = {"rgb": stem.patch_dim, "depth": p2, "edges": p2, "segmentation": classes * p2}
        d, others = model.cfg.d_model, [n for n in names if n != "rgb"]
        decoder = (cfg.decoder_width, cfg.decoder_depth, cfg.decoder_heads, self.num_patches)
        self.owned = nn.ModuleDict()
        self.owned["embed"] = nn.ModuleDict({n: nn.Linear(dims[n], d) for n in others})
        self.owned["position"] = nn.ParameterDict(
            {n: nn.Parameter(torch.randn(self.num_patches, d) * 0.02) for n in others}
        )
        self.owned["decoders"] = nn.ModuleDict(
            {n: ModalityDecoder(model.cfg, *decoder, dims[n], len(names)) for n in names}
        )
        for layer in self.owned["embed"].values():
            nn.init.normal_(layer.weight, 0.0, model.cfg.init_std)
            nn.init.zeros_(layer.bias)
        self.owned.to(stem.position.device)

    def maps(
        self, inputs: dict[str, torch.Tensor], host: dict[str, torch.Tensor] | None = None
    ) -> dict[str, torch.Tensor]:
        """Each modality's map (B, C, H, W): segmentation as a one-hot float, edges computed.
        ``host``: the same fields on the host (``Batch.host``), where the class check reads."""
        images, host = inputs["images"], host or {}
        out = {}
        for name in self.names:
            if name == "rgb":
                out[name] = images
            elif name == "edges":
                out[name] = sobel_edges(images)
            elif name not in inputs:
                raise UserError(
                    f"objective.modalities names {name!r}, which this data set lacks (prepare "
                    "images:scenes, or use modalities computed from images: rgb, edges)"
                )
            elif name == "segmentation":
                seg = inputs[name]
                largest = int(host.get(name, seg).max())  # on the host: no device read
                if largest >= self.cfg.segmentation_classes:
                    raise UserError(
                        f"objective.segmentation_classes={self.cfg.segmentation_classes} is "
                        f"below the data's class {largest}"
                    )
                # one-hot by a scatter: F.one_hot reads the classes' range back from the device
                shape = (seg.shape[0], self.cfg.segmentation_classes, *seg.shape[1:])
                hot = torch.zeros(shape, dtype=images.dtype, device=seg.device)
                out[name] = hot.scatter_(1, seg[:, None], 1.0)
            else:
                out[name] = inputs[name]
        return out

    def choose(self, batch: Batch) -> torch.Tensor:
        """(B, K) visible tokens, as indices m·N + patch into all modalities' tokens, sorted."""
        random = self.random(batch, "multimae")
        M, N = len(self.names), self.num_patches
        shares = dirichlet_shares(random, M, self.cfg.alpha)
        counts = split_budget(shares, self.cfg.visible_tokens, N)  # (B, M)
        rank = random.rand(M, N).argsort(-1).argsort(-1)  # (B, M, N): uniform order per modality
        return visible_index(rank < counts[..., None])

    def predict(self, maps: dict[str, torch.Tensor], index: torch.Tensor) -> dict:
        """Every modality's predicted patches from the tokens at ``index`` (B, K)."""
        N = self.num_patches
        tokens = torch.stack([self.embed(n, m) for n, m in maps.items()], 1)  # (B, M, N, C)
        tokens = tokens.flatten(1, 2).gather(1, index[..., None].expand(-1, -1, tokens.shape[-1]))
        modality, patch = index // N, index % N
        model = self.model
        cos, sin = model.rope_cos[patch][:, None], model.rope_sin[patch][:, None]
        x = tokens
        for block in model.blocks:
            x = block(x, cos, sin, False, None)
        hidden = model.norm(x)  # (B, K, C)
        decoders = self.owned["decoders"]
        return {n: decoders[n](hidden, modality, patch) for n in self.names}

    def embed(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if name == "rgb":
            return self.model.embed(x)  # the model's own stem: its projection and positions
        return self.owned["embed"][name](patchify(x, self.patch)) + self.owned["position"][name]

    def errors(self, name: str, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """(B, N) loss per patch of one modality."""
        patches = patchify(target, self.patch).float()
        if name == "segmentation":  # one-hot (B, classes·p², ...) back to a class per pixel
            B, N = patches.shape[:2]
            classes = patches.reshape(B, N, self.cfg.segmentation_classes, -1).argmax(2)
            logits = predicted.float().reshape(B, N, self.cfg.segmentation_classes, -1)
            return F.cross_entropy(logits.transpose(1, 2), classes, reduction="none").mean(-1)
        if name == "rgb" and self.cfg.norm_pix:
            mean, var = patches.mean(-1, keepdim=True), patches.var(-1, keepdim=True)
            patches = (patches - mean) / (var + 1e-6).sqrt()
        return (predicted.float() - patches).square().mean(-1)

    def __call__(self, batch: Batch) -> Output:
        maps = self.maps(batch.inputs, batch.host)
        index = self.choose(batch).to(batch.inputs["images"].device)
        predicted = self.predict(maps, index)
        B, N = index.shape[0], self.num_patches
        shown = torch.zeros(B, len(self.names) * N, dtype=torch.bool, device=index.device)
        shown.scatter_(1, index, True)
        terms, per_row, metrics = {}, torch.zeros(B, device=index.device), {}
        for m, name in enumerate(self.names):
            hidden = ~shown[:, m * N : (m + 1) * N]
            term, row = hidden_term(self.errors(name, predicted[name], maps[name]), hidden, batch)
            terms[name], per_row = term, per_row + row
            metrics[name] = term.value.detach()
        loss = sum(t.value for t in terms.values())
        metrics["loss"] = loss.detach()
        return Output(loss, metrics, per_row.detach(), terms)

    def head_fraction(self) -> float:
        return 0.0

    def flops_per_token(self, seq_len: int) -> float:
        # per patch position of an item: the encoder on its visible tokens, every decoder on
        # all patches plus those tokens, and the patch projections of every modality
        N, K = self.num_patches, self.cfg.visible_tokens
        blocks = sum(b.flops_per_token(K) for b in self.model.blocks) * K / N
        decoders = sum(d.flops_per_token(N + K) for d in self.owned["decoders"].values())
        embeds = sum(6.0 * e.weight.numel() for e in self.owned["embed"].values())
        return blocks + decoders * (N + K) / N + embeds + self.model.embed.flops_per_token(0.0)


def visible_index(visible: torch.Tensor) -> torch.Tensor:
    """(B, M, N) bool with as many true per row -> (B, K) flat indices m·N + patch, sorted."""
    flat = visible.flatten(1)
    return flat.nonzero()[:, 1].reshape(flat.shape[0], -1)


def hidden_term(
    errors: torch.Tensor, hidden: torch.Tensor, batch: Batch
) -> tuple[LossTerm, torch.Tensor]:
    """``row_term`` for losses where a row may hide none of a modality (its mean counts 0)."""
    errors = errors * hidden
    counts = hidden.sum(1)
    per_row = errors.sum(1) / counts.clamp(min=1)
    if batch.weights is None:
        return LossTerm(errors.sum(), counts.sum().float()), per_row
    return LossTerm((batch.weights * per_row).sum(), batch.weights.sum().detach()), per_row
