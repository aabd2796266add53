"""What the moves have paid so far, and the order the planner tries them in.

For every finished node whose reward and reference reward are known, the reward change (sign-corrected:
larger is better) is recorded under its (param, direction). The reference is the parent's reward; for
children of the block's root (parent None) it is the block's baseline trial (first iteration of the block,
root config unchanged) -- otherwise the whole initial spread would teach nothing. Moves are ranked by
``mean + c*sqrt(ln(total)/n)``, unseen moves first.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .scores import Move, TreeNode

MoveStats = dict[Move, tuple[float, int]]  # (mean reward change, count)


def move_stats(nodes: Sequence[TreeNode], n_iter_block: int) -> MoveStats:
    """Mean reward change and count per (param, direction) over ``nodes``."""
    by_it = {n.iteration: n for n in nodes}
    acc: dict[Move, list[float]] = {}
    for n in nodes:
        if n.move is None or n.reward is None:
            continue
        if n.parent is not None:
            ref = by_it.get(n.parent)
        else:  # child of the root: compare with the block's baseline run of the root
            ref = by_it.get((n.block - 1) * n_iter_block + 1)
            if ref is not None and (ref.parent is not None or ref.move is not None):
                ref = None
        if ref is None or ref.reward is None:
            continue
        acc.setdefault(n.move, []).append(n.reward - ref.reward)
    return {m: (float(np.mean(d)), len(d)) for m, d in acc.items()}


def rank_ucb(moves: Sequence[Move], stats: MoveStats, c: float, rng: np.random.Generator) -> list[Move]:
    """``moves`` by mean + c*sqrt(ln(total)/n); unseen moves first, ties broken by ``rng``."""
    total = sum(n for _, n in stats.values())
    tie = rng.random(len(moves))

    def score(m: Move) -> float:
        if m not in stats:
            return math.inf
        mean, n = stats[m]
        return mean + c * math.sqrt(math.log(total) / n) if total > 1 else mean

    order = sorted(range(len(moves)), key=lambda i: (-score(moves[i]), tie[i]))
    return [moves[i] for i in order]


def rank_paying(moves: Sequence[Move], stats: MoveStats, c: float, rng: np.random.Generator) -> list[Move]:
    """Seen moves by mean gain (the exploit choice), then the UCB order for the rest."""
    ucb = rank_ucb(moves, stats, c, rng)
    # sorted() is stable: equal means keep their UCB order
    seen = sorted((m for m in ucb if m in stats), key=lambda m: -stats[m][0])
    return seen + [m for m in ucb if m not in stats]


def paying_moves(stats: MoveStats) -> list[Move]:
    """Moves with a positive mean gain, best first (the findings a principle-test challenges)."""
    return sorted((m for m in stats if stats[m][0] > 0), key=lambda m: (-stats[m][0], m))
