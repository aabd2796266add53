import pytest
import torch
from torch.nn import functional as F

from conftest import regime
from oscsim import losses as L
from oscsim.models import ReactionModel, build_model
from oscsim.models.base import Tanh, mlp
from oscsim.network import build_network


def naive_dcdt(model: ReactionModel, net, c: torch.Tensor) -> torch.Tensor:
    """Per frame, per reaction, per edge: the lab's formula written out with Python loops."""
    out = []
    for frame in c:
        v = []
        for j in range(net.n_reactions):
            edges = net.substrate_edges[net.substrate_edges[:, 1] == j]
            msgs = [model.sub(torch.tensor([float(frame[m]), float(s)]))[0] for m, _, s in edges]  # raw MLP_sub
            if model.softplus == "per_edge":
                msgs = [F.softplus(x) for x in msgs]
            if model.aggregation == "mul":
                agg = torch.exp(sum((torch.log(x.abs().clamp_min(1e-8)) for x in msgs), torch.tensor(0.0)))
            else:
                agg = sum(msgs, torch.tensor(0.0))
            if model.softplus == "after_product":
                agg = F.softplus(agg)
            v.append(10 ** model.log_k[j] * agg)
        v = torch.stack(v)
        S = torch.as_tensor(net.S, dtype=torch.float32)
        out.append(S @ v + model.homeostasis(frame))
    return torch.stack(out)


