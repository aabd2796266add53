"""Reaction kinetics (mass action, SPEC §1; Michaelis-Menten, SPEC §11), the explicit Euler integrator with
driven boundary species, and the drive signal. Pure torch and NumPy functions."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from .network import Network

Derivative = Callable[[torch.Tensor], torch.Tensor]


class Kinetics:
    """dc/dt = S v(c) - lambda_type (c - baseline), with v_j = k_j prod c_i^|s_ij| (mass action) or
    v_j = Vmax_j prod (c_i / (Km_ij + c_i))^|s_ij| (Michaelis-Menten: the network has log_km).

    `flux_limit_dt`: scale each reaction so that in one Euler step of that length no substrate loses more than
    it has (SPEC §11's optional flux limiting). Works on a single state (n_met,) or a batch (B, n_met).
    """

    def __init__(self, net: Network, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                 flux_limit_dt: float | None = None):
        e = torch.as_tensor(net.substrate_edges, device=device)
        self.sub_met, self.sub_rxn, self.sub_pow = e[:, 0], e[:, 1], e[:, 2].to(dtype)
        self.km = None if net.log_km is None else torch.as_tensor(10.0 ** net.log_km, dtype=dtype, device=device)
        self.limit_dt = flux_limit_dt
        self.n_reactions = net.n_reactions
        self.S = torch.as_tensor(net.S, dtype=dtype, device=device)
        self.k = torch.as_tensor(10.0 ** net.log_k, dtype=dtype, device=device)
        types = torch.as_tensor(net.metabolite_type, device=device)
        self.lam = torch.as_tensor(net.homeostasis_lambda, dtype=dtype, device=device)[types]
        self.base = torch.as_tensor(net.homeostasis_baseline, dtype=dtype, device=device)[types]

    def monomials(self, c: torch.Tensor) -> torch.Tensor:
        """The substrate term of every reaction j: prod_i c_i^|s_ij|, or prod_i (c_i / (Km_ij + c_i))^|s_ij| with
        Km (1 for a reaction with no substrate). v = k * this, linear in k (the oracle's design matrix)."""
        c_e = c[..., self.sub_met]
        terms = (c_e if self.km is None else c_e / (self.km + c_e)) ** self.sub_pow
        out = torch.ones(*c.shape[:-1], self.n_reactions, dtype=c.dtype, device=c.device)
        idx = self.sub_rxn.expand_as(terms)
        return out.scatter_reduce(-1, idx, terms, reduce="prod")

    def rates(self, c: torch.Tensor) -> torch.Tensor:
        v = self.k * self.monomials(c)
        if self.limit_dt is None:
            return v
        # what each species would lose in one step, against what it has: a reaction runs at the fraction its
        # scarcest substrate allows
        loss = self.limit_dt * torch.zeros_like(c).index_add(-1, self.sub_met, v[..., self.sub_rxn] * self.sub_pow)
        frac = torch.where(loss > c, c / loss.clamp_min(1e-30), torch.ones_like(c))
        scale = torch.ones_like(v).scatter_reduce(-1, self.sub_rxn.expand(*c.shape[:-1], -1), frac[..., self.sub_met],
                                                  reduce="amin")
        return v * scale

    def homeostasis(self, c: torch.Tensor) -> torch.Tensor:
        return -self.lam * (c - self.base)

    def __call__(self, c: torch.Tensor) -> torch.Tensor:
        return self.rates(c) @ self.S.T + self.homeostasis(c)


MassAction = Kinetics  # the name it had before Michaelis-Menten (a network without Km is mass action)


def euler_step(c: torch.Tensor, dcdt: torch.Tensor, dt: float, clamp: bool = True) -> torch.Tensor:
    """c <- c + dt * dc/dt, clamped at zero like the simulator (the lab's rollout does not clamp)."""
    nxt = c + dt * dcdt
    return nxt.clamp_min(0.0) if clamp else nxt


@torch.no_grad()
def integrate(
    f: Derivative, c0: torch.Tensor, n_steps: int, dt: float, clamp: bool = True, progress: bool = False,
    forced: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Euler-integrate n_steps from c0. Returns (c, dcdt), each (n_steps + 1, n_met): state and its
    exact derivative at every frame 0..n_steps. `forced` = (index (n_b,), values (n_steps + 1, n_b)): species
    whose course is given (driven boundary species), set to values[t] at every frame t."""
    c = torch.empty(n_steps + 1, *c0.shape, dtype=c0.dtype, device=c0.device)
    d = torch.empty_like(c)
    c[0] = c0
    if forced is not None:
        idx, values = forced
        c[0, idx] = values[0].to(c.dtype)
    for t in tqdm(range(n_steps + 1), disable=not progress, desc="simulate", leave=False):
        d[t] = f(c[t])
        if t < n_steps:
            c[t + 1] = euler_step(c[t], d[t], dt, clamp)
            if forced is not None:
                c[t + 1, idx] = values[t + 1].to(c.dtype)
    return c, d


# SPEC §11's drive: per boundary species, three exponentially filtered standardised noise components, each with
# a time constant (fraction of n_frames) and an amplitude drawn from these ranges.
DRIVE_COMPONENTS = (((0.2, 0.5), (0.8, 1.5)), ((0.05, 0.15), (0.3, 0.7)), ((0.01, 0.04), (0.1, 0.3)))
DRIVE_CLIP = (0.05, 4.0)


def drive_signal(seed: int, n_frames: int, c0: np.ndarray) -> np.ndarray:
    """(n_frames + 1, n_b): c0 * (1 + sum of the components), clipped to [0.05, 4] c0, from RandomState(seed)."""
    from scipy.signal import lfilter

    rng = np.random.RandomState(seed)
    c0 = np.asarray(c0, np.float64)
    z = np.ones((n_frames + 1, len(c0)))
    for (t_lo, t_hi), (a_lo, a_hi) in DRIVE_COMPONENTS:
        for b in range(len(c0)):
            tau = rng.uniform(t_lo, t_hi) * n_frames  # frames
            amp = rng.uniform(a_lo, a_hi)
            a = 1.0 / max(tau, 1.0)
            x = lfilter([a], [1.0, a - 1.0], rng.randn(n_frames + 1))  # x_t = (1 - a) x_{t-1} + a w_t
            z[:, b] += amp * (x - x.mean()) / max(x.std(), 1e-12)
    return np.clip(c0 * z, DRIVE_CLIP[0] * c0, DRIVE_CLIP[1] * c0)


def initial_concentrations(n_metabolites: int, seed: int, cmin: float, cmax: float) -> torch.Tensor:
    """The lab's draw: a torch.Generator seeded with `seed`, uniform in [cmin, cmax]."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n_metabolites, generator=g) * (cmax - cmin) + cmin


def activity_rank(concentrations: np.ndarray, energy: float = 0.99) -> tuple[int, np.ndarray]:
    """Number of singular values of the (frames x metabolites) matrix holding `energy` of sum sigma^2."""
    sv = np.linalg.svd(np.asarray(concentrations, dtype=np.float64), compute_uv=False)
    frac = np.cumsum(sv**2) / np.sum(sv**2)
    return int(np.searchsorted(frac, energy) + 1), sv
