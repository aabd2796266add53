import numpy as np
import torch

from conftest import hand_network, regime
from oscsim.dataset import simulate
from oscsim.dynamics import MassAction, euler_step, integrate


def three_metabolites():
    # r0: A + B -> 2B (k=0.1), r1: 2B -> C (k=0.01, |s|=2), homeostasis lambda 0.5 toward 1.
    return hand_network(
        log_k=[-1.0, -2.0],
        substrate_edges=[(0, 0, 1), (1, 0, 1), (1, 1, 2)],
        signed_edges=[(0, 0, -1), (1, 0, 1), (1, 1, -2), (2, 1, 1)],
        lam=(0.5,), base=(1.0,),
    )


def test_derivative_matches_hand_computation():
    f = MassAction(three_metabolites(), dtype=torch.float64)
    A, B, C = 2.0, 3.0, 0.5
    v0, v1 = 0.1 * A * B, 0.01 * B**2
    expected = [-v0 - 0.5 * (A - 1), v0 - 2 * v1 - 0.5 * (B - 1), v1 - 0.5 * (C - 1)]
    got = f(torch.tensor([A, B, C], dtype=torch.float64))
    assert np.allclose(got.numpy(), expected, rtol=0, atol=1e-12)
    batch = f(torch.tensor([[A, B, C], [1.0, 1.0, 1.0]], dtype=torch.float64))
    assert np.allclose(batch[0].numpy(), expected)
    assert np.allclose(batch[1].numpy(), [-0.1, 0.1 - 0.02, 0.01])


def test_euler_clamps_at_zero():
    c = torch.tensor([0.05, 1.0])
    d = torch.tensor([-1.0, -1.0])
    out = euler_step(c, d, 0.1)
    assert out[0].item() == 0.0 and abs(out[1].item() - 0.9) < 1e-6
    assert np.allclose(euler_step(c, d, 0.1, clamp=False).numpy(), [-0.05, 0.9])


def test_integrate_stores_state_and_exact_derivative():
    f = MassAction(three_metabolites(), dtype=torch.float64)
    c, d = integrate(f, torch.tensor([2.0, 3.0, 0.5], dtype=torch.float64), 5, 0.1)
    assert c.shape == d.shape == (6, 3)
    for t in range(5):
        assert torch.allclose(d[t], f(c[t]))
        assert torch.allclose(c[t + 1], (c[t] + 0.1 * d[t]).clamp_min(0))


def test_simulation_deterministic_and_seed_sensitive():
    a, b = simulate(regime("tiny")), simulate(regime("tiny"))
    assert np.array_equal(a.concentrations, b.concentrations) and np.array_equal(a.dcdt, b.dcdt)
    c = simulate(regime("tiny", seed=8))
    assert not np.allclose(a.concentrations, c.concentrations)
    assert a.concentrations.shape == (301, 12) and a.concentrations.dtype == np.float32


def test_rank50_activity_rank_in_lab_range():
    ds = simulate(regime("oscillatory_rank_50"))
    assert 40 <= ds.summary["activity_rank"] <= 60
    assert ds.summary["n_frames"] == 2880 and ds.concentrations.shape == (2881, 100)
    assert ds.summary["n_unidentifiable"] == 17
