import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from oscsim import losses as L
from oscsim import train as T

FACTS = Path(__file__).resolve().parent / "data" / "lab_seed_log_facts.json"  # facts read from the lab's log
LAB_METRICS = ("rate_constants_R2", "trimmed_R2", "n_outliers", "slope", "test_R2", "test_pearson", "final_loss", "alpha")
OSCSIM_METRICS = ("rate_constants_R2_identifiable", "MLP_node_slope_0", "MLP_node_gt_slope_0", "MLP_node_slope_1",
                  "MLP_node_gt_slope_1", "embedding_cluster_acc", "embedding_n_clusters", "MLP_sub_R2", "status",
                  "training_time_min", "iterations_per_second", "rollout_horizon")
QUICK = ["simulation=tiny", "progress=false", "compile=false", "threads=1"]


@pytest.fixture
def cfg_for(compose_config):
    """The tiny regime's config with these overrides, through conftest's one compose fixture."""
    return lambda *overrides: compose_config(*QUICK, *overrides)


def iter1_overrides() -> list[str]:
    return json.loads(FACTS.read_text())["iter1_config_line"].replace(",", "").split()


def test_short_run_learns_and_writes_every_metric(tmp_path, cfg_for):
    cfg = cfg_for("data_augmentation_loop=80", "eval_every=100")
    m = T.train(cfg, tmp_path / "run")
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    fifth = len(hist["prediction"]) // 5  # batches differ a lot (a few frames have large dc/dt): compare medians
    first, last = np.median(hist["prediction"][:fifth]), np.median(hist["prediction"][-fifth:])
    assert last < 0.5 * first  # the loss falls
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in LAB_METRICS + OSCSIM_METRICS:
        assert key in saved and key in m
    assert saved["iterations"] == T.iterations_per_epoch(300, 80, 8) == 600
    assert saved["status"] in ("failed", "partial", "converged")
    log_lines = dict(l.split(": ", 1) for l in (tmp_path / "run" / "analysis.log").read_text().splitlines())
    assert float(log_lines["rate_constants_R2"]) == pytest.approx(saved["rate_constants_R2"])
    for f in ("MLP_sub.png", "MLP_node.png", "rate_constants.png", "rollout.png", "losses.png"):
        assert (tmp_path / "run" / "figures" / f).stat().st_size > 5000
    assert list((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*"))
    assert (tmp_path / "run" / "checkpoint.pt").exists() and (tmp_path / "run" / "log_k.npy").exists()


def test_same_seed_same_metrics_other_seed_other(tmp_path, cfg_for):
    args = ("data_augmentation_loop=10", "plots=false", "tensorboard=false")
    a = T.train(cfg_for(*args, "seed=3"), tmp_path / "a")
    b = T.train(cfg_for(*args, "seed=3"), tmp_path / "b")
    c = T.train(cfg_for(*args, "seed=4"), tmp_path / "c")
    for key in ("rate_constants_R2", "final_loss", "alpha", "test_R2"):
        assert a[key] == b[key]
    assert a["final_loss"] != c["final_loss"]


def test_non_finite_loss_is_recorded_as_failed(tmp_path, monkeypatch, cfg_for):
    calls = {"n": 0}
    real = L.prediction_loss

    def poisoned(pred, true, scale=None):
        calls["n"] += 1
        out = real(pred, true, scale)
        return out * float("nan") if calls["n"] > 20 else out

    monkeypatch.setattr(L, "prediction_loss", poisoned)
    m = T.train(cfg_for("data_augmentation_loop=20", "plots=false"), tmp_path / "run")
    assert m["status"] == "failed" and "non-finite" in m["error"]
    assert m["iterations"] < 150
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "failed"


def test_report_callback_can_stop_a_trial(tmp_path, cfg_for):
    seen = []

    def report(it, r2):
        seen.append((it, r2))
        return it >= 100

    m = T.train(cfg_for("data_augmentation_loop=40", "eval_every=50", "plots=false"), tmp_path / "r", report)
    assert [it for it, _ in seen] == [50, 100] and all(math.isfinite(r) for _, r in seen)
    assert m["status"] == "pruned" and m["iterations"] == 100


def test_seed_iter1_config_line_verbatim(tmp_path, cfg_for):
    overrides = iter1_overrides()
    assert overrides[:3] == ["seed=42", "lr_k=0.005", "lr_node=0.001"] and len(overrides) == 10
    overrides = ["model=faithful", "loss=default", *overrides]  # the lab's model, named explicitly
    cfg = cfg_for(*overrides)
    expected = dict(o.split("=") for o in overrides[2:])
    for k, v in expected.items():
        assert float(cfg[k]) == float(v), k
    # the line runs as pasted after `python -m oscsim.train` (on the tiny regime, one short epoch)
    r = subprocess.run([sys.executable, "-m", "oscsim.train", *overrides, *QUICK, "data_augmentation_loop=5",
                        f"data_dir={tmp_path / 'data'}", f"hydra.run.dir={tmp_path / 'cli'}", "plots=false"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    saved = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert saved["iterations"] == T.iterations_per_epoch(300, 5, 8)
    cfg_text = (tmp_path / "cli" / "config.yaml").read_text()
    assert "lr_sub: 0.0005" in cfg_text and "coeff_MLP_node_L1: 1.0" in cfg_text and "name: faithful" in cfg_text


def test_bad_override_rejected_with_key(tmp_path):
    for arg, needle in (("lr_k=-1", "lr_k=-1: must be > 0"), ("n_layers_node=1", "n_layers_node=1: must be an integer >= 2"),
                        ("lr_kk=1", "lr_kk: unknown key"), ("batched=yes", "batched=yes: must be true or false")):
        r = subprocess.run([sys.executable, "-m", "oscsim.train", arg], capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 2 and r.stderr.strip() == f"error: {needle}" + (" (to list the keys: --cfg job)" if "unknown" in needle else "")


def test_basic_sweeper_multirun(tmp_path):
    r = subprocess.run([sys.executable, "-m", "oscsim.train", "-m", "lr_k=0.002,0.005", *QUICK, "data_augmentation_loop=3",
                        "plots=false", "tensorboard=false", f"data_dir={tmp_path / 'data'}", f"hydra.sweep.dir={tmp_path / 'mr'}"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    runs = sorted((tmp_path / "mr").glob("*/metrics.json"))
    assert len(runs) == 2
    lrs = sorted(float(re.search(r"^lr_k: (.*)$", (p.parent / "config.yaml").read_text(), re.M).group(1)) for p in runs)
    assert lrs == [0.002, 0.005]


@pytest.mark.parametrize("model", [[], ["model=faithful", "loss=default"],
                                   ["simulation.noise=0.01", "loss=observed", "window=3"],  # a window roll, one graph
                                   ["recurrent_training=true", "time_step=2"]])
def test_compiled_training_matches_eager(tmp_path, cfg_for, model):
    # torch.compile fuses kernels (rounding moves a little); the trained model must be the same one, and the
    # objective one graph (a graph break would run the step half in Python, the speed compiling is for)
    from torch._dynamo.utils import counters

    args = ("data_augmentation_loop=10", "plots=false", "tensorboard=false", "rollout_frames=50", *model)
    eager = T.train(cfg_for(*args, "compile=false"), tmp_path / "eager")
    counters.clear()
    compiled = T.train(cfg_for(*args, "compile=true"), tmp_path / "compiled")
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert counters["stats"]["unique_graphs"] == 1  # the whole step (a window's roll too), not the model alone
    assert compiled["iterations"] == eager["iterations"]
    assert compiled["rate_constants_R2"] == pytest.approx(eager["rate_constants_R2"], abs=1e-3)
    assert compiled["final_loss"] == pytest.approx(eager["final_loss"], rel=1e-3)


def test_compile_auto_counts_the_batch_s_model_iterations():
    # the compile costs about the same for one model and for a batch, so a batch pays for it sooner: five models
    # of a 7,200-iteration trial compile on a CPU, one does not; on a GPU a batch stays vmapped
    assert not T.auto_compiles(7200, 1, "cpu")
    assert T.auto_compiles(20000, 1, "cpu") and T.auto_compiles(20000, 1, "cuda")
    assert T.auto_compiles(7200, 5, "cpu") and T.auto_compiles(10000, 2, "cpu")
    assert not T.auto_compiles(7200, 2, "cpu")
    assert not T.auto_compiles(72000, 5, "cuda")
    # rolling windows gain more a step (10-20 model steps an iteration): from 10,000 model-iterations on a CPU
    assert T.auto_compiles(14400, 1, "cpu", "window") and T.auto_compiles(2000, 5, "cpu", "window")
    assert not T.auto_compiles(14400, 1, "cpu", "recurrent") and not T.auto_compiles(14400, 1, "cuda", "window")
