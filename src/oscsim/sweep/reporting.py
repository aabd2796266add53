"""The job's side of pruning: report intermediate values of a sweep trial to its Optuna study.

The sweeper hands every job `sweep_trial.{storage, study_name, number, pruner}`; whatever the launcher (in
process, joblib, SLURM), the job reopens the study and reports to its own trial."""
from __future__ import annotations

import logging
import math
import warnings
from typing import TYPE_CHECKING, Any, Mapping

import optuna

from .resilient import retry
from .study import make_pruner, open_storage

if TYPE_CHECKING:  # the training loop defines the callback it accepts; importing it at run time would load torch
    from ..train import Report

log = logging.getLogger(__name__)


def trial_reporter(sweep_trial: Mapping[str, Any]) -> Report | None:
    """A `report(step, value) -> prune?` callback for the sweep trial, or None when there is nothing to
    report to (not a sweep job, no pruner, or a multi-objective study, which Optuna cannot prune)."""
    if sweep_trial.get("number") is None or sweep_trial.get("pruner") in (None, "none"):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.load_study(study_name=sweep_trial["study_name"], storage=open_storage(sweep_trial["storage"]),
                                  pruner=make_pruner(sweep_trial["pruner"]))
    if len(study.directions) > 1:
        log.warning("pruning needs a single objective; this study has %d", len(study.directions))
        return None
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, int(sweep_trial["number"]))
    trial = optuna.trial.Trial(study, trial_id)

    def report(step: int, value: float) -> bool:
        if not math.isfinite(value):
            return False
        retry(lambda: trial.report(float(value), int(step)), "report")
        return bool(retry(trial.should_prune, "should_prune"))

    return report
