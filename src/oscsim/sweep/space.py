"""Hydra's sweep grammar (`interval`, `tag(log, ...)`, `choice`, `range`) as Optuna distributions."""
from __future__ import annotations

from typing import Any, Mapping

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution


class SearchSpaceError(ValueError):
    """A `hydra.sweeper.params` entry that cannot be searched; one line naming the key."""


def to_distribution(key: str, value: Any) -> BaseDistribution | None:
    """The distribution for one `params` entry, or None when it is a plain value (not searched)."""
    if not isinstance(value, str):
        return None
    try:
        override = OverridesParser.create().parse_override(f"{key}={value}")
    except Exception as e:  # Hydra's grammar error, shortened to one line
        raise SearchSpaceError(f"hydra.sweeper.params.{key}={value}: {str(e).splitlines()[0]}") from e
    v = override.value()
    log = "log" in getattr(v, "tags", set())
    if isinstance(v, IntervalSweep):
        lo, hi = v.start, v.end
        if lo is None or hi is None or lo >= hi:
            raise SearchSpaceError(f"hydra.sweeper.params.{key}={value}: interval needs start < end")
        if log and lo <= 0:
            raise SearchSpaceError(f"hydra.sweeper.params.{key}={value}: a log interval needs start > 0")
        if isinstance(lo, int) and isinstance(hi, int):
            return IntDistribution(lo, hi, log=log)
        return FloatDistribution(float(lo), float(hi), log=log)
    if isinstance(v, ChoiceSweep):
        return CategoricalDistribution(list(v.list))
    if isinstance(v, RangeSweep):
        values = list(v)
        if all(isinstance(x, int) for x in values) and len(values) > 1:
            step = values[1] - values[0]
            return IntDistribution(values[0], values[-1], step=step)
        return CategoricalDistribution(values)
    return None


def parse_search_space(params: Mapping[str, Any]) -> tuple[dict[str, BaseDistribution], dict[str, Any]]:
    """Split `params` into searched distributions and fixed values."""
    space, fixed = {}, {}
    for key, value in params.items():
        dist = to_distribution(key, value)
        if dist is None:
            fixed[key] = value
        else:
            space[key] = dist
    return space, fixed


def describe(space: Mapping[str, BaseDistribution]) -> dict[str, str]:
    """A stable text form of a search space, stored on the study to detect a changed space on resume."""
    from optuna.distributions import distribution_to_json

    return {k: distribution_to_json(d) for k, d in sorted(space.items())}


def override_value(v: Any) -> str:
    """A value written as a Hydra override."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return "'" + v.replace("'", "\\'") + "'"
    return str(v)
