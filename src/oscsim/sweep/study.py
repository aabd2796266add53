"""Optuna studies for sweeps: storage, samplers, objective values, and the checks that keep a resumed
study coherent (same search space, objectives and simulation)."""
from __future__ import annotations

import math
import random
import time
import warnings
from typing import Any, Mapping

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from .resilient import RetryingStorage
from .settings import objective_sign
from .planner import FIRST_BATCHES, GUIDES
from .surrogate import PriorStudies
from .ucb_sampler import UCBTreeSampler

SAMPLERS = ("ucb_tree", "tpe", "gp", "random", "grid")
OBJECTIVE_BOUNDS = {"rate_constants_R2": (-1.0, 1.0), "test_R2": (-1.0, 1.0)}  # one exploded rollout can't swamp


class StudyError(ValueError):
    """A study cannot be used as asked; the message is one line."""


def objective_values(metrics: Mapping[str, Any], objectives: list[str]) -> list[float] | None:
    """The values told to Optuna, bounded (e.g. test_R2 clipped at -1); None when any is not finite."""
    out = []
    for name in objectives:
        v = metrics.get(name)
        if v is None or not isinstance(v, (int, float)) or math.isnan(v):
            return None
        lo, hi = OBJECTIVE_BOUNDS.get(name, (-math.inf, math.inf))
        v = min(max(float(v), lo), hi)
        if not math.isfinite(v):
            return None
        out.append(v)
    return out


SCHEMA_ATTEMPTS = 8
# What a worker sees when another creates the same new study database at the same moment (RDBStorage creates
# the tables and writes the schema version without a lock): SQLite's and PostgreSQL's words for it.
_SCHEMA_RACE = ("already exists", "unique constraint failed: alembic_version", "database is locked",
                "duplicate key value violates unique constraint")


def schema_race(reason: str) -> bool:
    """Whether opening a storage failed only because another process was creating its schema at the same time."""
    return any(words in reason.lower() for words in _SCHEMA_RACE)


def open_storage(url: str, heartbeat_interval: int | None = None, grace_period: int | None = None,
                 max_retry: int = 1) -> RetryingStorage:
    """An RDB storage (SQLite or PostgreSQL) that waits out database outages (`resilient`); with heartbeats, a
    dead worker's trial fails and is retried."""
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        from pathlib import Path

        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    if heartbeat_interval:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            callback = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
        kwargs.update(heartbeat_interval=int(heartbeat_interval), grace_period=grace_period,
                      heartbeat_stale_trial_callback=callback)
    if url.startswith("postgresql"):
        kwargs["engine_kwargs"] = {"pool_pre_ping": True, "connect_args": {"connect_timeout": 10}}
    for attempt in range(SCHEMA_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                return RetryingStorage(RDBStorage(url, **kwargs))
        except Exception as e:  # unreachable server, bad URL, missing driver; or another worker creating the schema
            reason = str(getattr(e, "orig", e)).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if attempt + 1 < SCHEMA_ATTEMPTS and schema_race(reason):
                time.sleep(random.uniform(0.05, 0.3) * (attempt + 1))  # the other worker's tables are there on retry
                continue
            raise StudyError(f"hydra.sweeper.storage={_redact(url)}: cannot open ({reason})") from e
    raise AssertionError("unreachable")


def _redact(url: str) -> str:
    """Hide a password in a database URL."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}" if ":" in creds else url
    return url


RESEEDED_ON_RESUME = ("tpe", "gp", "random")  # samplers that draw from one generator seeded once


def resumed_seed(seed: int, n_trials: int) -> int:
    """The seed of a seeded Optuna sampler (tpe, gp, random) in a process resuming a study that holds n_trials:
    those samplers draw from one generator seeded at construction, so a new process with the study's seed would
    draw the configurations of the study's first trials again (seen: a resumed random study's trials 9-12 repeated
    5-8). A fresh study (0 trials) keeps the seed itself, so studies still reproduce from their seed."""
    return int(seed) if n_trials == 0 else int(np.random.SeedSequence([int(seed), n_trials]).generate_state(1)[0])


def make_sampler(kind: str, space: dict[str, BaseDistribution], base: dict[str, Any], *, seed: int, n_parallel: int,
                 n_iter_block: int, ucb_c: float, first_batch_params: list[str] | None,
                 ucb_guide: str = "none", ucb_first_batch: str = "lab", ucb_rerun_root: bool = True,
                 ucb_exploit_beta: float = 1.0, ucb_prior: PriorStudies | None = None,
                 ) -> optuna.samplers.BaseSampler:
    if kind == "ucb_tree":
        first = [p for p in (first_batch_params or []) if p in space] or None
        if ucb_guide not in GUIDES:
            raise StudyError(f"hydra.sweeper.ucb_guide={ucb_guide}: must be one of {', '.join(GUIDES)}")
        if ucb_first_batch not in FIRST_BATCHES:
            raise StudyError(f"hydra.sweeper.ucb_first_batch={ucb_first_batch}: must be one of {', '.join(FIRST_BATCHES)}")
        if not ucb_exploit_beta >= 0:
            raise StudyError(f"hydra.sweeper.ucb_exploit_beta={ucb_exploit_beta}: must be >= 0")
        return UCBTreeSampler(space, base, n_parallel=n_parallel, n_iter_block=n_iter_block, ucb_c=ucb_c,
                              seed=seed, first_batch_params=first, guide=ucb_guide,
                              first_batch=ucb_first_batch, rerun_root=ucb_rerun_root, exploit_beta=ucb_exploit_beta,
                              prior=ucb_prior)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(4, n_parallel), constant_liar=True)
    if kind == "gp":  # Optuna's Gaussian-process sampler (it brings torch into the sweeper process)
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=max(4, n_parallel))
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "grid":
        from optuna.distributions import CategoricalDistribution

        not_discrete = [k for k, d in space.items() if not isinstance(d, CategoricalDistribution)]
        if not_discrete:
            raise StudyError(f"hydra.sweeper.params.{not_discrete[0]}: the grid sampler needs choice(...) values")
        return _AskTellGridSampler({k: list(d.choices) for k, d in space.items()}, seed=seed)
    raise StudyError(f"hydra.sweeper.sampler={kind}: must be one of {', '.join(SAMPLERS)}")


class _AskTellGridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler calls study.stop() when the grid is exhausted, which only works inside
    study.optimize; in ask/tell the sweep's n_trials ends the sweep instead."""

    def after_trial(self, study, trial, state, values) -> None:  # type: ignore[override]
        try:
            super().after_trial(study, trial, state, values)
        except RuntimeError:
            pass


