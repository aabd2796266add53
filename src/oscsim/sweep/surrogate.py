"""A Gaussian-process model of the finished trials, for the UCB tree's `guide: gp` and `guide: gp_ard` (NumPy and
SciPy, no torch).

The tree still picks parents and slot roles as the lab did; the model only orders the one-parameter moves a
slot may take from its parent, by how good it expects the child to be (mean + beta * sd), and offers moves of
several lengths (how far, not only which way). Configurations are encoded in [0, 1] per parameter: log floats
on the log scale, numeric choices by value, other choices by position.

`GP` has one length scale for every parameter (chosen from a grid); `ARDGP` one per parameter (fitted), so it can
tell the parameters that matter from those that do not, which is what choosing *which* parameter to move needs.

`Prior` is what earlier studies say (`ucb_prior`): an ARD GP of their trials over the parameters they share with
this space; `WithPrior` starts this study's model from it (the prior's prediction is the mean, this study's GP
models what differs), so a guide has something to go on before the study's own trials do."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from scipy.optimize import minimize

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


class ARDGP(GP):
    """Zero-mean GP on standardised rewards, RBF kernel with one length scale per dimension (automatic relevance
    determination). Length scales and noise are the maximum a posteriori under a log-normal prior on each length
    scale (centre ARD_PRIOR_CENTRE, sd ARD_PRIOR_SD in log units), found by L-BFGS-B from fixed starts: with few
    trials the prior keeps it near an isotropic kernel, with many the data decide which parameters matter."""

    def __init__(self, X: np.ndarray, y: np.ndarray, ell: np.ndarray | None = None, noise: float | None = None):
        """Fitted to (X, y); or, given `ell` and `noise` (a model fitted before), conditioned on them as they are."""
        self.X = np.asarray(X, float)
        y = np.asarray(y, float)
        self.mean, self.scale = float(y.mean()), float(y.std()) or 1.0
        z = (y - self.mean) / self.scale
        n, d = self.X.shape
        D = (self.X[:, None, :] - self.X[None, :, :]) ** 2  # (n, n, d)
        if ell is None or noise is None:
            lo = np.r_[np.full(d, math.log(ARD_BOUNDS[0])), math.log(NOISES[0])]
            hi = np.r_[np.full(d, math.log(ARD_BOUNDS[1])), math.log(NOISES[-1])]
            starts = [np.r_[np.full(d, math.log(e)), math.log(1e-2)] for e in (ARD_PRIOR_CENTRE, 0.15)]
            fits = [minimize(_neg_log_posterior, x0, args=(D, z), jac=True, method="L-BFGS-B",
                             bounds=list(zip(lo, hi))) for x0 in starts]
            theta = min(fits, key=lambda f: f.fun).x
            ell, noise = np.exp(theta[:d]), float(np.exp(theta[d]))
        self.ell, self.noise = np.asarray(ell, float), float(noise)
        self.L = np.linalg.cholesky(self._k(self.X, self.X, self.ell) + self.noise * np.eye(n))
        self.alpha = np.linalg.solve(self.L.T, np.linalg.solve(self.L, z))

    @staticmethod
    def _k(A: np.ndarray, B: np.ndarray, ell: np.ndarray) -> np.ndarray:  # GP.predict calls it with one ell per dim
        return np.exp(-0.5 * (((A[:, None, :] - B[None, :, :]) / ell) ** 2).sum(-1))


ARD_BOUNDS = (0.02, 20.0)  # length scales in [0, 1] units: 20 is a parameter that does not matter
ARD_PRIOR_CENTRE, ARD_PRIOR_SD = 0.5, 1.0


def _neg_log_posterior(theta: np.ndarray, D: np.ndarray, z: np.ndarray) -> tuple[float, np.ndarray]:
    """-(log marginal likelihood + log prior of the length scales) and its gradient in theta = (log ell, log noise)."""
    d = D.shape[-1]
    ell2, noise = np.exp(2 * theta[:d]), math.exp(theta[d])
    K0 = np.exp(-0.5 * (D / ell2).sum(-1))
    K = K0 + noise * np.eye(len(z))
    try:
        L = np.linalg.cholesky(K)
    except np.linalg.LinAlgError:
        return 1e10, np.zeros_like(theta)
    alpha = np.linalg.solve(L.T, np.linalg.solve(L, z))
    Kinv = np.linalg.solve(L.T, np.linalg.solve(L, np.eye(len(z))))
    W = np.outer(alpha, alpha) - Kinv  # d lml / dK, times 2
    u = (theta[:d] - math.log(ARD_PRIOR_CENTRE)) / ARD_PRIOR_SD
    value = 0.5 * z @ alpha + np.log(np.diag(L)).sum() + 0.5 * (u**2).sum()
    grad = np.empty_like(theta)
    grad[:d] = -0.5 * np.einsum("ij,ij,ijk->k", W, K0, D / ell2) + u / ARD_PRIOR_SD
    grad[d] = -0.5 * noise * np.trace(W)
    return float(value), grad


PriorStudies = list[list[tuple[dict[str, Any], float]]]  # earlier studies: one list of (params, reward) each
UNSHARED = ("seed",)  # a training seed's value says nothing about another study (its draws differ)


class Prior:
    """Earlier studies' trials as a model: each study's rewards standardised on their own (studies of other
    problems have other scales), pooled, and fitted by an ARD GP over the parameters of `space` that every
    prior trial sets (but the seed). Encoded with this space's ranges, so a learning rate means the same value in both; a
    prior value outside this space's range lies outside [0, 1], where the GP extrapolates."""

    def __init__(self, space: Mapping[str, BaseDistribution], studies: PriorStudies):
        trials = [(c, v) for s in studies for c, v in s]
        self.names = [n for n in space if n not in UNSHARED and trials and all(n in c for c, _ in trials)]
        if not self.names:
            raise ValueError(f"the prior studies share no parameter with the search space ({', '.join(space)})")
        z = []
        for s in studies:
            v = np.asarray([r for _, r in s], float)
            z.append((v - v.mean()) / (v.std() or 1.0))
        self.cols = [list(space).index(n) for n in self.names]
        sub = {n: space[n] for n in self.names}
        X = np.stack([encode(sub, c) for c, _ in trials])
        self.gp = ARDGP(X, np.concatenate(z))

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The prior's standardised mean and sd at points X encoded in the whole space (n, d)."""
        mu, sd = self.gp.predict(np.asarray(X, float)[:, self.cols])
        return (mu - self.gp.mean) / self.gp.scale, sd / self.gp.scale


