"""Observed data (SPEC §9): the observation model, training on rollout windows, the observed-data oracle, a
user's own data set on disk (load, validate, export) and heldout_loss."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from oscsim import losses as L
from oscsim import train as T
from oscsim.datafile import DataFileError, export, load_observed
from oscsim.dataset import simulate
from oscsim.dynamics import MassAction
from oscsim.network import k_structure
from oscsim.observation import (auto_settings, derivative_error_weights, error_weights, noise_estimate, observe, smooth,
                                window_starts)
from oscsim.oracle.estimate import observed_oracle, structured_design_estimate, window_design
from oscsim.params import ConfigError

from conftest import ROOT, regime

QUICK = ["simulation=tiny", "progress=false", "compile=false", "threads=1", "plots=false", "tensorboard=false"]


@pytest.fixture(scope="module")
def tiny_ds():
    return simulate(regime("tiny"))


def test_observe_keeps_every_stride_th_frame_and_adds_seeded_multiplicative_noise(tiny_ds):
    c = tiny_ds.concentrations
    assert np.array_equal(observe(c, 0.0, 3, 7), c[::3])
    noisy = observe(c, 0.05, 1, 7)
    assert np.array_equal(noisy, observe(c, 0.05, 1, 7))  # seeded
    assert not np.array_equal(noisy, observe(c, 0.05, 1, 8))
    rel = noisy[c > 0.5] / c[c > 0.5] - 1
    assert abs(rel.std() - 0.05) < 0.003 and abs(rel.mean()) < 0.003
    assert noisy.min() >= 0


def test_relative_error_weights_put_every_metabolite_in_units_of_its_own_level(tiny_ds):
    c = tiny_ds.concentrations.astype(np.float64)
    w = error_weights(c, "relative")
    scaled = c.copy()
    scaled[:, 3] *= 1000.0  # the same metabolite measured in other units
    w2 = error_weights(scaled, "relative")
    assert w2[3] * 1000.0 * (w[0] / w2[0]) == pytest.approx(w[3])  # its weighted error is unchanged, relative to the rest
    assert np.average(c.mean(0) * w) == pytest.approx(c.mean())  # the overall size is kept
    assert np.array_equal(error_weights(c, "absolute"), np.ones(c.shape[1]))


def test_relative_derivative_errors_count_in_units_of_each_metabolites_spread():
    """error_scale=relative on exact dc/dt: weights are the mean spread over each metabolite's own, never below 1
    (fast metabolites keep their errors as measured) and at most 100 (a flat one), and the prediction loss is
    the norm of the weighted error, by hand."""
    d = np.array([[0.0, 0.0, 0.0, 0.0, 5.0], [0.5, 2.0, 4.0, 30.0, 5.0]])  # spreads 0.25, 1, 2, 15, 0: mean 3.65
    w = derivative_error_weights(d)
    assert w == pytest.approx([3.65 / 0.25, 3.65, 3.65 / 2, 1.0, 100.0])
    from oscsim.objective import Objective

    model = lambda c, q=None: SimpleNamespace(dcdt=c, node=c, sub_queries=None)  # noqa: E731  dc/dt = c
    holder = torch.nn.Module()
    holder.prior_penalty = lambda: None  # no prior: the prediction term alone
    obj = Objective(holder, "derivative", [], None, err_scale=torch.tensor([1.0, 2.0]), step=model)
    c, target = torch.tensor([[1.0, 1.0], [0.0, 0.0]]), torch.tensor([[4.0, 5.0], [0.0, 1.0]])
    pred = obj(c, target, {})["prediction"]  # errors (-3, -4) -> (-3, -8); (0, -1) -> (0, -2)
    assert float(pred) == pytest.approx(np.hypot(3, 8) + 2.0)


@pytest.mark.parametrize("stoichiometry", ["given", "learned"])
def test_relative_k_weighs_errors_for_k_alone(stoichiometry):
    """error_scale=relative_k: log_k's gradient is that of the weighted loss, every other parameter's (MLP_sub,
    MLP_node, the embedding, learned S) that of the absolute one; the loss's value is the weighted one."""
    from oscsim.models import ReactionModel
    from oscsim.network import build_network
    from oscsim.objective import Objective

    net = build_network(regime("tiny"))
    torch.manual_seed(0)
    model = ReactionModel(net, node_init="default", stoichiometry=stoichiometry)
    c, target = torch.rand(6, net.n_metabolites) * 3, torch.randn(6, net.n_metabolites)
    w = 1.0 + 9.0 * torch.rand(net.n_metabolites)

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    hybrid = Objective(model, "derivative", [], None, k_err_scale=w)(c, target, {})["prediction"]
    weighted_value = L.prediction_loss(model(c).dcdt, target, w)
    assert float(hybrid.detach()) == pytest.approx(float(weighted_value.detach()), rel=1e-5)
    got = grads(hybrid)
    weighted = grads(L.prediction_loss(model(c).dcdt, target, w))
    absolute = grads(L.prediction_loss(model(c).dcdt, target))
    assert set(got) == set(absolute) and len(got) >= 4
    for name, g in got.items():
        want = weighted[name] if name == "log_k_param" else absolute[name]
        other = absolute[name] if name == "log_k_param" else weighted[name]
        assert torch.allclose(g, want, rtol=1e-4, atol=1e-6), name
        assert not torch.allclose(g, other, rtol=1e-2, atol=1e-4), name  # the weights change every gradient


