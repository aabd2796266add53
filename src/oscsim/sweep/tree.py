"""The PUCT tree over the nodes of one block of the sweep (SPEC §5). Pure Python on purpose:
the sweep driver, the log writers and the tests use it without Optuna or torch.

Numbering follows the lab's logs: iterations are 1-based (iteration = Optuna ``trial.number + 1``),
blocks and batches are 1-based, slots are 0-based.

Nodes whose reward is ``None`` (running or failed trials) still count as visits of their ancestors
and in ``N_total`` -- they were real tries of that branch -- but their own exploitation term is
``failed_reward`` (0.0 by default, i.e. "no fit"), so a branch that keeps failing loses priority.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass
class Node:
    """One trial of the sweep seen as a node of the tree."""

    id: int  # iteration number, 1-based (= optuna trial.number + 1)
    parent: int | None  # iteration of the parent node; None = the block's root configuration
    reward: float | None  # rate_constants_R2; None = running / failed
    block: int


@dataclass(frozen=True)
class NodeScore:
    ucb: float
    visits: int  # V(u) = 1 + number of descendants within the block
    reward: float | None  # the node's own reward, unchanged (None stays None)


def block_of(iteration: int, n_iter_block: int) -> int:
    """Block of a 1-based iteration: iterations 1..n_iter_block are block 1."""
    _check_iteration(iteration)
    return (iteration - 1) // n_iter_block + 1


def batch_of(iteration: int, n_parallel: int) -> int:
    """Global 1-based batch of an iteration ("Batch 2 (Iter 5-8)" for n_parallel=4)."""
    _check_iteration(iteration)
    return (iteration - 1) // n_parallel + 1


def slot_of(iteration: int, n_parallel: int) -> int:
    """0-based slot of an iteration within its batch."""
    _check_iteration(iteration)
    return (iteration - 1) % n_parallel


def _check_iteration(iteration: int) -> None:
    if iteration < 1:
        raise ValueError(f"iterations are 1-based, got {iteration}")


def visit_counts(nodes: Sequence[Node]) -> dict[int, int]:
    """V(u) = 1 + number of descendants of u among ``nodes``.

    A parent id that is not among ``nodes`` (the root, or a node of another block) ends the walk:
    the tree is restricted to the given nodes.
    """
    by_id = {n.id: n for n in nodes}
    if len(by_id) != len(nodes):
        raise ValueError("duplicate node ids")
    visits = {n.id: 1 for n in nodes}
    for n in nodes:
        seen = {n.id}
        p = n.parent
        # each node adds one visit to every ancestor it has within the block
        while p is not None and p in by_id:
            if p in seen:
                raise ValueError(f"cycle in the tree at node {p}")
            seen.add(p)
            visits[p] += 1
            p = by_id[p].parent
    return visits


def puct_scores(
    nodes: Iterable[Node], c: float = 1.414, failed_reward: float = 0.0
) -> dict[int, NodeScore]:
    """PUCT score of every node of ONE block: ``UCB(u) = R2(u) + c*sqrt(N_total)/(1 + V(u))``.

    ``N_total`` is the number of nodes given (failed/running ones included); a node whose reward
    is None is scored with ``failed_reward``.
    """
    nodes = list(nodes)
    visits = visit_counts(nodes)
    n_total = len(nodes)
    explore = c * math.sqrt(n_total)
    out: dict[int, NodeScore] = {}
    for n in nodes:
        r = failed_reward if n.reward is None else float(n.reward)
        out[n.id] = NodeScore(ucb=r + explore / (1 + visits[n.id]), visits=visits[n.id], reward=n.reward)
    return out
