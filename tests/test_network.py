import numpy as np

from conftest import regime
from oscsim.network import build_network, monomial_groups, unidentifiable_reactions


def test_rank50_counts_and_cycle_structure():
    net = build_network(regime("oscillatory_rank_50"))
    S = net.S
    assert S.shape == (100, 256)
    # 256 // 3 = 85 cycles of 3 reactions: 255 reactions, each with two |s|=1 substrate edges.
    assert len(net.substrate_edges) == 255 * 2
    assert np.all(net.substrate_edges[:, 2] == 1)
    assert np.all(net.n_substrates[:255] == 2) and net.n_substrates[255] == 0
    for j in range(255):
        col = S[:, j]
        assert sorted(col[col != 0].tolist()) == [-1.0, 1.0]
        subs = net.substrate_edges[net.substrate_edges[:, 1] == j, 0]
        # food loses one, catalyst gains one; both are substrates
        assert set(subs) == set(np.flatnonzero(col))
    assert np.all(S.sum(axis=0) == 0)
    assert not S[:, 255].any()
    # The first 33 cycles use 99 distinct metabolites (disjoint), then all metabolites are available again.
    first = net.substrate_edges[net.substrate_edges[:, 1] < 99, 0]
    assert len(set(first.tolist())) == 99


def test_rank50_identifiability_matches_spec():
    net = build_network(regime("oscillatory_rank_50"))
    unident = unidentifiable_reactions(net.substrate_edges, net.n_reactions)
    shared = [m for k, m in monomial_groups(net.substrate_edges, net.n_reactions).items() if k and len(m) > 1]
    assert len(shared) == 8 and all(len(m) == 2 for m in shared)  # SPEC §4: 8 pairs + reaction 255
    assert len(unident) == 17 and 255 in unident


def test_random_reactions_conserve_mass_and_are_disjoint():
    net = build_network(regime("tiny", cycle_fraction=0.0, n_reactions=40))
    S = net.S
    assert np.allclose(S.sum(axis=0), 0)
    for j in range(net.n_reactions):
        sub = net.substrate_edges[net.substrate_edges[:, 1] == j]
        assert 1 <= len(sub) <= 2  # max_metabolites_per_reaction 3 -> 1..2 substrates
        assert set(sub[:, 2]) <= {1, 2}
        # each substrate is consumed by exactly its power; products are other metabolites
        for m, _, s in sub:
            assert S[m, j] == -s
        products = np.flatnonzero(S[:, j] > 0)
        assert 1 <= len(products) <= 2 and not set(products) & set(sub[:, 0])
    assert {1, 2} <= set(net.substrate_edges[:, 2].tolist())


def test_same_seed_same_network_other_seed_other():
    a, b = build_network(regime("tiny")), build_network(regime("tiny"))
    c = build_network(regime("tiny", seed=8))
    assert np.array_equal(a.signed_edges, b.signed_edges) and np.array_equal(a.log_k, b.log_k)
    assert not np.array_equal(a.log_k, c.log_k)


def test_types_are_contiguous_blocks():
    net = build_network(regime("oscillatory_rank_50"))
    assert net.metabolite_type[:50].tolist() == [0] * 50 and net.metabolite_type[50:].tolist() == [1] * 50


def test_rank70_is_the_labs_512_reaction_network():
    # SPEC §7: 512 reactions; 170 cycles of 3 (510 reactions) drawn as rank_50's, two reactions without edges
    net = build_network(regime("oscillatory_rank_70"))
    assert net.S.shape == (100, 512) and len(net.substrate_edges) == 510 * 2
    assert np.all(net.n_substrates[:510] == 2) and not net.S[:, 510:].any()
    assert np.all(net.substrate_edges[:, 2] == 1) and np.all(net.S.sum(axis=0) == 0)
    assert regime("oscillatory_rank_70").log_k_min == -2.0 and regime("oscillatory_rank_20").log_k_min == -2.5


def test_mixed_regime_has_square_substrates():
    # oscillatory_mixed: 20 % random reactions (1-2 substrates, |s| in {1, 2}), mass conserved
    net = build_network(regime("oscillatory_mixed"))
    powers = net.substrate_edges[:, 2]
    assert set(powers.tolist()) == {1, 2} and int((powers == 2).sum()) == 43
    assert np.all(net.S.sum(axis=0) == 0)
    assert net.n_substrates[204:].max() <= 2
