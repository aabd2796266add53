from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from oscsim.sweep.experiment_log import (
    TrialRecord,
    observation_text,
    parse_log,
    parse_ucb_scores,
    render_log,
    render_ucb_scores,
    visual_text,
)

DATA = Path(__file__).resolve().parent / "data"
SEED_LOG = DATA / "lab_seed_log_rank50_batches1-2.md"  # the lab's log, copied: tests read nothing outside the repo
FACTS = json.loads((DATA / "lab_seed_log_facts.json").read_text())
BASE = {"seed": 42, "lr_k": 0.005, "lr_node": 0.001, "lr_sub": 0.0005, "batch_size": 8, "n_epochs": 1,
        "data_augmentation_loop": 1000, "coeff_MLP_node_L1": 1.0, "coeff_MLP_sub_norm": 0.0,
        "coeff_k_floor": 0.0}


def test_parse_seed_log():
    it = parse_log(SEED_LOG.read_text())
    assert [e["iter"] for e in it] == FACTS["iters"]  # planned batch-2 slots have no Iter entry
    assert [e["status"] for e in it] == FACTS["status"]
    assert [e["id"] for e in it] == [1, 2, 3, 4]
    assert all(e["parent"] is None and e["next_parent"] is None for e in it)
    assert it[0]["metrics"] == FACTS["iter1_metrics"]
    assert [e["metrics"]["rate_constants_R2"] for e in it] == FACTS["rate_constants_R2"]
    assert [e["metrics"]["test_pearson"] for e in it] == FACTS["test_pearson"]
    assert it[2]["metrics"]["test_R2"] == FACTS["iter3_test_R2"]
    assert it[3]["metrics"]["alpha"] == FACTS["iter4_alpha"]
    assert [e["mutation"] for e in it] == FACTS["mutations"]
    assert it[0]["config"] == BASE
    assert it[3]["config"]["lr_sub"] == 0.0002 and it[1]["config"]["batch_size"] == 8
    assert it[1]["strategy"] == "explore (lr_k high)"


def _rec(i, parent, batch, slot, status, mutation=None, cfg=None, block=1, **metrics) -> TrialRecord:
    return TrialRecord(iter=i, parent=parent, block=block, batch=batch, slot=slot,
                       role=["exploit", "exploit", "explore", "principle-test"][slot],
                       strategy=mutation or "baseline", config=dict(cfg or BASE), mutation=mutation,
                       parent_rule="root (initial batch)" if parent is None else f"UCB best ({parent})",
                       status=status, metrics=metrics)


def _lab(r2, tr2, nout, slope, test_r2, pear, loss, alpha, **kw):
    return dict(rate_constants_R2=r2, trimmed_R2=tr2, n_outliers=nout, slope=slope, test_R2=test_r2,
                test_pearson=pear, final_loss=loss, alpha=alpha, **kw)


def _records() -> list[TrialRecord]:
    return [
        _rec(1, None, 1, 0, "failed", **_lab(0.0443, 0.9234, 43, 0.9684, -766043.33, -0.0125, 17381.72,
                                              0.5196, rate_constants_R2_identifiable=0.05123, rollout_horizon=37,
                                              MLP_sub_exponent_1=0.86, MLP_sub_exponent_2=1.10,
                                              MLP_sub_powers_in_data=[1, 2], MLP_node_slope_0=0.0,
                                              MLP_node_gt_slope_0=-0.001, MLP_node_slope_1=0.0,
                                              MLP_node_gt_slope_1=-0.002)),
        _rec(2, None, 1, 1, "partial", "lr_k: 0.005 -> 0.01", {**BASE, "lr_k": 0.01},
             **_lab(0.3012, 0.9, 20, 0.95, 0.41, 0.62, 900.5, 0.98)),
        _rec(3, None, 1, 2, "failed", "lr_node: 0.001 -> 0.002", {**BASE, "lr_node": 0.002},
             error="CUDA error: out of memory\nat step 10"),
        _rec(4, None, 1, 3, "pruned", "lr_sub: 0.0005 -> 0.0002", {**BASE, "lr_sub": 0.0002},
             rate_constants_R2=0.0101, test_R2=-3.5),
        _rec(5, 2, 2, 0, "converged", "coeff_MLP_node_L1: 1.0 -> 0.1",
             {**BASE, "lr_k": 0.01, "coeff_MLP_node_L1": 0.1},
             **_lab(0.9123, 0.95, 3, 1.01, 0.88, 0.93, 120.0, 1.002)),
        _rec(6, 2, 2, 1, "partial", "coeff_MLP_sub_norm: 0.0 -> 1.0",
             {**BASE, "lr_k": 0.01, "coeff_MLP_sub_norm": 1.0},
             **_lab(0.1201, 0.5, 30, 0.7, float("nan"), 0.1, 5000.0, 1.0)),
        _rec(7, 5, 2, 2, "running", "lr_k: 0.01 -> 0.02", {**BASE, "lr_k": 0.02}),
        _rec(8, 1, 2, 3, "failed", "data_augmentation_loop: 1000 -> 2000",
             {**BASE, "data_augmentation_loop": 2000}, **_lab(0.02, 0.8, 50, 0.9, -1.0e6, 0.0, 1.0e4, 0.5)),
    ]