@pytest.mark.parametrize("softplus, aggregation", [("after_product", "mul"), ("per_edge", "mul"), ("none", "add")])
def test_vectorised_forward_equals_loops(softplus, aggregation):
    net = build_network(regime("tiny"))
    torch.manual_seed(0)
    model = ReactionModel(net, softplus=softplus, aggregation=aggregation, node_init="default")
    c = torch.rand(3, net.n_metabolites) * 5
    fast = model(c).dcdt
    assert torch.allclose(fast, naive_dcdt(model, net, c), rtol=1e-4, atol=1e-6)
    per_frame = torch.cat([model(c[i : i + 1]).dcdt for i in range(3)])
    assert torch.allclose(fast, per_frame, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("sizes, shape", [([2, 64, 64, 1], (993, 2)), ([3, 32, 32, 32, 1], (8, 100, 3)), ([2, 1], (5, 2))])
def test_mlp_forward_is_the_layer_by_layer_computation_to_the_bit(sizes, shape):
    # MLP.forward moves tanh's factors into the weights; the values and gradients must be the layers' own, exactly
    torch.manual_seed(0)
    net, x = mlp(sizes), torch.randn(*shape)
    fused, layered = net(x), torch.nn.Sequential.forward(net, x)
    assert torch.equal(fused, layered)
    grads = [torch.autograd.grad((y ** 2).sum(), list(net.parameters())) for y in (fused, layered)]
    assert all(torch.equal(a, b) for a, b in zip(*grads))
    assert len(sizes) == 2 or not torch.equal(layered, torch.nn.Sequential(*[m for m in net if not isinstance(m, Tanh)])(x))


@pytest.mark.parametrize("sizes, own", [([3, 64, 64, 1], 1), ([4, 16, 1], 2), ([3, 1], 1)])
def test_mlp_with_shared_inputs_is_the_mlp_of_the_concatenated_input(sizes, own):
    # MLP_node's embeddings enter the first layer once per metabolite; values and gradients are those of the MLP on
    # cat(c, embedding) per frame, within float32 rounding
    torch.manual_seed(0)
    net = mlp(sizes)
    x, shared = torch.rand(8, 100, own), torch.nn.Parameter(torch.randn(100, sizes[0] - own))
    whole = net(torch.cat([x, shared.expand(8, 100, -1)], -1))
    split = net(x, shared=shared)
    assert split.shape == whole.shape
    assert torch.allclose(split, whole, rtol=1e-5, atol=1e-6)
    params = [shared, *net.parameters()]
    for a, b in zip(torch.autograd.grad((split ** 2).sum(), params), torch.autograd.grad((whole ** 2).sum(), params)):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(split, net(torch.cat([x, shared.expand(8, 100, -1).flip(1)], -1)), atol=1e-4)


def test_sub_queries_ride_along_without_changing_output():
    net = build_network(regime("tiny"))
    model = ReactionModel(net)
    c = torch.rand(2, net.n_metabolites)
    q, _ = L.monotonicity_queries(3.0, n=10)
    out = model(c, q)
    assert torch.allclose(out.dcdt, model(c).dcdt)
    assert torch.allclose(out.sub_queries, model.sub(q).squeeze(-1))


def test_node_initialisations():
    net = build_network(regime("tiny"))
    dead = ReactionModel(net, node_init="all_zero")
    assert all(float(p.detach().abs().sum()) == 0 for p in dead.node_mlp.parameters())
    assert float(dead.homeostasis(torch.rand(4, net.n_metabolites)).abs().sum()) == 0
    lab = ReactionModel(net, node_init="last_layer")
    linears = [m for m in lab.node_mlp if isinstance(m, torch.nn.Linear)]
    assert float(linears[-1].weight.abs().sum()) == 0 and float(linears[0].weight.abs().sum()) > 0
    # with last_layer, the last layer's weight gets a gradient; with all_zero only the output bias does, and the
    # model computes MLP_node as that bias: the same values and gradients as the full zero network gives
    for model, expect_w in ((lab, True), (dead, False)):
        model.homeostasis(torch.rand(2, net.n_metabolites) + 1).sum().backward()
        last = [m for m in model.node_mlp if isinstance(m, torch.nn.Linear)][-1]
        assert (last.weight.grad is not None and float(last.weight.grad.abs().sum()) > 0) == expect_w
        assert float(last.bias.grad.abs().sum()) > 0
    full = ReactionModel(net, node_init="all_zero")
    full.load_state_dict(dead.state_dict())
    full.node_dead = False  # the whole zero network, as the lab computes it
    with torch.no_grad():
        for m in (dead, full):
            m.node_mlp[-1].bias.fill_(0.3)
    c = torch.rand(3, net.n_metabolites)
    for m in (dead, full):
        m.zero_grad()
        (m.homeostasis(c) * c).sum().backward()
    assert torch.equal(dead.homeostasis(c), full.homeostasis(c))
    assert torch.allclose(dead.node_mlp[-1].bias.grad, full.node_mlp[-1].bias.grad)
    assert all(p.grad is None or float(p.grad.abs().sum()) == 0 for n, p in full.named_parameters()
               if n.startswith("node_mlp") and not n.endswith(f"{len(full.node_mlp) - 1}.bias"))
    assert float(full.embedding.grad.abs().sum()) == 0


def test_model_shapes_and_init_ranges():
    net = build_network(regime("oscillatory_rank_50"))
    torch.manual_seed(1)
    m = build_model(net, {"name": "faithful", "kind": "reaction", "log_k_init": [-2.0, 1.0]}, (-2.0, -1.0),
                    hidden_dim_sub=64, n_layers_sub=3, hidden_dim_node=32, n_layers_node=2)
    assert m.log_k.shape == (256,) and -2 <= float(m.log_k.min()) and float(m.log_k.max()) <= 1
    assert [l.out_features for l in m.sub if isinstance(l, torch.nn.Linear)] == [64, 64, 1]
    assert [l.out_features for l in m.node_mlp if isinstance(l, torch.nn.Linear)] == [32, 1]
    assert m.embedding.shape == (100, 2) and 0.05 < float(m.embedding.std()) < 0.15
    # one MLP_sub input per distinct (metabolite, |s|), not one per edge (510)
    assert len(m.pair_met) == len(set(net.substrate_edges[:, 0].tolist())) == 99
    groups = {g["name"]: g["lr"] for g in m.param_groups(0.005, 0.001, 0.0005, None)}
    assert groups == {"k": 0.005, "MLP_node": 0.001, "embedding": 0.001, "MLP_sub": 0.0005}
    with pytest.raises(ValueError, match="model.kind=nope"):
        build_model(net, {"kind": "nope"}, (-2.0, -1.0))


def test_regularisers_on_crafted_values():
    n = 3
    sub_out = torch.tensor([1.0, 3.0, -2.0, 2.0, 1.0, 2.5, 0.5])  # msg(c), msg(c+dc), msg(1)
    # relu(|msg(c)| - |msg(c+dc)|) = relu([-1, 2, -0.5]) = [0, 2, 0]
    assert float(L.sub_diff_penalty(sub_out, n)) == pytest.approx(2.0)
    assert float(L.sub_norm_penalty(sub_out, n)) == pytest.approx(0.25)
    node = torch.tensor([[9.0, 9.0], [1.0, -3.0]])
    assert float(L.node_l1_penalty(node)) == pytest.approx(2.0)  # last sample only
    assert float(L.k_floor_penalty(torch.tensor([-4.0, -2.0, -3.5]), -3.0)) == pytest.approx(1.25)
    pred, true = torch.tensor([[3.0, 4.0], [0.0, 1.0]]), torch.zeros(2, 2)
    assert float(L.prediction_loss(pred, true)) == pytest.approx(6.0)  # 5 + 1: norms, not squared
    q, dc = L.monotonicity_queries(2.0, n=5)
    assert q.shape == (11, 2) and torch.allclose(q[5:10, 0] - q[:5, 0], torch.full((5,), dc))
    assert q[0, 0] == pytest.approx(0.1) and q[4, 0] == pytest.approx(4.0) and q[10].tolist() == [1.0, 1.0]
