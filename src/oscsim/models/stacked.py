"""Many models of one structure trained as one (batched trials): their parameters stacked along a leading
model axis, one vmapped call per step, and Adam with its own learning rates per model.

On a CPU this saves dispatch and Python, not arithmetic (each model's work still adds up); on a GPU a batch
of hundreds of models fills the device that one small model leaves idle."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ..optim import OneGraphStep, bias_corrections


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


class StackedAdam(OneGraphStep):
    """Adam (torch's update, element by element) on parameters stacked along the model axis, with a
    learning rate per model for each parameter (torch's Adam takes one per group). `scale[m]` multiplies
    model m's rates: a schedule's factor, or 0 for a model that has stopped (its parameters stay as they are).
    `step()` after a backward pass, or `compile_step(loss_terms)` for the whole step as one graph (`OneGraphStep`)."""

    def __init__(self, params: dict[str, torch.Tensor], lrs: dict[str, torch.Tensor],
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params, self.betas, self.eps = list(params.values()), betas, eps
        self.lrs = [lrs[n].to(p) for n, p in params.items()]
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        device = self.params[0].device
        self.scale = torch.ones(len(self.params[0]), dtype=torch.float32, device=device)
        self.count = torch.zeros((), device=device)  # a tensor: a compiled step reads it without recompiling

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        self.update([p.grad for p in self.params], self.scale)

    def update(self, grads: list[torch.Tensor | None], scale: torch.Tensor) -> None:
        # torch's Adam arithmetic, op for op, as one call over all parameters per op (a dozen small tensors)
        beta1, beta2 = self.betas
        self.count.add_(1)
        bias1, bias2_sqrt = bias_corrections(self.count, self.betas, self.params[0].dtype)
        have = [i for i, g in enumerate(grads) if g is not None]
        params, grads = [self.params[i] for i in have], [grads[i] for i in have]
        m, v = [self.exp_avg[i] for i in have], [self.exp_avg_sq[i] for i in have]
        torch._foreach_lerp_(m, grads, 1 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - beta2)
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, bias2_sqrt)
        torch._foreach_add_(denom, self.eps)
        update = torch._foreach_div(m, denom)
        # each model's step size for each parameter, broadcast over the parameter's shape
        torch._foreach_mul_(update, [(self.lrs[i] * scale / bias1).view(-1, *[1] * (p.dim() - 1))
                                     for i, p in zip(have, params)])
        torch._foreach_sub_(params, update)


def group_lrs(model: nn.Module, groups: list[dict], stacked_names: list[str]) -> dict[str, float]:
    """The learning rate each named parameter gets from `param_groups` (the model's Adam groups)."""
    by_id = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(model.named_parameters())
    return {n: float(by_id.get(id(named[n]), 0.0)) for n in stacked_names}  # 0: a parameter no group trains
