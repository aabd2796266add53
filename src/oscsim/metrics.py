"""The lab's metrics (SPEC §4) as pure NumPy functions, testable on hand-made numbers."""
from __future__ import annotations

import numpy as np

OUTLIER_THRESHOLD = 0.3  # |corrected - true| in log10: a factor of 2


def linear_fit_r2(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares line y ~ a x + b. Returns (R^2 of the fit, slope a)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or np.ptp(x) == 0:
        return float("nan"), float("nan")
    a, b = np.polyfit(x, y, 1)
    ss_res = np.sum((y - (a * x + b)) ** 2)
    ss_tot = np.sum((y - y.mean()) ** 2)
    return float(1.0 - ss_res / ss_tot) if ss_tot > 0 else float("nan"), float(a)


def alpha_corrected_log_k(log_k: np.ndarray, substrate_edges: np.ndarray, alpha: dict[int, float]) -> np.ndarray:
    """log_k_j + sum over j's substrate edges of log10(alpha_|s|): undo the scale MLP_sub took at c = 1 for each
    power (alpha_s = |msg(1, s)|). With |s| = 1 only (rank_50) this is the lab's log_k_j + n_sub_j log10(alpha);
    for |s| = 2 edges the message's own scale at c = 1 is used, since MLP_sub(c, 2) has a scale of its own. A
    reaction without edges is shifted by log10(alpha_1), as the lab's code does (`n_sub_per_rxn.clamp_(min=1)`)."""
    edges = np.asarray(substrate_edges).reshape(-1, 3)
    log_alpha = {int(s): np.log10(max(abs(a), 1e-30)) for s, a in alpha.items()}
    return corrected_by_edge(log_k, edges[:, 1], np.array([log_alpha[int(s)] for s in edges[:, 2]]), log_alpha[1])


def corrected_by_edge(log_k: np.ndarray, edge_reaction: np.ndarray, edge_log_alpha: np.ndarray,
                      edgeless_log_alpha: float) -> np.ndarray:
    """log_k_j + the sum of log10 |msg(1, |s_e|)| over j's substrate edges e (a reaction without edges:
    + edgeless_log_alpha). With learned S each edge's message is taken at the exponent the model learned."""
    out = np.array(log_k, dtype=float)
    edge_reaction = np.asarray(edge_reaction, dtype=np.int64)
    np.add.at(out, edge_reaction, np.asarray(edge_log_alpha, dtype=float))
    out[np.bincount(edge_reaction, minlength=len(out)) == 0] += edgeless_log_alpha
    return out


def rate_constant_metrics(
    corrected: np.ndarray, true: np.ndarray, identifiable: np.ndarray | None = None
) -> dict[str, float]:
    """rate_constants_R2, trimmed_R2, n_outliers, slope, and the R^2 over identifiable reactions."""
    corrected, true = np.asarray(corrected, float), np.asarray(true, float)
    if not np.all(np.isfinite(corrected)) or not np.all(np.isfinite(true)):
        # a diverged model (every reaction an outlier), or a user's data set without the true k (unknown)
        n = len(true) if np.all(np.isfinite(true)) else float("nan")
        return {"rate_constants_R2": float("nan"), "trimmed_R2": float("nan"), "n_outliers": n,
                "slope": float("nan"), "rate_constants_R2_identifiable": float("nan"),
                "n_outliers_identifiable": n}
    r2, _ = linear_fit_r2(true, corrected)
    outlier = np.abs(corrected - true) > OUTLIER_THRESHOLD
    keep = ~outlier if outlier.sum() <= len(true) / 2 else np.ones_like(outlier)
    trimmed_r2, slope = linear_fit_r2(true[keep], corrected[keep])
    out = {"rate_constants_R2": r2, "trimmed_R2": trimmed_r2, "n_outliers": int(outlier.sum()), "slope": slope}
    ident = np.ones(len(true), bool) if identifiable is None else np.asarray(identifiable, bool)
    out["rate_constants_R2_identifiable"] = linear_fit_r2(true[ident], corrected[ident])[0]
    out["n_outliers_identifiable"] = int(outlier[ident].sum())
    return out


def stoichiometry_metrics(learned: np.ndarray, true: np.ndarray, identifiable: np.ndarray | None = None) -> dict[str, float]:
    """Learned against true coefficients of the edges of S: stoichiometry_R2 (the lab's: R^2 of a least-squares
    line), stoichiometry_exact (fraction whose rounded value is the true one) and the same over `identifiable`."""
    learned, true = np.asarray(learned, float), np.asarray(true, float)
    exact = np.round(learned) == true
    ident = np.ones(len(true), bool) if identifiable is None else np.asarray(identifiable, bool)
    return {"stoichiometry_R2": linear_fit_r2(true, learned)[0], "stoichiometry_exact": float(exact.mean()),
            "stoichiometry_exact_identifiable": float(exact[ident].mean()) if ident.any() else float("nan")}


def r2_per_series(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """R^2 of pred against true for each column with non-zero variance (1 - SS_res / SS_tot)."""
    true, pred = np.asarray(true, float), np.asarray(pred, float)
    var = true.var(axis=0)
    ok = var > 0
    ss_res = np.sum((true[:, ok] - pred[:, ok]) ** 2, axis=0)
    ss_tot = np.sum((true[:, ok] - true[:, ok].mean(axis=0)) ** 2, axis=0)
    return 1.0 - ss_res / ss_tot


def pearson_per_series(true: np.ndarray, pred: np.ndarray) -> np.ndarray:
    true, pred = np.asarray(true, float), np.asarray(pred, float)
    ok = (true.std(axis=0) > 0) & (pred.std(axis=0) > 0)
    t = true[:, ok] - true[:, ok].mean(axis=0)
    p = pred[:, ok] - pred[:, ok].mean(axis=0)
    return np.sum(t * p, axis=0) / np.sqrt(np.sum(t**2, axis=0) * np.sum(p**2, axis=0))


def rollout_metrics(true: np.ndarray, pred: np.ndarray, threshold: float = 0.9) -> dict[str, float]:
    """test_R2 and test_pearson (means over metabolites), and rollout_horizon: the longest window [0, h) (h a
    multiple of 10) over which the mean R^2 is at least `threshold`, with every frame of it finite.

    The longest window, not the first one to fail: over the first few frames a metabolite that barely moves has
    a tiny variance, so its R^2 can be hugely negative while the rollout tracks the truth (seen on network seed
    2: mean R^2 0.73 over 10 frames, 0.96 over 200)."""
    finite = np.all(np.isfinite(pred))
    with np.errstate(all="ignore"):
        r2 = r2_per_series(true, pred)
        pr = pearson_per_series(true, pred) if finite else np.array([np.nan])
    test_r2 = float(np.mean(r2)) if finite else float("-inf")
    ok_rows = np.all(np.isfinite(pred), axis=1)
    first_bad = int(np.argmin(ok_rows)) if not ok_rows.all() else len(pred)
    horizon = 0
    for h in range(10, first_bad + 1, 10):
        with np.errstate(all="ignore"):
            if np.mean(r2_per_series(true[:h], pred[:h])) >= threshold:
                horizon = h
    pearson = float(np.mean(pr[np.isfinite(pr)])) if np.isfinite(pr).any() else float("nan")
    return {"test_R2": test_r2, "test_pearson": pearson,
            "rollout_horizon": horizon}


def fitted_exponent(c: np.ndarray, y: np.ndarray) -> float:
    """Exponent b of y ~ a c^b by a line in log-log space (points with c, y > 0)."""
    c, y = np.asarray(c, float), np.abs(np.asarray(y, float))
    ok = (c > 0) & (y > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(c[ok]), np.log(y[ok]), 1)[0])


def dbscan(points: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """Plain DBSCAN labels (-1 = noise) for a few hundred points; avoids a scikit-learn dependency."""
    x = np.asarray(points, float)
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    neighbours = [np.flatnonzero(row <= eps) for row in d]
    core = np.array([len(n) >= min_samples for n in neighbours])
    labels = np.full(len(x), -1)
    cluster = 0
    for i in range(len(x)):
        if labels[i] != -1 or not core[i]:
            continue
        labels[i] = cluster
        stack = [i]
        while stack:
            j = stack.pop()
            if not core[j]:
                continue
            for k in neighbours[j]:
                if labels[k] == -1:
                    labels[k] = cluster
                    stack.append(k)
        cluster += 1
    return labels


def cluster_accuracy(true_labels: np.ndarray, labels: np.ndarray) -> tuple[float, int]:
    """Accuracy of found clusters against true types, matched by the Hungarian method (noise points form
    their own cluster, as the lab counts them). Returns (accuracy, number of clusters excluding noise)."""
    from scipy.optimize import linear_sum_assignment

    labels = np.asarray(labels).copy()
    n_clusters = int(len(set(labels.tolist()) - {-1}))
    labels[labels == -1] = n_clusters
    t_ids, f_ids = np.unique(true_labels), np.unique(labels)
    confusion = np.array([[np.sum((true_labels == t) & (labels == f)) for f in f_ids] for t in t_ids])
    rows, cols = linear_sum_assignment(-confusion)
    return float(confusion[rows, cols].sum() / len(labels)), n_clusters


def trial_status(rate_constants_r2: float) -> str:
    """The lab's classification: converged > 0.9, partial 0.1-0.9, failed below (or non-finite)."""
    if not np.isfinite(rate_constants_r2) or rate_constants_r2 < 0.1:
        return "failed"
    return "converged" if rate_constants_r2 > 0.9 else "partial"
