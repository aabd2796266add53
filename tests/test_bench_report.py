"""The sampler benchmark's report arithmetic (scripts/bench_samplers.py): paired differences and milestones."""
import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

spec = importlib.util.spec_from_file_location("bench_samplers", Path(__file__).parents[1] / "scripts" / "bench_samplers.py")
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_samplers"] = bench  # its dataclasses look their module up there
spec.loader.exec_module(bench)


def test_paired_differences_use_the_seeds_both_samplers_ran():
    # tree has seeds 0-2, random 1-3: pairs on seeds 1 and 2 only (seed 0 and 3 are unpaired)
    tree = [bench.best_so_far(v) for v in ([0.1, 0.9], [0.2, 0.5], [0.6, 0.4])]
    rand = [bench.best_so_far(v) for v in ([0.3, 0.3], [0.1, 0.7], [0.0, 0.0])]
    lines = bench.paired_lines({"tree": tree, "random": rand}, {"tree": [0, 1, 2], "random": [1, 2, 3]}, "random",
                               [1, 2])
    row = next(line for line in lines if line.startswith("| tree |"))
    d1, d2 = np.array([0.2 - 0.3, 0.6 - 0.1]), np.array([0.5 - 0.3, 0.6 - 0.7])  # best so far after 1 and 2 trials
    se = [d.std(ddof=1) / np.sqrt(2) for d in (d1, d2)]
    assert row == (f"| tree | 2 | {d1.mean():+.3f} ± {se[0]:.3f} (1 / 1) | {d2.mean():+.3f} ± {se[1]:.3f} (1 / 1) |")
    assert not any(line.startswith("| random |") for line in lines)
    assert bench.paired_lines({"tree": tree}, {"tree": [0, 1, 2]}, "random", [1])[-1].startswith("(no finished study")


@pytest.mark.parametrize("hits, cell", [([3, None, 5], "median 5 (3, -, 5)"), ([None, None, 2], "median > 8 (-, -, 2)")])
def test_milestone_median_counts_a_miss_as_more_than_the_trials_run(hits, cell):
    assert bench.milestone_cell(hits, 8) == cell
