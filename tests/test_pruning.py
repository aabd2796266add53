"""Seed-robust trials and pruning: intermediate values reach Optuna, pruned trials show as pruned."""
import json
import subprocess
import sys

import numpy as np
import optuna
import pytest

from oscsim.sweep.experiment_log import parse_log
from oscsim.sweep.reporting import trial_reporter
from oscsim.sweep.runner import Outcome, SweepRunner, SweepSettings

Pruned, Complete = optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE


def test_reporter_prunes_a_trial_below_the_median(tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(study_name="p", storage=storage, direction="maximize")
    for v in (0.8, 0.85, 0.9, 0.95):  # four finished trials that were good at every step
        t = study.ask()
        for step in (1, 2, 3):
            t.report(v, step)
        study.tell(t, v)
    good, bad = study.ask(), study.ask()
    report = trial_reporter({"storage": storage, "study_name": "p", "number": good.number, "pruner": "median"})
    assert report(1, 0.9) is False and report(2, 0.91) is False  # above the median: go on
    report = trial_reporter({"storage": storage, "study_name": "p", "number": bad.number, "pruner": "median"})
    assert report(1, 0.1) is True  # far below the median of the finished trials: prune
    trials = optuna.load_study(study_name="p", storage=storage).trials
    assert trials[good.number].intermediate_values == {1: 0.9, 2: 0.91} and trials[bad.number].intermediate_values == {1: 0.1}
    t = bad
    assert trial_reporter({"storage": storage, "study_name": "p", "number": t.number, "pruner": "none"}) is None


def test_runner_records_pruned_and_crashed_trials(tmp_path):
    def launch(jobs, numbers):
        return [Outcome({"rate_constants_R2": 0.5, "test_R2": 0.1, "status": "partial"}),
                Outcome({"rate_constants_R2": 0.2, "test_R2": -3.0, "status": "pruned"}),
                Outcome(None, "RuntimeError: boom")]

    s = SweepSettings(sampler="random", study_name="r", storage=f"sqlite:///{tmp_path}/s.db", n_trials=3, n_parallel=3,
                      n_iter_block=3, params={"lr_k": "tag(log, interval(1e-4, 1e-2))"}, heartbeat_interval=None)
    runner = SweepRunner(s, {"lr_k": 0.005, "seed": 42}, ["simulation=tiny"], tmp_path / "sweep", "simulation_tiny", "abc")
    study = runner.run(launch)
    assert [t.state for t in sorted(study.trials, key=lambda t: t.number)] == [Complete, Pruned, optuna.trial.TrialState.FAIL]
    assert study.trials[0].values == [0.5, 0.1]
    statuses = {e["iter"]: e["status"] for e in parse_log((tmp_path / "sweep" / "r_analysis.md").read_text())}
    assert statuses == {1: "partial", 2: "pruned", 3: "failed"}
    assert "RuntimeError: boom" in study.trials[2].user_attrs["metrics"]["error"]


def test_seeds_trial_reports_each_seed_and_scores_the_mean(tmp_path):
    r = subprocess.run([sys.executable, "-m", "oscsim.train", "-m", "sweep=ucb_seeds", "simulation=tiny", "seeds=[1,2,3]",
                        "data_augmentation_loop=3", "~hydra.sweeper.params.data_augmentation_loop", "hydra.sweeper.n_trials=1",
                        "hydra.sweeper.n_parallel=1", "hydra.sweeper.n_iter_block=1", "plots=false", "progress=false",
                        "tensorboard=false", "compile=false", "threads=1", f"data_dir={tmp_path / 'data'}"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    study = optuna.load_study(study_name="tiny_ucb_seeds", storage=f"sqlite:///{tmp_path}/multirun/oscsim.db")
    (t,) = study.trials
    run_dir = tmp_path / "multirun" / "tiny_ucb_seeds" / "iter_1"
    per_seed = [json.loads((run_dir / f"seed_{s}" / "metrics.json").read_text())["rate_constants_R2"] for s in (1, 2, 3)]
    assert len(set(per_seed)) == 3  # the seeds really differ
    assert t.intermediate_values == pytest.approx({0: per_seed[0], 1: per_seed[1], 2: per_seed[2]})
    assert t.values[0] == pytest.approx(np.mean(per_seed))
    assert t.user_attrs["metrics"]["rate_constants_R2_std"] == pytest.approx(np.std(per_seed))


@pytest.mark.parametrize("sampler", ["random", "tpe", "gp"])
def test_a_resumed_seeded_study_draws_new_configurations(tmp_path, sampler):
    """Optuna's seeded samplers draw from one generator: a second process with the same seed would repeat the
    study's first configurations. Resumed, the sampler draws on from where the study is: 4 distinct values of
    lr_k over two runs of 2 (all four TPE's random start-up draws), and the first run's are those a fresh study
    with that seed draws."""
    def launch(jobs, numbers):
        return [Outcome({"rate_constants_R2": 0.1 * n, "test_R2": 0.0, "status": "partial"}) for n in numbers]

    def run(n_trials, name):
        s = SweepSettings(sampler=sampler, study_name=name, storage=f"sqlite:///{tmp_path}/{name}.db", n_trials=n_trials,
                          n_parallel=2, n_iter_block=2, seed=3, params={"lr_k": "tag(log, interval(1e-4, 1e-2))"},
                          heartbeat_interval=None)
        runner = SweepRunner(s, {"lr_k": 0.005, "seed": 42}, ["simulation=tiny"], tmp_path / name, "t", "abc")
        return [t.params["lr_k"] for t in sorted(runner.run(launch).trials, key=lambda t: t.number)]

    first = run(2, "resumed")
    both = run(4, "resumed")
    assert both[:2] == first and len(set(both)) == 4
    assert run(2, "fresh") == first  # a fresh study still reproduces from its seed
