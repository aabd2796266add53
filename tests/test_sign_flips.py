"""Discrete moves for learned S: the exact loss change of reversing each reaction and of resetting one, checked
against the loss itself; a model with one reaction learned the wrong way round, and one with a dead reaction,
put right by the training loss alone."""
import re

import pytest
import torch

from conftest import regime
from oscsim import losses as L
from oscsim.models import ReactionModel
from oscsim.network import build_network
from oscsim.sign_flips import choose_moves, edge_deltas, flip_signs, loss_change, reset_deltas, round_coefficients


def test_edge_and_reaction_flips_change_the_loss_as_computed():
    g = torch.Generator().manual_seed(0)
    v = torch.rand(7, 3, generator=g, dtype=torch.float64)
    met, rxn = torch.tensor([0, 1, 1, 2, 2, 3]), torch.tensor([0, 0, 1, 1, 2, 2])
    sto = torch.tensor([-1.0, 1.0, -2.0, 1.0, 1.0, -1.0], dtype=torch.float64)
    target = torch.randn(7, 4, generator=g, dtype=torch.float64)
    scale = torch.tensor([1.0, 3.0, 0.5, 2.0], dtype=torch.float64)

    def loss(coef):
        S = torch.zeros(4, 3, dtype=torch.float64).index_put((met, rxn), coef)
        return float(L.prediction_loss(v @ S.T, target, scale))

    S = torch.zeros(4, 3, dtype=torch.float64).index_put((met, rxn), sto)
    err = v @ S.T - target
    norm2 = ((err * scale) ** 2).sum(1, keepdim=True)
    per_edge = edge_deltas(v, err, sto, met, rxn, scale)
    for edges in ([0], [3], [4, 5], [0, 1], [0, 3]):  # one edge, a reaction, two edges on different metabolites
        flipped = sto.clone()
        flipped[edges] *= -1
        got = float(loss_change(norm2, per_edge[:, edges].sum(1, keepdim=True))[0])
        assert got == pytest.approx(loss(flipped) - loss(sto), rel=1e-9)


def test_choose_moves_takes_the_best_and_skips_what_overlaps():
    norm2 = torch.full((1, 1), 100.0, dtype=torch.float64)
    deltas = torch.tensor([[-30.0, -50.0, -10.0, 5.0]], dtype=torch.float64)
    none = torch.zeros(4, dtype=torch.float64)
    mets, rxns = [{0}, {0, 1}, {2}, {3}], [0, 0, 1, 2]
    # move 1 is best; move 0 shares metabolite 0 and reaction 0 with it; move 3 makes the loss worse
    assert choose_moves(norm2, deltas, mets, rxns, none) == [1, 2]
    # a penalty change counts: move 2 now costs more than it gains
    assert choose_moves(norm2, deltas, mets, rxns, torch.tensor([0.0, 0.0, 1.0, 0.0], dtype=torch.float64)) == [1]
    assert choose_moves(norm2, deltas, mets, rxns, none, tol=1.0) == [1]  # move 2 gains 0.5 only: below tol


def tiny_model_at_the_truth(sto_gauge: str = "none"):
    net = build_network(regime("tiny"))
    torch.manual_seed(3)
    model = ReactionModel(net, softplus="per_edge", gate="origin", node_init="default", stoichiometry="learned",
                          exponent="power", hidden_dim_sub=16, log_k_range=(-2.0, -1.0), sto_gauge=sto_gauge)
    true = torch.as_tensor(net.S[net.signed_edges[:, 0], net.signed_edges[:, 1]], dtype=torch.float32)
    with torch.no_grad():
        model.sto.copy_(true)
    c = torch.rand(64, net.n_metabolites) * 4 + 0.5
    with torch.no_grad():
        target = model(c).dcdt  # the data this model, with the true S, produces
    return model, true, c, target


@pytest.mark.parametrize("what", ["reaction", "edge"])
def test_a_sign_learned_wrong_is_flipped_back_and_nothing_else_moves(what):
    model, true, c, target = tiny_model_at_the_truth()
    j = int(torch.argmax(model.rates(c)[0].detach().abs().mean(0)))  # a reaction that matters
    wrong = model.sto_rxn == j
    if what == "edge":  # only its first edge
        wrong = wrong & (torch.cumsum(wrong.long(), 0) == 1)
    with torch.no_grad():
        model.sto[wrong] *= -1
    optimizer = torch.optim.Adam([model.sto], lr=1e-3)
    model(c).dcdt.pow(2).sum().backward()
    optimizer.step()  # an Adam state to carry along
    with torch.no_grad():
        model.sto.copy_(torch.where(wrong, -true, true))  # the step moved the coefficients: set them back
    moment = optimizer.state[model.sto]["exp_avg"].clone()
    flips, resets = flip_signs(model, optimizer, c, target, coeffs={"mass_conservation": 1.0}, chunk=16)
    assert flips == [torch.nonzero(wrong).flatten().tolist()] and resets == []
    assert torch.equal(model.sto.detach(), true)
    assert torch.equal(optimizer.state[model.sto]["exp_avg"][wrong], -moment[wrong])
    assert torch.equal(optimizer.state[model.sto]["exp_avg"][~wrong], moment[~wrong])
    assert flip_signs(model, optimizer, c, target) == ([], [])  # at the truth no move lowers the loss


