"""A Gaussian-process model of the finished trials, for the UCB tree's `guide: gp` (NumPy only, no torch).

The tree still picks parents and slot roles as the lab did; the model only orders the one-parameter moves a
slot may take from its parent, by how good it expects the child to be (mean + beta * sd), and offers moves of
several lengths (how far, not only which way). Configurations are encoded in [0, 1] per parameter: log floats
on the log scale, numeric choices by value, other choices by position."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from .moves import numeric_choices

LENGTH_SCALES = (0.15, 0.3, 0.6, 1.2)  # searched by marginal likelihood at each fit
NOISES = (1e-3, 1e-2, 1e-1)  # noise variance in units of the standardised reward (seeds differ)
MIN_POINTS = 4


def encode(space: Mapping[str, BaseDistribution], config: Mapping[str, Any]) -> np.ndarray:
    """The configuration as a point of [0, 1]^d, one coordinate per parameter of `space`."""
    out = []
    for name, dist in space.items():
        v = config.get(name)
        if isinstance(dist, CategoricalDistribution):
            choices = list(dist.choices)
            if numeric_choices(dist) and len(choices) > 1:
                lo, hi = min(choices), max(choices)
                out.append((float(v) - lo) / (hi - lo) if hi > lo else 0.0)
            else:
                out.append(choices.index(v) / max(1, len(choices) - 1) if v in choices else 0.5)
        elif isinstance(dist, (FloatDistribution, IntDistribution)):
            lo, hi, x = float(dist.low), float(dist.high), float(v)
            if dist.log:
                lo, hi, x = math.log(lo), math.log(hi), math.log(x)
            out.append((x - lo) / (hi - lo) if hi > lo else 0.0)
        else:  # pragma: no cover - Optuna has no other distribution
            out.append(0.5)
    return np.asarray(out, dtype=float)


class GP:
    """Zero-mean GP on standardised rewards, RBF kernel; length scale and noise chosen by marginal likelihood."""

    def __init__(self, X: np.ndarray, y: np.ndarray):
        self.X = np.asarray(X, float)
        y = np.asarray(y, float)
        self.mean, self.scale = float(y.mean()), float(y.std()) or 1.0
        z = (y - self.mean) / self.scale
        best = None
        for ell in LENGTH_SCALES:
            K0 = self._k(self.X, self.X, ell)
            for noise in NOISES:
                L = np.linalg.cholesky(K0 + noise * np.eye(len(z)))
                alpha = np.linalg.solve(L.T, np.linalg.solve(L, z))
                lml = -0.5 * z @ alpha - np.log(np.diag(L)).sum()
                if best is None or lml > best[0]:
                    best = (lml, ell, L, alpha)
        _, self.ell, self.L, self.alpha = best

    @staticmethod
    def _k(A: np.ndarray, B: np.ndarray, ell: float) -> np.ndarray:
        d2 = ((A[:, None, :] - B[None, :, :]) ** 2).sum(-1)
        return np.exp(-0.5 * d2 / ell**2)

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of the reward at the points X (n, d)."""
        Ks = self._k(np.asarray(X, float), self.X, self.ell)
        mu = Ks @ self.alpha
        v = np.linalg.solve(self.L, Ks.T)
        var = np.clip(1.0 - (v**2).sum(0), 1e-12, None)
        return self.mean + self.scale * mu, self.scale * np.sqrt(var)


def fit(space: Mapping[str, BaseDistribution], configs: Sequence[Mapping[str, Any]],
        rewards: Sequence[float]) -> GP | None:
    """A GP of reward over configurations; None with fewer than MIN_POINTS finished trials."""
    if len(configs) < MIN_POINTS:
        return None
    return GP(np.stack([encode(space, c) for c in configs]), np.asarray(rewards, float))
