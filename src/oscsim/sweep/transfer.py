"""A study's finished trials as plain JSON, and back: a study carried to another machine as a text file.

Benchmark studies run for hours and their SQLite files live on the machine that ran them; the JSON form can be
committed and restored elsewhere, and the study resumes there. Finished trials travel (complete, failed, pruned)
up to the first one still running: trial numbers are what the UCB tree's blocks, batches and parents are made
of, so none may shift; what is left out is asked again after the restore. Samplers see what they would have seen: the
UCB tree plans from (seed, finished trials, slot), so a restored study plans its next batch as the original
would have; a seeded Optuna sampler is reseeded on resume (study.resumed_seed) either way."""
from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import distribution_to_json, json_to_distribution
from optuna.trial import FrozenTrial, TrialState

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