def test_relative_k_takes_window_errors_as_measured(compose_config, tmp_path):
    """relative_k (the default model's) has a path into k for exact dc/dt only: a window fit runs as absolute
    (not refused: the default must not stop a plain `window=4`), unlike relative, which weighs windows."""
    base = (*QUICK, "loss=observed", "simulation.noise=0.01", "window=4", "data_augmentation_loop=20")
    runs = {s: T.train(compose_config(*base, f"error_scale={s}"), tmp_path / s) for s in ("relative_k", "absolute", "relative")}
    assert runs["relative_k"]["final_loss"] == runs["absolute"]["final_loss"]
    assert runs["relative"]["final_loss"] != runs["absolute"]["final_loss"]


def test_smoothing_removes_noise_but_not_the_trajectory(tiny_ds):
    c = tiny_ds.concentrations
    noisy = observe(c, 0.03, 1, 0)
    err = lambda a: float(np.median(np.abs(a - c)[c > 0.5] / c[c > 0.5]))  # noqa: E731
    assert err(smooth(noisy, 5)) < 0.5 * err(noisy)
    assert smooth(noisy, 0) is noisy


def test_the_noise_estimate_reads_the_noise_level_off_the_series(tiny_ds):
    """The fourth-difference estimate finds the multiplicative noise the observation model put on, and next to
    nothing on the clean trajectory; `auto` then picks the settings measured for that level."""
    c = tiny_ds.concentrations
    assert noise_estimate(c) < 0.003
    for sigma in (0.01, 0.03, 0.1):
        assert noise_estimate(observe(c, sigma, 1, 0)) == pytest.approx(sigma, rel=0.1)
    assert [auto_settings(noise_estimate(observe(c, s, 1, 0)), 1) for s in (0.0, 0.01, 0.03, 0.1)] == \
        [(10, 0), (10, 0), (10, 5), (20, 5)]
    assert auto_settings(0.1, 5) == (2, 0) and auto_settings(0.01, 20) == (1, 0)  # strided: same span, no smoothing


def test_auto_settings_train_exactly_as_the_settings_they_choose(compose_config, tmp_path):
    """window=auto start_smoothing=auto (loss=observed's defaults) at 10 % noise is window=20 start_smoothing=5."""
    quick = [*QUICK, "loss=observed", "simulation.noise=0.1", "data_augmentation_loop=10"]
    auto = T.train(compose_config(*quick), tmp_path / "auto")
    chosen = T.train(compose_config(*quick, "window=20", "start_smoothing=5"), tmp_path / "chosen")
    other = T.train(compose_config(*quick, "window=10", "start_smoothing=0"), tmp_path / "other")
    assert auto["heldout_loss"] == chosen["heldout_loss"] and auto["rate_constants_R2"] == chosen["rate_constants_R2"]
    assert other["heldout_loss"] != auto["heldout_loss"]


@pytest.mark.parametrize("n_obs, window, fraction, held_window", [(2881, 10, 0.1, 10), (300, 5, 0.2, 4), (61, 3, 0.1, 10)])
def test_heldout_windows_never_share_an_observation_with_training_windows(n_obs, window, fraction, held_window):
    train, held = window_starts(n_obs, window, fraction, held_window)
    seen_train = np.zeros(n_obs, bool)
    seen_held = np.zeros(n_obs, bool)
    for t in train:
        seen_train[t : t + window + 1] = True
    for t in held:
        seen_held[t : t + held_window + 1] = True
    assert len(held) > 0 and not (seen_train & seen_held).any()
    assert 0.3 * fraction < seen_held.mean() < 2 * fraction
    assert seen_train.mean() > 1 - 2.5 * fraction
    assert np.array_equal(window_starts(n_obs, window, 0.0)[0], np.arange(n_obs - window))
    # the held-out windows do not depend on the training window: configurations are scored alike
    assert np.array_equal(window_starts(n_obs, window + 2, fraction, held_window)[1], held)


