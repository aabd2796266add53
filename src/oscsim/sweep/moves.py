"""One move of one parameter (SPEC §5: a child copies its parent and mutates one parameter), and uniform draws.

Step rules (``step``), direction +1 = "high", -1 = "low":

* log float: x2 up, /2.5 down (0.005 -> 0.01, 0.0005 -> 0.0002, as the lab did); the conservative
  step of the exploit slot is x1.5 / /1.5. Results are rounded to 3 significant digits (keeps
  values readable, e.g. 0.0002 rather than 0.00019999999999999998), then clipped to [low, high].
* linear float: +-10 % of (high - low) (conservative: 5 %), at least one ``step`` and snapped to
  the step grid when the distribution has one; clipped.
* int: +-step; log int: x2 / /2 (conservative x1.5 / /1.5), always at least +-1; clipped.
* categorical: numeric choices move to the adjacent value in sorted order; other choices (bool,
  str) move to the adjacent choice in the declared order (with two choices: the other value).
* bound (boundary-probe): the parameter jumps to low/high (first/last choice).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from .scores import Move

_LOG_UP, _LOG_DOWN, _LOG_SMALL = 2.0, 2.5, 1.5
_LIN_FRAC, _LIN_SMALL_FRAC = 0.10, 0.05


def contains(dist: BaseDistribution, value: Any) -> bool:
    """Whether ``value`` is a value of ``dist`` (in range, on its step grid, one of its choices)."""
    try:
        internal = dist.to_internal_repr(value)  # ValueError: not a choice, not a number, NaN, <= 0 on log
    except (ValueError, TypeError):
        return False
    if isinstance(dist, CategoricalDistribution):
        return True
    if not dist.low <= internal <= dist.high:
        return False
    if isinstance(dist, IntDistribution):
        return (internal - dist.low) % dist.step == 0
    if dist.step is None:
        return True
    k = (internal - dist.low) / dist.step
    return abs(k - round(k)) < 1.0e-8  # Optuna's own tolerance for a float grid


def canon(dist: BaseDistribution, value: Any) -> Any:
    """Plain JSON-able Python value of the distribution's type (1 and 1.0 must compare equal)."""
    if isinstance(dist, FloatDistribution):
        return float(value)
    if isinstance(dist, IntDistribution):
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def all_moves(space: dict[str, BaseDistribution]) -> list[Move]:
    """Every (param, direction) of the parameters that can move, in the space's order."""
    return [(p, d) for p, dist in space.items() if not dist.single() for d in (1, -1)]


def step(dist: BaseDistribution, value: Any, direction: int, kind: str) -> Any | None:
    """The parameter value after one move; None when the move changes nothing.

    kind: "step" (normal), "small" (conservative exploit step) or "bound" (jump to a bound).
    """
    if isinstance(dist, CategoricalDistribution):
        new = _categorical_step(dist, value, direction, kind)
    elif kind == "bound":
        new = dist.high if direction > 0 else dist.low
    elif isinstance(dist, FloatDistribution):
        new = _float_step(dist, value, direction, kind)
    elif isinstance(dist, IntDistribution):
        new = _int_step(dist, value, direction, kind)
    else:  # pragma: no cover - Optuna has no other distribution types
        return None
    if new is None:
        return None
    new = canon(dist, new)
    if new == value or not contains(dist, new):
        return None
    return new


def line(dist: BaseDistribution, value: Any, direction: int, n: int = 8) -> list[Any]:
    """Values of one parameter from ``value`` (excluded) to its bound in ``direction`` (included): up to ``n``
    points, evenly spaced on the parameter's scale (log for log distributions), or every choice on that side.
    How far a guided move goes is chosen among these (``planner``, guide ``gp``)."""
    if isinstance(dist, CategoricalDistribution):
        order = _cat_order(dist)
        if value not in order:
            return []
        i = order.index(value)
        side = order[i + 1:] if direction > 0 else order[:i][::-1]
        return [canon(dist, v) for v in side]
    if not isinstance(dist, (FloatDistribution, IntDistribution)):  # pragma: no cover
        return []
    end = dist.high if direction > 0 else dist.low
    if value == end:
        return []
    if dist.log:
        points = np.geomspace(float(value), float(end), n + 1)[1:]
    else:
        points = np.linspace(float(value), float(end), n + 1)[1:]
    out = []
    for v in map(float, points):
        v = _snap(dist, v)
        if v != value and contains(dist, v) and v not in out:
            out.append(v)
    return out


