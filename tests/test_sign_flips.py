"""Sign-flip moves for learned S: the exact loss change of reversing each reaction, checked against the loss
itself, and a model with one reaction learned the wrong way round put right by the training loss alone."""
import numpy as np
import pytest
import torch

from conftest import regime
from oscsim import losses as L
from oscsim.models import ReactionModel
from oscsim.network import build_network
from oscsim.sign_flips import flip_gains, flip_signs, independent_flips


def test_flip_gains_are_the_loss_change_of_each_reversal():
    g = torch.Generator().manual_seed(0)
    v = torch.rand(7, 4, generator=g, dtype=torch.float64)
    S = torch.tensor([[-1.0, 0, 2, 0], [1, -1, 0, 0], [0, 1, -1, 1], [0, 0, 0, -1]], dtype=torch.float64)
    target = torch.randn(7, 4, generator=g, dtype=torch.float64)
    scale = torch.tensor([1.0, 3.0, 0.5, 2.0], dtype=torch.float64)
    base = L.prediction_loss(v @ S.T, target, scale)
    gains = flip_gains(v, v @ S.T - target, S, scale)
    for j in range(4):
        flipped = S.clone()
        flipped[:, j] *= -1
        assert float(gains[j]) == pytest.approx(float(L.prediction_loss(v @ flipped.T, target, scale) - base), rel=1e-9)


def test_independent_flips_take_the_best_and_skip_shared_metabolites():
    S = torch.tensor([[-1.0, 1, 0, 0], [1, 0, 0, 0], [0, -1, 1, 0], [0, 0, -1, 0]])  # reaction 3 has no edges
    gains = torch.tensor([-2.0, -5.0, -1.0, -9.0])
    # 1 first (best with edges); 0 shares metabolite 0 with it, 2 shares metabolite 2; 3 moves nothing
    assert independent_flips(gains, S) == [1]
    assert independent_flips(torch.tensor([-2.0, 1.0, -1.0, 0.0]), S) == [0, 2]
    assert independent_flips(torch.tensor([-2.0, 1.0, -1.0, 0.0]), S, tol=1.5) == [0]


def test_a_reaction_learned_backwards_is_flipped_back_and_nothing_else_moves():
    net = build_network(regime("tiny"))
    torch.manual_seed(3)
    model = ReactionModel(net, softplus="per_edge", gate="origin", node_init="default", stoichiometry="learned",
                          exponent="power", hidden_dim_sub=16, log_k_range=(-2.0, -1.0))
    true = torch.as_tensor(net.S[net.signed_edges[:, 0], net.signed_edges[:, 1]], dtype=torch.float32)
    with torch.no_grad():
        model.sto.copy_(true)
    c = torch.rand(64, net.n_metabolites) * 4 + 0.5
    with torch.no_grad():
        target = model(c).dcdt  # the data this model, with the true S, produces
    rates = model.rates(c)[0].detach().abs().mean(0)
    j = int(torch.argmax(rates))  # a reaction that matters
    backwards = model.sto_rxn == j
    with torch.no_grad():
        model.sto[backwards] *= -1
    optimizer = torch.optim.Adam([model.sto], lr=1e-3)
    model(c).dcdt.pow(2).sum().backward()
    optimizer.step()  # an Adam state to carry along
    with torch.no_grad():
        model.sto.copy_(torch.where(backwards, -true, true))  # the step moved the coefficients: set them back
    moment = optimizer.state[model.sto]["exp_avg"].clone()
    taken = flip_signs(model, optimizer, c, target, chunk=16)
    assert taken == [j]
    assert torch.equal(model.sto.detach(), true)
    assert torch.equal(optimizer.state[model.sto]["exp_avg"][backwards], -moment[backwards])
    assert torch.equal(optimizer.state[model.sto]["exp_avg"][~backwards], moment[~backwards])
    assert flip_signs(model, optimizer, c, target) == []  # at the truth no reversal lowers the loss


@pytest.mark.parametrize("overrides, says", [
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
    with pytest.raises(ConfigError, match=says.replace("[", r"\[")) as err:
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
    assert len(h["sign_flips"]) >= 2 and [it for it, _ in h["sign_flips"]] == list(range(10, n_total + 1, 10))
    assert all(0 <= n <= len(build_network(regime("tiny")).signed_edges) for _, n in h["sign_flips"])