class WithPrior:
    """This study's rewards as the prior's prediction (in this study's units: its mean and sd) plus a GP of what
    differs, fitted once the study has MIN_POINTS trials; before that, the prior alone."""

    def __init__(self, prior: Prior, X: np.ndarray, y: np.ndarray, ard: bool):
        self.prior, y = prior, np.asarray(y, float)
        self.mean = float(y.mean()) if len(y) else 0.0
        self.scale = float(y.std()) if len(y) > 1 and y.std() > 0 else 1.0
        self.residual = None
        if len(y) >= MIN_POINTS:
            r = (y - self.mean) / self.scale - prior.predict(X)[0]
            self.residual = ARDGP(X, r) if ard else GP(X, r)

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        zp, sp = self.prior.predict(X)
        if self.residual is None:
            return self.mean + self.scale * zp, self.scale * sp
        rm, rs = self.residual.predict(X)
        return self.mean + self.scale * (zp + rm), self.scale * rs


def fit(space: Mapping[str, BaseDistribution], configs: Sequence[Mapping[str, Any]],
        rewards: Sequence[float], ard: bool = False, prior: Prior | None = None) -> GP | ARDGP | WithPrior | None:
    """A GP of reward over configurations (`ard`: one length scale per parameter), started from `prior` when
    given; None with fewer than MIN_POINTS finished trials and no prior."""
    X = np.stack([encode(space, c) for c in configs]) if configs else np.zeros((0, len(space)))
    if prior is not None:
        return WithPrior(prior, X, np.asarray(rewards, float), ard)
    if len(configs) < MIN_POINTS:
        return None
    y = np.asarray(rewards, float)
    return ARDGP(X, y) if ard else GP(X, y)