def test_a_reset_changes_the_loss_as_computed():
    """Each reset's per-frame change of squared error, at its refitted k, is what setting those coefficients and
    that k in the model does; and the refitted k is the least-squares one (the loss is higher either side)."""
    model, true, c, target = tiny_model_at_the_truth()
    with torch.no_grad():
        model.sto.mul_(torch.linspace(0.3, 1.7, len(true)))  # off the truth, off the integers
        model.exponent_mix.fill_(0.7)  # mid-ramp: exponents 0.7 |s| + 0.3
        model.log_k_param.add_(0.3)
    rxn = model.sto_rxn
    j = int(torch.argmax(model.rates(c)[0].detach().abs().mean(0)))
    edges = torch.nonzero(rxn == j).flatten()

    def sq_errors():
        with torch.no_grad():
            v, _ = model.rates(c)
            err = v @ model.stoichiometry().T + model.homeostasis(c) - target
        return v.double(), err.double()

    v, err = sq_errors()
    log_msg = model.log_unit_messages(c).detach().double()
    paired = torch.zeros(len(c), len(edges), dtype=torch.float64)
    fixed = torch.zeros(len(c), dtype=torch.float64)
    for b in torch.nonzero(model.incidence[:, j]).flatten().tolist():
        s_edge = int(model.sub_to_sto[b])
        if s_edge >= 0:
            paired[:, edges.tolist().index(s_edge)] = log_msg[:, b]
        else:
            fixed += float(model.sub_pow[b]) * log_msg[:, b]
    log_m = torch.cat([paired, fixed[:, None]], -1)[:, None]
    new, logk, delta = reset_deltas(v, err, log_m, model.coefficients().detach(), model.sto_met, edges[None],
                                    torch.tensor([j]), mix=0.7)
    assert new.shape[1] == 2 ** len(edges) and torch.equal(new.abs(), torch.ones_like(new))
    before = (err ** 2).sum(1)
    checked = 0
    for q in range(new.shape[1]):
        if torch.isnan(logk[0, q]):
            continue
        sse = []
        for shift in (0.0, -0.05, 0.05):
            with torch.no_grad():
                model.sto[edges] = new[0, q].float()
                model.log_k_param[model.k_index[j]] = float(logk[0, q]) + shift
            sse.append((sq_errors()[1] ** 2).sum(1))
        assert torch.allclose(sse[0] - before, delta[:, 0, q], rtol=1e-4, atol=1e-6)
        assert sse[0].sum() < sse[1].sum() and sse[0].sum() < sse[2].sum()
        checked += 1
    assert checked >= 1


def test_a_dead_reaction_is_reset_to_its_signs_and_its_k():
    """A reaction whose coefficients went to ~0 and its k to the floor gets no gradient; the reset move finds its
    signs and its k from the training loss alone."""
    model, true, c, target = tiny_model_at_the_truth()
    j = int(torch.argmax(model.rates(c)[0].detach().abs().mean(0)))
    dead = model.sto_rxn == j
    k_true = float(model.log_k_param[model.k_index[j]].detach())
    with torch.no_grad():
        model.sto[dead] = 0.01 * torch.tensor([1.0, -1.0, 1.0, -1.0])[: int(dead.sum())]
        model.log_k_param[model.k_index[j]] = -8.0
    optimizer = torch.optim.Adam([model.sto], lr=1e-3)
    (model(c).dcdt - target).pow(2).sum().backward()
    optimizer.step()  # an Adam state to reset
    with torch.no_grad():  # the step moved the coefficients: set them back
        model.sto.copy_(torch.where(dead, model.sto, true))
    flips, resets = flip_signs(model, optimizer, c, target, coeffs={"mass_conservation": 1.0, "S_integer": 0.1})
    assert resets == [torch.nonzero(dead).flatten().tolist()] and flips == []
    assert torch.equal(model.sto.detach(), true)
    assert float(model.log_k_param[model.k_index[j]].detach()) == pytest.approx(k_true, abs=1e-4)
    assert float(optimizer.state[model.sto]["exp_avg"][dead].abs().sum()) == 0.0
    assert flip_signs(model, optimizer, c, target)[1] == []  # at integers nothing is reset again


