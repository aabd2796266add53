"""The identifiability ceiling: least-squares k from exact derivatives when the mass-action form and S
are known. Pure NumPy; what a learned model can at best recover."""
from __future__ import annotations

import numpy as np

from scipy.optimize import least_squares

from ..dynamics import MassAction, integrate
from ..metrics import linear_fit_r2, rate_constant_metrics, rollout_metrics
from ..network import KStructure, Network, k_structure, swap_pairs

RCOND = 1e-10  # eigenvalues below this fraction of the largest are directions the data leave free


def monomial_matrix(net: Network, c: np.ndarray) -> np.ndarray:
    """(frames, n_reactions) float64: prod c_i^|s_ij| at each frame."""
    import torch  # local: the estimate itself is NumPy; this reuses the simulator's exact monomials

    f = MassAction(net, dtype=torch.float64)
    return f.monomials(torch.as_tensor(np.asarray(c, np.float64))).numpy()


def least_squares_k(net: Network, c: np.ndarray, dcdt: np.ndarray, tie: bool = False) -> np.ndarray:
    """Minimum-norm least-squares k for dc/dt + lambda (c - b) = S diag(m(c)) k over all frames.

    Uses the normal equations G k = r with G = (S^T S) o (M^T M), so the design matrix
    (frames * metabolites rows) is never built. `tie`: in the parameterisation S implies (`k_structure`):
    reactions with the same monomial and S column share one k. Directions the data leave free get the
    min-norm value (see `structured_estimate` for the prior that settles them).
    """
    st = k_structure(net, tie=tie)
    return _solve(net, c, dcdt, st)[0][st.index]


def derivative_design(net: Network, c: np.ndarray, dcdt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M, y) of dc/dt + lambda (c - b) = S diag(m(c)) k at every frame: the monomials and the reaction part of
    the derivative (the known homeostasis term subtracted)."""
    c, y = np.asarray(c, np.float64), np.asarray(dcdt, np.float64)
    lam = net.homeostasis_lambda[net.metabolite_type]
    base = net.homeostasis_baseline[net.metabolite_type]
    return monomial_matrix(net, c), y + lam * (c - base)


def _solve(net: Network, c: np.ndarray, dcdt: np.ndarray, st: KStructure) -> tuple[np.ndarray, np.ndarray]:
    return _solve_design(net, *derivative_design(net, c, dcdt), st)


def _solve_design(net: Network, M: np.ndarray, y: np.ndarray, st: KStructure) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares parameters of structure `st` for y = S diag(M) k (row by row) and a basis (n_params, d) of
    the directions the data leave free."""
    S = net.S
    P = np.zeros((net.n_reactions, st.n_params))
    P[np.arange(net.n_reactions), st.index] = 1.0  # reaction -> its parameter
    G = P.T @ ((S.T @ S) * (M.T @ M)) @ P
    r = P.T @ np.sum(M * (y @ S), axis=0)
    # Equilibrate columns so a cut-off on eigenvalues means the same for every parameter.
    active = np.diag(G) > 0
    scale = np.sqrt(np.diag(G)[active])
    Gs = G[np.ix_(active, active)] / np.outer(scale, scale)
    w, V = np.linalg.eigh(Gs)
    keep = w > RCOND * w.max()
    k = np.zeros(st.n_params)
    k[active] = (V[:, keep] @ ((V[:, keep].T @ (r[active] / scale)) / w[keep])) / scale
    free = np.zeros((st.n_params, int((~keep).sum()) + int((~active).sum())))
    free[np.ix_(active, np.arange((~keep).sum()))] = V[:, ~keep] / scale[:, None]
    free[np.flatnonzero(~active), (~keep).sum() + np.arange((~active).sum())] = 1.0
    return k, free


