"""End-to-end sweeps through Hydra with oscsim's Optuna sweeper, on the tiny regime."""
import json
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from oscsim.sweep.experiment_log import parse_log, parse_ucb_scores
from oscsim.sweep.study import objective_values

CONF = Path(__file__).resolve().parents[1] / "conf"
FAST = ["simulation=tiny", "data_augmentation_loop=5", "~hydra.sweeper.params.data_augmentation_loop", "plots=false",
        "progress=false", "tensorboard=false", "compile=false", "threads=1"]


def sweep(tmp_path: Path, *args: str, check: bool = True, fast: list[str] = FAST) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "oscsim.train", "-m", *fast, f"data_dir={tmp_path / 'data'}", *args],
                       capture_output=True, text=True, cwd=tmp_path)
    if check:
        assert r.returncode == 0, r.stderr[-3000:]
    return r


def load(tmp_path: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/multirun/oscsim.db")


def test_ucb_two_batches_write_a_parseable_log_then_resume(tmp_path):
    sweep(tmp_path, "sweep=ucb", "hydra.sweeper.n_trials=8")
    d = tmp_path / "multirun" / "tiny_ucb"
    entries = parse_log((d / "tiny_ucb_analysis.md").read_text())
    study = load(tmp_path, "tiny_ucb")
    trials = sorted(study.trials, key=lambda t: t.number)
    assert [e["iter"] for e in entries] == list(range(1, 9)) == [t.number + 1 for t in trials]
    for e, t in zip(entries, trials):
        assert e["id"] == e["iter"]
        assert e["parent"] == t.user_attrs["parent"]
        assert e["mutation"] == t.user_attrs["mutation"]
        saved = json.loads((d / f"iter_{e['iter']}" / "metrics.json").read_text())
        assert e["metrics"]["rate_constants_R2"] == pytest.approx(saved["rate_constants_R2"], abs=5e-5)
        assert e["metrics"]["alpha"] == pytest.approx(saved["alpha"], abs=5e-5)
        assert t.values[0] == pytest.approx(saved["rate_constants_R2"])
        assert t.values[1] == pytest.approx(max(saved["test_R2"], -1.0))  # bounded for the sampler
    # Batch 1 is the seed's spread; batch 2 children differ from their parent in exactly one parameter
    assert [e["mutation"] for e in entries[:4]] == [None, "lr_k: 0.005 -> 0.01", "lr_node: 0.001 -> 0.002",
                                                    "lr_sub: 0.0005 -> 0.0002"]
    by_number = {t.number + 1: t for t in trials}
    for e in entries[4:]:
        assert e["parent"] in range(1, 5)
        child, parent = by_number[e["iter"]].params, by_number[e["parent"]].params
        assert sum(child[k] != parent[k] for k in child) == 1
    ucb = parse_ucb_scores((d / "tiny_ucb_ucb_scores.txt").read_text())
    assert sorted(r["id"] for r in ucb) == list(range(1, 9))

    # the same command with a larger budget resumes: numbering continues, nothing is rerun
    r = sweep(tmp_path, "sweep=ucb", "hydra.sweeper.n_trials=12")
    assert r.stderr.count("] \t#") == 4 or len(load(tmp_path, "tiny_ucb").trials) == 12
    entries = parse_log((d / "tiny_ucb_analysis.md").read_text())
    assert [e["iter"] for e in entries] == list(range(1, 13))
    assert (d / "tiny_ucb_analysis.md").read_text().count("## Iter 3:") == 1


def test_tpe_sweep(tmp_path):
    sweep(tmp_path, "sweep=tpe", "hydra.sweeper.n_trials=4", "hydra.sweeper.n_parallel=2")
    study = load(tmp_path, "tiny_tpe")
    assert len(study.trials) == 4 and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert len({t.params["lr_k"] for t in study.trials}) > 1
    entries = parse_log((tmp_path / "multirun" / "tiny_tpe" / "tiny_tpe_analysis.md").read_text())
    assert [e["iter"] for e in entries] == [1, 2, 3, 4]


def test_failed_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    # one grid point is an invalid learning rate: that job fails, the other runs
    others = [k for k in yaml.safe_load((CONF / "search_space" / "default.yaml").read_text()) if k != "lr_k"]
    sweep(tmp_path, "sweep=ucb", "hydra.sweeper.sampler=grid", "hydra.sweeper.study_name=grid", "hydra.sweeper.n_trials=3",
          "hydra.sweeper.n_parallel=3", *(f"~hydra.sweeper.params.{k}" for k in others),
          'hydra.sweeper.params.lr_k="choice(0.005,-1.0,0.002)"', fast=[a for a in FAST if not a.startswith("~")])
    study = load(tmp_path, "grid")
    states = {t.params["lr_k"]: t.state for t in study.trials}
    assert states == {0.005: optuna.trial.TrialState.COMPLETE, -1.0: optuna.trial.TrialState.FAIL,
                      0.002: optuna.trial.TrialState.COMPLETE}
    failed = next(t for t in study.trials if t.params["lr_k"] == -1.0)
    assert "lr_k=-1.0: must be > 0" in failed.user_attrs["metrics"]["error"]
    log = (tmp_path / "multirun" / "grid" / "grid_analysis.md").read_text()
    statuses = {e["iter"]: e["status"] for e in parse_log(log)}
    assert statuses[failed.number + 1] == "failed"


def test_bad_sweep_settings_stop_before_any_trial(tmp_path):
    for args, needle in (
        (["hydra.sweeper.sampler=cmaes"], "error: hydra.sweeper.sampler=cmaes: must be one of ucb_tree, tpe, gp, random, grid"),
        (["hydra.sweeper.storage=postgresql://u:pw@127.0.0.1:9/x"], "error: hydra.sweeper.storage=postgresql://u:***@127.0.0.1:9/x: cannot open"),
        (["hydra.sweeper.ucb_rerun_root=maybe"], "error: hydra.sweeper.ucb_rerun_root=maybe: Value 'maybe' is not a valid bool"),
        (["hydra.sweeper.ucb_exploit_beta=-1"], "error: hydra.sweeper.ucb_exploit_beta=-1.0: must be >= 0"),
        (["hydra.sweeper.n_trials=abc"], "error: hydra.sweeper.n_trials=abc: Value 'abc' of type 'str' could not be converted to Integer"),
        (["hydra.sweeper.ucb_prior=[nowhere]"], "error: hydra.sweeper.ucb_prior needs a guide: hydra.sweeper.ucb_guide=gp or gp_ard"),
        (["hydra.sweeper.ucb_guide=gp", "hydra.sweeper.ucb_prior=[nowhere]"], "error: hydra.sweeper.ucb_prior: nowhere does not exist"),
    ):
        r = sweep(tmp_path, "sweep=ucb", *args, check=False)
        assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith(needle)
    r = sweep(tmp_path, "sweep=ucb_primed", check=False)  # the primed tree has no default prior
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith(
        "error: hydra.sweeper.ucb_prior=[]: sweep=ucb_primed needs earlier studies")
    assert not list((tmp_path / "multirun").rglob("metrics.json")) if (tmp_path / "multirun").exists() else True


def test_resume_with_other_settings_is_refused(tmp_path):
    sweep(tmp_path, "sweep=ucb", "hydra.sweeper.n_trials=1", "hydra.sweeper.n_parallel=1", "hydra.sweeper.n_iter_block=1")
    for args, what in ((["simulation.seed=3"], "other simulation settings"), (["~hydra.sweeper.params.lr_k"], "other search space"),
                       (["hydra.sweeper.objectives=[rate_constants_R2]", "hydra.sweeper.directions=[maximize]"], "directions")):
        r = sweep(tmp_path, "sweep=ucb", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_parallel=1",
                  "hydra.sweeper.n_iter_block=1", *args, check=False)
        assert r.returncode == 2 and what in r.stderr.strip().splitlines()[-1]
    assert len(load(tmp_path, "tiny_ucb").trials) == 1


def test_objective_values_are_bounded():
    assert objective_values({"rate_constants_R2": 0.5, "test_R2": -7e5}, ["rate_constants_R2", "test_R2"]) == [0.5, -1.0]
    assert objective_values({"rate_constants_R2": float("nan"), "test_R2": 0.1}, ["rate_constants_R2", "test_R2"]) is None
    assert objective_values({"rate_constants_R2": 0.3, "test_R2": float("-inf")}, ["rate_constants_R2", "test_R2"]) == [0.3, -1.0]


def test_s_recovery_sweep_rewards_stoichiometry_R2(tmp_path):
    """Learning S: stoichiometry_R2 is the tree's reward and the log's comparison; the space is the lab's S knobs."""
    fast = [f for f in FAST if "data_augmentation_loop" not in f] + ["data_augmentation_loop=5"]
    sweep(tmp_path, "sweep=ucb", "search_space=s_recovery", "model.stoichiometry=learned", "loss=s_recovery",
          "hydra.sweeper.objectives=[stoichiometry_R2,rate_constants_R2]", "hydra.sweeper.n_trials=6", fast=fast)
    study = load(tmp_path, "tiny_ucb")
    space = set(yaml.safe_load((CONF / "search_space" / "s_recovery.yaml").read_text()))
    d = tmp_path / "multirun" / "tiny_ucb"
    text = (d / "tiny_ucb_analysis.md").read_text()
    entries = {e["iter"]: e for e in parse_log(text)}
    assert len(study.trials) == 6
    for t in study.trials:
        assert set(t.params) == space
        saved = json.loads((d / f"iter_{t.number + 1}" / "metrics.json").read_text())
        assert t.values == pytest.approx([saved["stoichiometry_R2"], saved["rate_constants_R2"]])
        assert entries[t.number + 1]["metrics"]["stoichiometry_R2"] == pytest.approx(saved["stoichiometry_R2"], abs=5e-5)
    children = [e for e in entries.values() if e["parent"] is not None and e["iter"] > 4]
    assert children and all(f"stoichiometry_R2 " in e["observation"] and f"vs parent {e['parent']}" in e["observation"]
                            for e in children)


def test_sweep_without_the_truth_minimises_heldout_loss(tmp_path):
    """A user's data set (examples/tiny_observed, no true k needed): heldout_loss is the objective, minimised;
    the tree and the log's 'Next: parent' take the lowest loss as the best."""
    example = CONF.parent / "examples" / "tiny_observed"
    data = [f for f in FAST if f != "simulation=tiny"] + [
        "simulation=observed", f"simulation.path={example}", "simulation.delta_t=0.2", "simulation.substeps=2",
        "loss=observed", "window=2"]
    sweep(tmp_path, "sweep=ucb", "hydra.sweeper.objectives=[heldout_loss]", "hydra.sweeper.directions=[minimize]",
          "hydra.sweeper.n_trials=4", fast=data)
    study = load(tmp_path, "observed_ucb")
    d = tmp_path / "multirun" / "observed_ucb"
    losses = {}
    for t in study.trials:
        saved = json.loads((d / f"iter_{t.number + 1}" / "metrics.json").read_text())
        assert t.values == pytest.approx([saved["heldout_loss"]])
        losses[t.number + 1] = saved["heldout_loss"]
    assert len(set(losses.values())) == 4  # four configurations, four scores
    entries = {e["iter"]: e for e in parse_log((d / "observed_ucb_analysis.md").read_text())}
    assert entries[4]["next_parent"] == min(losses, key=losses.get)
    assert study.best_trial.number + 1 == min(losses, key=losses.get)
    r = sweep(tmp_path, "sweep=ucb", "hydra.sweeper.objectives=[heldout_loss]", "hydra.sweeper.study_name=other",
              "hydra.sweeper.directions=[maximize]", check=False, fast=data)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1] == \
        "error: hydra.sweeper.directions: heldout_loss must be minimized, got maximize"
