"""A study's finished trials as plain JSON, and back: a study carried to another machine as a text file; and
earlier studies read back as the UCB guide's prior (`read_prior`).

Benchmark studies run for hours and their SQLite files live on the machine that ran them; the JSON form can be
committed and restored elsewhere, and the study resumes there. Finished trials travel (complete, failed, pruned)
up to the first one still running: trial numbers are what the UCB tree's blocks, batches and parents are made
of, so none may shift; what is left out is asked again after the restore. Samplers see what they would have seen: the
UCB tree plans from (seed, finished trials, slot), so a restored study plans its next batch as the original
would have; a seeded Optuna sampler is reseeded on resume (study.resumed_seed) either way."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.trial import FrozenTrial, TrialState

from .surrogate import PriorStudies

FINISHED = (TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED)


def trial_to_json(t: FrozenTrial) -> dict[str, Any]:
    return {
        "number": t.number,
        "state": t.state.name,
        "values": t.values,
        "params": t.params,
        "distributions": {k: distribution_to_json(d) for k, d in t.distributions.items()},
        "user_attrs": t.user_attrs,
        "system_attrs": t.system_attrs,
        "intermediate_values": {str(k): v for k, v in t.intermediate_values.items()},
    }


def study_to_json(study: optuna.Study) -> list[dict[str, Any]]:
    """The study's finished trials in order up to the first unfinished one, each with what a restore needs."""
    out = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if t.state not in FINISHED:
            break
        out.append(trial_to_json(t))
    return out


def restore_study(trials: list[dict[str, Any]], name: str, storage: str | optuna.storages.BaseStorage,
                  directions: list[str]) -> optuna.Study:
    """A new study `name` in `storage` holding `trials` (from study_to_json), renumbered from 0 in their order."""
    study = optuna.create_study(study_name=name, storage=storage, directions=directions, load_if_exists=True)
    if study.get_trials(deepcopy=False):
        raise ValueError(f"study {name}: already holds trials; restore only into a new study")
    for t in trials:
        state = TrialState[t["state"]]
        study.add_trial(optuna.trial.create_trial(
            state=state,
            values=t["values"] if state == TrialState.COMPLETE else None,
            params=t["params"],
            distributions={k: json_to_distribution(d) for k, d in t["distributions"].items()},
            user_attrs=t["user_attrs"],
            system_attrs=t["system_attrs"],
            intermediate_values={int(k): v for k, v in t["intermediate_values"].items()},
        ))
    return study


def read_prior(paths: list[str], sign: float = 1.0) -> PriorStudies:
    """Earlier studies as a UCB guide's prior (`hydra.sweeper.ucb_prior`): one list of (params, reward) per file,
    the complete trials' first objective times `sign` (+1 maximised, -1 minimised). A path is a study's JSON
    (`study_to_json`, or a benchmark record holding it under "study") or a folder of them."""
    files: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise ValueError(f"hydra.sweeper.ucb_prior: {p} does not exist (a study's JSON or a folder of them)")
        files += sorted(p.glob("*.json")) if p.is_dir() else [p]
    studies = []
    for f in files:
        try:
            data = json.loads(f.read_text())
            trials = data["study"] if isinstance(data, dict) else data
            done = [(dict(t["params"]), sign * float(t["values"][0])) for t in trials
                    if t["state"] == "COMPLETE" and t["values"] and math.isfinite(t["values"][0])]
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise ValueError(f"hydra.sweeper.ucb_prior: {f} is not a study's JSON ({type(e).__name__}: {e})") from None
        if len(done) > 1:  # one trial has no spread to standardise
            studies.append(done)
    if not studies:
        raise ValueError(f"hydra.sweeper.ucb_prior: no study with two or more complete trials in {', '.join(paths)}")
    return studies