def structured_estimate(net: Network, c: np.ndarray, dcdt: np.ndarray, log_k_range: tuple[float, float]) -> np.ndarray:
    """log10 k as the default model parameterises it (`k_structure`), by least squares: tied reactions share
    one k (each half the identified sum); along the directions the data leave free, the k marked `prior` are
    moved to the point nearest (in log10) the middle of the known range. The ceiling for learned models."""
    return structured_design_estimate(net, *derivative_design(net, c, dcdt), log_k_range)


def structured_design_estimate(net: Network, M: np.ndarray, y: np.ndarray, log_k_range: tuple[float, float]) -> np.ndarray:
    """`structured_estimate` for any design (M, y) of y = S diag(M) k: derivatives, or window integrals."""
    st = k_structure(net, tie=True)
    k, free = _solve_design(net, M, y, st)
    mid = 0.5 * (log_k_range[0] + log_k_range[1])
    if free.shape[1]:
        def misfit(z: np.ndarray) -> np.ndarray:
            kk = k + free @ z
            return np.log10(np.clip(kk[st.prior], 1e-12, None)) - mid

        # Start where every prior k is positive (raise the linear-space target until it is), so the search never
        # starts on the clipped side.
        target = np.full(int(st.prior.sum()), 10.0**mid)
        for _ in range(60):
            z0 = np.linalg.lstsq(free[st.prior], target - k[st.prior], rcond=None)[0]
            if np.all((k + free @ z0)[st.prior] > 0):
                break
            target = 2 * np.maximum(target, np.abs(k[st.prior]))
        k = k + free @ least_squares(misfit, z0, xtol=1e-15, ftol=1e-15, gtol=1e-15).x
    return np.log10(np.clip(k, 1e-12, None))[st.index]


def oracle(net: Network, c: np.ndarray, dcdt: np.ndarray, log_k_range: tuple[float, float]) -> dict:
    """Score the structured least-squares estimate with the lab's metrics; the ceiling for learned models."""
    st = k_structure(net, tie=True)
    ident = np.ones(net.n_reactions, bool)
    ident[st.unidentifiable] = False
    log_k = structured_estimate(net, c, dcdt, log_k_range)
    m = rate_constant_metrics(log_k, net.log_k, ident)
    err = np.abs(log_k[ident] - net.log_k[ident])
    m.update({
        "max_abs_error_identifiable": float(err.max()) if err.size else 0.0,
        "n_identifiable": int(ident.sum()),
        "n_unidentifiable": len(st.unidentifiable),
        "unidentifiable": st.unidentifiable,
        "log_k": log_k.tolist(),
    })
    m.update(s_sign_ceiling(net, c, dcdt))
    m.update(stoichiometry_ceiling(net))
    if net.log_km is not None:  # Michaelis-Menten: this is Vmax by least squares with Km known (S v linear in Vmax)
        from ..identifiability import michaelis_menten_identifiability

        vmax_ok, km_ok = michaelis_menten_identifiability(net, c)
        m.update({"n_Vmax_identifiable_with_Km": int(vmax_ok.sum()), "n_Km_identifiable": int(km_ok.sum()),
                  "Vmax_R2_identifiable_with_Km": linear_fit_r2(net.log_k[vmax_ok], log_k[vmax_ok])[0]})
    return m


def edge_rate_estimate(net: Network, c: np.ndarray, dcdt: np.ndarray) -> np.ndarray:
    """Least-squares signed rate s k of every edge of S (`net.signed_edges` order) when S is unknown but the
    monomials are known: one regression per metabolite, dc_m/dt + lambda (c_m - b) on the monomials of the
    reactions it takes part in (minimum norm where they are collinear). The sign of each is what the data say
    about that coefficient's sign: the ceiling for learning S."""
    c, y = np.asarray(c, np.float64), np.asarray(dcdt, np.float64)
    y = y + net.homeostasis_lambda[net.metabolite_type] * (c - net.homeostasis_baseline[net.metabolite_type])
    M = monomial_matrix(net, c)
    edges = net.signed_edges
    rates = np.zeros(len(edges))
    for m in np.unique(edges[:, 0]):
        rows = np.flatnonzero(edges[:, 0] == m)
        rates[rows] = np.linalg.lstsq(M[:, edges[rows, 1]], y[:, m], rcond=RCOND)[0]
    return rates


