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

    alpha = m["alpha"]
    if "c_1" in cv:  # a model with MLP_sub
        paths.append(_sub_figure(m, cv, alpha, out))
    if "log_km" in cv and ds.network.log_km is not None:  # a Michaelis-Menten model on Michaelis-Menten data
        paths.append(_km_figure(m, cv["log_km"], ds, out))

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

    if ds.has_truth:  # a user's data set may come without the true k
        fig, ax = plt.subplots(figsize=(5, 5))
        true, learned = ds.network.log_k, ev.corrected_log_k
        unident = np.zeros(len(true), bool)
        unident[m["unidentifiable"]] = True
        weak = np.zeros(len(true), bool)  # Michaelis-Menten with Km learned: Vmax not identifiable together with Km
        if cv.get("km_learned") and ds.network.log_km is not None:
            weak = ~ds.michaelis_menten_identifiable()[0] & ~unident
        for mask, style in ((~ev.outliers & ~unident & ~weak, dict(s=8, label="identifiable")),
                            (ev.outliers & ~unident & ~weak, dict(s=12, color="red", label="identifiable, outlier")),
                            (weak, dict(s=12, marker="x", color="0.6", label="Vmax not identifiable with Km learned")),
                            (unident, dict(s=30, marker="^", facecolors="none", edgecolors="C2",
                                           label="unidentifiable (S: shared monomial / no edge)"))):
            if mask.any():
                ax.scatter(true[mask], learned[mask], **style)
        lims = [min(true.min(), np.nanmin(learned)) - 0.1, max(true.max(), np.nanmax(learned)) + 0.1]
        ax.plot(lims, lims, "k:", lw=1)
        extra = (f"R2 identifiable with Km {m['Vmax_R2_identifiable_with_Km']:.3f}, " if weak.any() else "")
        ax.set(xlabel="true log10 k" + (" (Vmax)" if ds.network.log_km is not None else ""),
               ylabel="model's log10 k (alpha-corrected)",
               title=f"R2={m['rate_constants_R2']:.3f} ({int(m['n_outliers'])} outliers), "
                     f"identifiable R2={m['rate_constants_R2_identifiable']:.3f}\n{extra}alpha={alpha:.3f}")
        ax.legend(fontsize=7)
        paths.append(_save(fig, out / "rate_constants.png"))

    fig, axes = plt.subplots(4, 2, figsize=(13, 8), sharex=True)
    t = np.arange(len(ev.rollout_true)) * ds.params.delta_t
    panels = [("", "training trajectory", ev.rollout_true, ev.rollout_pred)]
    if "heldout_true" in cv:
        panels.append(("heldout_", "held-out trajectory", cv["heldout_true"], cv["heldout_pred"]))
    for col, (prefix, what, tr, pr) in enumerate(panels):
        o = ds.observation if prefix == "" and ds.observation is not None and ds.observation.derivative_free else None
        for ax, i in zip(axes[:, col], np.linspace(0, ds.params.n_metabolites - 1, 4).astype(int)):
            if o is not None:  # what training saw: the noisy, strided observations
                n = min(len(o.c), (len(t) - 1) // o.stride + 1)
                ax.plot(np.arange(n) * o.stride * ds.params.delta_t, o.c[:n, i], ".", color="0.6", ms=2,
                        label=f"observed (noise {o.noise:g}, stride {o.stride})")
            ax.plot(t, tr[:, i], "k", lw=1, label="true")
            ax.plot(t, np.clip(pr[:, i], -1e3, 1e3), "C1", lw=1, label="rollout")
            ax.set_ylabel(f"c[{i}]")
        axes[0, col].set_title(f"{what}: {prefix}test_R2={m[prefix + 'test_R2']:.3g}, "
                               f"horizon {m[prefix + 'rollout_horizon']} frames")
        axes[-1, col].set_xlabel("time")
    axes[0, 0].legend(fontsize=8)
    paths.append(_save(fig, out / "rollout.png"))

    if "sto" in cv:  # learned stoichiometry: coefficients against the truth, and the matrix
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), gridspec_kw={"width_ratios": [1, 1.4, 1.4]})
        true = ds.network.signed_edges[:, 2]
        jitter = np.random.default_rng(0).uniform(-0.08, 0.08, len(true))
        axes[0].scatter(true + jitter, cv["sto"], s=6)
        axes[0].set(xlabel="true coefficient (jittered)", ylabel="learned coefficient",
                    title=f"stoichiometry_R2={m['stoichiometry_R2']:.3f}, exact {m['stoichiometry_exact']:.1%}")
        lim = max(np.abs(ds.network.S).max(), np.abs(cv["S_learned"]).max())
        for ax, mat, name in ((axes[1], ds.network.S, "true S"), (axes[2], cv["S_learned"], "learned S")):
            im = ax.imshow(mat, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
            ax.set(xlabel="reaction", ylabel="metabolite", title=name)
        fig.colorbar(im, ax=axes[2])
        paths.append(_save(fig, out / "stoichiometry.png"))

    fig, ax = plt.subplots(figsize=(7, 4))
    it = np.asarray(history["iteration"])
    for name in ("prediction", "MLP_sub_diff", "MLP_node_L1", "MLP_sub_norm", "k_floor", "k_range", "k_prior",
                 "S_L1", "S_integer", "mass_conservation"):
        v = np.asarray(history[name])
        if len(v) and np.any(v > 0):
            ax.semilogy(it, np.clip(v, 1e-12, None), label=name)
    ax.set(xlabel="iteration", ylabel="loss term", title="loss components")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "losses.png"))
    return paths


def _sub_figure(m: dict, cv: dict, alpha: float, out: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, s in zip(axes, (1, 2)):
        c, y = cv[f"c_{s}"], np.abs(cv[f"sub_{s}"])
        ax.plot(c, y, label=f"|MLP_sub(c, {s})|")
        scale = m.get(f"alpha_{s}", alpha**s)  # MLP_sub's own scale at (c=1, |s|) where the data have that power
        ax.plot(c, scale * c**s, "k--", label=f"{scale:.3g} c^{s} (truth, scaled to MLP_sub at c=1)")
        seen = s in m["MLP_sub_powers_in_data"]
        ax.set(xlabel="c", title=f"|s|={s}: exponent {m[f'MLP_sub_exponent_{s}']:.2f}" + ("" if seen else " (no such edge in data)"))
        ax.legend(fontsize=8)
    return _save(fig, out / "MLP_sub.png")


def _km_figure(m: dict, learned: np.ndarray, ds: Dataset, out: Path) -> Path:
    """Learned against true log10 Km per substrate edge, identifiable edges (SPEC §11) marked."""
    true = ds.network.log_km
    _, ok = ds.michaelis_menten_identifiable()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(true[ok], learned[ok], s=10, label=f"identifiable ({int(ok.sum())})")
    ax.scatter(true[~ok], learned[~ok], s=10, marker="x", color="0.6", label=f"not identifiable ({int((~ok).sum())})")
    lims = [min(true.min(), learned.min()) - 0.1, max(true.max(), learned.max()) + 0.1]
    ax.plot(lims, lims, "k:", lw=1)
    ax.set(xlabel="true log10 Km", ylabel="model's log10 Km",
           title=f"Km R2 (identifiable) = {m.get('Km_R2_identifiable', float('nan')):.3f}")
    ax.legend(fontsize=8)
    return _save(fig, out / "Km.png")
