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


# Keys added after the first datasets were cached: left out of the cache key while at their default, so the
# regimes' datasets keep their keys.
LATER_DEFAULTS = {"network": "oscillatory", "path": "", "max_reactions": 0, "kinetics": "mass_action",
                  "log_km_min": -1.0, "log_km_max": 1.0, "drive": True, "flux_limit": False, "source": ""}
NETWORKS = ("oscillatory", "sbml")
KINETICS = ("mass_action", "michaelis_menten")


@dataclass(frozen=True, kw_only=True)
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
    cycle_fraction: float = 1.0  # the oscillatory generator's (unused by an SBML network)
    cycle_length: int = 3
    max_metabolites_per_reaction: int = 4
    homeostasis_lambda: tuple[float, ...] = field(default=())
    homeostasis_baseline: tuple[float, ...] = field(default=())
    homeostatic_strength: float = 0.0
    source: str = ""  # a file read: a user's data set or an SBML model, its path and content hash
    network: str = "oscillatory"  # oscillatory (the lab's generator) | sbml (the topology of `path`)
    path: str = ""  # network=sbml: the SBML file, or cobra:<name> for a model COBRApy ships
    max_reactions: int = 0  # network=sbml: keep a connected subgraph of this many reactions (0: all)
    kinetics: str = "mass_action"  # mass_action | michaelis_menten (SPEC §11)
    log_km_min: float = -1.0  # Michaelis-Menten: log10 Km per substrate edge uniform in [min, max]
    log_km_max: float = 1.0
    drive: bool = True  # boundary species follow the seeded signal of SPEC §11 (false: held at c0)
    flux_limit: bool = False  # scale each reaction so no substrate is over-consumed in one Euler step

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
            (self.network in NETWORKS, "network", " or ".join(NETWORKS), self.network),
            (self.kinetics in KINETICS, "kinetics", " or ".join(KINETICS), self.kinetics),
            (self.log_km_min <= self.log_km_max, "log_km_min", f"<= log_km_max ({self.log_km_max})", self.log_km_min),
            (isinstance(self.max_reactions, int) and self.max_reactions >= 0, "max_reactions", "an integer >= 0 (0: all)", self.max_reactions),
        ]
        for ok, key, allowed, value in checks:
            if not ok:
                raise ConfigError(f"simulation.{key}={value}: must be {allowed}")

    @property
    def user_data(self) -> bool:
        """True for a user's data set (read, not simulated)."""
        return bool(self.source) and self.network != "sbml"

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["homeostasis_lambda"] = list(self.homeostasis_lambda)
        d["homeostasis_baseline"] = list(self.homeostasis_baseline)
        for key, default in LATER_DEFAULTS.items():
            if d[key] == default:
                del d[key]  # so a regime's cache key is what it was before the key existed
        return d

    def digest(self) -> str:
        """Short hash of every setting: the dataset cache key."""
        blob = json.dumps({**self.as_dict(), "format": DATASET_FORMAT}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:10]
