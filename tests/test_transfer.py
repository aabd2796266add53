"""A study carried as JSON (sweep/transfer.py): restored on another storage, it resumes as the original would."""
import json
import math

import optuna
import pytest

from oscsim.sweep.runner import Outcome, SweepRunner, SweepSettings
from oscsim.sweep.transfer import restore_study, study_to_json

SPACE = {"lr_k": "tag(log, interval(1e-4, 1e-2))", "lr_sub": "tag(log, interval(1e-5, 1e-2))",
         "coeff_k_floor": "choice(0.0, 0.1, 1.0, 10.0)"}
BASE = {"lr_k": 0.005, "lr_sub": 0.0005, "coeff_k_floor": 0.0, "seed": 42}


def launch(jobs, numbers):
    """A made-up landscape: R2 peaks at lr_k 0.01, lr_sub 0.003 with k_floor on; trial 6 crashes."""
    out = []
    for job, n in zip(jobs, numbers):
        p = dict(o.split("=", 1) for o in job if "=" in o and not o.startswith("sweep_trial."))
        r2 = 1 - abs(math.log10(float(p["lr_k"])) + 2) / 3 - abs(math.log10(float(p["lr_sub"])) + 2.5) / 4
        r2 += 0.1 * (float(p["coeff_k_floor"]) > 0)
        out.append(Outcome(None, "RuntimeError: boom") if n == 6 else
                   Outcome({"rate_constants_R2": r2, "test_R2": 0.0, "status": "partial"}))
    return out


def runner(tmp_path, name, sampler, n_trials, **settings):
    s = SweepSettings(sampler=sampler, study_name=name, storage=f"sqlite:///{tmp_path}/{name}.db", n_trials=n_trials,
                      n_parallel=4, n_iter_block=12, seed=3, params=SPACE, objectives=["rate_constants_R2"],
                      directions=["maximize"], first_batch_params=["lr_k", "lr_sub"], heartbeat_interval=None,
                      **settings)
    return SweepRunner(s, BASE, ["simulation=tiny"], tmp_path / name, "t", "abc")


def configs(study):
    return [(t.params, t.state.name, t.values) for t in sorted(study.trials, key=lambda t: t.number)]


@pytest.mark.parametrize("sampler", ["ucb_tree", "random"])
def test_a_restored_study_resumes_as_the_original(tmp_path, sampler):
    original = runner(tmp_path, "a", sampler, 8).run(launch)
    carried = json.loads(json.dumps(study_to_json(original)))  # through text, as a committed file
    assert [t["state"] for t in carried].count("FAIL") == 1 and len(carried) == 8
    restore_study(carried, "b", f"sqlite:///{tmp_path}/b.db", ["maximize"])
    restored = runner(tmp_path, "b", sampler, 16).run(launch)
    continued = runner(tmp_path, "a", sampler, 16).run(launch)
    assert configs(restored)[:8] == configs(original)[:8]
    # the tree plans from (seed, finished trials, slot) and the seeded samplers reseed from (seed, trials held):
    # both continue exactly as the original does
    assert configs(restored)[8:] == configs(continued)[8:]
    if sampler == "ucb_tree":  # the log's tree survives: parents and mutations of the carried trials
        attrs = [(t.user_attrs.get("parent"), t.user_attrs.get("mutation")) for t in restored.trials[:8]]
        assert attrs == [(t.user_attrs.get("parent"), t.user_attrs.get("mutation")) for t in original.trials[:8]]
        assert any(p is not None for p, _ in attrs)


def test_export_stops_at_the_first_unfinished_trial(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/s.db", direction="maximize")
    a, b, c = (study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}) for _ in range(3))
    study.tell(a, 0.1)
    study.tell(c, 0.3)  # b still running: c would be renumbered as 1 after a restore, so it stays behind
    assert [t["values"] for t in study_to_json(study)] == [[0.1]]


def test_restore_refuses_a_study_that_holds_trials(tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    study.tell(study.ask(), 0.5)
    with pytest.raises(ValueError, match="already holds trials"):
        restore_study(study_to_json(study), "s", storage, ["maximize"])


def launch_low(jobs, numbers):
    """A landscape whose lr_k peaks at 0.001, below the base 0.005, where the lab's first batch moves lr_k up."""
    out = []
    for job in jobs:
        p = dict(o.split("=", 1) for o in job if "=" in o and not o.startswith("sweep_trial."))
        r2 = 1 - abs(math.log10(float(p["lr_k"])) + 3) / 3 - abs(math.log10(float(p["lr_sub"])) + 2.5) / 4
        out.append(Outcome({"rate_constants_R2": r2, "test_R2": 0.0, "status": "partial"}))
    return out


def test_an_earlier_study_steers_the_guided_trees_first_batch(tmp_path):
    # An earlier study of launch_low's landscape (random draws), kept as JSON and given as the guide's prior, turns
    # the lab's lr_k-up move: the guide has a model before the study has a trial, and the exploit slot moves lr_k down.
    earlier = runner(tmp_path, "earlier", "random", 24).run(launch_low)
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "earlier.json").write_text(json.dumps(study_to_json(earlier)))
    plain = runner(tmp_path, "plain", "ucb_tree", 4, ucb_guide="gp_ard").run(launch_low)
    primed = runner(tmp_path, "primed", "ucb_tree", 4, ucb_guide="gp_ard", ucb_prior=[str(tmp_path / "kept")],
                    ucb_exploit_beta=0.0).run(launch_low)
    first = {name: [t.params for t in sorted(st.trials, key=lambda t: t.number)] for name, st in
             (("plain", plain), ("primed", primed))}
    assert first["plain"][0] == first["primed"][0] == {k: BASE[k] for k in SPACE}  # both keep the baseline
    assert first["plain"][1]["lr_k"] > BASE["lr_k"]  # the lab's move, the guide without a model
    assert first["primed"][1]["lr_k"] < BASE["lr_k"] and abs(math.log10(first["primed"][1]["lr_k"] / 1e-3)) < 0.3
    best = {name: max(t.value for t in st.trials) for name, st in (("plain", plain), ("primed", primed))}
    assert best["primed"] > best["plain"] + 0.1, best


