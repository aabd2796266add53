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


STUDY_PREFIX = "study:"  # a ucb_prior entry naming a study in the sweep's own storage


def read_prior(sources: list[str], sign: float = 1.0, storage: str | optuna.storages.BaseStorage | None = None,
               ) -> PriorStudies:
    """Earlier studies as a UCB guide's prior (`hydra.sweeper.ucb_prior`): one list of (params, reward) per study,
    the complete trials' first objective times `sign` (+1 maximised, -1 minimised). A source is a study's JSON
    (`study_to_json`, or a benchmark record holding it under "study"), a folder of them, or `study:<name>`, a study
    in `storage` (the sweep's own)."""
    studies_json: list[tuple[str, Any]] = []
    for src in sources:
        if src.startswith(STUDY_PREFIX):
            if storage is None:
                raise ValueError(f"hydra.sweeper.ucb_prior: {src} needs a storage to read it from")
            try:
                studies_json.append((src, _stored_study(src.removeprefix(STUDY_PREFIX), storage)))
            except ValueError as e:
                raise ValueError(f"hydra.sweeper.ucb_prior: {STUDY_PREFIX}{e}") from None
            continue
        p = Path(src)
        if not p.exists():
            raise ValueError(f"hydra.sweeper.ucb_prior: {p} does not exist (a study's JSON, a folder of them, "
                             f"or {STUDY_PREFIX}<name> for a study in this sweep's storage)")
        for f in (sorted(p.glob("*.json")) if p.is_dir() else [p]):
            try:
                studies_json.append((str(f), json.loads(f.read_text())))
            except ValueError as e:
                raise ValueError(f"hydra.sweeper.ucb_prior: {f} is not a study's JSON ({type(e).__name__}: {e})") from None
    studies = []
    for label, data in studies_json:
        try:
            trials = data["study"] if isinstance(data, dict) else data
            done = [(dict(t["params"]), sign * float(t["values"][0])) for t in trials
                    if t["state"] == "COMPLETE" and t["values"] and math.isfinite(t["values"][0])]
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise ValueError(f"hydra.sweeper.ucb_prior: {label} is not a study's JSON ({type(e).__name__}: {e})") from None
        if len(done) > 1:  # one trial has no spread to standardise
            studies.append(done)
    if not studies:
        raise ValueError(f"hydra.sweeper.ucb_prior: no study with two or more complete trials in {', '.join(sources)}")
    return studies


def _stored_study(name: str, storage: str | optuna.storages.BaseStorage) -> list[dict[str, Any]]:
    """study_to_json of the study `name` in `storage`; ValueError naming the studies there when it has none so named."""
    try:
        return study_to_json(optuna.load_study(study_name=name, storage=storage))
    except KeyError:
        known = ", ".join(sorted(s.study_name for s in optuna.get_all_study_summaries(storage))) or "none"
        raise ValueError(f"{name}: no such study in this storage (studies there: {known})") from None


def main(argv: list[str] | None = None) -> None:
    """`python -m oscsim.sweep.transfer STUDY [--storage URL] [-o FILE]`: a study's finished trials as JSON (what
    `restore_study` and `hydra.sweeper.ucb_prior` read), to carry it to another machine or keep it as a prior."""
    import argparse
    import sys

    from .settings import MULTIRUN_ROOT, STORAGE_FILE

    ap = argparse.ArgumentParser(prog="python -m oscsim.sweep.transfer", description=main.__doc__)
    ap.add_argument("study", help="the study's name")
    ap.add_argument("--storage", default=f"sqlite:///{MULTIRUN_ROOT}/{STORAGE_FILE}",
                    help="an Optuna storage URL (default: the sweeps' default, sqlite:///multirun/oscsim.db)")
    ap.add_argument("-o", "--output", help="the JSON file to write (default: standard output)")
    args = ap.parse_args(argv)
    try:
        trials = _stored_study(args.study, args.storage)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    text = json.dumps(trials, indent=1)
    if args.output:
        Path(args.output).write_text(text + "\n")
        print(f"{args.study}: {len(trials)} finished trials -> {args.output}", file=sys.stderr)
    else:
        print(text)


if __name__ == "__main__":
    main()
