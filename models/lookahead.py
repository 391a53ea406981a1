"""Lookahead (Zhang et al., NeurIPS 2019): a wrapper that slows an optimiser down.

The wrapped ("fast") optimiser steps as usual; every ``k`` steps the slow weights move a
fraction ``alpha`` towards the fast ones, and the fast weights restart from there:
``slow += alpha * (fast - slow); fast = slow``. torch has no Lookahead, hence this file.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim import Optimizer


class Lookahead:
    """Wraps ``optimizer``; the slow weights start as the parameters' values at construction.

    Build it after the model is on its final device and memory format. The wrapped
    optimiser stays reachable as ``.optimizer`` (attach learning-rate schedulers there).
    """

    def __init__(self, optimizer: Optimizer, k: int = 6, alpha: float = 0.5) -> None:
        if k < 1:
            raise ValueError(f"Lookahead needs k >= 1, got {k}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"Lookahead needs alpha in [0, 1], got {alpha}")
        self.optimizer = optimizer
        self.k = k
        self.alpha = alpha
        self.fast_steps = 0
        self.slow_weights = [param.detach().clone() for param in self._parameters()]

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """The wrapped optimiser's parameter groups (learning rates live there)."""
        return self.optimizer.param_groups

    def _parameters(self) -> list[torch.Tensor]:
        return [param for group in self.optimizer.param_groups for param in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of every wrapped parameter."""
        self.optimizer.zero_grad(set_to_none=set_to_none)

    @torch.no_grad()
    def step(self) -> None:
        """One fast step; every ``k``-th also pulls the slow weights and resets the fast ones to them."""
        self.optimizer.step()
        self.fast_steps += 1
        if self.fast_steps % self.k == 0:
            for slow, fast in zip(self.slow_weights, self._parameters(), strict=True):
                slow.lerp_(fast, self.alpha)
                fast.copy_(slow)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: the wrapped optimiser, slow weights, step count.

        Like torch optimisers' ``state_dict``, it holds references to live tensors: save or copy it
        before stepping on.
        """
        return {
            "optimizer": self.optimizer.state_dict(),
            "slow_weights": self.slow_weights,
            "fast_steps": self.fast_steps,
            "k": self.k,
            "alpha": self.alpha,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (the slow weights keep this wrapper's device)."""
        if len(state["slow_weights"]) != len(self.slow_weights):
            raise ValueError(f"Lookahead state holds {len(state['slow_weights'])} slow weights, "
                             f"this optimiser has {len(self.slow_weights)} parameters")
        self.optimizer.load_state_dict(state["optimizer"])
        with torch.no_grad():
            for slow, saved in zip(self.slow_weights, state["slow_weights"], strict=True):
                slow.copy_(saved)
        self.fast_steps = state["fast_steps"]
        self.k = state["k"]
        self.alpha = state["alpha"]
