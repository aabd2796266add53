"""Many models of one structure trained as one (batched trials): their parameters stacked along a leading
model axis, one vmapped call per step (Adam with its own learning rates per model: `optim.StackedAdam`).

On a CPU this saves dispatch and Python, not arithmetic (each model's work still adds up); on a GPU a batch
of hundreds of models fills the device that one small model leaves idle."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap


class Stacked:
    """M copies of `modules[0]`'s structure with the members' own parameter values. Calling it runs every
    member on its own slice of the inputs (leading axis M) and returns what the module returns, stacked."""

    def __init__(self, modules: list[nn.Module]):
        self.modules = modules
        self.skeleton = modules[0]
        params, _ = stack_module_state(modules)  # new leaves, (M, ...) each
        self.params: dict[str, torch.Tensor] = params
        # buffers hold the network's structure: the same in every member, so they are shared, not stacked
        self.buffers = dict(self.skeleton.named_buffers())
        self._call = vmap(self._one, randomness="error")

    def _one(self, params: dict[str, torch.Tensor], *args: Any) -> Any:
        return functional_call(self.skeleton, (params, self.buffers), args)

    def __call__(self, *args: Any) -> Any:
        return self._call(self.params, *args)

    @torch.no_grad()
    def write_back(self, m: int) -> None:
        """Copy member m's stacked parameters into its own module (what evaluation and the saved files read)."""
        for name, p in self.modules[m].named_parameters():
            p.copy_(self.params[name][m])


def group_lrs(model: nn.Module, groups: list[dict], stacked_names: list[str]) -> dict[str, float]:
    """The learning rate each named parameter gets from `param_groups` (the model's Adam groups)."""
    by_id = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    return {n: float(by_id.get(id(named[n]), 0.0)) for n in stacked_names}  # 0: a parameter no group trains
