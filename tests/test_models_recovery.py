"""The recovery models: what S implies about k (tied parameters, a prior) in the model and the oracle, each
entry's vectorised forward against a loop over edges, and a short tiny-regime run where the default beats the lab's model."""
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from torch.nn import functional as F

from conftest import hand_network, regime
from oscsim import losses as L
from oscsim import metrics as M
from oscsim import train as T
from oscsim.config import CONF_DIR
from oscsim.evaluate import rate_constant_scores
from oscsim.dynamics import MassAction, integrate
from oscsim.models import ReactionModel, build_model
from oscsim.network import build_network, k_structure
from oscsim.oracle import structured_estimate

MID = -1.5  # middle of the hand network's log10 k range [-2, -1]


def hand_case() -> tuple:
    """Six reactions on three metabolites, one of each kind S tells apart:
    0, 1: same monomial c0, same S column (a same-sign pair: only k0 + k1 is identified);
    2, 3: same monomial c1, opposite S columns (only k2 - k3 is identified);
    4: no edges at all; 5: identifiable on its own."""
    sub = [(0, 0, 1), (0, 1, 1), (1, 2, 1), (1, 3, 1), (2, 5, 1)]
    signed = [(0, 0, -1), (1, 0, 1), (0, 1, -1), (1, 1, 1), (1, 2, -1), (2, 2, 1), (1, 3, 1), (2, 3, -1),
              (2, 5, -1), (0, 5, 1)]
    net = hand_network([-1.2, -1.8, -1.1, -1.9, -1.0, -1.7], sub, signed)
    ds = SimpleNamespace(network=net, params=SimpleNamespace(log_k_min=-2.0, log_k_max=-1.0))
    return net, ds


