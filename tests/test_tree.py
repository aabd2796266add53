"""PUCT tree over one block: scores and visits checked against numbers worked out by hand."""

from __future__ import annotations

import pytest

from oscsim.sweep.tree import (
    Node,
    batch_of,
    block_of,
    puct_scores,
    slot_of,
    visit_counts,
)


def hand_tree() -> list[Node]:
    # 1 (root child) -> 2 -> 3 (failed) ; 1 -> 5 ; 4 (root child)
    return [
        Node(1, None, 0.5, 1),
        Node(2, 1, 0.7, 1),
        Node(3, 2, None, 1),
        Node(4, None, 0.2, 1),
        Node(5, 1, 0.1, 1),
    ]


def test_visits_by_hand() -> None:
    assert visit_counts(hand_tree()) == {1: 4, 2: 2, 3: 1, 4: 1, 5: 1}


def test_puct_scores_by_hand() -> None:
    # N_total = 5, c*sqrt(5) = 1.414 * 2.2360680 = 3.1618001
    s = puct_scores(hand_tree(), c=1.414)
    assert s[1].ucb == pytest.approx(0.5 + 3.1618001 / 5, abs=1e-6)  # V=4
    assert s[2].ucb == pytest.approx(0.7 + 3.1618001 / 3, abs=1e-6)  # V=2
    assert s[3].ucb == pytest.approx(0.0 + 3.1618001 / 2, abs=1e-6)  # failed: reward 0
    assert s[4].ucb == pytest.approx(0.2 + 3.1618001 / 2, abs=1e-6)
    assert s[5].ucb == pytest.approx(0.1 + 3.1618001 / 2, abs=1e-6)
    assert [s[i].visits for i in range(1, 6)] == [4, 2, 1, 1, 1]
    assert s[3].reward is None and s[2].reward == 0.7
    # the failed node's exploitation term is configurable
    assert puct_scores(hand_tree(), failed_reward=-1.0)[3].ucb == pytest.approx(-1.0 + 3.1618001 / 2, abs=1e-6)


def test_parents_outside_the_given_nodes_end_the_walk() -> None:
    # node 14's parent 3 belongs to another block: the tree is only the nodes given
    nodes = [Node(13, None, 0.4, 2), Node(14, 13, 0.6, 2), Node(15, 3, 0.1, 2)]
    s = puct_scores(nodes, c=1.0)
    assert {i: s[i].visits for i in s} == {13: 2, 14: 1, 15: 1}
    assert s[13].ucb == pytest.approx(0.4 + 3**0.5 / 3)


def test_cycle_and_duplicates_rejected() -> None:
    with pytest.raises(ValueError):
        visit_counts([Node(1, 2, 0.1, 1), Node(2, 1, 0.1, 1)])
    with pytest.raises(ValueError):
        visit_counts([Node(1, None, 0.1, 1), Node(1, None, 0.2, 1)])


def test_numbering() -> None:
    assert [block_of(i, 12) for i in (1, 12, 13, 24, 25)] == [1, 1, 2, 2, 3]
    assert [batch_of(i, 4) for i in (1, 4, 5, 8, 9)] == [1, 1, 2, 2, 3]
    assert [slot_of(i, 4) for i in (1, 2, 4, 5, 8)] == [0, 1, 3, 0, 3]
    with pytest.raises(ValueError):
        block_of(0, 12)
