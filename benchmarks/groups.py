"""Groups and multiple centres: their cost, as ratios measured in one process.

1. ``Recorder.capture`` with ``groups=True`` (4 environments, every group its own exact
   statistics) against the same capture without groups, on one loader;
2. ``group_result`` (per-group metrics + cross-group geometry, data in memory) against
   ``collapse_result`` on the same features;
3. ``multicentre_result`` (per-class k-means, k ≤ 5 by silhouette) on N × d features, C classes.

Run by hand: ``.venv/bin/python benchmarks/groups.py [--device cuda]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch
from timing import best_of
from torch import nn

import ncviz
from ncviz.metrics import collapse_result
from ncviz.metrics.groups import group_result
from ncviz.metrics.multicentre import multicentre_result


def recorder_ratio(device: str, samples: int, repeats: int) -> None:
    torch.manual_seed(0)
    model = (
        nn.Sequential(
            nn.Linear(256, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 100)
        )
        .to(device)
        .eval()
    )
    x, y = torch.randn(samples, 256), torch.randint(0, 100, (samples,))
    g = torch.randint(0, 4, (samples,))
    plain = [(x[k : k + 1024], y[k : k + 1024]) for k in range(0, samples, 1024)]
    grouped = [(a, b, g[k : k + 1024]) for k, (a, b) in zip(range(0, samples, 1024), plain)]
    folder = Path(tempfile.mkdtemp(prefix="ncviz-bench-groups-"))
    steps = iter(range(10**6))
    without = ncviz.Recorder(folder / "plain", layers=["1", "3"], classifier="4")
    with_groups = ncviz.Recorder(folder / "groups", layers=["1", "3"], classifier="4", groups=True)
    without.capture(model, plain, step=next(steps))  # warm-up
    with_groups.capture(model, grouped, step=next(steps))
    t_plain = best_of(lambda: without.capture(model, plain, step=next(steps)), repeats)
    t_groups = best_of(lambda: with_groups.capture(model, grouped, step=next(steps)), repeats)
    print(
        f"Recorder capture, N={samples}, d=512, C=100, 4 groups: {t_plain:.3f} s without, "
        f"{t_groups:.3f} s with groups — ratio {t_groups / t_plain:.2f}×"
    )


def in_memory_ratio(samples: int, repeats: int) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, samples)
    h = rng.standard_normal((samples, 128)) + 3 * rng.standard_normal((10, 128))[y]
    g = rng.integers(0, 4, samples)
    t_pooled = best_of(lambda: collapse_result(h, y), repeats)
    t_groups = best_of(lambda: group_result(h, y, g), repeats)
    print(
        f"in memory, N={samples}, d=128, C=10, 4 groups: collapse_result {t_pooled:.3f} s, "
        f"group_result {t_groups:.3f} s — ratio {t_groups / t_pooled:.2f}×"
    )
    t_centres = best_of(lambda: multicentre_result(h, y, max_centres=5), 1)
    print(f"multicentre_result (k-means k ≤ 5 per class, ≤ 2,000 rows each): {t_centres:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    recorder_ratio(args.device, args.samples, args.repeats)
    in_memory_ratio(args.samples, args.repeats)


if __name__ == "__main__":
    main()
