"""Batched trials: several models trained as one vectorised model give each the metrics, files and reports
its own run gives (within float32 rounding), on tiny networks."""
import json
import math

import numpy as np
import pytest
import torch

from oscsim import train as T
from oscsim.batch import group_jobs, member_configs, write_batch_file
from oscsim.config import check_batchable
from oscsim.params import ConfigError

QUICK = ["simulation=tiny", "progress=false", "compile=false", "threads=1", "plots=false", "tensorboard=false",
         "rollout_frames=100"]
COMPARED = ("rate_constants_R2", "rate_constants_R2_identifiable", "test_R2", "alpha", "MLP_sub_R2")


@pytest.fixture
def cfg_for(compose_config):
    return lambda *overrides: compose_config(*QUICK, *overrides)


def same_run(a: dict, b: dict, noise: dict | None = None, tol: float = 1e-4, keys: tuple = COMPARED) -> None:
    """b is a's run within tol, or within three times what float32 rounding alone moves a metric: `noise` is the same
    run with torch's unfused Adam (its fused one gives the single run; the vectorised kernels of a batch round
    like one or the other, depending on where a model's parameters sit in memory)."""
    assert a["status"] == b["status"] and a["iterations"] == b["iterations"]
    for key in keys:
        floor = 3 * abs(a[key] - noise[key]) if noise else 0.0
        if a[key] < 0:  # a rollout that has left the data amplifies rounding most: 1e-3 of it
            floor = max(floor, 1e-3 * abs(a[key]))
        assert abs(b[key] - a[key]) <= max(tol, floor), (key, a[key], b[key], floor)
    assert b["final_loss"] == pytest.approx(a["final_loss"], rel=tol)


def unfused(monkeypatch, run):
    """`run()` with torch's unfused Adam."""
    real = torch.optim.Adam
    with monkeypatch.context() as m:
        m.setattr(T, "FusedAdam", lambda groups, **kw: real(groups, foreach=False))
        return run()


@pytest.mark.parametrize("variant", [
    [],                                                     # the default model (origin gate, tied k, prior)
    ["model=faithful", "loss=default"],                     # the lab's model and regularisers
    ["recurrent_training=true", "time_step=2"],
    ["simulation.noise=0.01", "simulation.stride=2", "loss=observed", "window=3"],  # rollout windows, heldout_loss
])
def test_batch_gives_each_model_its_own_runs_metrics(tmp_path, cfg_for, variant, monkeypatch):
    # seeds, learning rates and coefficients differ; one member has k_floor off, another on
    members = [("seed=1", "lr_k=0.005"), ("seed=2", "lr_k=0.01", "coeff_k_floor=1.0", "k_floor_threshold=0.0"),
               ("seed=1", "lr_node=0.002", "coeff_MLP_sub_diff=0.0")]
    cfgs = [cfg_for("data_augmentation_loop=15", *variant, *m) for m in members]
    alone = [T.train(c, tmp_path / f"alone{i}") for i, c in enumerate(cfgs)]
    noise = [unfused(monkeypatch, lambda: T.train(c, tmp_path / f"unfused{i}")) for i, c in enumerate(cfgs)]
    together = T.train_many(cfgs, [tmp_path / f"batch{i}" for i in range(len(cfgs))])
    # The lab's model leaves MLP_sub's scale free (k absorbs it; sub_norm is off): rounding walks along that
    # direction, so alpha and MLP_sub_R2 (which read the scale) are compared where a model fixes it.
    keys = COMPARED if "model=faithful" not in variant else ("rate_constants_R2", "rate_constants_R2_identifiable", "test_R2")
    for i, (a, b) in enumerate(zip(alone, together)):
        same_run(a, b, noise[i], keys=keys)
        assert b["models_in_batch"] == 3
        if keys == COMPARED:  # the saved log_k too (in the lab's model it moves with the free scale, like alpha)
            log_k = {run: np.load(tmp_path / f"{run}{i}" / "log_k.npy") for run in ("alone", "unfused", "batch")}
            gap = np.abs(log_k["batch"] - log_k["alone"]).max()
            assert gap <= max(1e-4, 3 * np.abs(log_k["unfused"] - log_k["alone"]).max())
        if "window=3" in variant:
            assert b["heldout_loss"] == pytest.approx(a["heldout_loss"], rel=1e-4)
    # the members really differ, and each history is its own
    assert len({round(m["final_loss"], 3) for m in together}) == 3
    h = [json.loads((tmp_path / f"batch{i}" / "history.json").read_text()) for i in range(3)]
    assert max(h[1]["k_floor"]) > 0 and max(h[0]["k_floor"]) == 0