def test_render_then_parse_roundtrip():
    recs = _records()
    shuffled = recs[::-1]
    text = render_log("rank_50", shuffled, n_parallel=4, n_iter_block=12,
                      regime_lines=["Regime: S frozen (from GT), learning rate constants k"])
    assert text.startswith("# Experiment Log: rank_50 (parallel)\n\n## Block 1: Initial Exploration\n")
    assert "### Batch 1 (Iter 1-4): PARALLEL START - Initial Spread" in text
    assert "**Slot 2 (id=7)**: lr_k: 0.01 -> 0.02" in text  # running: planned only
    assert "## Iter 7" not in text
    assert "### Batch 1 Summary" in text and "### Batch 2 Summary" not in text  # batch 2 still running
    assert "| 0 | 1 | None (baseline) | 0.0443 | 43 | 0.5196 | 0.9684 | failed |" in text
    assert "| 2 | 3 | lr_node: 0.001 -> 0.002 | - | - | - | - | failed |" in text
    assert ("Metrics: rate_constants_R2=0.0443, trimmed_R2=0.9234, n_outliers=43, slope=0.9684, "
            "test_R2=-766043.33, test_pearson=-0.0125, final_loss=17381.72, alpha=0.5196, "
            "rate_constants_R2_identifiable=0.0512, rollout_horizon=37") in text

    parsed = {e["iter"]: e for e in parse_log(text)}
    finished = [r for r in recs if r.status != "running"]
    assert sorted(parsed) == [r.iter for r in finished]
    for r in finished:
        e = parsed[r.iter]
        assert (e["id"], e["parent"], e["status"], e["mutation"]) == (r.iter, r.parent, r.status, r.mutation)
        assert e["config"] == r.config
        for k, v in r.metrics.items():
            if k in ("error", "MLP_sub_powers_in_data"):
                continue
            if math.isnan(v):
                assert math.isnan(e["metrics"][k])
            else:
                assert e["metrics"][k] == pytest.approx(v, abs=5e-5), k
    assert parsed[3]["metrics"] == {}  # crashed: no metrics, error in Observation
    assert "crashed: CUDA error: out of memory at step 10" in parsed[3]["observation"]
    assert parsed[4]["metrics"] == {"rate_constants_R2": 0.0101, "test_R2": -3.5}
    # Next: best reward in the block so far
    assert [parsed[i]["next_parent"] for i in (1, 2, 3, 4, 5, 6, 8)] == [1, 2, 2, 2, 5, 5, 5]
    assert "rate_constants_R2 0.301 -> 0.912 (+0.611) vs parent 2" in parsed[5]["observation"]


def test_render_is_idempotent_and_order_free():
    recs = _records()
    ref = render_log("t", recs, 4, 12)
    for seed in range(5):
        sh = recs[:]
        random.Random(seed).shuffle(sh)
        assert render_log("t", sh, 4, 12) == ref
    # a duplicated record (two workers) is written once; the finished copy wins over a running one
    dup = recs + [_rec(5, 2, 2, 0, "running", "coeff_MLP_node_L1: 1.0 -> 0.1",
                       {**BASE, "lr_k": 0.01, "coeff_MLP_node_L1": 0.1})]
    assert render_log("t", dup[::-1], 4, 12) == ref
    assert ref.count("## Iter 5: converged") == 1


def test_summary_when_batch_complete_and_new_block():
    recs = [r for r in _records() if r.iter != 7]
    recs.append(_rec(7, 5, 2, 2, "partial", "lr_k: 0.01 -> 0.02", {**BASE, "lr_k": 0.02},
                     rate_constants_R2=0.5))
    recs.append(_rec(13, None, 4, 0, "partial", None, block=2, rate_constants_R2=0.4))
    text = render_log("t", recs, 4, 12)
    assert "### Batch 2 Summary" in text
    assert "## Block 2: Exploration (Iter 13-24)" in text
    e13 = [e for e in parse_log(text) if e["iter"] == 13][0]
    assert e13["next_parent"] == 13 and "baseline of block 2" in e13["observation"]


