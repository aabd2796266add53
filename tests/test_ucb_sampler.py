"""UCBTreeSampler driven by real Optuna studies in ask/tell batches (as the sweeper runs it)."""

from __future__ import annotations

import math
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution as Cat
from optuna.distributions import FloatDistribution as Flt
from optuna.distributions import IntDistribution as Int
from optuna.trial import TrialState

from oscsim.sweep.scores import block_scores, tree_nodes
from oscsim.sweep.moves import step as _step
from oscsim.sweep.ucb_sampler import UCBTreeSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {
    "lr_k": Flt(1e-4, 0.1, log=True),
    "lr_node": Flt(1e-5, 0.01, log=True),
    "lr_sub": Flt(1e-5, 0.01, log=True),
    "batch_size": Int(1, 64, log=True),
    "data_augmentation_loop": Int(100, 8000, log=True),
    "coeff_MLP_node_L1": Flt(0.0, 2.0),
    "n_layers_sub": Int(1, 5),
    "recurrent_training": Cat([False, True]),
    "hidden_dim_sub": Cat([32, 64, 128]),
}
BASE = {
    "lr_k": 0.005, "lr_node": 0.001, "lr_sub": 0.0005, "batch_size": 8,
    "data_augmentation_loop": 1000, "coeff_MLP_node_L1": 1.0, "n_layers_sub": 3,
    "recurrent_training": False, "hidden_dim_sub": 64,
    "n_metabolites": 100,  # not in the search space: ignored by the planner
}
FIRST = ["lr_k", "lr_node", "lr_sub"]


def objective(p: dict[str, Any]) -> float:
    """Cheap, deterministic, depends on several parameters (peak at lr_k=0.01, L1=0.2)."""
    return (
        1.0
        - 0.3 * abs(math.log10(p["lr_k"]) + 2.0)
        - 0.2 * abs(p["coeff_MLP_node_L1"] - 0.2)
        + 0.05 * p["recurrent_training"]
        + 0.001 * p["hidden_dim_sub"]
        - 0.01 * p["n_layers_sub"]
    )


def make_sampler(seed: int = 42, **kw: Any) -> UCBTreeSampler:
    kw.setdefault("first_batch_params", FIRST)
    return UCBTreeSampler(SPACE, BASE, seed=seed, **kw)


def run(study: optuna.Study, n_batches: int, n_parallel: int = 4, fail: frozenset[int] = frozenset()) -> None:
    """Ask a whole batch, then tell it: trials of one batch never see each other's results."""
    for _ in range(n_batches):
        trials = [study.ask(SPACE) for _ in range(n_parallel)]
        for t in trials:
            if t.number + 1 in fail:
                study.tell(t, state=TrialState.FAIL)
            else:
                study.tell(t, objective(t.params))


def new_study(sampler: UCBTreeSampler, storage: str | None = None, name: str | None = None) -> optuna.Study:
    return optuna.create_study(direction="maximize", sampler=sampler, storage=storage, study_name=name)


def in_space(params: dict[str, Any]) -> bool:
    return all(SPACE[k]._contains(SPACE[k].to_internal_repr(v)) for k, v in params.items())