def test_batch_with_cosine_schedule_and_a_pruned_member(tmp_path, cfg_for):
    cfgs = [cfg_for("data_augmentation_loop=40", "eval_every=50", "loss=recovery", f"seed={s}") for s in (1, 2)]
    alone = [T.train(c, tmp_path / f"a{i}", (lambda it, r2: it >= 100) if i == 1 else None) for i, c in enumerate(cfgs)]
    together = T.train_many(cfgs, [tmp_path / f"b{i}" for i in range(2)], [None, lambda it, r2: it >= 100])
    assert together[1]["status"] == "pruned" and together[1]["iterations"] == 100
    assert together[0]["iterations"] == T.iterations_per_epoch(300, 40, 8) == 300
    for a, b in zip(alone, together):
        same_run(a, b)


def test_a_diverging_member_fails_alone(tmp_path, cfg_for, monkeypatch):
    cfgs = [cfg_for("data_augmentation_loop=15", f"seed={s}") for s in (1, 2)]
    alone = T.train(cfgs[0], tmp_path / "alone")
    real = T.Objective.forward

    def poisoned(self, c, target, settings):  # model 1's loss is non-finite from the start
        terms = real(self, c, target, settings)
        factor = torch.where(torch.as_tensor(settings["k_floor_threshold"]) > 0, math.nan, 1.0)
        return {k: v * factor for k, v in terms.items()}

    monkeypatch.setattr(T.Objective, "forward", poisoned)
    cfgs[1].k_floor_threshold = 1.0  # the marker; coeff_k_floor is 0, so it changes nothing else
    together = T.train_many(cfgs, [tmp_path / "b0", tmp_path / "b1"])
    assert together[1]["status"] == "failed" and "non-finite" in together[1]["error"]
    assert together[1]["iterations"] == 1  # stopped at the first loss it logged
    same_run(alone, together[0])
    assert torch.isfinite(torch.as_tensor(np.load(tmp_path / "b0" / "log_k.npy"))).all()


@pytest.mark.parametrize("variant", [[], ["model=faithful", "loss=default"],
                                     ["simulation.noise=0.01", "loss=observed", "window=3"],  # the roll unrolled
                                     ["recurrent_training=true", "time_step=2"]])
def test_a_compiled_batch_is_one_graph_and_gives_each_model_its_run(tmp_path, cfg_for, variant):
    # compile=true (or auto on long trials) compiles the batch's vmapped objective as one graph; fused kernels
    # round a little differently, so each member is compared with its own uncompiled run as compiling one
    # model is (tests/test_train.py), and the members must still differ from one another. Members whose
    # k_floor differs caught torch 2.13 inductor dropping part of log_k's gradient (see RateModel.log_k)
    from torch._dynamo.utils import counters

    members = [("seed=1", "lr_k=0.005"), ("seed=2", "lr_k=0.01", "coeff_k_floor=1.0", "k_floor_threshold=0.0")]
    cfgs = [cfg_for("data_augmentation_loop=10", *variant, *m) for m in members]
    alone = [T.train(c, tmp_path / f"alone{i}") for i, c in enumerate(cfgs)]
    counters.clear()
    compiled = T.train_many([cfg_for("data_augmentation_loop=10", "compile=true", *variant, *m) for m in members],
                            [tmp_path / f"batch{i}" for i in range(2)])
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert counters["stats"]["unique_graphs"] == 1
    for a, b in zip(alone, compiled):
        assert b["iterations"] == a["iterations"] and b["models_in_batch"] == 2
        assert b["rate_constants_R2"] == pytest.approx(a["rate_constants_R2"], abs=1e-3)
        assert b["final_loss"] == pytest.approx(a["final_loss"], rel=1e-3)
    assert abs(compiled[0]["final_loss"] - compiled[1]["final_loss"]) > 1e-3 * compiled[0]["final_loss"]