@pytest.mark.parametrize("gauge", ["none", "median"])
def test_rounding_holds_reactions_at_integers_and_leaves_the_rest_to_the_gradient(gauge):
    model, true, c, target = tiny_model_at_the_truth(gauge)
    rxn = model.sto_rxn
    near, off, zero = (int(j) for j in torch.unique(rxn)[:3])  # three reactions with S edges
    raw = true.clone()
    raw[rxn == near] += torch.tensor([0.12, -0.2, 0.08, 0.1])[: int((rxn == near).sum())]
    raw[rxn == off] = raw[rxn == off] * torch.tensor([0.6, 1.0, 1.0, 1.0])[: int((rxn == off).sum())]
    raw[rxn == zero] = 0.1 * raw[rxn == zero]  # all near 0: the data would not get it back if held there
    with torch.no_grad():
        model.sto.copy_(raw * (1.7 if gauge == "median" else 1.0))  # a raw scale the median gauge removes
    optimizer = torch.optim.Adam([model.sto], lr=1e-2)
    (model(c).dcdt - target).pow(2).sum().backward()
    optimizer.step()
    before = model.coefficients().detach().clone()
    held_rxn = round_coefficients(model, optimizer)
    n_rxn = int(rxn.max()) + 1
    assert near in held_rxn and off not in held_rxn and zero not in held_rxn
    assert len(held_rxn) >= n_rxn - 3  # every other reaction is at its integers
    held = model.sto_fixed
    assert torch.equal(held, torch.isin(rxn, torch.tensor(held_rxn)))
    after = model.coefficients().detach()
    assert torch.equal(after[held], true[held])  # the integers themselves, exactly
    assert torch.allclose(after[~held], before[~held], rtol=1e-6)  # the rest where they were
    state = optimizer.state[model.sto]
    assert float(state["exp_avg"][held].abs().sum()) == 0 and float(state["exp_avg_sq"][held].abs().sum()) == 0
    for _ in range(3):  # training goes on: the held edges get no gradient and stay put; the others move
        optimizer.zero_grad()
        (model(c).dcdt - target).pow(2).sum().backward()
        assert float(model.sto.grad[held].abs().sum()) == 0.0
        optimizer.step()
    now = model.coefficients().detach()
    assert torch.equal(now[held], true[held]) and not torch.allclose(now[~held], after[~held])
    assert round_coefficients(model, optimizer) == []  # nothing new to hold


@pytest.mark.parametrize("overrides, says", [
    (["S_round_at=1"], "S_round_at=1: must be in [0, 1)"),
    (["S_round_at=0.5"], "S_round_at=0.5: needs model.stoichiometry=learned"),
    (["S_round_at=0.5", "model.stoichiometry=learned", "model.sto_param=rate"], "S_round_at=0.5: needs model.stoichiometry=learned with model.sto_param=coefficient"),
    (["S_flip_every=-5"], "S_flip_every=-5: must be an integer >= 0"),
    (["S_flip_every=10"], "S_flip_every=10: needs model.stoichiometry=learned"),  # S given: nothing to flip
    (["S_flip_every=10", "model.stoichiometry=learned", "recurrent_training=true", "time_step=2"],
     "S_flip_every=10: needs model.stoichiometry=learned fitting exact dc/dt"),
])
def test_sign_flips_refuse_what_they_cannot_judge(tmp_path, compose_config, overrides, says):
    from oscsim import train as T
    from oscsim.params import ConfigError

    cfg = compose_config("simulation=tiny", "data_augmentation_loop=1", "plots=false", "tensorboard=false",
                         "progress=false", "compile=false", *overrides)
    with pytest.raises(ConfigError, match=re.escape(says)) as err:
        T.train(cfg, tmp_path / "run")
    assert "\n" not in str(err.value)


def test_a_short_run_with_flips_records_them(tmp_path, compose_config):
    from oscsim import train as T
    import json

    cfg = compose_config("simulation=tiny", "model.stoichiometry=learned", "loss=s_learned", "S_flip_every=10",
                         "data_augmentation_loop=4", "plots=false", "tensorboard=false", "progress=false", "compile=false")
    T.train(cfg, tmp_path / "run")
    h = json.loads((tmp_path / "run" / "history.json").read_text())
    n_total = h["iteration"][-1] + 1
    assert len(h["sign_flips"]) >= 2 and [it for it, *_ in h["sign_flips"]] == list(range(10, n_total + 1, 10))
    n_edges = len(build_network(regime("tiny")).signed_edges)
    assert all(0 <= f <= n_edges and 0 <= r <= n_edges for _, f, r in h["sign_flips"])


def test_a_short_run_with_rounding_holds_integers_from_that_iteration_on(tmp_path, compose_config):
    from oscsim import train as T
    import json
    import numpy as np

    cfg = compose_config("simulation=tiny", "model.stoichiometry=learned", "loss=s_learned", "S_flip_every=10",
                         "S_round_at=0.5", "data_augmentation_loop=4", "plots=false", "tensorboard=false",
                         "progress=false", "compile=false")
    T.train(cfg, tmp_path / "run")
    h = json.loads((tmp_path / "run" / "history.json").read_text())
    n_total = h["iteration"][-1] + 1
    at, n_held = h["S_rounded"]
    assert at == round(0.5 * n_total)
    held = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"]["sto_fixed"].numpy()
    net = build_network(regime("tiny"))
    S = np.load(tmp_path / "run" / "S_learned.npy")
    coef = S[net.signed_edges[:, 0], net.signed_edges[:, 1]]
    assert len(np.unique(net.signed_edges[held, 1])) >= n_held  # resets later may hold more, never fewer
    assert held.any() and np.array_equal(coef[held], np.round(coef[held]))