@pytest.mark.parametrize("stride, window", [(1, 1), (1, 7), (3, 4)])
def test_true_dynamics_have_zero_window_loss_on_clean_data(tiny_ds, stride, window):
    """The loss's rollout is the simulator's own integrator: the true model reproduces every observation of a
    window (substeps = stride steps of dt between observations), so a learned model is not biased by it."""
    f = MassAction(tiny_ds.network, dtype=torch.float64)
    step = lambda c, q=None: SimpleNamespace(dcdt=f(c))  # noqa: E731
    obs = torch.as_tensor(observe(tiny_ds.concentrations, 0.0, stride, 0), dtype=torch.float64)
    t = torch.arange(0, len(obs) - window, 5)
    states, _ = L.roll_windows(step, obs[t], window, stride, tiny_ds.params.delta_t)
    targets = obs[t[None] + torch.arange(1, window + 1)[:, None]]
    loss = float(L.window_loss(states, targets, tiny_ds.params.delta_t * stride)) / len(t)
    wrong = dataclasses.replace(tiny_ds.network, log_k=tiny_ds.network.log_k + 0.1)
    g = MassAction(wrong, dtype=torch.float64)
    states_g, _ = L.roll_windows(lambda c, q=None: SimpleNamespace(dcdt=g(c)), obs[t], window, stride, tiny_ds.params.delta_t)
    wrong_loss = float(L.window_loss(states_g, targets, tiny_ds.params.delta_t * stride)) / len(t)
    assert loss < 1e-5 * wrong_loss + 1e-6  # float32 data: only rounding is left
    assert wrong_loss > 1e-3


def test_window_loss_by_hand():
    """Errors of norm 1 and 2 at the two observations of a window, 0.5 time units apart: each divided by the
    time elapsed, averaged over the window, summed over the batch."""
    states = torch.tensor([[[0.6, 0.8]], [[0.0, 2.0]]])  # (H=2, B=1, n_met=2): error norms 1 and 2 against zero
    assert float(L.window_loss(states, torch.zeros_like(states), 0.5)) == pytest.approx((1 / 0.5 + 2 / 1.0) / 2)
    assert float(L.window_loss(torch.cat([states, states], 1), torch.zeros(2, 2, 2), 0.5)) == pytest.approx(4.0)


def test_window_integrals_recover_k_exactly_from_clean_euler_data(tiny_ds):
    """SPEC §9: the left Riemann sum is the explicit Euler data's own sum, so integral matching is exact."""
    net, p = tiny_ds.network, tiny_ds.params
    ident = np.ones(net.n_reactions, bool)
    ident[k_structure(net, tie=True).unidentifiable] = False
    for window in (1, 10):
        M, y = window_design(net, tiny_ds.concentrations, p.delta_t, window)
        log_k = structured_design_estimate(net, M, y, (p.log_k_min, p.log_k_max))
        assert np.abs(log_k - net.log_k)[ident].max() < 1e-3


def test_observed_oracle_prefers_integrals_and_degrades_with_noise(tiny_ds):
    net, p = tiny_ds.network, tiny_ds.params
    r = {}
    for noise in (0.0, 0.01, 0.1):
        obs = observe(tiny_ds.concentrations, noise, 1, p.seed)
        r[noise] = observed_oracle(net, obs, p.delta_t, (p.log_k_min, p.log_k_max))
    assert r[0.0]["best"] == "window" and r[0.0]["window_R2_identifiable"] > 0.99999
    assert r[0.01]["window_R2_identifiable"] > r[0.01]["derivative_R2_identifiable"]
    assert r[0.0]["observed_R2_identifiable"] >= r[0.01]["observed_R2_identifiable"] > r[0.1]["observed_R2_identifiable"]
    strided = observed_oracle(net, observe(tiny_ds.concentrations, 0.0, 4, p.seed), 4 * p.delta_t,
                              (p.log_k_min, p.log_k_max), substeps=4)
    assert strided["window_spline_R2_identifiable"] > strided["window_R2_identifiable"]  # integrate at dt, not 4 dt


