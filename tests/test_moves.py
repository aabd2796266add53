"""moves.contains (the sampler's membership test on Optuna's public API) agrees with Optuna's own."""
from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution as Cat
from optuna.distributions import FloatDistribution as Flt
from optuna.distributions import IntDistribution as Int

from oscsim.sweep.moves import contains

DISTS = [Flt(0.0, 1.0, step=0.25), Flt(1e-4, 0.1, log=True), Flt(-1.0, 1.0), Int(1, 5), Int(0, 10, step=2),
         Int(1, 64, log=True)]
VALUES = [-1.0, 0.0, 1e-4, 0.25, 0.3, 0.5, 1.0, 2, 3, 4, 6, 10, 11, 64, 65, float("nan"), "abc", None]


@pytest.mark.parametrize("dist", DISTS)
def test_contains_matches_optuna(dist) -> None:
    for v in VALUES:
        try:
            expected = bool(dist._contains(dist.to_internal_repr(v)))  # Optuna's private check, as reference
        except (ValueError, TypeError):
            expected = False
        assert contains(dist, v) == expected, (dist, v)


def test_contains_categorical() -> None:
    d = Cat([32, 64, "x", False])
    assert [contains(d, v) for v in (32, 64, "x", False, 128, "y")] == [True, True, True, True, False, False]