def constant_message_model(net, alpha: float, log_k: list[float], **opts) -> ReactionModel:
    """A per-edge model whose message is exactly alpha everywhere (MLP_sub's output is its last bias)."""
    m = ReactionModel(net, softplus="per_edge", log_k_range=(-2.0, -1.0), **opts)
    last = [l for l in m.sub if isinstance(l, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(math.log(math.expm1(alpha)))  # softplus(b) = alpha
        m.log_k_param.copy_(torch.tensor(log_k))
    return m


def test_k_structure_ties_same_columns_and_marks_free_parameters():
    net, _ = hand_case()
    st = k_structure(net, tie=True)
    assert st.n_params == 5 and st.index[0] == st.index[1]  # the same-column pair shares one k
    assert len({int(st.index[j]) for j in (1, 2, 3, 4, 5)}) == 5
    assert [bool(st.prior[st.index[j]]) for j in range(6)] == [False, False, True, True, True, False]
    assert st.unidentifiable == [0, 1, 2, 3, 4]
    lab = k_structure(net, tie=False)  # one k per reaction: the pair is free along k0 - k1 too
    assert lab.n_params == 6 and lab.prior.tolist() == [True, True, True, True, True, False]


def test_scores_read_the_models_own_log_k():
    net, ds = hand_case()
    params = [-1.3, -0.3, -3.0, 2.0, -1.65]  # tied pair, opposite pair, edgeless, identifiable
    model = constant_message_model(net, 1.0, params, tie="same_column")
    m, scored = rate_constant_scores(model, ds)
    np.testing.assert_allclose(scored, [-1.3, -1.3, -0.3, -3.0, 2.0, -1.65], atol=1e-6)  # nothing substituted
    assert m["unidentifiable"] == [0, 1, 2, 3, 4] and m["alpha"] == pytest.approx(1.0)


def test_prior_acts_on_the_alpha_corrected_free_parameters():
    net, _ = hand_case()
    params = [-1.3, -0.3, -3.0, 2.0, -1.65]
    model = constant_message_model(net, 0.5, params, tie="same_column", k_prior=0.1)
    corrected = np.array(params) + np.log10(0.5)  # every reaction here has one edge (edgeless: clamped at 1)
    expect = 0.1 * sum((corrected[i] - MID) ** 2 for i in (1, 2, 3))  # the free parameters only
    assert float(model.prior_penalty()) == pytest.approx(expect, rel=1e-5)
    assert constant_message_model(net, 0.5, params, tie="same_column").prior_penalty() is None  # k_prior 0


def test_structured_estimate_on_hand_case():
    net, _ = hand_case()
    c, d = integrate(MassAction(net, torch.float64), torch.tensor([6.0, 1.0, 2.0], dtype=torch.float64), 300, 0.05)
    est = structured_estimate(net, c.numpy(), d.numpy(), (-2.0, -1.0))
    k, true = 10.0**est, 10.0**net.log_k
    np.testing.assert_allclose(k[:2], [(true[0] + true[1]) / 2] * 2, rtol=1e-8)  # the sum, split evenly
    assert k[2] - k[3] == pytest.approx(true[2] - true[3], rel=1e-8)  # what the data fix is kept
    # ... and along k2 + k3 the point nearest (in log10) the middle: d/dz sum (log10 k - mid)^2 = 0
    assert abs((est[2] - MID) / k[2] + (est[3] - MID) / k[3]) < 1e-6
    assert est[4] == pytest.approx(MID) and est[5] == pytest.approx(net.log_k[5], abs=1e-8)


def naive_per_edge(model: ReactionModel, net, c: torch.Tensor) -> torch.Tensor:
    """Per frame, per reaction, per substrate edge: v_j = k_j prod msg(c_i, |s_ij|), msg = softplus(MLP_sub)
    [* c_i with the concentration gate; - softplus(MLP_sub(0, |s|)) with the origin gate]; |s| given or
    |learned coefficient|; with exponent=power, msg(c, |s|) = msg(c, 1)^|s|."""
    S = model.stoichiometry().detach()

    def message(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        msg = F.softplus(model.sub(torch.stack([x, s]))[0])
        if model.gate == "concentration":
            msg = msg * x
        if model.gate == "origin":
            msg = msg - F.softplus(model.sub(torch.stack([torch.zeros(()), s]))[0])
        return msg.abs()

    out = []
    for frame in c:
        v = []
        for j in range(net.n_reactions):
            rate = 10 ** model.log_k[j]
            for m, _, s in net.substrate_edges[net.substrate_edges[:, 1] == j]:
                power = S[m, j].abs() if model.learned_S else torch.tensor(float(s))
                if model.exponent == "power":
                    rate = rate * message(frame[m], torch.tensor(1.0)) ** power
                else:
                    rate = rate * message(frame[m], power)
            v.append(rate)
        out.append(S @ torch.stack(v) + model.homeostasis(frame))
    return torch.stack(out)


def model_entry(name: str) -> dict:
    return yaml.safe_load((CONF_DIR / "model" / f"{name}.yaml").read_text())


@pytest.mark.parametrize("entry", ["edge_softplus", "recovery", "structured", "recovery_gated", "learned_form"])
def test_entry_forward_equals_loop_over_edges(entry):
    net = build_network(regime("tiny"))  # has |s| = 1 and 2 and multi-substrate reactions
    cfg = model_entry(entry)
    torch.manual_seed(0)
    model = build_model(net, cfg["model"], (-2.0, -1.0), hidden_dim_sub=16, n_layers_sub=3, hidden_dim_node=8,
                        n_layers_node=2)
    with torch.no_grad():  # a live MLP_node, so its term is checked too
        for p in model.node_mlp.parameters():
            p.normal_(0, 0.3)
    c = torch.rand(3, net.n_metabolites) * 5
    assert torch.allclose(model(c).dcdt, naive_per_edge(model, net, c), rtol=1e-4, atol=1e-6)
    # the metrics' alpha and exponent read the message the rates use
    x = torch.tensor([0.5, 2.0])
    msg = F.softplus(model.sub(torch.stack([x, torch.ones(2)], -1)).squeeze(-1))
    if model.gate == "concentration":
        msg = msg * x
    if model.gate == "origin":
        msg = msg - F.softplus(model.sub(torch.tensor([[0.0, 1.0]])).squeeze(-1))
        assert float(model.substrate(torch.zeros(1), 2.0).abs()) < 1e-7  # exactly zero at c = 0, any power
    assert torch.allclose(model.substrate(x, 1.0), msg)


def test_default_learns_better_than_faithful_on_tiny(tmp_path, compose_config):
    # tiny with rank_50's structure (cycles only, |s| = 1) and a faster lr_k for both arms, so 4,500
    # iterations (~6 s) separate the models (the default learns MLP_sub's form: 2,250 are too few for it).
    quick = ["simulation=tiny", "simulation.cycle_fraction=1.0", "progress=false", "compile=false", "threads=1",
             "plots=false", "tensorboard=false", "seed=3", "data_augmentation_loop=600", "lr_k=0.02"]
    default = compose_config(*quick)  # conf/config.yaml's default model and loss
    faithful = compose_config(*quick, "model=faithful", "loss=default")
    assert default.model.name != "faithful"
    new = T.train(default, tmp_path / "new")
    lab = T.train(faithful, tmp_path / "lab")
    assert new["iterations"] == lab["iterations"] == 4500
    # measured: default 0.9999 identifiable, 0 outliers, all-reaction 0.95; faithful 0.94, 2 outliers, 0.09
    assert new["rate_constants_R2_identifiable"] > 0.995 and new["n_outliers_identifiable"] == 0
    assert new["rate_constants_R2_identifiable"] > lab["rate_constants_R2_identifiable"] + 0.03
    assert lab["n_outliers_identifiable"] >= 1
    assert new["rate_constants_R2"] > lab["rate_constants_R2"] + 0.5


def test_learned_stoichiometry_forward_and_exponents():
    # S learned: dc/dt = S_learned v, each substrate edge's exponent is |coefficient| of its (metabolite, reaction)
    net = build_network(regime("tiny"))
    torch.manual_seed(0)
    model = ReactionModel(net, softplus="per_edge", gate="origin", node_init="default", stoichiometry="learned",
                          hidden_dim_sub=16, log_k_range=(-2.0, -1.0))
    assert model.sto.shape == (len(net.signed_edges),) and float(model.sto.std()) < 0.2  # randn * 0.1
    S = model.stoichiometry().detach()
    assert torch.equal(S != 0, torch.as_tensor(net.S != 0))  # the edge set is given, zero off it
    c = torch.rand(3, net.n_metabolites) * 5
    assert torch.allclose(model(c).dcdt, naive_per_edge(model, net, c), rtol=1e-4, atol=1e-6)
    groups = {g["name"]: g["lr"] for g in model.param_groups(0.005, 0.001, 0.0005, None, 0.0002)}
    assert groups["S"] == 0.0002 and groups["k"] == 0.005


def test_stoichiometry_regularisers_and_metrics_on_crafted_values():
    sto = torch.tensor([-1.0, 1.0, 0.5, -2.0, 1.5])
    rxn = torch.tensor([0, 0, 1, 1, 1])
    assert float(L.s_l1_penalty(sto)) == pytest.approx(6.0)
    assert float(L.s_integer_penalty(sto)) == pytest.approx(2.0 / 5, abs=1e-6)  # sin^2(pi/2) at 0.5 and 1.5
    assert float(L.mass_conservation_penalty(sto, rxn, 3)) == pytest.approx((0 + 0 + 0) / 3)
    assert float(L.mass_conservation_penalty(torch.tensor([1.0, 1.0, -1.0]), torch.tensor([0, 0, 1]), 2)) == pytest.approx(2.5)
    m = M.stoichiometry_metrics(np.array([-1.2, 0.9, 1.6, -2.0]), np.array([-1, 1, 1, -2]), np.array([1, 1, 0, 0], bool))
    assert m["stoichiometry_exact"] == 0.75 and m["stoichiometry_exact_identifiable"] == 1.0
    assert m["stoichiometry_R2"] == pytest.approx(np.corrcoef([-1, 1, 1, -2], [-1.2, 0.9, 1.6, -2.0])[0, 1] ** 2)


@pytest.mark.parametrize("stoichiometry", ["given", "learned"])
def test_power_exponent_forward(stoichiometry):
    # exponent=power: msg(c, |s|) = msg(c, 1)^|s|, with |s| given or |learned coefficient|
    net = build_network(regime("tiny"))
    torch.manual_seed(1)
    model = ReactionModel(net, softplus="per_edge", gate="origin", node_init="default", stoichiometry=stoichiometry,
                          exponent="power", hidden_dim_sub=16, log_k_range=(-2.0, -1.0))
    c = torch.rand(2, net.n_metabolites) * 5
    assert torch.allclose(model(c).dcdt, naive_per_edge(model, net, c), rtol=1e-4, atol=1e-6)
    x = torch.tensor([0.5, 3.0])
    assert torch.allclose(model.substrate(x, 2.0), model.substrate(x, 1.0) ** 2)


@pytest.mark.parametrize("sto_param", ["coefficient", "rate"])
@pytest.mark.parametrize("sto_gauge", ["none", "median"])
def test_learned_S_parameterisations(sto_param, sto_gauge):
    # the forward uses the coefficients the options define; the median gauge removes the raw scale; `rate` holds s k
    net = build_network(regime("tiny"))
    torch.manual_seed(2)
    model = ReactionModel(net, softplus="per_edge", gate="origin", node_init="default", stoichiometry="learned",
                          exponent="power", sto_init="unit", sto_gauge=sto_gauge, sto_param=sto_param,
                          hidden_dim_sub=16, log_k_range=(-2.0, -1.0))
    raw = model.sto.detach().clone()
    assert bool(((raw.abs() > 0.5) & (raw.abs() < 1.5)).all()) and bool((raw > 0).any() and (raw < 0).any())
    c = torch.rand(2, net.n_metabolites) * 5
    assert torch.allclose(model(c).dcdt, naive_per_edge(model, net, c), rtol=1e-4, atol=1e-6)
    coef = model.coefficients().detach()
    if sto_gauge == "median":
        assert float(coef.abs().median()) == pytest.approx(1.0)
        with torch.no_grad():
            model.sto.mul_(3.0)
        assert torch.allclose(model.coefficients().detach(), coef, rtol=1e-5)
    elif sto_param == "rate":  # s = rate / k, scaled by the middle of the known range
        k = torch.pow(10.0, model.log_k.detach()[model.sto_rxn])
        assert torch.allclose(coef * k, raw * 10 ** -1.5, rtol=1e-5)
    else:
        assert torch.equal(coef, raw)
    with torch.no_grad():  # the exponent ramp's start: every exponent 1, whatever the coefficients
        model.exponent_mix.fill_(0.0)
    assert torch.allclose(model.substrate_powers(), torch.ones(len(net.substrate_edges)))


@pytest.mark.parametrize("exponent", ["power", "input"])
def test_edge_alphas_are_the_messages_at_the_learned_exponents(exponent):
    # what the metrics undo for learned S: |msg(1, |s_e|)| at the exponent each edge uses, not the true one
    net = build_network(regime("tiny"))
    torch.manual_seed(4)
    model = ReactionModel(net, softplus="per_edge", gate="origin", node_init="default", stoichiometry="learned",
                          exponent=exponent, hidden_dim_sub=16, log_k_range=(-2.0, -1.0))
    with torch.no_grad():
        model.sto.copy_(torch.linspace(0.3, 2.5, len(model.sto)))
        powers = model.substrate_powers()
        got = model.edge_alphas()
        for e, p in enumerate(powers.tolist()):  # one edge at a time, through the forward's own message
            if exponent == "power":
                want = model.substrate(torch.ones(1), 1.0).abs() ** p
            else:
                h = model.sub(torch.tensor([[1.0, p], [0.0, p]])).squeeze(-1)
                want = (F.softplus(h[0]) - F.softplus(h[1])).abs()
            assert float(got[e]) == pytest.approx(float(want), rel=1e-5)
    assert len(set(np.round(got.numpy(), 6))) > 3  # the exponents differ, and so do the scales


def test_exponent_ramp_reaches_the_coefficients_by_the_end(tmp_path, compose_config):
    # S_exponent_ramp: exponents go from 1 to |s| during training; the saved model uses |s| exactly
    cfg = compose_config("simulation=tiny", "model.stoichiometry=learned", "model.exponent=power", "loss=s_recovery",
                         "S_exponent_ramp=0.5", "data_augmentation_loop=4", "plots=false", "tensorboard=false",
                         "progress=false", "compile=false")
    T.train(cfg, tmp_path / "run")
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"]
    assert float(state["exponent_mix"]) == 1.0
    h = json.loads((tmp_path / "run" / "history.json").read_text())
    n_total = h["iteration"][-1] + 1
    for it, mix in zip(h["iteration"], h["exponent_mix"]):  # linear from 1 / ramp to 1 over the first half
        assert mix == pytest.approx(min(1.0, (it + 1) / (0.5 * n_total)), abs=1e-6)
    assert h["exponent_mix"][0] < 0.1
    S = np.load(tmp_path / "run" / "S_learned.npy")
    assert (S != 0).sum() == len(build_network(regime("tiny")).signed_edges)
