"""`<name>_ucb_scores.txt` ranks the nodes exactly as the UCB sampler acted on them (one computation,
oscsim.sweep.scores), on a sweep with pruned, crashed and exploded trials."""
from __future__ import annotations

import math
from pathlib import Path

import optuna
import pytest

from oscsim.sweep.experiment_log import parse_log, parse_ucb_scores
from oscsim.sweep.runner import Outcome, SweepRunner, SweepSettings

optuna.logging.set_verbosity(optuna.logging.WARNING)

C = 1.414
# iteration -> what its job gives back: R2 0.95 pruned (the old file put it on top), R2 -5 (exploded,
# told as -1), a crash (no metrics)
OUTCOMES = {
    1: {"rate_constants_R2": 0.5}, 2: {"rate_constants_R2": 0.8, "status": "pruned"},
    3: {"rate_constants_R2": -3.0}, 4: None,
    5: {"rate_constants_R2": 0.9}, 6: {"rate_constants_R2": 0.95, "status": "pruned"},
    7: {"rate_constants_R2": -5.0}, 8: None,
}


def _outcome(iteration: int) -> Outcome:
    m = OUTCOMES.get(iteration, {"rate_constants_R2": 0.1})
    if m is None:
        return Outcome(None, "RuntimeError: boom")
    return Outcome({"test_R2": 0.2, "test_pearson": 0.3, "status": "partial", **m})


def test_ucb_file_ranks_nodes_as_the_sampler_planned(tmp_path: Path) -> None:
    settings = SweepSettings(
        sampler="ucb_tree", study_name="s", storage=f"sqlite:///{tmp_path / 'oscsim.db'}", n_trials=12,
        params={"lr_k": "tag(log, interval(1e-4, 0.1))", "lr_node": "tag(log, interval(1e-5, 0.01))",
                "lr_sub": "tag(log, interval(1e-5, 0.01))"},
        first_batch_params=["lr_k", "lr_node", "lr_sub"], heartbeat_interval=None,
    )
    runner = SweepRunner(settings, {"lr_k": 0.005, "lr_node": 0.001, "lr_sub": 0.0005}, [], tmp_path, "t", "sim")
    ucb_file = tmp_path / "s_ucb_scores.txt"
    seen_before_batch_3: list[str] = []

    def launch(jobs: list[list[str]], numbers: list[int]) -> list[Outcome]:
        if numbers[0] == 8:  # the file as written just before batch 3 runs: what its plan was made from
            seen_before_batch_3.append(ucb_file.read_text())
        return [_outcome(n + 1) for n in numbers]

    study = runner.run(launch)
    rows = parse_ucb_scores(seen_before_batch_3[0])
    assert sorted(r["id"] for r in rows) == list(range(1, 9))
    by_id = {r["id"]: r for r in rows}
    explore = C * math.sqrt(8)
    for r in rows:  # UCB = R2 as scored + c*sqrt(N)/(1+V); failed and pruned score 0
        r2 = 0.0 if math.isnan(r["R2"]) else r["R2"]
        assert r["ucb"] == pytest.approx(r2 + explore / (1 + r["visits"]), abs=1e-3)
    # pruned and crashed trials have no reward, however high the R2 they logged; exploded R2 is clipped at -1
    assert [i for i in by_id if math.isnan(by_id[i]["R2"])] == [2, 4, 6, 8]
    assert by_id[6]["ucb"] == pytest.approx(explore / 2, abs=1e-3)
    assert by_id[3]["R2"] == by_id[7]["R2"] == -1.0
    assert rows[0]["id"] == 5 and rows[0]["R2"] == 0.9

    # the sampler's exploit slots of batch 3 took the file's 1st and 2nd nodes with a reward, at those UCBs
    alive = [r for r in rows if not math.isnan(r["R2"])]
    trials = {t.number + 1: t for t in study.trials}
    for slot, r in enumerate(alive[:2]):
        a = trials[9 + slot].user_attrs
        assert (a["role"], a["parent"]) == ("exploit", r["id"])
        assert a["parent_rule"].startswith(f"Node {r['id']}: ") and a["parent_rule"].endswith(f" {r['ucb']:.3f}")
    log = {e["iter"]: e for e in parse_log((tmp_path / "s_analysis.md").read_text())}
    assert log[9]["parent_rule"] == f"Node 5: highest UCB {by_id[5]['ucb']:.3f}"
    # the log's Next: parent is never a pruned node either (node 6 logged R2 0.95 > node 5's 0.9)
    assert log[8]["next_parent"] == 5