def test_seeds_batched_match_seeds_one_after_another(tmp_path, cfg_for):
    cfg = cfg_for("data_augmentation_loop=10", "seeds=[1,2,3]")
    one_by_one = T.train_seeds(cfg, tmp_path / "seq", [1, 2, 3])
    together = T.train_batch([(cfg, tmp_path / "bat", None)])[0]
    assert together["seeds"] == [1, 2, 3] and len(set(together["rate_constants_R2_per_seed"])) == 3
    np.testing.assert_allclose(together["rate_constants_R2_per_seed"], one_by_one["rate_constants_R2_per_seed"], atol=1e-4)
    assert together["rate_constants_R2"] == pytest.approx(one_by_one["rate_constants_R2"], abs=1e-4)
    for s in (1, 2, 3):
        assert json.loads((tmp_path / "bat" / f"seed_{s}" / "metrics.json").read_text())["models_in_batch"] == 3


def test_seeds_batched_report_in_order_and_stop_where_pruned(tmp_path, cfg_for):
    cfg = cfg_for("data_augmentation_loop=10", "seeds=[1,2,3]")
    seen = []

    def report(step, r2):
        seen.append((step, r2))
        return step == 1  # prune after the second seed

    m = T.train_batch([(cfg, tmp_path / "b", report)])[0]
    assert [s for s, _ in seen] == [0, 1] and m["status"] == "pruned" and m["seeds"] == [1, 2]
    assert m["rate_constants_R2"] == pytest.approx(np.mean([r for _, r in seen]))


def test_only_scalar_settings_may_differ_within_a_batch(cfg_for):
    with pytest.raises(ConfigError, match=r"^batched: configuration 1 differs from the first in batch_size; only seed, lr_k"):
        check_batchable([cfg_for(), cfg_for("batch_size=4")])
    with pytest.raises(ConfigError, match="model.gate"):
        check_batchable([cfg_for(), cfg_for("model.gate=none")])
    check_batchable([cfg_for(), cfg_for("lr_k=0.02", "seed=7", "coeff_k_floor=1.0", "progress=true")])


def test_an_invalid_member_fails_alone(tmp_path, cfg_for):
    good, bad = cfg_for("data_augmentation_loop=5"), cfg_for("data_augmentation_loop=5")
    bad.lr_k = -1.0
    out = T.train_batch([(good, tmp_path / "g", None), (bad, tmp_path / "b", None)])
    assert out[1]["status"] == "failed" and "lr_k=-1.0: must be > 0" in out[1]["error"]
    assert out[0]["status"] != "failed" and out[0]["iterations"] == T.iterations_per_epoch(300, 5, 8)


def test_sweeper_groups_jobs_that_differ_only_in_scalars():
    common = ["simulation=tiny", "batch_size=8"]
    jobs = [[*common, "lr_k=0.01", "sweep_trial.number=0"], [*common, "lr_k=0.02", "sweep_trial.number=1"],
            ["simulation=tiny", "batch_size=16", "lr_k=0.01", "sweep_trial.number=2"],
            [*common, "lr_k=0.03", "seed=4", "sweep_trial.number=3"],  # sets another key: the base's seed otherwise
            [*common, "lr_k=0.04", "sweep_trial.number=4"]]
    assert group_jobs(jobs) == [[0, 1, 4], [2], [3]]