def test_visual_measured():
    v = visual_text({"MLP_sub_exponent_1": 0.86, "MLP_sub_exponent_2": float("nan"),
                     "MLP_sub_powers_in_data": [1], "MLP_node_slope_0": 0.0, "MLP_node_gt_slope_0": -0.001,
                     "MLP_node_slope_1": 0.0, "MLP_node_gt_slope_1": -0.002})
    assert "MLP_sub=bad: at |s|=1 grows like c^0.86" in v
    assert "no |s|=2 edge" in v
    assert ("MLP_node=bad: slope 0.000 vs true -0.001 (type 0), 0.000 vs -0.002 (type 1): "
            "flat, no homeostasis learned") in v
    v2 = visual_text({"MLP_sub_exponent_1": 0.86, "MLP_sub_exponent_2": 1.10, "MLP_sub_powers_in_data": [1, 2]})
    assert "at |s|=1 grows like c^0.86; at |s|=2 like c^1.10 (linear instead of quadratic)" in v2
    flat = visual_text({"MLP_sub_exponent_1": 0.86, "MLP_sub_exponent_2": 0.16, "MLP_sub_powers_in_data": [1]})
    assert "like c^0.16 (not quadratic)" in flat and "linear" not in flat
    assert "no |s|=2 edge" not in v2 and "MLP_node=not measured" in v2
    v3 = visual_text({"MLP_sub_exponent_1": 0.98, "MLP_sub_powers_in_data": [1, 2],
                      "MLP_node_slope_0": -0.0011, "MLP_node_gt_slope_0": -0.001})
    assert v3.startswith("MLP_sub=good: c^1 grows like c^0.98") and "MLP_node=good" in v3
    assert "flat" not in v3
    v4 = visual_text({"MLP_node_slope_0": 0.003, "MLP_node_gt_slope_0": -0.001})
    assert "MLP_node=bad" in v4 and "wrong sign" in v4


def test_observation_flags_exploded_rollout():
    parent = _rec(1, None, 1, 0, "failed", rate_constants_R2=0.044)
    child = _rec(5, 1, 2, 0, "partial", "lr_k: 0.005 -> 0.01", rate_constants_R2=0.12, test_R2=-7.7e5)
    obs = observation_text(child, {1: parent, 5: child})
    assert "rate_constants_R2 0.044 -> 0.120 (+0.076) vs parent 1" in obs
    assert "rollout exploded (test_R2=-7.7e+05)" in obs
    ok = _rec(6, 1, 2, 1, "partial", "x", rate_constants_R2=0.3, test_R2=0.5)
    assert "exploded" not in observation_text(ok, {1: parent})
    inf = _rec(7, 1, 2, 2, "failed", "x", rate_constants_R2=0.01, test_R2=float("-inf"))
    assert "rollout exploded" in observation_text(inf, {1: parent})
    assert "baseline" in observation_text(parent, {1: parent})


def test_ucb_scores_format_and_roundtrip():
    rows = [
        {"id": 5, "ucb": 1.5, "parent": 2, "visits": 2, "R2": 0.9123, "Pearson": None, "mutation": None},
        {"id": 136, "ucb": 2.1061, "parent": "root", "visits": 1, "R2": 0.6924, "Pearson": 0.4881,
         "mutation": "lr_k: 0.005 -> 0.01"},
    ]
    text = render_ucb_scores(rows)
    lines = text.splitlines()
    assert lines[0] == ("Node 136: UCB=2.106, parent=root, visits=1, R2=0.692, Pearson=0.488, "
                        "Mutation=lr_k: 0.005 -> 0.01")
    assert lines[1] == "Node 5: UCB=1.500, parent=2, visits=2, R2=0.912, Pearson=nan, Mutation=None"
    back = parse_ucb_scores(render_ucb_scores(rows, block=1))
    assert [r["id"] for r in back] == [136, 5]
    assert back[0] == {"id": 136, "ucb": 2.106, "parent": "root", "visits": 1, "R2": 0.692,
                       "Pearson": 0.488, "mutation": "lr_k: 0.005 -> 0.01"}
    assert back[1]["parent"] == 2 and back[1]["Pearson"] is None and back[1]["mutation"] is None
    assert render_ucb_scores(rows, block=1).startswith("# UCB scores: block 1 (c=1.414, N_total=2)\nNode 136")
