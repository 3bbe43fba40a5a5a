"""Parameter groups, AdamW / LAMB, and learning-rate schedules (cosine, WSD, constant).

LAMB follows GPT-BERT's variant (You et al. 2020; Charpentier & Samuel 2024): the layer-wise
trust ratio ||w|| / ||update|| applies only to groups with weight decay; norms and biases get a
plain bias-corrected Adam step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from thrifty.adamw import adamw
from thrifty.config import TrainConfig
from thrifty.models.linear.base import is_linear_member


def embedding_tables(module: nn.Module) -> set[int]:
    """ids of embedding tables: ``nn.Embedding`` weights, and matrices whose own name says
    ``embed`` (ELECTRA's generator table E_G and GDES's E_Δ), wherever they sit."""
    found = {id(m.weight) for m in module.modules() if isinstance(m, nn.Embedding)}
    for name, p in module.named_parameters():
        if "embed" in name.rsplit(".", 1)[-1]:
            found.add(id(p))
    return found


def param_groups(model: nn.Module, cfg: TrainConfig, extra: nn.Module | None = None) -> list[dict]:
    """Decay matrices and every parameter of a block projection (SLTrain's sparse values are a
    vector but part of a matrix); leave norms and (unless asked) embeddings undecayed.

    ``extra``: networks an objective trains besides the model (ELECTRA's generator and heads);
    a parameter shared by both is listed once.
    """
    decay, no_decay, seen = [], [], set()
    for module in (model, extra):
        if module is None:
            continue
        tables = embedding_tables(module)
        projections = {
            id(p) for m in module.modules() if is_linear_member(m) for p in m.parameters()
        }
        for p in module.parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            is_matrix = (p.dim() >= 2 and id(p) not in tables) or id(p) in projections
            (decay if is_matrix or cfg.decay_norms_and_embeddings else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


class LAMB(torch.optim.Optimizer):
    def __init__(self, params, lr: float, betas=(0.9, 0.98), eps: float = 1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"].item()
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                update = (m / (1 - beta1**t)) / ((v / (1 - beta2**t)).sqrt() + group["eps"])
                if group["weight_decay"] > 0:
                    update.add_(p, alpha=group["weight_decay"])
                    # the trust ratio, 1 where a norm is 0, computed on the device: reading
                    # the norms back would stall a GPU once per parameter
                    w_norm, u_norm = p.norm(), update.norm()
                    usable = (w_norm > 0) & (u_norm > 0)
                    ratio = torch.where(usable, w_norm / torch.where(usable, u_norm, 1.0), 1.0)
                    update.mul_(ratio)
                p.add_(update, alpha=-group["lr"])


def build_optimizer(
    model: nn.Module,
    cfg: TrainConfig,
    device: torch.device | str = "cpu",
    extra: nn.Module | None = None,
) -> torch.optim.Optimizer:
    """The run's optimizer over ``model`` (and ``extra``, networks an objective trains), with
    the fused AdamW step on devices that have one."""
    groups = param_groups(model, cfg, extra)
    if cfg.optimizer == "lamb":
        return LAMB(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
    return adamw(groups, device, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)


def lr_at(step: int, total_steps: int, cfg: TrainConfig) -> float:
    """Learning rate for optimizer step ``step`` (0-based) of ``total_steps``."""
    peak, floor = cfg.lr, cfg.lr * cfg.min_lr_ratio
    warmup = min(cfg.warmup_steps, max(total_steps - 1, 0))
    if step < warmup:
        return peak * (step + 1) / (warmup + 1)
    if cfg.schedule == "constant":
        return peak
    if cfg.schedule == "wsd":  # warmup-stable-decay: flat, then linear to the floor
        decay_start = total_steps - int(cfg.decay_fraction * total_steps)
        if step < decay_start:
            return peak
        frac = (step - decay_start) / max(total_steps - decay_start, 1)
        return peak + (floor - peak) * frac
    frac = (step - warmup) / max(total_steps - warmup, 1)
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))
