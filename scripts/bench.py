"""`make bench`: figures for the simulator and the training loop, printed (no timed assertions)."""
from __future__ import annotations

import argparse
import resource
import time

import torch
import yaml

from oscsim.config import CONF_DIR
from oscsim.dataset import simulate
from oscsim.params import SimulationParams


def bench_simulator(name: str, repeats: int = 3) -> None:
    p = SimulationParams.from_mapping(yaml.safe_load((CONF_DIR / "simulation" / f"{name}.yaml").read_text()))
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        ds = simulate(p)
        times.append(time.process_time() - t0)
    print(f"simulate {name}: {p.n_frames + 1} frames, CPU time best {min(times):.3f} s "
          f"(of {repeats}: {', '.join(f'{t:.3f}' for t in times)}), activity rank {ds.summary['activity_rank']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--regime", default="oscillatory_rank_50")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bench_simulator(args.regime)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
