"""The identifiability ceiling: least-squares k from exact derivatives when the mass-action form and S
are known. Pure NumPy; what a learned model can at best recover."""
from __future__ import annotations

import numpy as np

from ..dynamics import MassAction
from ..metrics import rate_constant_metrics
from ..network import Network, monomial_groups, unidentifiable_reactions


def monomial_matrix(net: Network, c: np.ndarray) -> np.ndarray:
    """(frames, n_reactions) float64: prod c_i^|s_ij| at each frame."""
    import torch  # local: the estimate itself is NumPy; this reuses the simulator's exact monomials

    f = MassAction(net, dtype=torch.float64)
    return f.monomials(torch.as_tensor(np.asarray(c, np.float64))).numpy()


def least_squares_k(net: Network, c: np.ndarray, dcdt: np.ndarray) -> np.ndarray:
    """Minimum-norm least-squares k for dc/dt + lambda (c - b) = S diag(m(c)) k over all frames.

    Uses the normal equations G k = r with G = (S^T S) o (M^T M), so the design matrix
    (frames * metabolites rows) is never built. Reactions sharing a monomial get the min-norm split.
    """
    c, y = np.asarray(c, np.float64), np.asarray(dcdt, np.float64)
    lam = net.homeostasis_lambda[net.metabolite_type]
    base = net.homeostasis_baseline[net.metabolite_type]
    y = y + lam * (c - base)  # subtract the known homeostasis term
    S = net.S
    M = monomial_matrix(net, c)
    G = (S.T @ S) * (M.T @ M)
    r = np.sum(M * (y @ S), axis=0)
    # Equilibrate columns so a cut-off on singular values means the same for every reaction.
    scale = np.sqrt(np.clip(np.diag(G), 1e-300, None))
    active = np.diag(G) > 0
    k = np.zeros(net.n_reactions)
    Gs = G[np.ix_(active, active)] / np.outer(scale[active], scale[active])
    sol, *_ = np.linalg.lstsq(Gs, r[active] / scale[active], rcond=1e-10)
    k[active] = sol / scale[active]
    return k


def structural_guess(net: Network, k: np.ndarray, log_k_range: tuple[float, float]) -> np.ndarray:
    """log10 k with unidentifiable reactions filled by the structural rule of SPEC §6: a pair sharing a
    monomial and an S column splits its identified sum evenly; anything else sits mid-range."""
    mid = 0.5 * (log_k_range[0] + log_k_range[1])
    S = net.S
    out = np.full(net.n_reactions, mid)
    for key, members in monomial_groups(net.substrate_edges, net.n_reactions).items():
        if key == ():
            continue
        if len(members) == 1:
            j = members[0]
            out[j] = np.log10(k[j]) if k[j] > 0 else mid
        elif all(np.array_equal(S[:, members[0]], S[:, j]) for j in members):
            total = sum(k[j] for j in members)
            for j in members:
                out[j] = np.log10(total / len(members)) if total > 0 else mid
    return out


def oracle(net: Network, c: np.ndarray, dcdt: np.ndarray, log_k_range: tuple[float, float]) -> dict:
    """Score the least-squares estimate with the lab's metrics; the ceiling for learned models."""
    k = least_squares_k(net, c, dcdt)
    unident = unidentifiable_reactions(net.substrate_edges, net.n_reactions)
    ident = np.ones(net.n_reactions, bool)
    ident[unident] = False
    log_k = structural_guess(net, k, log_k_range)
    m = rate_constant_metrics(log_k, net.log_k, ident)
    err = np.abs(log_k[ident] - net.log_k[ident])
    m.update({
        "max_abs_error_identifiable": float(err.max()) if err.size else 0.0,
        "n_identifiable": int(ident.sum()),
        "n_unidentifiable": len(unident),
        "unidentifiable": unident,
        "log_k": log_k.tolist(),
    })
    return m
