"""Concurrent imitation (Andres et al. 2023): PPO's loss plus λ · E_(s,a)~D[−log π(a|s)].

Stable-Baselines3's PPO loop stays as it is; the BC term joins through the policy's optimizer.
``WithBehaviourCloning`` wraps it: when PPO calls ``step()`` after backpropagating its own loss,
the wrapper backpropagates λ times the BC loss of a fresh minibatch of demonstrations into the
same gradients, clips their sum to PPO's ``max_grad_norm`` and then steps — the gradient of
L_PPO + λ·L_BC, one optimizer step, as the paper's joint loss. Minibatches are drawn from a
generator seeded by the run's seed; every transition read is counted for the ledger.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from thrifty.rl.policy import action_logits


class WithBehaviourCloning:
    """An optimizer (the inner one's state and groups) whose ``step`` adds the BC gradient."""

    def __init__(
        self,
        inner: torch.optim.Optimizer,
        policy,
        observations: torch.Tensor,
        actions: torch.Tensor,
        *,
        coef: float,
        batch_size: int,
        max_grad_norm: float,
        seed: int,
    ) -> None:
        self.inner, self.policy = inner, policy
        self.observations, self.actions = observations.float(), actions.long()
        self.coef, self.batch_size, self.max_grad_norm = coef, batch_size, max_grad_norm
        self.generator = torch.Generator().manual_seed(seed)
        self.transitions_read = 0

    @property
    def param_groups(self):
        return self.inner.param_groups  # SB3 sets the learning rate here

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.inner.zero_grad(set_to_none=set_to_none)

    def bc_loss(self) -> torch.Tensor:
        index = torch.randint(len(self.actions), (self.batch_size,), generator=self.generator)
        self.transitions_read += self.batch_size
        device = self.policy.device
        logits = action_logits(self.policy, self.observations[index].to(device))
        return F.cross_entropy(logits, self.actions[index].to(device))

    def step(self, closure=None):
        (self.coef * self.bc_loss()).backward()
        torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
        return self.inner.step(closure)

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state) -> None:
        self.inner.load_state_dict(state)
