"""What a wet lab observes of a trajectory (SPEC §9): every `stride`-th frame, with multiplicative Gaussian
noise, and never dc/dt. Pure NumPy: the observation model, the start-state smoothing and the split of the
observed series into training and held-out windows."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The noise draw's seed is the simulation seed plus this, so the noise never repeats the network's draws.
NOISE_SEED_OFFSET = 2000


@dataclass(frozen=True)
class Observation:
    """The series training sees. `c[j]` is the state at simulator frame `j * stride`; the model integrates
    `substeps` Euler steps of `dt` between two observations."""

    c: np.ndarray  # (n_obs, n_met) float32
    dt: float  # the model's integration step
    substeps: int  # Euler steps between two observations
    noise: float
    stride: int

    @property
    def derivative_free(self) -> bool:
        """True when the observed series is not the exact trajectory (so dc/dt cannot be read off it)."""
        return self.noise > 0 or self.stride > 1

    @property
    def frame_substeps(self) -> int:
        """Model steps per frame of the data set (1 for a simulated regime; a user's `simulation.substeps`)."""
        return self.substeps // self.stride

    @property
    def interval(self) -> float:
        """Time between two observations."""
        return self.dt * self.substeps


def observe(c: np.ndarray, noise: float, stride: int, seed: int) -> np.ndarray:
    """Every `stride`-th frame of `c`, times (1 + noise * N(0, 1)) independently per value, clipped at zero
    (a concentration is never negative). float32, like the simulator's output."""
    obs = np.asarray(c, np.float64)[::stride]
    if noise > 0:
        rng = np.random.default_rng(seed + NOISE_SEED_OFFSET)
        obs = np.clip(obs * (1.0 + noise * rng.standard_normal(obs.shape)), 0.0, None)
    return obs.astype(np.float32)


def error_weights(obs: np.ndarray, kind: str) -> np.ndarray:
    """Per-metabolite weights of a window's state error. `absolute`: 1 (errors as measured). `relative`: the
    overall mean level over each metabolite's own mean level, so every metabolite's error counts in units of its
    level, the size of its multiplicative noise (floored at 1e-3 of the overall mean for a metabolite that is
    almost always zero); the overall factor keeps the loss at the size the regularisers were set against."""
    if kind == "absolute":
        return np.ones(obs.shape[1])
    return _in_own_units(np.asarray(obs, np.float64).mean(0))


def derivative_error_weights(dcdt: np.ndarray) -> np.ndarray:
    """Per-metabolite weights of a dc/dt error (`error_scale=relative` fitting exact derivatives): the mean spread
    (std over frames) of the dc/dt over each metabolite's own, never below 1 and at most 100. A nearly flat
    metabolite whose small terms identify a k counts in units of what its derivative does (rank_70's metabolite
    45: spread 0.046 against a mean of 17); the fast ones keep their errors as measured, because they decide how
    long a rollout stays close (weighing them below 1 cost rank_50 a third of its held-out horizon); and the cap
    keeps a metabolite no reaction touches (rank_50's 49: pure homeostasis, spread 1e-4) from bending the shared
    homeostasis MLP to itself (weight 1000 moved the type-0 slope by 32 %)."""
    return np.maximum(_in_own_units(np.asarray(dcdt, np.float64).std(0), floor=1e-2), 1.0)


def _in_own_units(size: np.ndarray, floor: float = 1e-3) -> np.ndarray:
    """mean(size) / size per metabolite, size floored at `floor` of the mean: each error in units of its own
    size, the overall factor keeping the loss at the size the regularisers were set against."""
    overall = float(size.mean())
    return overall / np.maximum(size, floor * overall)


# `window: auto` / `start_smoothing: auto` (loss=observed): chosen from the noise the series itself shows, by
# measurement on rank_50 (README "Your own data"): at 1 % noise neither smoothing nor a longer window helps (seed 1:
# smoothing 0.99903 against 0.9994), from 3 % smoothing the start states over 11 observations does (median 0.9951
# against 0.9797), at 10 % a 20-interval window as well (median identifiable R2 in README). A series strided by m
# gets what was measured there: windows of the same time span, 10 // m intervals (10 frames, each window 10 model
# steps either way), and no smoothing (a half-width of 5 observations would span 5 m frames of the dynamics).
AUTO_SMOOTH_ABOVE, AUTO_SMOOTHING = 0.02, 5
AUTO_LONG_WINDOW_ABOVE, AUTO_WINDOW, AUTO_LONG_WINDOW = 0.06, 10, 20


def noise_estimate(obs: np.ndarray) -> float:
    """sigma of multiplicative noise c (1 + sigma N(0, 1)) on a finely sampled series (frames x metabolites): the
    median over frames and metabolites of |fourth difference| / level, divided by its value for white noise
    (0.6745 sqrt(70) sigma). Fourth differences leave a smooth trajectory's own curvature out (rank_50 at dt 0.1:
    0.0000 without noise; 0.0101, 0.0299, 0.1001 at 1, 3, 10 %)."""
    c = np.asarray(obs, np.float64)
    if len(c) < 5:
        return 0.0
    d4 = np.diff(c, 4, axis=0)
    level = c[2:2 + len(d4)]
    keep = level > 0
    if not keep.any():
        return 0.0
    return float(np.median(np.abs(d4[keep]) / level[keep]) / (0.6745 * np.sqrt(70.0)))


def auto_settings(sigma: float, stride: int) -> tuple[int, int]:
    """(window, start_smoothing) that `auto` means for a series showing noise sigma at this stride."""
    if stride > 1:
        return max(1, AUTO_WINDOW // stride), 0
    return (AUTO_LONG_WINDOW if sigma > AUTO_LONG_WINDOW_ABOVE else AUTO_WINDOW,
            AUTO_SMOOTHING if sigma > AUTO_SMOOTH_ABOVE else 0)


def smooth(obs: np.ndarray, half_width: int) -> np.ndarray:
    """Savitzky-Golay smoothing (quadratic, 2 * half_width + 1 observations) of each metabolite's series,
    clipped at zero; half_width 0 returns the series unchanged. Used for window start states only: the
    targets a window is fitted to stay the raw observations."""
    if half_width <= 0:
        return obs
    from scipy.signal import savgol_filter

    width = min(2 * half_width + 1, len(obs) - (1 - len(obs) % 2))
    if width < 3:
        return obs
    return np.clip(savgol_filter(np.asarray(obs, np.float64), width, 2, axis=0), 0.0, None).astype(obs.dtype)


def window_starts(n_obs: int, window: int, heldout_fraction: float, heldout_window: int = 10
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(training starts, held-out starts): windows [t, t + window] to train on, and windows [t, t + heldout_window]
    to score heldout_loss on, over a series of n_obs observations.

    The series is cut into blocks of 4 held-out windows (fewer on a short series, so at least one block is held
    out); every round(1 / heldout_fraction)-th block is held out (interleaved, so the held-out part spans the
    whole series rather than only its end). No training window touches a held-out observation, and no held-out
    window a training one. The split depends on heldout_window, not on the training window, so configurations
    trained on different windows are scored on the same held-out windows.
    """
    starts = np.arange(max(0, n_obs - window))
    if heldout_fraction <= 0:
        return starts, starts[:0]
    every = max(2, round(1.0 / heldout_fraction))
    block = max(heldout_window + 1, min(4 * heldout_window, n_obs // every))
    last = min(every, n_obs // block) - 1  # a series of fewer than `every` blocks holds out its last full block
    held = (np.arange(n_obs) // block) % every == last  # observation -> in a held-out block

    def inside(length: int, mask: np.ndarray) -> np.ndarray:  # starts whose window lies wholly in `mask`
        t = np.arange(max(0, n_obs - length))
        return t[np.stack([mask[t + j] for j in range(length + 1)]).all(0)] if len(t) else t

    return inside(window, ~held), inside(heldout_window, held)
