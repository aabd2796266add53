"""Mass-action dynamics and the explicit Euler integrator (SPEC §1). Pure torch functions."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from .network import Network

Derivative = Callable[[torch.Tensor], torch.Tensor]


class MassAction:
    """dc/dt = S v(c) - lambda_type (c - baseline), with v_j = k_j prod c_i^|s_ij|.

    Works on a single state (n_met,) or a batch (B, n_met).
    """

    def __init__(self, net: Network, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"):
        e = torch.as_tensor(net.substrate_edges, device=device)
        self.sub_met, self.sub_rxn, self.sub_pow = e[:, 0], e[:, 1], e[:, 2].to(dtype)
        self.n_reactions = net.n_reactions
        self.S = torch.as_tensor(net.S, dtype=dtype, device=device)
        self.k = torch.as_tensor(10.0 ** net.log_k, dtype=dtype, device=device)
        types = torch.as_tensor(net.metabolite_type, device=device)
        self.lam = torch.as_tensor(net.homeostasis_lambda, dtype=dtype, device=device)[types]
        self.base = torch.as_tensor(net.homeostasis_baseline, dtype=dtype, device=device)[types]

    def monomials(self, c: torch.Tensor) -> torch.Tensor:
        """prod_i c_i^|s_ij| for every reaction j (1 for a reaction with no substrate)."""
        terms = c[..., self.sub_met] ** self.sub_pow
        out = torch.ones(*c.shape[:-1], self.n_reactions, dtype=c.dtype, device=c.device)
        idx = self.sub_rxn.expand_as(terms)
        return out.scatter_reduce(-1, idx, terms, reduce="prod")

    def rates(self, c: torch.Tensor) -> torch.Tensor:
        return self.k * self.monomials(c)

    def homeostasis(self, c: torch.Tensor) -> torch.Tensor:
        return -self.lam * (c - self.base)

    def __call__(self, c: torch.Tensor) -> torch.Tensor:
        return self.rates(c) @ self.S.T + self.homeostasis(c)


def euler_step(c: torch.Tensor, dcdt: torch.Tensor, dt: float, clamp: bool = True) -> torch.Tensor:
    """c <- c + dt * dc/dt, clamped at zero like the simulator (the lab's rollout does not clamp)."""
    nxt = c + dt * dcdt
    return nxt.clamp_min(0.0) if clamp else nxt


@torch.no_grad()
def integrate(
    f: Derivative, c0: torch.Tensor, n_steps: int, dt: float, clamp: bool = True, progress: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Euler-integrate n_steps from c0. Returns (c, dcdt), each (n_steps + 1, n_met): state and its
    exact derivative at every frame 0..n_steps."""
    c = torch.empty(n_steps + 1, *c0.shape, dtype=c0.dtype, device=c0.device)
    d = torch.empty_like(c)
    c[0] = c0
    for t in tqdm(range(n_steps + 1), disable=not progress, desc="simulate", leave=False):
        d[t] = f(c[t])
        if t < n_steps:
            c[t + 1] = euler_step(c[t], d[t], dt, clamp)
    return c, d


def initial_concentrations(n_metabolites: int, seed: int, cmin: float, cmax: float) -> torch.Tensor:
    """The lab's draw: a torch.Generator seeded with `seed`, uniform in [cmin, cmax]."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n_metabolites, generator=g) * (cmax - cmin) + cmin


def activity_rank(concentrations: np.ndarray, energy: float = 0.99) -> tuple[int, np.ndarray]:
    """Number of singular values of the (frames x metabolites) matrix holding `energy` of sum sigma^2."""
    sv = np.linalg.svd(np.asarray(concentrations, dtype=np.float64), compute_uv=False)
    frac = np.cumsum(sv**2) / np.sum(sv**2)
    return int(np.searchsorted(frac, energy) + 1), sv
