"""The sweep loop: ask a batch of trials, launch them, tell the results, rewrite the log; repeat.

Hydra-agnostic: the plugin hands it a `launch` function (whatever Hydra launcher is configured) and the
base configuration. Numbering, blocks and the UCB tree live in the study, so the same command resumes."""
from __future__ import annotations

import logging
import threading
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import Trial, TrialState

from ..files import locked
from . import records
from .resilient import is_transient, retry, seconds_since_recovery
from .settings import SweepSettings
from .space import describe, override_value, parse_search_space
from .surrogate import PriorStudies
from .transfer import STUDY_PREFIX, read_prior
from .study import (RESEEDED_ON_RESUME, StudyError, make_pruner, make_sampler, objective_values, open_storage, open_study,
                    resumed_seed)

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What one launched job gave back: its metrics, or the error that stopped it."""

    metrics: dict[str, Any] | None
    error: str | None = None


Launch = Callable[[list[list[str]], list[int]], Sequence[Outcome]]


def suggest(trial: Trial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, FloatDistribution):
        return trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    raise TypeError(f"{name}: unsupported distribution {dist}")


def trials_used(study: optuna.Study) -> int:
    """Trials counted against n_trials: every trial but waiting ones and failures that were retried."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.system_attrs.get("failed_trial") for t in trials} - {None}
    return sum(1 for t in trials if t.state != TrialState.WAITING
               and not (t.state == TrialState.FAIL and t.number in retried))


@contextmanager
def budget_lock(storage: Any, study_name: str) -> Iterator[None]:
    """Serialise "count the trials, then ask" across workers sharing a study, so that together they run
    exactly n_trials: a PostgreSQL advisory lock, or a file lock beside a SQLite database."""
    url = str(storage.engine.url)
    key = zlib.crc32(study_name.encode()) & 0x7FFFFFFF
    if url.startswith("postgresql"):
        from sqlalchemy import text

        def acquire() -> Any:
            conn = storage.engine.connect()
            try:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
                return conn
            except Exception:
                conn.close()
                raise

        conn = retry(acquire, "budget lock")
        try:
            yield
        finally:
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            except Exception as e:  # the server went away: the lock went with the session
                if not is_transient(e):
                    raise
            finally:
                conn.close()
    elif url.startswith("sqlite:///") and storage.engine.url.database not in (None, "", ":memory:"):
        with locked(f"{storage.engine.url.database}.{key}.lock"):
            yield
    else:
        yield


class _Heartbeat:
    """Records heartbeats for running trials from the sweeper process (ask/tell has no thread of its own),
    so a killed worker's trials go stale and are failed and retried by the others."""

    def __init__(self, storage: optuna.storages.BaseStorage, trial_ids: list[int], interval: int | None):
        self.storage, self.ids, self.interval = storage, trial_ids, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while True:
            ok = True
            for tid in self.ids:
                try:
                    self.storage.record_heartbeat(tid)
                except Exception as e:  # the storage retries outages itself; nothing here may kill the sweep
                    log.warning("heartbeat failed: %s", e)
                    ok = False
            # after a failure beat again soon: other workers fail trials whose beat is older than grace_period
            if self.stop.wait(self.interval if ok else min(self.interval, 2)):
                return

    def __enter__(self):
        if self.interval:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.interval:
            self.thread.join()


def read_prior_studies(settings: SweepSettings, storage: Any = None) -> PriorStudies | None:
    """The UCB guide's prior (`ucb_prior`): the earlier studies' rewards, oriented as this study's first objective;
    `study:<name>` entries are read from `storage`, the sweep's own."""
    if not settings.ucb_prior:
        return None
    if settings.ucb_guide == "none":
        raise StudyError("hydra.sweeper.ucb_prior needs a guide: hydra.sweeper.ucb_guide=gp or gp_ard")
    if f"{STUDY_PREFIX}{settings.study_name}" in settings.ucb_prior:  # its own trials would count twice
        raise StudyError(f"hydra.sweeper.ucb_prior: {STUDY_PREFIX}{settings.study_name} is this study itself; "
                         "must name earlier studies")
    return read_prior(list(settings.ucb_prior), 1.0 if settings.directions[0] == "maximize" else -1.0, storage)


