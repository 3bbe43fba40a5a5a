"""Deploying a DPT policy on fresh bandit tasks, against the classic algorithms (Lee et al.
2023, arXiv 2306.14892, section 5.1).

- **Online**: start from an empty history; at step t the policy reads the query and the t
  pulls so far and *samples* an arm from its predicted distribution (sampling, not argmax, is
  what makes DPT explore like posterior sampling); the pull is appended and the next step reads
  it. Compared with UCB1, Thompson sampling and uniformly random pulls by cumulative regret
  Σ_t (max_a μ_a − μ_{a_t}) (expected regret per pull, so the reward noise adds no variance).
- **Offline**: given a fixed dataset of j pulls by the tasks' behaviour policy, act once with
  the argmax; compared with LCB and the greedy empirical best by accuracy (the optimal arm) and
  suboptimality (μ* − μ of the choice) at each dataset size j.

Test tasks come from the dataset's own generator settings with seeds of their own (never the
training streams); every seed draws new tasks, and results report the mean and spread over
seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from thrifty.data.bandits import BanditSettings, generate, pull, settings_of, transition_features
from thrifty.errors import UserError
from thrifty.eval import bandit_baselines as base
from thrifty.objectives.dpt import action_logits

EVAL_STREAM = 1_000_003  # test tasks: default_rng([EVAL_STREAM, seed]), apart from training


@dataclass
class Policy:
    """A trained DPT model with its action head."""

    model: torch.nn.Module
    head: torch.nn.Module
    arms: int
    settings: BanditSettings
    run_dir: Path | None = None

    @torch.no_grad()
    def logits(self, actions: torch.Tensor, rewards: torch.Tensor) -> torch.Tensor:
        """(B, j + 1, arms) action logits after each prefix of the histories (B, j)."""
        device = next(self.model.parameters()).device
        tokens = transition_features(actions, rewards, self.arms).to(device)
        return action_logits(self.model, self.head, tokens).cpu()


def load_policy(run: str | Path, data: str | Path | None = None) -> Policy:
    """The DPT policy of a run (or checkpoint) folder; ``data``: the bandit dataset whose
    settings the test tasks follow (default: the run's data.path)."""
    loaded, head = load_dpt(run)
    settings = settings_of(data or loaded.cfg.data.path)
    return Policy(loaded.model, head, head.out_features, settings, loaded.run_dir)


def load_dpt(run: str | Path):
    """(the loaded run, its action head) of a DPT run or checkpoint folder, any task family."""
    from safetensors.torch import load_file

    from thrifty.objectives import OBJECTIVES
    from thrifty.runs import load_model

    loaded = load_model(run)
    if loaded.kind != "policy" or loaded.cfg.objective.get("name") != "dpt":
        raise UserError(f"{run}: not a DPT run (objective {loaded.cfg.objective.get('name')!r})")
    objective = OBJECTIVES.build(loaded.cfg.objective, loaded.model)
    objective.owned.load_state_dict(load_file(str(loaded.checkpoint / "objective.safetensors")))
    objective.owned.eval()
    return loaded, objective.owned


def fresh_tasks(settings: BanditSettings, tasks: int, seed: int, horizon: int) -> dict:
    """Fresh tasks with in-context datasets of ``horizon`` pulls, as numpy arrays."""
    return generate(
        replace(settings, horizon=horizon), tasks, np.random.default_rng([EVAL_STREAM, seed])
    )


def online_regret(
    choose, means: np.ndarray, settings: BanditSettings, horizon: int, seed: int
) -> np.ndarray:
    """(B, horizon) cumulative regret of ``choose(actions (B, t), rewards (B, t), counts,
    sums, t) -> (B,)`` acting online in the tasks with ``means`` (B, K)."""
    rng = np.random.default_rng([EVAL_STREAM, seed, 1])
    B, K = means.shape
    actions = torch.zeros(B, 0, dtype=torch.long)
    rewards = torch.zeros(B, 0)
    counts, sums = torch.zeros(B, K), torch.zeros(B, K)
    regret = np.zeros((B, horizon))
    best = means.max(1)
    for t in range(horizon):
        a = choose(actions, rewards, counts, sums, t).long()
        r = torch.from_numpy(pull(rng, means, a.numpy()[:, None], settings.noise, settings.sigma))
        actions, rewards = torch.cat([actions, a[:, None]], 1), torch.cat([rewards, r], 1)
        counts[torch.arange(B), a] += 1
        sums[torch.arange(B), a] += r[:, 0]
        regret[:, t] = best - means[np.arange(B), a.numpy()]
    return regret.cumsum(1)


def online_algorithms(policy: Policy | None, settings: BanditSettings, seed: int) -> dict:
    """name -> ``choose`` for ``online_regret``: DPT (when given), Thompson, UCB, uniform."""
    g = torch.Generator().manual_seed(seed)
    algorithms = {}
    if policy is not None:

        def dpt(actions, rewards, counts, sums, t):
            probs = torch.softmax(policy.logits(actions, rewards)[:, -1], -1)
            return torch.multinomial(probs, 1, generator=g)[:, 0]

        algorithms["dpt"] = dpt
    algorithms["thompson"] = lambda a, r, c, s, t: base.thompson(
        c, s, t, g, settings.noise, settings.sigma
    )
    algorithms["ucb"] = lambda a, r, c, s, t: base.ucb(c, s, t + 1, g)
    algorithms["uniform"] = lambda a, r, c, s, t: torch.randint(
        0, settings.arms, (a.shape[0],), generator=g
    )
    return algorithms


def offline_choices(policy: Policy | None, data: dict, size: int) -> dict:
    """name -> (B,) arm chosen from the first ``size`` pulls of each task's dataset."""
    actions = torch.from_numpy(data["actions"][:, :size])
    rewards = torch.from_numpy(data["rewards"][:, :size])
    counts, sums = base.arm_stats(actions, rewards, data["means"].shape[1])
    chosen = {}
    if policy is not None:
        chosen["dpt"] = policy.logits(actions, rewards)[:, -1].argmax(-1)
    chosen["lcb"] = base.lcb(counts, sums)
    chosen["greedy"] = base.greedy(counts, sums)
    return chosen


def evaluate(
    policy: Policy | None,
    settings: BanditSettings,
    *,
    seeds: int = 3,
    tasks: int = 200,
    horizon: int | None = None,
    sizes: list[int] | None = None,
) -> dict:
    """Online regret curves and offline accuracy by dataset size, mean and std over seeds."""
    horizon = settings.horizon if horizon is None else horizon
    if policy is not None and horizon > settings.horizon:
        raise UserError(
            f"--horizon={horizon} exceeds the {settings.horizon} pulls the policy was trained on"
        )
    if seeds < 1 or tasks < 1 or horizon < 1:
        raise UserError(f"--seeds={seeds}, --tasks={tasks}, --horizon={horizon}: all must be >= 1")
    sizes = sizes or sorted({0, 1, 2, 5, 10, 20, horizon} & set(range(horizon + 1)))
    curves: dict[str, list[np.ndarray]] = {}
    offline: dict[str, dict[int, list[tuple[float, float]]]] = {}
    for seed in range(seeds):
        data = fresh_tasks(settings, tasks, seed, max(sizes + [1]))
        for name, choose in online_algorithms(policy, settings, seed).items():
            regret = online_regret(choose, data["means"], settings, horizon, seed)
            curves.setdefault(name, []).append(regret.mean(0))
        best = data["means"].max(1)
        for size in sizes:
            for name, arm in offline_choices(policy, data, size).items():
                arm = arm.numpy()
                gap = float((best - data["means"][np.arange(tasks), arm]).mean())
                hit = float((arm == data["optimal"]).mean())
                offline.setdefault(name, {}).setdefault(size, []).append((hit, gap))
    return {
        "settings": {**vars(settings)},
        "seeds": seeds,
        "tasks_per_seed": tasks,
        "horizon": horizon,
        "online": {
            name: {
                "mean": np.mean(c, 0).round(4).tolist(),
                "std": np.std(c, 0).round(4).tolist(),
            }
            for name, c in curves.items()
        },
        "offline": {
            name: {
                str(size): {
                    "accuracy": round(float(np.mean([h for h, _ in rows])), 4),
                    "accuracy_std": round(float(np.std([h for h, _ in rows])), 4),
                    "suboptimality": round(float(np.mean([g for _, g in rows])), 4),
                }
                for size, rows in by_size.items()
            }
            for name, by_size in offline.items()
        },
    }


def format_table(result: dict) -> str:
    """Markdown tables: final online regret, and offline accuracy by dataset size."""
    h = result["horizon"]
    lines = [f"| online (regret after {h} pulls, {result['seeds']} seeds) | mean | std |"]
    lines.append("|---|---|---|")
    for name, c in result["online"].items():
        lines.append(f"| {name} | {c['mean'][-1]:.2f} | {c['std'][-1]:.2f} |")
    sizes = list(next(iter(result["offline"].values())))
    lines += ["", "| offline accuracy, pulls j = | " + " | ".join(sizes) + " |"]
    lines.append("|---|" + "---|" * len(sizes))
    for name, by_size in result["offline"].items():
        cells = " | ".join(f"{by_size[s]['accuracy']:.3f}" for s in sizes)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)
