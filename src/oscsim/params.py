"""Simulation parameters as a plain dataclass, validated before any work is done."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping


# Bump when the simulator's output for the same settings changes, so old caches are not reused.
DATASET_FORMAT = 3


class ConfigError(ValueError):
    """A setting is out of range; the message is one line naming the key."""


# Keys of the `simulation` group that say what is observed of the trajectory, not how it is simulated: they
# are ObservationParams', so they change neither the simulated dataset nor its cache key.
OBSERVATION_KEYS = ("noise", "stride")


@dataclass(frozen=True)
class ObservationParams:
    """What training sees (SPEC §9): every `stride`-th frame, each value times (1 + noise * N(0, 1))."""

    noise: float = 0.0
    stride: int = 1

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> "ObservationParams":
        o = cls(**{k: m[k] for k in OBSERVATION_KEYS if k in m and m[k] is not None})
        if not (isinstance(o.noise, (int, float)) and 0 <= o.noise < 1):
            raise ConfigError(f"simulation.noise={o.noise}: must be in [0, 1) (the sigma of multiplicative noise)")
        if not (isinstance(o.stride, int) and o.stride >= 1):
            raise ConfigError(f"simulation.stride={o.stride}: must be an integer >= 1 (keep every stride-th frame)")
        return o

    @property
    def derivative_free(self) -> bool:
        """True when exact dc/dt is not part of what is observed."""
        return self.noise > 0 or self.stride > 1


@dataclass(frozen=True)
class SimulationParams:
    name: str
    n_metabolites: int
    n_reactions: int
    n_metabolite_types: int
    n_frames: int
    delta_t: float
    seed: int
    concentration_min: float
    concentration_max: float
    log_k_min: float
    log_k_max: float
    cycle_fraction: float
    cycle_length: int
    max_metabolites_per_reaction: int
    homeostasis_lambda: tuple[float, ...] = field(default=())
    homeostasis_baseline: tuple[float, ...] = field(default=())
    homeostatic_strength: float = 0.0
    source: str = ""  # a user's data set: its path and content hash (empty for a simulated regime)

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> "SimulationParams":
        names = {f.name for f in dataclasses.fields(cls)}
        m = {k: v for k, v in m.items() if k not in OBSERVATION_KEYS}
        unknown = sorted(set(m) - names)
        if unknown:
            raise ConfigError(f"simulation.{unknown[0]}: unknown key (allowed: {', '.join(sorted(names | set(OBSERVATION_KEYS)))})")
        kw = dict(m)
        for key in ("homeostasis_lambda", "homeostasis_baseline"):
            kw[key] = tuple(float(x) for x in kw.get(key, ()))
        p = cls(**kw)
        p.validate()
        return p

    def validate(self) -> None:
        """Raise ConfigError with one line naming the first bad key and its allowed range."""
        checks = [
            (self.n_metabolites >= max(self.cycle_length, 1), "n_metabolites", f">= cycle_length ({self.cycle_length})", self.n_metabolites),
            (self.n_reactions >= 1, "n_reactions", ">= 1", self.n_reactions),
            (self.cycle_length >= 2, "cycle_length", ">= 2", self.cycle_length),
            (self.delta_t > 0, "delta_t", "> 0", self.delta_t),
            (self.log_k_min <= self.log_k_max, "log_k_min", f"<= log_k_max ({self.log_k_max})", self.log_k_min),
            (self.concentration_min <= self.concentration_max, "concentration_min", f"<= concentration_max ({self.concentration_max})", self.concentration_min),
            (self.concentration_min >= 0, "concentration_min", ">= 0", self.concentration_min),
            (self.n_frames >= 10, "n_frames", ">= 10", self.n_frames),
            (0.0 <= self.cycle_fraction <= 1.0, "cycle_fraction", "in [0, 1]", self.cycle_fraction),
            (self.max_metabolites_per_reaction >= 2, "max_metabolites_per_reaction", ">= 2", self.max_metabolites_per_reaction),
            (1 <= self.n_metabolite_types <= self.n_metabolites, "n_metabolite_types", f"in [1, n_metabolites={self.n_metabolites}]", self.n_metabolite_types),
            (len(self.homeostasis_lambda) in (0, self.n_metabolite_types), "homeostasis_lambda", f"a list of n_metabolite_types={self.n_metabolite_types} values", list(self.homeostasis_lambda)),
            (len(self.homeostasis_baseline) == len(self.homeostasis_lambda), "homeostasis_baseline", f"a list of {len(self.homeostasis_lambda)} values, like homeostasis_lambda", list(self.homeostasis_baseline)),
        ]
        for ok, key, allowed, value in checks:
            if not ok:
                raise ConfigError(f"simulation.{key}={value}: must be {allowed}")

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["homeostasis_lambda"] = list(self.homeostasis_lambda)
        d["homeostasis_baseline"] = list(self.homeostasis_baseline)
        if not self.source:
            del d["source"]  # so a simulated regime's cache key is what it was before user data existed
        return d

    def digest(self) -> str:
        """Short hash of every setting: the dataset cache key."""
        blob = json.dumps({**self.as_dict(), "format": DATASET_FORMAT}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:10]
