"""Figures of a simulated dataset: traces, kinograph, S, singular values. Written next to the data."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .dataset import Dataset  # noqa: E402
from .dynamics import activity_rank  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def dataset_figures(ds: Dataset, out: Path, max_traces: int = 30) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    c = ds.concentrations
    t = np.arange(len(c)) * ds.params.delta_t
    paths = []

    fig, ax = plt.subplots(figsize=(9, 7))
    step = max(1, ds.params.n_metabolites // max_traces)
    offset = 0.0
    for i in range(0, ds.params.n_metabolites, step):
        ax.plot(t, c[:, i] + offset, lw=0.7)
        offset += float(np.ptp(c[:, i])) * 1.1 + 1e-3
    ax.set(xlabel="time", ylabel="concentration (offset)", title=f"{ds.params.name}: every {step}th metabolite")
    ax.set_yticks([])
    paths.append(_save(fig, out / "concentration_traces.png"))

    fig, ax = plt.subplots(figsize=(9, 5))
    im = ax.imshow(c.T, aspect="auto", cmap="viridis", extent=[t[0], t[-1], c.shape[1], 0])
    fig.colorbar(im, ax=ax, label="concentration")
    ax.set(xlabel="time", ylabel="metabolite", title="kinograph")
    paths.append(_save(fig, out / "kinograph.png"))

    S = ds.network.S
    fig, ax = plt.subplots(figsize=(9, 4))
    lim = max(1.0, float(np.abs(S).max()))
    im = ax.imshow(S, aspect="auto", cmap="bwr", vmin=-lim, vmax=lim, interpolation="nearest")
    fig.colorbar(im, ax=ax, label="s")
    ax.set(xlabel="reaction", ylabel="metabolite", title="stoichiometric matrix S")
    paths.append(_save(fig, out / "stoichiometry.png"))

    rank, sv = activity_rank(c)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(np.arange(1, len(sv) + 1), sv, ".-")
    ax.axvline(rank, color="r", ls="--", label=f"activity rank {rank} (99% of sum sigma^2)")
    ax.set(xlabel="index", ylabel="singular value", title="singular-value spectrum")
    ax.legend()
    paths.append(_save(fig, out / "singular_values.png"))
    return paths