class SweepRunner:
    def __init__(self, settings: SweepSettings, base: dict[str, Any], fixed_overrides: list[str], sweep_dir: Path,
                 title: str, simulation_digest: str, regime_lines: list[str] | None = None):
        self.s = settings
        self.space, fixed_params = parse_search_space(settings.params)
        self.fixed = list(fixed_overrides) + [f"{k}={override_value(v)}" for k, v in fixed_params.items()]
        self.base = dict(base)
        self.sweep_dir, self.title, self.regime_lines = Path(sweep_dir), title, regime_lines
        self.fingerprint = {"objectives": list(settings.objectives), "search_space": describe(self.space),
                            "simulation": simulation_digest}
        self.storage = open_storage(settings.storage, settings.heartbeat_interval, settings.grace_period,
                                    settings.max_retry)
        base_params = {k: base.get(k) for k in self.space}
        prior = read_prior_studies(settings, self.storage)
        if prior:  # said once: the plans depend on it
            log.info("UCB guide's prior: %d studies, %d complete trials, from %s", len(prior),
                     sum(map(len, prior)), ", ".join(settings.ucb_prior))

        def sampler(seed: int):
            return make_sampler(settings.sampler, self.space, base_params, seed=seed,
                                n_parallel=settings.n_parallel, n_iter_block=settings.n_iter_block,
                                ucb_c=settings.ucb_c, first_batch_params=settings.first_batch_params,
                                ucb_guide=settings.ucb_guide, ucb_first_batch=settings.ucb_first_batch,
                                ucb_rerun_root=settings.ucb_rerun_root, ucb_exploit_beta=settings.ucb_exploit_beta,
                                ucb_prior=prior)

        self.study = open_study(settings.study_name, self.storage, list(settings.directions), sampler(settings.seed),
                                make_pruner(settings.pruner), self.fingerprint)
        held = len(self.study.get_trials(deepcopy=False))
        if held and settings.sampler in RESEEDED_ON_RESUME:  # resuming: draw on from where the study is
            self.study.sampler = sampler(resumed_seed(settings.seed, held))

    def _enqueue_missing(self) -> None:
        present = {t.user_attrs.get("enqueue_id") for t in self.study.get_trials(deepcopy=False)}
        for entry in self.s.enqueue:
            if entry["id"] not in present:
                self.study.enqueue_trial(dict(entry["params"]), user_attrs={**entry.get("attrs", {}),
                                                                               "enqueue_id": entry["id"]})

    def write_reports(self) -> tuple[Path, Path]:
        return records.write_reports(self.study, self.sweep_dir, self.title, self.base, self.s.n_parallel,
                                     self.s.n_iter_block, self.s.ucb_c, self.regime_lines, self.s.objectives[0])

    def summary_table(self) -> str:
        """A Markdown table of the study's trials: what the lab reads first."""
        keys = list(dict.fromkeys([*self.s.objectives, "rate_constants_R2", "rate_constants_R2_identifiable",
                                   "test_R2", "alpha"]))  # the objectives first
        rows = ["| iter | parent | mutation | status | " + " | ".join(keys) + " |", "|---|---|---|---|" + "---|" * len(keys)]
        for t in sorted(self.study.get_trials(deepcopy=False), key=lambda t: t.number):
            if t.state == TrialState.WAITING:
                continue
            r = records.trial_record(t, self.base, self.s.n_parallel, self.s.n_iter_block)
            m = r.metrics

            def f(k: str) -> str:
                v = m.get(k)
                return f"{v:.4g}" if isinstance(v, (int, float)) else "-"

            rows.append(f"| {r.iter} | {r.parent or 'root'} | {r.mutation or 'None'} | {r.status} | "
                        + " | ".join(f(k) for k in keys) + " |")
        return "\n".join(rows)

    def _job_overrides(self, trial: Trial) -> list[str]:
        params = dict(self.storage.get_trial_system_attrs(trial._trial_id).get("fixed_params") or {})
        params.update(trial.params)
        merged = {**self.base, **params}
        # the lab's Config: order, then oscsim's other keys; unset optional ones (null) left out
        config = {k: merged[k] for k in records.CONFIG_KEYS if merged.get(k) is not None}
        trial.set_user_attr("config", config)
        trial.set_user_attr("sampler", self.s.sampler)
        return [*self.fixed, *(f"{k}={override_value(v)}" for k, v in params.items()),
                f"sweep_trial.storage={override_value(self.s.storage)}",
                f"sweep_trial.study_name={override_value(self.study.study_name)}",
                f"sweep_trial.number={trial.number}", f"sweep_trial.iter={trial.number + 1}",
                f"sweep_trial.pruner={override_value(self.s.pruner or 'none')}"]

    def _tell(self, trial: Trial, out: Outcome) -> None:
        try:
            self._tell_once(trial, out)
        except optuna.exceptions.UpdateFinishedTrialError:  # another worker failed it as stale (and retries it)
            log.warning("trial %d was already finished by another worker (failed as stale while the database "
                        "was away?); its result is kept in its run directory only", trial.number)

    def _tell_once(self, trial: Trial, out: Outcome) -> None:
        m = out.metrics
        if m is None:
            trial.set_user_attr("metrics", {"status": "failed", "error": out.error or "crashed"})
            self.study.tell(trial, state=TrialState.FAIL)
            log.warning("trial %d crashed: %s", trial.number, out.error)
            return
        trial.set_user_attr("metrics", m)
        if m.get("status") == "pruned":
            self.study.tell(trial, state=TrialState.PRUNED)
            return
        values = objective_values(m, self.s.objectives)
        if values is None or "error" in m:  # crashed or non-finite (a low R² is a result, not a failure)
            self.study.tell(trial, state=TrialState.FAIL)
        else:
            self.study.tell(trial, values if len(values) > 1 else values[0])

    def run(self, launch: Launch, after_batch: Callable[[optuna.Study], None] | None = None) -> optuna.Study:
        """Ask, launch and tell batches until the study holds n_trials; ``after_batch`` sees the study after each."""
        # ask/tell with heartbeats is what this runner is for; Optuna warns that it expects optimize()
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        self._enqueue_missing()
        while True:
            if seconds_since_recovery() > (self.s.grace_period or 2 * (self.s.heartbeat_interval or 0)):
                optuna.storages.fail_stale_trials(self.study)
            else:  # after an outage, give the other workers one grace period to beat again
                log.warning("database back after an outage: not failing stale trials for one grace period")
            with budget_lock(self.storage, self.study.study_name):
                remaining = self.s.n_trials - trials_used(self.study)
                trials = [self.study.ask() for _ in range(min(self.s.n_parallel, max(remaining, 0)))]
            if not trials:
                break
            with _Heartbeat(self.storage, [t._trial_id for t in trials], self.s.heartbeat_interval):
                for t in trials:
                    for name, dist in self.space.items():
                        suggest(t, name, dist)
                jobs = [self._job_overrides(t) for t in trials]
                self.write_reports()  # the plan, before the batch runs
                log.info("batch of %d: trials %s", len(trials), [t.number + 1 for t in trials])
                outcomes = launch(jobs, [t.number for t in trials])
                for t, out in zip(trials, outcomes):
                    self._tell(t, out)
            self.write_reports()
            if after_batch is not None:
                after_batch(self.study)
        self.write_reports()
        return self.study
