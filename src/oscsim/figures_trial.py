"""Figures of one trial: what the lab's language model looked at, drawn against the truth."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .dataset import Dataset  # noqa: E402
from .evaluate import Evaluation  # noqa: E402
from .figures_data import _save  # noqa: E402


def trial_figures(ev: Evaluation, ds: Dataset, history: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    m, cv = ev.metrics, ev.curves
    paths = []

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    c = cv["c"]
    alpha = m["alpha"]
    for ax, s in zip(axes, (1, 2)):
        y = np.abs(cv[f"sub_{s}"])
        ax.plot(c, y, label=f"|MLP_sub(c, {s})|")
        ax.plot(c, alpha**s * c**s, "k--", label=f"alpha^{s} c^{s} (truth, scaled)")
        seen = s in m["MLP_sub_powers_in_data"]
        ax.set(xlabel="c", title=f"|s|={s}: exponent {m[f'MLP_sub_exponent_{s}']:.2f}" + ("" if seen else " (no such edge in data)"))
        ax.legend(fontsize=8)
    paths.append(_save(fig, out / "MLP_sub.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    types = ds.network.metabolite_type
    for t in range(len(ds.network.homeostasis_lambda)):
        ax.plot(cv["node_c"], cv["node"][:, types == t], color=f"C{t}", lw=0.5, alpha=0.4)
        lam, base = ds.network.homeostasis_lambda[t], ds.network.homeostasis_baseline[t]
        ax.plot(cv["node_c"], -lam * (cv["node_c"] - base), color=f"C{t}", ls="--", lw=2,
                label=f"type {t}: true slope {-lam:.4f}, learned {m[f'MLP_node_slope_{t}']:.4f}")
    ax.set(xlabel="c", ylabel="MLP_node(c, a_i)", title="homeostasis")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "MLP_node.png"))

    fig, ax = plt.subplots(figsize=(5, 5))
    true = ds.network.log_k
    ok = ~ev.outliers
    ax.scatter(true[ok], ev.corrected_log_k[ok], s=8, label="reactions")
    ax.scatter(true[~ok], ev.corrected_log_k[~ok], s=12, color="red", label=f"outliers ({(~ok).sum()})")
    lims = [min(true.min(), np.nanmin(ev.corrected_log_k)) - 0.1, max(true.max(), np.nanmax(ev.corrected_log_k)) + 0.1]
    ax.plot(lims, lims, "k:", lw=1)
    ax.set(xlabel="true log10 k", ylabel="learned log10 k (alpha-corrected)",
           title=f"R2={m['rate_constants_R2']:.3f}, identifiable R2={m['rate_constants_R2_identifiable']:.3f}, alpha={alpha:.3f}")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "rate_constants.png"))

    fig, axes = plt.subplots(4, 1, figsize=(9, 8), sharex=True)
    t = np.arange(len(ev.rollout_true)) * ds.params.delta_t
    for ax, i in zip(axes, np.linspace(0, ds.params.n_metabolites - 1, 4).astype(int)):
        ax.plot(t, ev.rollout_true[:, i], "k", lw=1, label="true")
        ax.plot(t, np.clip(ev.rollout_pred[:, i], -1e3, 1e3), "C1", lw=1, label="rollout")
        ax.set_ylabel(f"c[{i}]")
    axes[0].legend(fontsize=8)
    axes[0].set_title(f"rollout: test_R2={m['test_R2']:.3g}, horizon {m['rollout_horizon']} frames")
    axes[-1].set_xlabel("time")
    paths.append(_save(fig, out / "rollout.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    it = np.asarray(history["iteration"])
    for name in ("prediction", "MLP_sub_diff", "MLP_node_L1", "MLP_sub_norm", "k_floor", "k_range"):
        v = np.asarray(history[name])
        if len(v) and np.any(v > 0):
            ax.semilogy(it, np.clip(v, 1e-12, None), label=name)
    ax.set(xlabel="iteration", ylabel="loss term", title="loss components")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "losses.png"))
    return paths
