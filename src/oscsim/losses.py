"""The training loss and the lab's regularisers (SPEC §3), each a small pure function."""
from __future__ import annotations

from typing import Callable

import torch
from torch.nn import functional as F


def prediction_loss(pred: torch.Tensor, true: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
    """Sum over the batch of the L2 norm (not squared) of the derivative error across metabolites, each
    metabolite's error times its `scale` when given (error_scale=relative)."""
    err = pred - true
    return (err if scale is None else err * scale).norm(dim=-1).sum()


def monotonicity_queries(xnorm: float, n: int = 100) -> tuple[torch.Tensor, float]:
    """MLP_sub inputs for the regularisers: c and c + dc at |s| = 1 over [0.1, 2 xnorm], then (1, 1)."""
    c = torch.linspace(0.1, 2 * xnorm, n)
    dc = float(c[1] - c[0])
    ones = torch.ones(n)
    q = torch.cat([torch.stack([c, ones], -1), torch.stack([c + dc, ones], -1), torch.tensor([[1.0, 1.0]])])
    return q, dc


def sub_diff_penalty(sub_out: torch.Tensor, n: int = 100) -> torch.Tensor:
    """|| relu(|msg(c)| - |msg(c + dc)|) ||_2: MLP_sub should not decrease with c."""
    return F.relu(sub_out[:n].abs() - sub_out[n : 2 * n].abs()).norm()


def sub_norm_penalty(sub_out: torch.Tensor, n: int = 100) -> torch.Tensor:
    """(|MLP_sub(c=1, |s|=1)| - 1)^2: pins MLP_sub's scale so alpha stays near 1."""
    return (sub_out[2 * n].abs() - 1.0) ** 2


def node_l1_penalty(node_out: torch.Tensor) -> torch.Tensor:
    """mean |MLP_node| over the metabolites of the batch's last sample (as the lab computes it)."""
    return node_out[-1].abs().mean()


def k_floor_penalty(log_k: torch.Tensor, threshold: float) -> torch.Tensor:
    """sum relu(threshold - log_k)^2: keeps log_k above a floor."""
    return (F.relu(threshold - log_k) ** 2).sum()


def k_range_penalty(log_k: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """sum (relu(low - log_k)^2 + relu(log_k - high)^2): a weak pull into the regime's known log10 k range."""
    return (F.relu(low - log_k) ** 2 + F.relu(log_k - high) ** 2).sum()


# Learned stoichiometry (SPEC §8, the lab's names): coefficients `sto` of the edges, their reactions `rxn`.
def s_l1_penalty(sto: torch.Tensor) -> torch.Tensor:
    """||sto||_1."""
    return sto.abs().sum()


def s_integer_penalty(sto: torch.Tensor) -> torch.Tensor:
    """mean sin^2(pi sto): zero exactly at integer coefficients."""
    return torch.sin(torch.pi * sto).pow(2).mean()


def mass_conservation_penalty(sto: torch.Tensor, rxn: torch.Tensor, n_reactions: int) -> torch.Tensor:
    """mean over reactions of (sum of the reaction's coefficients)^2."""
    return torch.zeros(n_reactions, dtype=sto.dtype, device=sto.device).index_add(0, rxn, sto).pow(2).mean()


# Each S regulariser as a function of (coefficients, their reactions, number of reactions): the training objective
# and the sign-flip moves' judgement weigh the same terms.
S_PENALTIES: dict[str, Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]] = {
    "S_L1": lambda sto, rxn, n: s_l1_penalty(sto),
    "S_integer": lambda sto, rxn, n: s_integer_penalty(sto),
    "mass_conservation": mass_conservation_penalty,
}


# Observed data (SPEC §9): no dc/dt, so the model is rolled forward from observed states and matched there.
def roll_windows(step, c0: torch.Tensor, window: int, substeps: int, dt: float, queries: torch.Tensor | None = None,
                 forced: torch.Tensor | None = None, course: torch.Tensor | None = None):
    """Roll `step` (the model: c -> output with .dcdt) forward from c0 (B, n_met) with the simulator's clamped
    Euler step, `substeps` steps of dt per observation interval, for `window` intervals. Returns the states at
    each observation, (window, B, n_met), and the first step's output (the regularisers read it; `queries`
    go into that step only). `forced` (n_b,) indexes driven boundary species, which follow `course`
    (window, B, n_b), their observed values at the window's observations, linearly in between, from c0's."""
    c, states, first = c0, [], None
    prev = None if forced is None else c0[..., forced]
    for j in range(window):
        for s in range(substeps):
            out = step(c, queries if first is None else None)
            first = out if first is None else first
            c = (c + dt * out.dcdt).clamp_min(0.0)
            if forced is not None:  # out of place: c is in the autograd graph
                w = (s + 1) / substeps
                c = c.index_copy(-1, forced, (1 - w) * prev + w * course[j])
        if forced is not None:
            prev = course[j]
        states.append(c)
    return torch.stack(states), first


def window_loss(states: torch.Tensor, targets: torch.Tensor, interval: float) -> torch.Tensor:
    """Per window (summed over the batch): the mean over its observations j = 1..H of the L2 norm of the state
    error divided by the time elapsed, j * interval: the lab's recurrent loss (error / (dt * time_step))
    at every observation of the window, so it reads as a derivative error."""
    H = states.shape[0]
    elapsed = interval * torch.arange(1, H + 1, dtype=states.dtype, device=states.device)
    return ((states - targets).norm(dim=-1) / elapsed[:, None]).mean(0).sum()