def _categorical_step(dist: CategoricalDistribution, value: Any, direction: int, kind: str) -> Any | None:
    order = _cat_order(dist)
    if value not in order:
        return None
    if kind == "bound":
        return order[-1] if direction > 0 else order[0]
    i = order.index(value) + direction
    return order[i] if 0 <= i < len(order) else None


def _float_step(dist: FloatDistribution, value: float, direction: int, kind: str) -> float:
    if dist.log:
        f = _LOG_SMALL if kind == "small" else (_LOG_UP if direction > 0 else _LOG_DOWN)
        new = _round_sig(value * f if direction > 0 else value / f, 3)
    else:
        delta = (_LIN_SMALL_FRAC if kind == "small" else _LIN_FRAC) * (dist.high - dist.low)
        if dist.step is not None:
            delta = max(1, round(delta / dist.step)) * dist.step
        new = value + direction * delta
        if dist.step is not None:
            new = dist.low + round((new - dist.low) / dist.step) * dist.step
        new = _round_sig(new, 12)
    return min(max(new, dist.low), dist.high)


def _int_step(dist: IntDistribution, value: int, direction: int, kind: str) -> int:
    if dist.log:
        f = _LOG_SMALL if kind == "small" else 2.0
        new = max(value + 1, round(value * f)) if direction > 0 else min(value - 1, round(value / f))
    else:
        new = value + direction * dist.step
    return min(max(int(new), dist.low), dist.high)


def numeric_choices(dist: CategoricalDistribution) -> bool:
    """Whether every choice is a number (so choices have an order by value)."""
    return all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in dist.choices)


def _cat_order(dist: CategoricalDistribution) -> list[Any]:
    choices = list(dist.choices)
    return sorted(choices) if numeric_choices(dist) else choices


def _snap(dist: FloatDistribution | IntDistribution, v: float, round_log_only: bool = False) -> Any:
    """A number as a value of the distribution: on its step grid, else 3 significant digits (log parameters
    only, with `round_log_only`), clipped to its range."""
    if isinstance(dist, IntDistribution) or dist.step is not None:
        v = dist.low + round((v - dist.low) / dist.step) * dist.step
    elif dist.log or not round_log_only:
        v = _round_sig(v, 3)
    return canon(dist, min(max(v, dist.low), dist.high))


def _round_sig(v: float, digits: int) -> float:
    return float(f"{v:.{digits}g}")


def draw(dist: BaseDistribution, rng: np.random.Generator) -> Any:
    """A uniform (log-uniform for log distributions) draw inside the distribution."""
    if isinstance(dist, CategoricalDistribution):
        return canon(dist, dist.choices[int(rng.integers(len(dist.choices)))])
    if isinstance(dist, FloatDistribution):
        if dist.log:
            v = math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))
        elif dist.step is not None:
            n = int(round((dist.high - dist.low) / dist.step))
            v = dist.low + int(rng.integers(n + 1)) * dist.step
        else:
            v = rng.uniform(dist.low, dist.high)
        return float(min(max(v, dist.low), dist.high))
    if isinstance(dist, IntDistribution):
        if dist.log:
            v = int(round(math.exp(rng.uniform(math.log(dist.low), math.log(dist.high)))))
        else:
            v = dist.low + int(rng.integers((dist.high - dist.low) // dist.step + 1)) * dist.step
        return int(min(max(v, dist.low), dist.high))
    raise TypeError(f"unsupported distribution {dist!r}")


def latin(space: dict[str, BaseDistribution], n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """n configurations that cover the space: a Latin hypercube (each parameter's range cut into n equal strata,
    on the log scale for log parameters, one draw per stratum, strata shuffled per parameter)."""
    configs: list[dict[str, Any]] = [{} for _ in range(n)]
    for name, dist in space.items():
        u = (rng.permutation(n) + rng.uniform(size=n)) / n
        for c, q in zip(configs, u):
            if isinstance(dist, CategoricalDistribution):
                c[name] = canon(dist, dist.choices[min(int(q * len(dist.choices)), len(dist.choices) - 1)])
                continue
            lo, hi = float(dist.low), float(dist.high)
            v = math.exp(math.log(lo) + q * (math.log(hi) - math.log(lo))) if dist.log else lo + q * (hi - lo)
            c[name] = _snap(dist, v, round_log_only=True)
    return configs


def describe(param: str, old: Any, new: Any) -> str:
    """The lab's mutation text: ``lr_k: 0.005 -> 0.01``."""
    return f"{param}: {_fmt(old)} -> {_fmt(new)}"


def _fmt(v: Any) -> str:
    return format(v, "g") if isinstance(v, float) else str(v)
