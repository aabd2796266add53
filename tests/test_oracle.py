import numpy as np
import torch

from conftest import hand_network, regime
from oscsim.dataset import simulate
from oscsim.dynamics import MassAction, integrate
from oscsim.oracle import oracle


def test_oracle_recovers_exact_k_on_small_network():
    # Four reactions, each with its own monomial, all firing from positive concentrations.
    net = hand_network(
        log_k=[-1.0, -1.5, -2.0, -1.2],
        substrate_edges=[(0, 0, 1), (1, 0, 1), (1, 1, 1), (2, 1, 1), (2, 2, 2), (0, 3, 1)],
        signed_edges=[(0, 0, -1), (1, 0, 1), (1, 1, -1), (2, 1, 1), (2, 2, -2), (0, 2, 2), (0, 3, -1), (3, 3, 1)],
        n_met=4, lam=(0.01,), base=(2.0,),
    )
    c, d = integrate(MassAction(net, torch.float64), torch.tensor([3.0, 1.0, 2.0, 0.5], dtype=torch.float64), 200, 0.05)
    m = oracle(net, c.numpy(), d.numpy(), (-2.0, -1.0))
    assert m["unidentifiable"] == []
    assert m["max_abs_error_identifiable"] < 1e-8
    assert np.allclose(m["log_k"], net.log_k, atol=1e-8)
    assert m["rate_constants_R2"] > 0.999999 and m["n_outliers"] == 0
    # S unknown, monomials known: each edge's signed rate s k, one regression per metabolite
    from oscsim.oracle.estimate import edge_rate_estimate

    e = net.signed_edges
    assert np.allclose(edge_rate_estimate(net, c.numpy(), d.numpy()), e[:, 2] * 10.0 ** net.log_k[e[:, 1]], rtol=1e-6)
    assert m["s_sign_ceiling"] == 1.0 and m["s_sign_ceiling_identifiable"] == 1.0


def test_oracle_rank50_ceiling():
    ds = simulate(regime("oscillatory_rank_50"))
    m = oracle(ds.network, ds.concentrations, ds.dcdt, (-2.0, -1.0))
    assert m["n_identifiable"] == 239 and len(m["unidentifiable"]) == 17
    assert m["max_abs_error_identifiable"] < 1e-5  # float32 data
    # the data fix the sign of every identifiable reaction's coefficients; 4 of the 510 edges (same-monomial
    # pairs) they do not
    assert m["s_sign_ceiling_identifiable"] == 1.0 and round(m["s_sign_ceiling"] * 510) == 506
    # two swap pairs (70/217, 116/120): 8 edges whose signs are a coin toss; labellings 1.0, 0.969, 0.969, 0.938
    assert m["n_sign_free_edges"] == 8 and abs(m["stoichiometry_R2_ceiling"] - 0.9689) < 1e-4
    assert abs(m["stoichiometry_R2_sign_free_at_0"] - 0.9843) < 1e-4
    assert m["rate_constants_R2_identifiable"] > 0.99999
    # SPEC §6, measured on the lab's own data: 0.946 with 7 outliers (the lab's k are reproduced exactly)
    assert abs(m["rate_constants_R2"] - 0.946) < 0.001 and m["n_outliers"] == 7


def test_a_swap_pair_leaves_the_signs_to_chance():
    """A + B -> 2A beside A + B -> 2B: exchanging the two reactions' k and columns gives the same dc/dt, so with S
    learned the data cannot say which has which sign; the ceiling of stoichiometry_R2 counts both labellings."""
    from oscsim.metrics import linear_fit_r2
    from oscsim.network import swap_pairs
    from oscsim.oracle.estimate import stoichiometry_ceiling

    sub = [(0, 0, 1), (1, 0, 1), (0, 1, 1), (1, 1, 1), (1, 2, 1)]
    signed = [(0, 0, 1), (1, 0, -1), (0, 1, -1), (1, 1, 1), (1, 2, -1), (2, 2, 1)]
    net = hand_network([-1.2, -1.7, -1.5], sub, signed)
    assert swap_pairs(net) == [(0, 1)]
    swapped = hand_network([-1.7, -1.2, -1.5], sub, [(0, 0, -1), (1, 0, 1), (0, 1, 1), (1, 1, -1), (1, 2, -1), (2, 2, 1)])
    c = torch.rand(50, 3, dtype=torch.float64) * 3
    assert torch.allclose(MassAction(net, torch.float64)(c), MassAction(swapped, torch.float64)(c), rtol=1e-12)
    # reaction 2 (B -> C) has its own monomial; the same-column pair B -> C twice would not be a swap pair
    assert swap_pairs(hand_network([-1.0, -1.0], [(1, 0, 1), (1, 1, 1)], [(1, 0, -1), (2, 0, 1), (1, 1, -1), (2, 1, 1)])) == []
    m = stoichiometry_ceiling(net)
    true = np.array([1.0, -1, -1, 1, -1, 1])
    wrong = np.array([-1.0, 1, 1, -1, -1, 1])
    assert m["n_sign_free_edges"] == 4
    assert m["stoichiometry_R2_ceiling"] == (1.0 + linear_fit_r2(true, wrong)[0]) / 2  # median of two labellings
    assert m["stoichiometry_R2_sign_free_at_0"] == linear_fit_r2(true, np.array([0.0, 0, 0, 0, -1, 1]))[0]
