"""Adam for one model's training loop: torch's fused Adam, stepped without its per-step bookkeeping."""
from __future__ import annotations

import torch


class FusedAdam(torch.optim.Adam):
    """torch.optim.Adam(fused=True), the same arithmetic to the bit, at a fraction of its step's host cost.

    torch's step re-gathers every group's state, regroups the tensors by device and dtype and checks its
    options on every call (~0.1-0.2 ms here, 5-8 % of a small model's step). Once every parameter with a
    gradient has its state, this step hands the same lists straight to the same fused kernel: one increment of
    every step count, then one kernel per parameter group at the group's current learning rate (a scheduler's
    changes are read each step, and state edited in place, as sign flips do, is used as it stands). Anything
    else (a closure, a parameter's first step, options the plain path does not cover) goes through torch's step.

    The step counts are views into one tensor, so the increment is one small op rather than one per parameter
    (~40 us a step here); they are re-pointed whenever the parameters that have gradients change."""

    def __init__(self, params, **kwargs):
        super().__init__(params, fused=True, **kwargs)
        self._counts: torch.Tensor | None = None  # every stepped parameter's count, one tensor
        self._count_views: list[torch.Tensor] = []

    @torch.no_grad()
    def step(self, closure=None):
        calls, steps = [], []
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if (closure is not None or any(p not in self.state for p in params) or group["amsgrad"]
                    or group["maximize"] or group["capturable"] or group["differentiable"]
                    or group["decoupled_weight_decay"] or getattr(self, "grad_scale", None) is not None
                    or getattr(self, "found_inf", None) is not None):
                return super().step(closure)
            if params:
                state = [self.state[p] for p in params]
                calls.append((group, params, state))
                steps += [s["step"] for s in state]
        if not steps:
            return None
        if len(steps) != len(self._count_views) or any(a is not b for a, b in zip(steps, self._count_views)):
            self._share_counts([st for _, _, state in calls for st in state])
        self._counts.add_(1)
        for group, params, state in calls:
            beta1, beta2 = group["betas"]
            torch._fused_adam_(params, [p.grad for p in params], [s["exp_avg"] for s in state],
                               [s["exp_avg_sq"] for s in state], [], [s["step"] for s in state], amsgrad=False,
                               lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                               eps=group["eps"], maximize=False, grad_scale=None, found_inf=None)
        return None

    def _share_counts(self, states: list[dict]) -> None:
        """Make the step counts of `states` views into one tensor holding their current values."""
        self._counts = torch.stack([st["step"] for st in states])
        for i, st in enumerate(states):
            st["step"] = self._counts[i]
        self._count_views = [st["step"] for st in states]

    # torch wraps an optimiser's step in a profiler label and its step hooks (~0.1 ms a call here); nothing in oscsim
    # registers a hook, so the wrapper is left off (marked as already applied)
    step.hooked = True  # type: ignore[attr-defined]

    def zero_grad(self, set_to_none: bool = True) -> None:
        if not set_to_none:
            return super().zero_grad(set_to_none)
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None


def bias_corrections(count: torch.Tensor, betas: tuple[float, float], dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam's 1 - beta1^t and sqrt(1 - beta2^t) at step `count` (float32: exact to 2^24 steps), computed in float64
    and rounded once to `dtype`, as torch's Adam rounds its Python-float ones. (A float64 count, incremented inside
    a compiled graph, lost its increment under torch 2.13's CPU inductor.)"""
    t = count.double()
    return (1 - betas[0] ** t).to(dtype), (1 - betas[1] ** t).sqrt().to(dtype)


class StackedAdam:
    """Adam (torch's update, element by element) with a learning rate per model for each parameter (torch's Adam
    takes one per group): parameters stacked along a leading model axis (batched trials, `models.stacked`), or one
    model's own parameters with every rate of shape (1,), which broadcasts (`CompiledAdamStep`). `scale[m]`
    multiplies model m's rates: a schedule's factor, or 0 for a model that has stopped (its parameters stay as
    they are). A parameter without a gradient gets no update, as torch's Adam skips a None gradient.

    `step()` after a backward pass; or `compile_step(loss_terms)`, then call it with a batch: the whole training
    step as one torch.compile'd graph. There the gradient is taken inside the compiled function
    (`torch.autograd.grad`, traced), so the forward, the backward and every parameter's update are one graph and
    one call: no autograd engine walking a compiled backward, no gradient accumulation per parameter, no optimiser
    lists built per step, and the compiler sees forward and backward together (the backward reuses saved
    activations a separately compiled one recomputes). On the lab's Batch 1 model (one CPU thread) the step is
    ~1.4x that of the compiled objective with `FusedAdam` (README, Benchmarks). Which parameters the objective
    reaches is fixed by the model's structure, so one step count serves all; it and `scale` are tensors, read each
    step without recompiling."""

    def __init__(self, params: dict[str, torch.Tensor], lrs: dict[str, torch.Tensor],
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.params, self.betas, self.eps = list(params.values()), betas, eps
        self.lrs = [lrs[n].to(p) for n, p in params.items()]
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        device = self.params[0].device
        self.scale = torch.ones(len(self.lrs[0]), dtype=torch.float32, device=device)  # one factor per model
        self.count = torch.zeros((), device=device)

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

    def compile_step(self, loss_terms):
        """loss_terms(c, target) -> (terms by name, their total); returns self, now callable on a batch."""
        self.loss_terms = loss_terms
        self._compiled = torch.compile(self._step)
        return self

    def __call__(self, c: torch.Tensor, target: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """One step on a batch: returns the loss terms and their total (before the update), detached."""
        # tracing autograd.grad is opt-in in this torch (a graph break otherwise); only this call's tracing sees it
        with torch._dynamo.config.patch(trace_autograd_ops=True):
            return self._compiled(c, target, self.scale)

    def _step(self, c: torch.Tensor, target: torch.Tensor, scale: torch.Tensor):
        terms, loss = self.loss_terms(c, target)
        grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        with torch.no_grad():
            self.update(list(grads), scale)
        return {k: v.detach() for k, v in terms.items()}, loss.detach()


class CompiledAdamStep(StackedAdam):
    """One model's Adam with its groups' learning rates (betas (0.9, 0.999), eps 1e-8, bias-corrected), its whole
    training step compiled as one graph. Plain ops the compiler fuses, so it rounds a little differently from
    torch's fused kernel."""

    def __init__(self, loss_terms, groups: list[dict], betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        for g in groups:
            extra = set(g) - {"params", "lr", "name"}
            if extra:
                raise ValueError(f"CompiledAdamStep: group {g.get('name', '')} sets {sorted(extra)}: only lr is supported")
        rated = [(p, float(g["lr"])) for g in groups for p in g["params"]]
        super().__init__({str(i): p for i, (p, _) in enumerate(rated)},
                         {str(i): torch.tensor([lr]) for i, (_, lr) in enumerate(rated)}, betas, eps)
        self.compile_step(loss_terms)
