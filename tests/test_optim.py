"""FusedAdam must be torch's fused Adam to the bit; CompiledAdamStep torch's Adam within float32 rounding, in one graph."""
import math

import pytest
import torch
from torch import nn

from oscsim.models.base import mlp
from oscsim.optim import FusedAdam


def trained(make_optimizer) -> tuple[list[torch.Tensor], dict]:
    """Parameters and optimiser state after 60 steps: three groups, a parameter that has no gradient for its first
    10 steps, a cosine schedule, and moments edited in place halfway (as the sign-flip moves do)."""
    torch.manual_seed(1)
    net, extra, late = mlp([2, 16, 16, 1]), nn.Parameter(torch.randn(5)), nn.Parameter(torch.randn(3))
    groups = [{"params": [extra], "lr": 0.01}, {"params": [late], "lr": 0.1},
              {"params": list(net.parameters()), "lr": 0.003, "weight_decay": 0.01}]
    optimizer = make_optimizer(groups)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=60)
    g = torch.Generator().manual_seed(3)
    for i in range(60):
        x = torch.randn(32, 2, generator=g)
        loss = (net(x) ** 2).mean() + (extra ** 2).sum() * (i % 3) + ((late ** 3).sum() if i >= 10 else 0.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if i == 30:
            with torch.no_grad():
                optimizer.state[extra]["exp_avg"][:2] = 0.0
    return [p.detach().clone() for p in (extra, late, *net.parameters())], optimizer.state_dict()


def test_fused_adam_is_torchs_fused_adam_to_the_bit():
    ours, our_state = trained(FusedAdam)
    torchs, torch_state = trained(lambda groups: torch.optim.Adam(groups, fused=True))
    assert all(torch.equal(a, b) for a, b in zip(ours, torchs))
    assert float(our_state["state"][1]["step"]) == float(torch_state["state"][1]["step"]) == 50  # late: 50 steps
    for k, state in torch_state["state"].items():
        for name, value in state.items():
            assert torch.equal(our_state["state"][k][name], value), (k, name)
    # and the moments moved: a run with plain (unfused) Adam differs in the last bits, so equality above is real
    plain, _ = trained(lambda groups: torch.optim.Adam(groups, foreach=False))
    assert not all(torch.equal(a, b) for a, b in zip(ours, plain))


def test_fused_adam_takes_a_closure_through_torchs_step():
    p = nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = FusedAdam([p], lr=0.1)

    def closure():
        optimizer.zero_grad()
        loss = (p ** 2).sum()
        loss.backward()
        return loss

    assert float(optimizer.step(closure).detach()) == 5.0
    assert torch.allclose(p.detach(), torch.tensor([0.9, -1.9]))  # Adam's first step: lr * sign(grad)


def test_compiled_step_is_torchs_adam_in_one_graph():
    # CompiledAdamStep differentiates and updates inside one compiled graph: the same trajectory as torch's Adam
    # (within float32 rounding), a parameter the loss never reaches left untouched, a cosine schedule's factor
    # read each step without recompiling
    from torch._dynamo.utils import counters

    from oscsim.optim import CompiledAdamStep

    def setup():
        torch.manual_seed(1)
        net, extra, unused = mlp([2, 16, 16, 1]), nn.Parameter(torch.randn(5)), nn.Parameter(torch.randn(3))
        groups = [{"params": [extra], "lr": 0.01, "name": "extra"}, {"params": [unused], "lr": 0.1},
                  {"params": list(net.parameters()), "lr": 0.003}]

        def loss_terms(x, y):
            terms = {"fit": ((net(x).squeeze(-1) - y) ** 2).mean(), "pull": (extra ** 2).sum()}
            return terms, sum(terms.values())
        return net, extra, unused, groups, loss_terms

    g = torch.Generator().manual_seed(3)
    batches = [(torch.randn(32, 2, generator=g), torch.randn(32, generator=g)) for _ in range(60)]
    net, extra, unused, groups, loss_terms = setup()
    optimizer = torch.optim.Adam(groups, foreach=False)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 0.5 * (1 + math.cos(math.pi * i / 60)))
    losses = []
    for x, y in batches:
        optimizer.zero_grad()
        terms, loss = loss_terms(x, y)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss))
    expected = [p.detach().clone() for p in (extra, unused, *net.parameters())]

    net, extra, unused, groups, loss_terms = setup()
    start = unused.detach().clone()
    counters.clear()
    step = CompiledAdamStep(loss_terms, groups)
    ours = []
    for i, (x, y) in enumerate(batches):
        terms, loss = step(x, y)
        step.scale = torch.tensor([0.5 * (1 + math.cos(math.pi * (i + 1) / 60))])
        ours.append(float(loss))
    assert sorted(terms) == ["fit", "pull"] and not loss.requires_grad
    assert not counters["graph_break"] and counters["stats"]["unique_graphs"] == 1
    assert torch.equal(unused.detach(), start) and torch.equal(expected[1], start)
    for a, b in zip((extra, unused, *net.parameters()), expected):
        assert torch.allclose(a.detach(), b, rtol=1e-5, atol=1e-6)
    assert ours == pytest.approx(losses, rel=1e-5)
    assert not torch.allclose(expected[0], setup()[1].detach(), atol=1e-3)  # and the parameters did move