def s_sign_ceiling(net: Network, c: np.ndarray, dcdt: np.ndarray) -> dict:
    """Fraction of the edges of S (and of the identifiable reactions' edges) whose sign the data fix."""
    edges = net.signed_edges
    right = np.sign(edge_rate_estimate(net, c, dcdt)) == np.sign(edges[:, 2])
    ident = np.ones(net.n_reactions, bool)
    ident[k_structure(net, tie=True).unidentifiable] = False
    keep = ident[edges[:, 1]]
    return {"s_sign_ceiling": float(right.mean()),
            "s_sign_ceiling_identifiable": float(right[keep].mean()) if keep.any() else float("nan")}


def stoichiometry_ceiling(net: Network) -> dict:
    """stoichiometry_R2 of an estimate exact on every edge but those of `swap_pairs`, whose labelling (which
    reaction of a pair has which sign) neither the data nor the k prior fix: its median over the 2^P equally
    likely labellings (the ceiling of a median over seeds), and with those edges at 0 (no data-fitting model holds
    that: one of a pair must carry its monomial at |s| = 1)."""
    import itertools

    pairs = swap_pairs(net)
    edges = net.signed_edges
    true = edges[:, 2].astype(np.float64)
    members = [np.isin(edges[:, 1], pair) for pair in pairs]
    scores = []
    for wrong in itertools.product((False, True), repeat=len(pairs)):
        est = true.copy()
        for w, rows in zip(wrong, members):
            est[rows] *= -1.0 if w else 1.0
        scores.append(linear_fit_r2(true, est)[0])
    zeroed = true.copy()
    for rows in members:
        zeroed[rows] = 0.0
    return {"n_sign_free_edges": int(np.any(members, axis=0).sum()) if pairs else 0,
            "stoichiometry_R2_ceiling": float(np.median(scores)),
            "stoichiometry_R2_sign_free_at_0": linear_fit_r2(true, zeroed)[0]}


def exact_rollout_scores(net: Network, c: np.ndarray, n_steps: int, dt: float) -> dict:
    """test_R2 and rollout_horizon of the true model (exact k, S, homeostasis) rolled out from frame 0 with
    the simulator's clamped Euler step, in float32 (the simulator's precision: reproduces float32 data) and in
    float64 (oscsim's evaluation precision): the ceiling of those metrics, which the chaotic network sets."""
    import torch

    out = {}
    idx = np.flatnonzero(net.boundary_mask)  # driven boundary species follow their observed course
    for name, dtype in (("float32", torch.float32), ("float64", torch.float64)):
        forced = (torch.as_tensor(idx), torch.as_tensor(c[: n_steps + 1, idx], dtype=dtype)) if len(idx) else None
        pred, _ = integrate(MassAction(net, dtype=dtype), torch.as_tensor(c[0], dtype=dtype), n_steps, dt,
                            forced=forced)
        m = rollout_metrics(c[: n_steps + 1], pred.numpy())
        out[f"exact_test_R2_{name}"], out[f"exact_rollout_horizon_{name}"] = m["test_R2"], m["rollout_horizon"]
    return out


# Observed data (SPEC §9): concentrations only, noisy and strided. Two designs, each scored at a few settings.
SAVGOL_WIDTHS = (5, 11, 21)  # observations per Savitzky-Golay fit (cubic) for derivative matching
WINDOWS = (1, 2, 5, 10, 20, 40)  # observation intervals per window for integral matching