def make_pruner(kind: str | None) -> optuna.pruners.BasePruner:
    if kind in (None, "none"):
        return optuna.pruners.NopPruner()
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=1)
    if kind == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(p_threshold=0.1)
    raise StudyError(f"hydra.sweeper.pruner={kind}: must be none, median or wilcoxon")


def open_study(name: str, storage: RDBStorage, directions: list[str], sampler: optuna.samplers.BaseSampler,
               pruner: optuna.pruners.BasePruner, fingerprint: dict[str, Any]) -> optuna.Study:
    """Create the study, or load it and check that it was made with the same fingerprint (search space,
    objectives, simulation): resuming a study under other settings would mix incomparable trials."""
    for d in directions:
        if d not in ("maximize", "minimize"):
            raise StudyError(f"hydra.sweeper.directions: {d} must be maximize or minimize")
    objectives = list(fingerprint.get("objectives", []))
    if objectives and len(objectives) != len(directions):
        raise StudyError(f"hydra.sweeper.directions={directions}: must give one direction per objective {objectives}")
    for o, d in zip(objectives, directions):
        if d != ("minimize" if objective_sign(o) < 0 else "maximize") and (objective_sign(o) < 0 or o.endswith("R2")):
            raise StudyError(f"hydra.sweeper.directions: {o} must be {'minimized' if objective_sign(o) < 0 else 'maximized'}, "
                             f"got {d}")
    study = optuna.create_study(study_name=name, storage=storage, directions=directions, sampler=sampler,
                                pruner=pruner, load_if_exists=True)
    stored = study.user_attrs.get("fingerprint")
    if stored is None:
        study.set_user_attr("fingerprint", fingerprint)
        return study
    if [d.name.lower() for d in study.directions] != directions:
        raise StudyError(f"study {name}: created with directions {[d.name.lower() for d in study.directions]}, "
                         f"not {directions}; use another hydra.sweeper.study_name")
    for key in ("objectives", "search_space", "simulation"):
        if stored.get(key) != fingerprint.get(key):
            what = {"objectives": "objectives", "search_space": "search space",
                    "simulation": "simulation settings"}[key]
            diff = _first_difference(stored.get(key), fingerprint.get(key))
            raise StudyError(f"study {name}: created with other {what} ({diff}); "
                             "use another hydra.sweeper.study_name")
    return study


def _first_difference(old: Any, new: Any) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new)):
            if old.get(k) != new.get(k):
                return f"{k}: {old.get(k)} -> {new.get(k)}"
    return f"{old} -> {new}"
