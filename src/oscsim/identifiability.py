"""What Michaelis-Menten data can fix (SPEC §11): Vmax and Km of each reaction, judged on the concentrations the
data visit. Pure NumPy.

Where c << Km a rate is (Vmax / Km) c: only the ratio is in the data; where c >> Km it is Vmax: Km is not. Per
reaction, the sensitivities of ln v to (ln Vmax, ln Km_e) over the frames, J = [1, -|s_e| Km_e / (Km_e + c_e)],
give a linearised posterior covariance C = (J^T J / (T sigma^2) + I / prior^2)^-1 for a rate read to a relative
precision sigma per frame and a prior of one natural-log unit; a parameter is identifiable when its posterior sd
is below MAX_SD (ln units: about a 10 % error). The thresholds are conventions, stated here and in the README;
structurally unidentifiable reactions (no substrate, a shared monomial) stay unidentifiable."""
from __future__ import annotations

import numpy as np

from .network import Network, unidentifiable_reactions

SIGMA = 0.01  # relative precision of a rate read at one frame
PRIOR_SD = 1.0  # ln units
MAX_SD = 0.1  # ln units: identifiable below this posterior sd
MIN_FRAMES = 10  # a reaction running (every substrate > 0) at fewer frames fixes nothing


def michaelis_menten_identifiability(net: Network, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(vmax_ok (n_reactions,), km_ok (n_substrate_edges,)): Vmax and Km identifiable together from the
    trajectory c (frames, n_met) when Km is learned. With Km known every structurally identifiable Vmax is."""
    if net.log_km is None:
        raise ValueError("michaelis_menten_identifiability: the network has mass-action kinetics (no Km)")
    e = net.substrate_edges
    km = 10.0 ** np.asarray(net.log_km, np.float64)
    c_e = np.asarray(c, np.float64)[:, e[:, 0]]
    g = -e[:, 2] * km / (km + c_e)  # (T, E): d ln v / d ln Km_e
    vmax_ok = np.zeros(net.n_reactions, bool)
    km_ok = np.zeros(len(e), bool)
    for j in range(net.n_reactions):
        edges = np.flatnonzero(e[:, 1] == j)
        running = np.all(c_e[:, edges] > 0, axis=1)
        if running.sum() < MIN_FRAMES or not len(edges):
            continue
        J = np.concatenate([np.ones((running.sum(), 1)), g[running][:, edges]], axis=1)
        F = J.T @ J / (running.sum() * SIGMA**2) + np.eye(J.shape[1]) / PRIOR_SD**2
        sd = np.sqrt(np.diag(np.linalg.inv(F)))
        vmax_ok[j], km_ok[edges] = sd[0] < MAX_SD, sd[1:] < MAX_SD
    structural = np.ones(net.n_reactions, bool)
    structural[unidentifiable_reactions(e, net.n_reactions)] = False
    return vmax_ok & structural, km_ok & structural[e[:, 1]]