def savgol_design(net: Network, obs: np.ndarray, interval: float, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Derivative matching: Savitzky-Golay (cubic) smoothed states and their derivatives, then `derivative_design`."""
    from scipy.signal import savgol_filter

    obs = np.asarray(obs, np.float64)
    c = np.clip(savgol_filter(obs, width, 3, axis=0), 0.0, None)
    d = savgol_filter(obs, width, 3, deriv=1, delta=interval, axis=0)
    return derivative_design(net, c, d)


def window_design(net: Network, obs: np.ndarray, interval: float, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Integral matching over every window of `window` intervals: (c[t+H] - c[t]) / (H interval) + the mean
    homeostasis term against the mean monomials, both left Riemann sums over the observations (the explicit
    Euler data's own sum when every frame is observed). Windows in which a concentration steps to exactly zero
    are left out: there the simulator clamped, and the sum no longer holds."""
    c = np.asarray(obs, np.float64)
    M, h = derivative_design(net, c, np.zeros_like(c))  # h = lambda (c - b): the homeostasis term, sign flipped
    cs = lambda a: np.concatenate([np.zeros((1, a.shape[1])), np.cumsum(a, 0)])  # noqa: E731
    Mc, hc = cs(M), cs(h)
    n = len(c) - window
    mean = lambda a: (a[window : window + n] - a[:n]) / window  # noqa: E731
    clamp = np.concatenate([[0], np.cumsum(((c[1:] == 0) & (c[:-1] > 0)).any(1))])  # clamp events up to each step
    keep = clamp[window : window + n] == clamp[:n]
    return mean(Mc)[keep], ((c[window:] - c[:n]) / (window * interval) + mean(hc))[keep]


def spline_window_design(net: Network, obs: np.ndarray, interval: float, window: int, substeps: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """`window_design` on the series interpolated (cubic spline, clipped at zero) to the model's step
    interval / substeps, `window` steps per window: sparse observations, integrated at the simulator's step."""
    from scipy.interpolate import CubicSpline

    t = np.arange(len(obs)) * substeps
    fine = np.clip(CubicSpline(t, np.asarray(obs, np.float64), axis=0)(np.arange(t[-1] + 1)), 0.0, None)
    return window_design(net, fine, interval / substeps, window)


def observed_oracle(net: Network, obs: np.ndarray, interval: float, log_k_range: tuple[float, float],
                    substeps: int = 1) -> dict:
    """The best identifiable R^2 of derivative matching and of window-integral matching on the observed series
    (`substeps` simulator steps between observations; > 1 adds integral matching on the spline-interpolated
    series), each at its best setting (chosen against the truth: a ceiling, not an estimator), and which won.
    An estimate k <= 10^(log_k_min - 1) (noise can drive a least-squares k negative, which has no log) is
    read as that floor."""
    st = k_structure(net, tie=True)
    ident = np.ones(net.n_reactions, bool)
    ident[st.unidentifiable] = False
    floor = log_k_range[0] - 1.0
    methods = [("derivative", savgol_design, SAVGOL_WIDTHS, len(obs)), ("window", window_design, WINDOWS, len(obs) - 1)]
    if substeps > 1:
        spline = lambda n, o, i, w: spline_window_design(n, o, i, w, substeps)  # noqa: E731
        methods.append(("window_spline", spline, tuple(w * substeps for w in WINDOWS[:4]), (len(obs) - 1) * substeps))
    out: dict = {}
    for method, design, settings, longest in methods:
        best = None
        for s in (s for s in settings if s <= longest):
            log_k = np.maximum(structured_design_estimate(net, *design(net, obs, interval, s), log_k_range), floor)
            m = rate_constant_metrics(log_k, net.log_k, ident)
            if best is None or m["rate_constants_R2_identifiable"] > best[1]["rate_constants_R2_identifiable"]:
                best = (s, m)
        out[f"{method}_setting"], out[f"{method}_R2_identifiable"] = best[0], best[1]["rate_constants_R2_identifiable"]
        out[f"{method}_R2"], out[f"{method}_n_outliers_identifiable"] = best[1]["rate_constants_R2"], best[1]["n_outliers_identifiable"]
    out["best"] = max((m[0] for m in methods), key=lambda k: out[f"{k}_R2_identifiable"])
    out["observed_R2_identifiable"] = out[f"{out['best']}_R2_identifiable"]
    return out