def test_batch_file_round_trip(tmp_path, cfg_for):
    cfg = cfg_for()
    write_batch_file(tmp_path / "b.json", [["batch_size=8", "lr_k=0.02", "sweep_trial.number=5"],
                                           ["batch_size=8", "coeff_k_floor=1.0", "sweep_trial.number=6"]],
                     [tmp_path / "iter_6", tmp_path / "iter_7"])
    cfg.batch_file = str(tmp_path / "b.json")
    (a, da), (b, db) = member_configs(cfg)
    assert (a.lr_k, a.coeff_k_floor, a.sweep_trial.number, da) == (0.02, cfg.coeff_k_floor, 5, tmp_path / "iter_6")
    assert (b.lr_k, b.coeff_k_floor, b.sweep_trial.number, db) == (cfg.lr_k, 1.0, 6, tmp_path / "iter_7")
    assert a.batch_file is None
    (tmp_path / "b.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"batch_file=.*b.json: not a batch file"):
        member_configs(cfg)


def test_batched_sweep_trains_a_batch_in_one_job_with_the_same_results(tmp_path):
    """The UCB tree's first batch (the root and one move each of lr_k, lr_node, lr_sub) differs only in
    learning rates: with batched=true it is one job, and every trial gets what its own job gave it."""
    import subprocess
    import sys

    import optuna

    fast = ["simulation=tiny", "data_augmentation_loop=5", "~hydra.sweeper.params.data_augmentation_loop", "plots=false",
            "progress=false", "tensorboard=false", "compile=false", "threads=1", "sweep=ucb", "hydra.sweeper.n_trials=4"]
    values = {}
    for mode in ("separate", "batched"):
        cwd = tmp_path / mode
        cwd.mkdir()
        r = subprocess.run([sys.executable, "-m", "oscsim.train", "-m", *fast, f"data_dir={tmp_path / 'data'}",
                            f"batched={str(mode == 'batched').lower()}"], capture_output=True, text=True, cwd=cwd)
        assert r.returncode == 0, r.stderr[-3000:]
        study = optuna.load_study(study_name="tiny_ucb", storage=f"sqlite:///{cwd}/multirun/oscsim.db")
        values[mode] = {t.number: (t.params, t.values[0]) for t in study.trials}
    assert values["batched"].keys() == values["separate"].keys() == {0, 1, 2, 3}
    for n, (params, value) in values["separate"].items():
        assert values["batched"][n][0] == params
        assert values["batched"][n][1] == pytest.approx(value, abs=1e-4)
    run_dir = tmp_path / "batched" / "multirun" / "tiny_ucb"
    members = json.loads((run_dir / "batches" / "trials_1.json").read_text())["members"]
    assert [m["dir"] for m in members] == [str(run_dir / f"iter_{i}") for i in (1, 2, 3, 4)]
    for i in (1, 2, 3, 4):
        m = json.loads((run_dir / f"iter_{i}" / "metrics.json").read_text())
        assert m["models_in_batch"] == 4 and m["rate_constants_R2"] == pytest.approx(values["batched"][i - 1][1])


@pytest.mark.parametrize("variant", [[], ["model=faithful", "loss=default"]])
def test_vectorised_rollouts_are_each_models_own(tmp_path, compose_config, variant):
    # the rollouts a GPU batch computes at once are each model's own rollout, up to rounding
    from oscsim.evaluate import _rollout_inputs, rollout, rollouts
    from oscsim.models import build_model
    from oscsim.simulate import dataset_for

    cfg = compose_config("simulation=tiny", *variant)
    ds = dataset_for(cfg)
    models = []
    for seed in (1, 2, 3):
        torch.manual_seed(seed)
        models.append(build_model(ds.network, dict(cfg.model), (-2.0, -1.0)))
    together = rollouts(models, ds, 300)
    inputs, n = _rollout_inputs(ds, 300, torch.float64, torch.device("cpu"))
    for model, preds in zip(models, together):
        for name, _, c0, forced in inputs:
            alone = rollout(model.to(torch.float64), c0, n, ds.params.delta_t, True, 1, forced)
            model.to(torch.float32)
            assert preds[name].shape == alone.shape == (n + 1, ds.network.n_metabolites)
            np.testing.assert_allclose(preds[name], alone, rtol=1e-9, atol=1e-9)
    assert not np.allclose(together[0][""], together[1][""])  # three different models, three rollouts


def test_a_gpu_batch_scores_with_vectorised_rollouts(tmp_path, cfg_for, monkeypatch):
    # the batched path as it runs on a GPU (vectorised rollouts), here on the CPU: the same metrics as one at a time
    cfgs = [cfg_for("data_augmentation_loop=40", f"seed={s}") for s in (1, 2)]
    plain = T.train_many(cfgs, [tmp_path / "a1", tmp_path / "a2"])
    calls, real = [], T.rollouts
    monkeypatch.setattr(T, "rollouts", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setattr(T, "_VECTORISED_ROLLOUTS_ON", ("cpu", "cuda"))
    vec = T.train_many(cfgs, [tmp_path / "b1", tmp_path / "b2"])
    assert calls == [1]
    for a, b in zip(plain, vec):
        same_run(a, b, tol=1e-9, keys=COMPARED + ("heldout_test_R2", "rollout_horizon"))