def diff(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return sorted(k for k in SPACE if a[k] != b[k])


def root_config() -> dict[str, Any]:
    return {k: BASE[k] for k in SPACE}


def test_first_batch_reproduces_seed_batch_1() -> None:
    study = new_study(make_sampler())
    run(study, 1)
    t = study.trials
    assert t[0].params == root_config()
    assert diff(t[1].params, t[0].params) == ["lr_k"] and t[1].params["lr_k"] == 0.01
    assert diff(t[2].params, t[0].params) == ["lr_node"] and t[2].params["lr_node"] == 0.002
    assert diff(t[3].params, t[0].params) == ["lr_sub"] and t[3].params["lr_sub"] == 0.0002
    assert [x.user_attrs["mutation"] for x in t] == [
        None, "lr_k: 0.005 -> 0.01", "lr_node: 0.001 -> 0.002", "lr_sub: 0.0005 -> 0.0002"
    ]
    assert [x.user_attrs["strategy"] for x in t] == [
        "exploit (baseline)", "explore (lr_k high)", "explore (lr_node high)", "explore (lr_sub low)"
    ]
    assert {x.user_attrs["parent_rule"] for x in t} == {"root (initial batch)"}
    assert make_sampler().first_batch() == [x.params for x in t]  # the plan, read without a study
    a = t[2].user_attrs
    assert (a["parent"], a["slot"], a["block"], a["batch"], a["iter"]) == (None, 2, 1, 1, 3)


def test_default_first_batch_params_are_first_keys() -> None:
    study = new_study(UCBTreeSampler(SPACE, BASE, seed=0))
    run(study, 1)
    assert [x.user_attrs["mutation"].split(":")[0] for x in study.trials[1:]] == ["lr_k", "lr_node", "lr_sub"]


def test_children_differ_in_exactly_one_param_and_stay_in_space() -> None:
    study = new_study(make_sampler())
    run(study, 8)  # 32 trials, ~3 blocks
    by_iter = {t.number + 1: t for t in study.trials}
    seen_roles = set()
    for t in study.trials:
        assert in_space(t.params), t.params
        a = t.user_attrs
        seen_roles.add(a["role"])
        if a["parent"] is not None:
            parent = by_iter[a["parent"]]
            assert parent.state == TrialState.COMPLETE
            changed = diff(t.params, parent.params)
            assert len(changed) == 1 and a["mutation"].startswith(changed[0] + ":")
        elif a["mutation"] is not None:  # root child: one move away from the block's baseline
            baseline = by_iter[(a["block"] - 1) * 12 + 1]
            assert baseline.user_attrs["mutation"] is None
            assert len(diff(t.params, baseline.params)) == 1
    assert {"exploit", "explore"} <= seen_roles
    assert seen_roles & {"principle-test", "boundary-probe"}
    # no configuration repeats inside a block (possible here: the space is large)
    for block in (1, 2):
        configs = [tuple(sorted(t.params.items())) for t in study.trials if t.user_attrs["block"] == block]
        assert len(configs) == len(set(configs)) == 12


def test_second_batch_plan_by_hand() -> None:
    study = new_study(make_sampler())
    run(study, 2)
    t = study.trials
    # batch-1 rewards: node 2 (lr_k=0.01) is the best; all have V=1, so it has the top UCB
    assert max(range(4), key=lambda i: t[i].value) == 1
    a = t[4].user_attrs
    assert (a["parent"], a["role"]) == (2, "exploit")
    assert a["parent_rule"].startswith("Node 2: highest UCB")
    # most-paying move so far is lr_k up, taken with the conservative x1.5 step
    assert a["mutation"] == "lr_k: 0.01 -> 0.015"
    assert t[5].user_attrs["role"] == "exploit" and t[5].user_attrs["parent_rule"].startswith("Node ")
    assert t[6].user_attrs["role"] == "explore"
    assert t[7].user_attrs["role"] in ("principle-test", "boundary-probe")


def test_block_boundary_resets_the_tree() -> None:
    study = new_study(make_sampler())
    run(study, 6)
    trials = study.trials
    block1 = [t for t in trials if t.number < 12]
    best = max(block1, key=lambda t: (t.value, -t.number))
    first = trials[12]
    assert first.user_attrs["block"] == 2 and first.user_attrs["parent"] is None
    assert first.params == best.params  # root of block 2 = best config of block 1, unchanged
    assert f"Node {best.number + 1}" in first.user_attrs["parent_rule"]
    for t in trials[12:24]:
        p = t.user_attrs["parent"]
        batch_start = 12 + (t.number - 12) // 4 * 4 + 1
        assert p is None or 13 <= p < batch_start, (t.number, p)
    assert all(t.user_attrs["parent"] is None for t in trials[12:16])


def test_deterministic_for_a_seed() -> None:
    def params(seed: int) -> list[dict[str, Any]]:
        study = new_study(make_sampler(seed))
        run(study, 5)
        return [t.params for t in study.trials]

    assert params(3) == params(3)
    assert params(3) != params(4)


def test_resume_with_new_sampler_matches_uninterrupted(tmp_path) -> None:
    ref = new_study(make_sampler(7))
    run(ref, 5)

    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    first = new_study(make_sampler(7), storage=url, name="s")
    run(first, 2)
    del first
    resumed = optuna.load_study(study_name="s", storage=url, sampler=make_sampler(7))
    run(resumed, 3)
    trials = resumed.trials
    assert [t.number for t in trials] == list(range(20))
    assert [t.user_attrs["iter"] for t in trials] == list(range(1, 21))
    assert [t.params for t in trials] == [t.params for t in ref.trials]
    keys = ("parent", "role", "strategy", "mutation", "parent_rule")
    assert [[t.user_attrs[k] for k in keys] for t in trials] == [[t.user_attrs[k] for k in keys] for t in ref.trials]


def test_failed_trials_do_not_break_the_sampler() -> None:
    sampler = make_sampler()
    study = new_study(sampler)
    # node 2 (the best of batch 1) fails, and a whole later batch fails
    run(study, 7, fail=frozenset({2, 9, 10, 11, 12}))
    assert len(study.trials) == 28
    failed = {t.number + 1 for t in study.trials if t.state == TrialState.FAIL}
    for t in study.trials:
        assert in_space(t.params)
        assert t.user_attrs["parent"] not in failed  # a failed config is never a parent
    nodes = [n for n in tree_nodes(study, 12) if n.block == 1]
    assert set(block_scores(nodes, 1, 1.414)) == set(range(1, 13))
    assert {n.iteration for n in nodes if n.reward is None} == {2, 9, 10, 11, 12}
    # block 2 still starts from the best completed node
    best = max((t for t in study.trials[:12] if t.value is not None), key=lambda t: t.value)
    assert study.trials[12].params == best.params


def test_move_stats_match_hand_check() -> None:
    sampler = make_sampler()
    study = new_study(sampler)
    told = {1: 0.5, 2: 0.7, 3: 0.4, 4: 0.5}
    ts = [study.ask(SPACE) for _ in range(4)]
    for t in ts:
        study.tell(t, told[t.number + 1])
    stats = sampler.move_stats(study)
    # root children are compared with the baseline (node 1)
    assert stats == {
        ("lr_k", 1): (pytest.approx(0.2), 1),
        ("lr_node", 1): (pytest.approx(-0.1), 1),
        ("lr_sub", -1): (pytest.approx(0.0), 1),
    }
    # batch 2: tell parent reward + a known delta, then rebuild the stats by hand
    deltas = [0.1, -0.2, 0.3, 0.05]
    ts = [study.ask(SPACE) for _ in range(4)]
    by_iter = {t.number + 1: t for t in study.trials}
    expected: dict[tuple[str, int], list[float]] = {
        ("lr_k", 1): [0.2], ("lr_node", 1): [-0.1], ("lr_sub", -1): [0.0]
    }
    for t, d in zip(ts, deltas):
        ft = study._storage.get_trial(t._trial_id)
        parent = by_iter[ft.user_attrs["parent"]]
        (name,) = diff(t.params, parent.params)
        old, new = parent.params[name], t.params[name]
        direction = (1 if new > old else -1) if not isinstance(new, bool) else (1 if new else -1)
        expected.setdefault((name, direction), []).append(d)
        study.tell(t, told[parent.number + 1] + d)
    stats = sampler.move_stats(study)
    assert sum(n for _, n in stats.values()) == 7
    assert stats == {m: (pytest.approx(sum(v) / len(v)), len(v)) for m, v in expected.items()}
    assert stats[("lr_k", 1)] == (pytest.approx(0.15), 2)  # node 5: lr_k up again, +0.1


def test_sample_independent_uses_base_or_draws() -> None:
    sampler = make_sampler()
    study = new_study(sampler)
    t = study.ask()
    extra = t.suggest_int("n_metabolites", 10, 200)  # outside the search space, in base_params
    other = t.suggest_float("not_in_base", 0.5, 0.7)
    assert extra == 100 and 0.5 <= other <= 0.7
    assert t.suggest_float("lr_k", 1e-4, 0.1, log=True) == 0.005  # relative plan


def test_n_parallel_2_cycles_roles() -> None:
    study = new_study(make_sampler(n_parallel=2))
    run(study, 6, n_parallel=2)
    roles = [t.user_attrs["role"] for t in study.trials]
    assert roles[2] == "explore" and roles[3] in ("principle-test", "boundary-probe")
    assert all(in_space(t.params) for t in study.trials)
    with pytest.raises(ValueError):
        UCBTreeSampler(SPACE, BASE, n_parallel=5, n_iter_block=12)


def test_minimize_direction_treats_lower_as_better() -> None:
    study = optuna.create_study(direction="minimize", sampler=make_sampler())
    ts = [study.ask(SPACE) for _ in range(4)]
    for t, v in zip(ts, (0.5, 0.7, 0.1, 0.5)):
        study.tell(t, v)
    t5 = study.ask(SPACE)
    assert study._storage.get_trial(t5._trial_id).user_attrs["parent"] == 3


@pytest.mark.parametrize(
    "dist, value, direction, kind, expected",
    [
        (Flt(1e-4, 0.1, log=True), 0.005, 1, "step", 0.01),
        (Flt(1e-4, 0.1, log=True), 0.005, -1, "step", 0.002),
        (Flt(1e-4, 0.1, log=True), 0.005, 1, "small", 0.0075),
        (Flt(1e-4, 0.1, log=True), 0.08, 1, "step", 0.1),  # clipped to high
        (Flt(1e-4, 0.1, log=True), 0.1, 1, "step", None),  # at the bound: no move
        (Flt(0.0, 2.0), 1.0, -1, "step", 0.8),  # 10 % of the range
        (Flt(0.0, 2.0), 1.0, 1, "small", 1.1),
        (Flt(0.0, 1.0, step=0.25), 0.5, 1, "step", 0.75),  # at least one grid step
        (Int(1, 5), 3, -1, "step", 2),
        (Int(100, 8000, log=True), 1000, 1, "step", 2000),
        (Int(1, 64, log=True), 1, -1, "step", None),
        (Int(1, 64, log=True), 2, 1, "small", 3),
        (Cat([128, 32, 64]), 64, 1, "step", 128),  # numeric choices: sorted order
        (Cat([False, True]), False, 1, "step", True),
        (Cat([False, True]), False, -1, "step", None),
        (Flt(1e-4, 0.1, log=True), 0.005, 1, "bound", 0.1),
        (Int(1, 5), 3, -1, "bound", 1),
    ],
)
def test_step_rules(dist, value, direction, kind, expected) -> None:
    assert _step(dist, value, direction, kind) == expected


def test_plan_ignores_results_told_within_the_same_batch() -> None:
    # study.optimize-style sequential ask/tell must plan exactly like the batched sweeper
    batched = new_study(make_sampler(5))
    run(batched, 4)
    sequential = new_study(make_sampler(5))
    for _ in range(16):
        t = sequential.ask(SPACE)
        sequential.tell(t, objective(t.params))
    assert [t.params for t in sequential.trials] == [t.params for t in batched.trials]


def test_block_without_completed_node_restarts_from_its_root() -> None:
    sampler = make_sampler()
    study = new_study(sampler)
    run(study, 6, fail=frozenset({13, 14, 15, 16}))
    root = study.trials[12].params
    for t in study.trials[16:20]:
        a = t.user_attrs
        # block-1 nodes are never parents in block 2, even when block 2 has no usable node
        assert a["parent"] is None and a["parent_rule"] == "root (no completed node in block)"
        assert len(diff(t.params, root)) == 1
    nodes = [n for n in tree_nodes(study, 12) if n.block == 2]
    scores = block_scores(nodes, 2, 1.414)
    assert sorted(scores) == list(range(13, 25))
    c_sqrt_n = 1.414 * math.sqrt(12)
    for n in nodes:
        s = scores[n.iteration]
        assert s.ucb == pytest.approx((n.reward or 0.0) + c_sqrt_n / (1 + s.visits))
        assert n.parent is None or 13 <= n.parent <= 24


def test_no_duplicate_config_in_a_small_space() -> None:
    space = {"x": Int(0, 4), "y": Int(0, 4)}
    sampler = UCBTreeSampler(space, {"x": 2, "y": 2}, seed=1)
    study = new_study(sampler)
    for _ in range(3):
        ts = [study.ask(space) for _ in range(4)]
        for t in ts:
            study.tell(t, -abs(t.params["x"] - 4) - abs(t.params["y"] - 1))
    configs = [(t.params["x"], t.params["y"]) for t in study.trials]
    assert len(set(configs)) == 12, configs


def test_surrogate_encodes_and_finds_the_peak() -> None:
    import numpy as np

    from oscsim.sweep.surrogate import GP, encode

    space = {"lr": Flt(1e-4, 1e-2, log=True), "c": Cat([0, 1, 5, 10]), "flag": Cat([False, True])}
    assert encode(space, {"lr": 1e-4, "c": 10, "flag": False}).tolist() == [0.0, 1.0, 0.0]
    assert encode(space, {"lr": 1e-3, "c": 5, "flag": True}) == pytest.approx([0.5, 0.5, 1.0])
    x = np.linspace(0, 1, 9)[:, None]
    gp = GP(x, -(x[:, 0] - 0.62) ** 2)
    grid = np.linspace(0, 1, 101)[:, None]
    mu, sd = gp.predict(grid)
    assert abs(grid[np.argmax(mu), 0] - 0.62) < 0.05
    assert sd[50] < sd.max() and (sd >= 0).all()
    mu_at, _ = gp.predict(x)
    assert np.abs(mu_at - (-(x[:, 0] - 0.62) ** 2)).max() < 0.02  # it interpolates what it saw


def test_ard_gp_tells_the_parameters_that_matter() -> None:
    import numpy as np
    from scipy.optimize import check_grad

    from oscsim.sweep.surrogate import ARDGP, _neg_log_posterior

    rng = np.random.default_rng(0)
    X = rng.random((40, 4))
    y = np.sin(5 * X[:, 0]) + 0.5 * X[:, 2] ** 2 + 0.01 * rng.standard_normal(40)  # dims 1 and 3 do not matter
    gp = ARDGP(X, y)
    assert gp.ell[0] < 0.6 and gp.ell[2] < 2.0 and min(gp.ell[1], gp.ell[3]) > 3.0, gp.ell
    D, z = (X[:, None] - X[None]) ** 2, (y - y.mean()) / y.std()
    theta = np.log([0.3, 0.5, 1.0, 2.0, 0.05])
    assert check_grad(lambda t: _neg_log_posterior(t, D, z)[0], lambda t: _neg_log_posterior(t, D, z)[1], theta) < 1e-3
    Xt = rng.random((200, 4))
    mu, sd = gp.predict(Xt)
    truth = np.sin(5 * Xt[:, 0]) + 0.5 * Xt[:, 2] ** 2
    assert np.sqrt(((mu - truth) ** 2).mean()) < 0.05 and (sd > 0).all()  # the isotropic GP: 0.23


@pytest.mark.parametrize("guide", ["gp", "gp_ard"])
def test_gp_guide_keeps_the_tree_and_moves_one_param(guide: str) -> None:
    study = new_study(make_sampler(seed=3, guide=guide))
    run(study, 6)
    trials = sorted(study.trials, key=lambda t: t.number)
    by_iter = {t.number + 1: t.params for t in trials}
    guided = 0
    for t in trials[4:]:
        parent = t.user_attrs["parent"]
        if parent is not None:  # (a later block's first batch moves from that block's root)
            assert len(diff(by_iter[parent], t.params)) == 1 and in_space(t.params)
        guided += "[gp]" in t.user_attrs["strategy"]
    assert guided >= 12  # the slots planned by the tree's roles are ordered by the GP
    again = new_study(make_sampler(seed=3, guide=guide))
    run(again, 6)
    assert [t.params for t in sorted(again.trials, key=lambda t: t.number)] == [t.params for t in trials]


def test_exploit_beta_sets_how_far_guided_exploit_moves_reach() -> None:
    # mean + beta sd: with beta 0 an exploit child is the model's best guess, near what it has seen; a large beta
    # follows the model's doubt, which is largest far from every trial (the bounds of the parameter's line)
    import numpy as np

    from oscsim.sweep.surrogate import encode

    reach = {}
    for beta in (0.0, 1.0, 25.0):
        study = new_study(make_sampler(seed=3, guide="gp_ard", first_batch="cover", exploit_beta=beta, n_iter_block=24))
        run(study, 6)
        by_iter = {t.number + 1: t.params for t in study.trials}
        exploit = [t for t in study.trials[4:] if t.user_attrs["role"] == "exploit" and t.user_attrs["parent"]]
        assert len(exploit) == 10
        reach[beta] = np.mean([np.abs(encode(SPACE, t.params) - encode(SPACE, by_iter[t.user_attrs["parent"]])).sum()
                               for t in exploit])
    assert reach[0.0] < reach[1.0] <= reach[25.0], reach
    with pytest.raises(ValueError, match="exploit_beta=-0.5: must be >= 0"):
        make_sampler(exploit_beta=-0.5)


def test_a_prior_is_the_guides_mean_until_the_study_says_otherwise() -> None:
    import numpy as np

    from oscsim.sweep.surrogate import Prior, WithPrior, encode

    space = {"a": Flt(1e-4, 1e-2, log=True), "b": Cat([0.0, 1.0, 10.0]), "seed": Cat([42, 1, 2])}
    rng = np.random.default_rng(1)
    # two earlier studies of one landscape (R2 rises with log a), on different scales and with a parameter this
    # space lacks: each is standardised on its own, and only what the space shares is modelled (not the seed)
    studies = [[({"a": 10 ** rng.uniform(-4, -1), "b": float(rng.choice([0, 1, 10])), "c": 3, "seed": 1}, 0.0)
                for _ in range(30)] for _ in range(2)]
    studies = [[(c, scale * (np.log10(c["a"]) + 4)) for c, _ in s] for s, scale in zip(studies, (0.1, 5.0))]
    prior = Prior(space, studies)
    assert prior.names == ["a", "b"]
    line = np.stack([encode(space, {"a": a, "b": 1.0, "seed": 42}) for a in (1e-4, 1e-3, 1e-2)])
    before = WithPrior(prior, np.zeros((0, 3)), np.zeros(0), ard=True)
    mu, sd = before.predict(line)
    assert mu[0] < mu[1] < mu[2] and (sd > 0).all()  # no trial of its own yet: the prior orders the moves
    # this study finds the opposite near a = 1e-2: its own trials win where it has them
    X = np.stack([encode(space, {"a": a, "b": b, "seed": 2}) for a in (3e-3, 6e-3, 1e-2) for b in (0.0, 10.0)])
    y = np.array([0.8, 0.8, 0.5, 0.5, 0.1, 0.1])
    after = WithPrior(prior, X, y, ard=True)
    mu_at, _ = after.predict(X)
    assert np.abs(mu_at - y).max() < 0.1 and mu_at[4] < mu_at[0]
    with pytest.raises(ValueError, match="share no parameter"):
        Prior({"z": Flt(0, 1)}, studies)
    with pytest.raises(ValueError, match="a prior needs a guide"):
        make_sampler(prior=studies)


def test_unknown_guide_is_refused() -> None:
    with pytest.raises(ValueError, match="guide=tpe: must be one of none, gp, gp_ard"):
        make_sampler(guide="tpe")


def test_line_runs_from_the_value_to_the_bound() -> None:
    from oscsim.sweep.moves import line

    up = line(Flt(1e-4, 0.1, log=True), 0.005, +1, n=4)
    assert up[-1] == 0.1 and all(a < b for a, b in zip(up, up[1:])) and up[0] > 0.005
    assert up == pytest.approx([0.0106, 0.0224, 0.0473, 0.1], rel=2e-3)  # even steps on the log scale
    assert line(Flt(1e-4, 0.1, log=True), 0.1, +1) == []
    assert line(Cat([0, 1, 5, 10, 50]), 5, -1) == [1, 0] and line(Cat([0, 1, 5, 10, 50]), 5, +1) == [10, 50]
    assert line(Int(1, 5), 3, +1) == [4, 5] and line(Flt(0.0, 2.0), 1.0, -1, n=2) == [0.5, 0.0]


def test_covering_first_batch_spreads_over_the_space() -> None:
    from oscsim.sweep.moves import latin

    import numpy as np

    draws = latin(SPACE, 8, np.random.default_rng(0))
    lr = sorted(math.log10(d["lr_k"]) for d in draws)  # one draw per eighth of [-4, -1] in log10
    assert all(-4 + 3 * i / 8 <= v <= -4 + 3 * (i + 1) / 8 + 1e-3 for i, v in enumerate(lr))
    assert all(in_space(d) for d in draws)
    study = new_study(make_sampler(seed=1, first_batch="cover"))
    run(study, 2)
    first = sorted(study.trials, key=lambda t: t.number)[:4]
    assert first[0].params == root_config()
    assert all(len(diff(root_config(), t.params)) >= 3 for t in first[1:])  # not one-at-a-time moves
    assert {t.user_attrs["parent"] for t in first} == {None}
    assert make_sampler(seed=1, first_batch="cover").first_batch() == [t.params for t in first]
    # the three draws are one hypercube: one per third of each log range (each slot is planned in its own call)
    for seed in range(6):
        batch = new_study(make_sampler(seed=seed, first_batch="cover"))
        run(batch, 1)
        for name, (lo, hi) in {"lr_k": (-4, -1), "lr_node": (-5, -2), "lr_sub": (-5, -2)}.items():
            thirds = sorted(min(int((math.log10(t.params[name]) - lo) / (hi - lo) * 3), 2) for t in batch.trials[1:])
            assert thirds == [0, 1, 2], (seed, name, thirds)
    again = new_study(make_sampler(seed=1, first_batch="cover"))
    run(again, 2)
    assert [t.params for t in sorted(again.trials, key=lambda t: t.number)] == [t.params for t in sorted(study.trials, key=lambda t: t.number)]


def test_without_root_reruns_no_configuration_is_trained_twice() -> None:
    # The lab's tree retrains each later block's root (an earlier best node): same config, same seed, same R2.
    lab = new_study(make_sampler(seed=3))
    run(lab, 9)  # 36 trials: blocks 1-3
    by_iter = {t.number + 1: t for t in lab.trials}
    for block in (2, 3):
        first = by_iter[(block - 1) * 12 + 1]
        assert first.user_attrs["mutation"] is None and first.params in [t.params for t in lab.trials[:first.number]]

    study = new_study(make_sampler(seed=3, rerun_root=False))
    run(study, 9)
    keys = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(keys) == len(set(keys)) == 36  # every trial a new configuration
    by_iter = {t.number + 1: t for t in study.trials}
    assert [t.params for t in study.trials[:12]] == [t.params for t in lab.trials[:12]]  # block 1 as the lab's
    for block in (2, 3):
        start = (block - 1) * 12
        best = max(study.trials[:start], key=lambda t: (t.value, -t.number))  # the block's root node
        for t in study.trials[start:start + 4]:  # its first batch: children of that node, one move each
            a = t.user_attrs
            assert a["block"] == block and a["parent"] == best.number + 1 and a["mutation"] is not None
            assert len(diff(t.params, best.params)) == 1
        for t in study.trials[start + 4:start + 12]:  # later batches: parents inside the block
            p = t.user_attrs["parent"]
            assert p is not None and start < p <= start + 12 - 4, (t.number, p)
    # every move teaches the move statistics, the root's children against the root node's own R2 (with no
    # baseline run in blocks 2-3 and parent None, their 8 first-batch moves would teach nothing)
    stats = study.sampler.move_stats(study)
    assert sum(n for _, n in stats.values()) == sum(t.user_attrs["mutation"] is not None for t in study.trials) == 35