# ---- a user's own data set ----------------------------------------------------------------------------------

def test_export_then_load_round_trips_every_array(tiny_ds, tmp_path):
    net = tiny_ds.network
    export(tmp_path / "set", net, tiny_ds.concentrations, {"delta_t": 0.1})
    data = load_observed(tmp_path / "set")
    assert np.array_equal(data.concentrations, tiny_ds.concentrations)
    assert np.array_equal(data.network.S, net.S)
    assert np.array_equal(data.network.substrate_edges, net.substrate_edges)
    assert np.array_equal(data.network.log_k, net.log_k)
    assert np.array_equal(data.network.metabolite_type, net.metabolite_type)
    assert np.array_equal(data.network.homeostasis_lambda, net.homeostasis_lambda)
    assert data.has_truth and data.has_homeostasis
    np.savez(tmp_path / "set.npz", concentrations=tiny_ds.concentrations, S=net.S, substrate_edges=net.substrate_edges)
    npz = load_observed(tmp_path / "set.npz")
    assert np.array_equal(npz.network.S, net.S) and not npz.has_truth and np.isnan(npz.network.log_k).all()


def _broken(tmp_path: Path, tiny_ds, name: str, change) -> Path:
    d = export(tmp_path / name, tiny_ds.network, tiny_ds.concentrations, {})
    change(d)
    return d


def _edit(d: Path, file: str, row: int, col: int, value: str) -> None:
    lines = (d / file).read_text().splitlines()
    cells = lines[row].split(",")
    cells[col] = value
    lines[row] = ",".join(cells)
    (d / file).write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("name, change, message", [
    ("nan", lambda d: _edit(d, "concentrations.csv", 5, 2, "nan"), r"concentrations\.csv: 1 values are NaN or infinite \(first at frame 4, metabolite 2\)"),
    ("negative", lambda d: _edit(d, "concentrations.csv", 2, 0, "-0.5"), r"concentrations\.csv: 1 negative concentrations \(first at frame 1, metabolite 0\)"),
    ("shape", lambda d: (d / "S.csv").write_text("\n".join((d / "S.csv").read_text().splitlines()[:-1]) + "\n"),
     r"S\.csv: shape \(11, 24\) does not match concentrations' 12 metabolites"),
    ("edge", lambda d: _edit(d, "substrate_edges.csv", 1, 1, "99"), r"substrate_edges\.csv: reaction index 99 outside S \(allowed 0\.\.23\)"),
    ("missing", lambda d: (d / "S.csv").unlink(), r"missing S \(S\.csv in a directory"),
    ("log_k", lambda d: (d / "log_k.csv").write_text("1\n2\n"), r"log_k\.csv: must be 24 finite values \(one per reaction of S\), got 2"),
    ("text", lambda d: _edit(d, "S.csv", 3, 0, "x"), r"S\.csv: not a table of numbers"),
])
def test_a_broken_data_set_is_refused_in_one_line_naming_the_file(tmp_path, tiny_ds, name, change, message):
    d = _broken(tmp_path, tiny_ds, name, change)
    with pytest.raises(DataFileError, match=message) as e:
        load_observed(d)
    assert "\n" not in str(e.value)


def test_the_example_data_set_is_the_tiny_regime_observed(tiny_ds):
    """examples/tiny_observed (README "Your own data") is `simulate simulation=tiny simulation.stride=2
    simulation.noise=0.01 export=...`: the tiny network, every 2nd frame, 1 % noise."""
    data = load_observed(ROOT / "examples" / "tiny_observed")
    assert np.array_equal(data.network.S, tiny_ds.network.S)
    assert np.allclose(data.concentrations, observe(tiny_ds.concentrations, 0.01, 2, tiny_ds.params.seed), rtol=1e-6)
    info = json.loads((ROOT / "examples" / "tiny_observed" / "info.json").read_text())
    assert info["delta_t"] == pytest.approx(0.2) and info["noise"] == 0.01 and info["stride"] == 2


# ---- training on observed data ------------------------------------------------------------------------------