def test_a_prior_that_is_not_a_study_is_refused_in_one_line(tmp_path):
    from oscsim.sweep.transfer import read_prior

    with pytest.raises(ValueError, match=r"hydra.sweeper.ucb_prior: .*nowhere.json does not exist"):
        read_prior([str(tmp_path / "nowhere.json")])
    (tmp_path / "bad.json").write_text('{"study": [{"number": 0}]}')
    with pytest.raises(ValueError, match=r"hydra.sweeper.ucb_prior: .*bad.json is not a study's JSON \(KeyError"):
        read_prior([str(tmp_path / "bad.json")])
    with pytest.raises(ValueError, match="needs a guide"):
        runner(tmp_path, "s", "ucb_tree", 4, ucb_prior=[str(tmp_path / "bad.json")])


def test_a_prior_chooses_the_covering_batch_among_hypercubes(tmp_path):
    # The covering first batch stays a Latin hypercube (one lr_k per third of its log range), but with a prior it is
    # the one whose best point the prior rates highest: here nearer the earlier study's peak (lr_k 0.001).
    earlier = runner(tmp_path, "earlier", "random", 24).run(launch_low)
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "earlier.json").write_text(json.dumps(study_to_json(earlier)))
    plain = runner(tmp_path, "plain", "ucb_tree", 4, ucb_guide="gp_ard", ucb_first_batch="cover").run(launch_low)
    primed = runner(tmp_path, "primed", "ucb_tree", 4, ucb_guide="gp_ard", ucb_first_batch="cover",
                    ucb_prior=[str(tmp_path / "kept")]).run(launch_low)
    for st in (plain, primed):
        trials = sorted(st.trials, key=lambda t: t.number)
        assert trials[0].params == {k: BASE[k] for k in SPACE}
        assert sorted(min(int((math.log10(t.params["lr_k"]) + 4) / 2 * 3), 2) for t in trials[1:]) == [0, 1, 2]
    best = {name: max(t.value for t in st.trials[1:]) for name, st in (("plain", plain), ("primed", primed))}
    assert best["primed"] > best["plain"] + 0.05, best
    strategy = {name: sorted(st.trials, key=lambda t: t.number)[1].user_attrs["strategy"]
                for name, st in (("plain", plain), ("primed", primed))}  # the log says which hypercube it is
    assert strategy == {"plain": "explore (Latin hypercube over the space, one draw)",
                        "primed": "explore (Latin hypercube over the space, the prior's pick of 64)"}
    # what another sampler can be started from: the same four configurations, read without running the study
    assert primed.sampler.first_batch() == [t.params for t in sorted(primed.trials, key=lambda t: t.number)]


def test_a_prior_named_by_study_reads_the_sweeps_own_storage(tmp_path):
    # `study:<name>` reads an earlier study from the sweep's storage: the same prior, and so the same plans, as the
    # study's JSON; `python -m oscsim.sweep.transfer` writes that JSON.
    from oscsim.sweep.study import StudyError
    from oscsim.sweep.transfer import main as export, read_prior

    earlier = runner(tmp_path, "earlier", "random", 24).run(launch_low)
    restore_study(study_to_json(earlier), "earlier", f"sqlite:///{tmp_path}/by_name.db", ["maximize"])
    export(["earlier", "--storage", f"sqlite:///{tmp_path}/earlier.db", "-o", str(tmp_path / "earlier.json")])
    by_file = read_prior([str(tmp_path / "earlier.json")])
    assert read_prior(["study:earlier"], storage=f"sqlite:///{tmp_path}/earlier.db") == by_file
    assert len(by_file) == 1 and len(by_file[0]) == 24
    kw = dict(ucb_guide="gp_ard", ucb_first_batch="cover", ucb_exploit_beta=0.0)
    by_name = runner(tmp_path, "by_name", "ucb_tree", 8, ucb_prior=["study:earlier"], **kw).run(launch_low)
    as_json = runner(tmp_path, "as_json", "ucb_tree", 8, ucb_prior=[str(tmp_path / "earlier.json")], **kw).run(launch_low)
    assert configs(by_name) == configs(as_json) and len(by_name.trials) == 8
    with pytest.raises(ValueError, match=r"study:nope: no such study in this storage \(studies there: by_name, earlier\)"):
        runner(tmp_path, "by_name", "ucb_tree", 8, ucb_prior=["study:nope"], **kw)
    with pytest.raises(StudyError, match="study:by_name is this study itself"):
        runner(tmp_path, "by_name", "ucb_tree", 8, ucb_prior=["study:by_name"], **kw)