def test_training_on_noisy_data_never_reads_the_exact_derivative(compose_config, tmp_path, monkeypatch):
    """With noise, the dataset's dc/dt is replaced by NaN: a run that read it anywhere would fail or score NaN."""
    import oscsim.simulate as S

    real = S.dataset_for

    def poisoned(cfg, progress=False):
        ds = real(cfg, progress)
        ds.dcdt = np.full_like(ds.dcdt, np.nan)
        ds.concentrations = ds.concentrations.copy()
        return ds

    monkeypatch.setattr(S, "dataset_for", poisoned)
    cfg = compose_config(*QUICK, "loss=observed", "simulation.noise=0.01", "window=4", "data_augmentation_loop=40")
    m = T.train(cfg, tmp_path / "run")
    assert np.isfinite(m["rate_constants_R2"]) and np.isfinite(m["heldout_loss"]) and m["heldout_loss"] > 0


def test_window_training_learns_k_from_noisy_sparse_data(compose_config, tmp_path):
    """Tiny regime with rank_50's structure, every 2nd frame with 1 % noise: rollout windows recover the
    identifiable k (oracle 0.9998; measured 0.992, 0 outliers in 2,250 iterations), and the held-out loss
    falls with them. Errors as measured and the default model's learning rates: in so few iterations the
    relative errors of loss=observed's defaults reach 0.67 here."""
    quick = [*QUICK, "simulation.cycle_fraction=1.0", "seed=3", "lr_k=0.02", "lr_node=0.001", "lr_sub=0.0005",
             "error_scale=absolute", "loss=observed", "simulation.noise=0.01", "simulation.stride=2", "window=3"]
    m = T.train(compose_config(*quick, "data_augmentation_loop=300"), tmp_path / "run")
    short = T.train(compose_config(*quick, "data_augmentation_loop=20"), tmp_path / "short")
    assert m["rate_constants_R2_identifiable"] > 0.98 and m["n_outliers_identifiable"] == 0
    assert short["rate_constants_R2_identifiable"] < 0.9
    assert m["heldout_loss"] < 0.7 * short["heldout_loss"]


def test_window_zero_on_observed_data_is_refused(compose_config, tmp_path):
    cfg = compose_config(*QUICK, "simulation.stride=3")
    with pytest.raises(ConfigError, match=r"^window=0: with simulation.noise=0.0, simulation.stride=3 the exact dc/dt "
                                          r"is not observed; train on rollout windows \(loss=observed, or window >= 1\)$"):
        T.train(cfg, tmp_path / "run")


def test_matching_every_mth_observation_of_a_window(compose_config, tmp_path):
    """match_every=2 of window=4: the loss matches observations 2 and 4 only (at high noise the first are mostly
    noise); it must fit inside the window."""
    quick = [*QUICK, "loss=observed", "simulation.noise=0.01", "data_augmentation_loop=20"]
    m = T.train(compose_config(*quick, "window=4", "match_every=2"), tmp_path / "run")
    assert np.isfinite(m["rate_constants_R2"]) and np.isfinite(m["heldout_loss"])
    with pytest.raises(ConfigError, match=r"^match_every=5: must be <= window \(4\)$"):
        T.train(compose_config(*quick, "window=4", "match_every=5"), tmp_path / "bad")


def test_user_data_set_trains_from_the_command_line_with_and_without_the_truth(tmp_path, tiny_ds):
    net = tiny_ds.network
    export(tmp_path / "with", net, observe(tiny_ds.concentrations, 0.01, 1, 0), {})
    np.savez(tmp_path / "without.npz", concentrations=tiny_ds.concentrations, S=net.S, substrate_edges=net.substrate_edges)
    out = {}
    for name, path in (("with", tmp_path / "with"), ("without", tmp_path / "without.npz")):
        r = subprocess.run([sys.executable, "-m", "oscsim.train", "simulation=observed", f"simulation.path={path}",
                            "simulation.delta_t=0.1", "loss=observed", "window=4", "data_augmentation_loop=40",
                            *QUICK[1:], f"hydra.run.dir={tmp_path / ('run_' + name)}"],
                           capture_output=True, text=True, cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
        out[name] = json.loads((tmp_path / f"run_{name}" / "metrics.json").read_text(), parse_constant=float)
    assert np.isfinite(out["with"]["rate_constants_R2"]) and out["with"]["status"] != "completed"
    assert np.isnan(out["without"]["rate_constants_R2"]) and out["without"]["status"] == "completed"
    assert np.isfinite(out["without"]["heldout_loss"])
    r = subprocess.run([sys.executable, "-m", "oscsim.train", "simulation=observed", f"simulation.path={tmp_path / 'nope'}",
                        "simulation.delta_t=0.1", "loss=observed", *QUICK[1:]], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip() == f"error: simulation.path={tmp_path / 'nope'}: no such file or directory"
