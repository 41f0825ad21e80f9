"""Metric-engine speed and memory, as ratios measured in one process on the same data.

1. statistics + all metrics (ncviz.collapse_result with W, b) vs one float64 X.T @ X
   (target ≤ 1.5×) and vs a per-class Python loop in the style of the widely copied
   Papyan et al. Colab routine (per-sample outer products, per-sample NCC; target ≥ 10× slower),
   for N = 50k, d = 512, C = 10 and C = 100;
2. pair metrics (geometry: NC2, ETF distance, GNC2, CDNV, NC3 Gram) for C = 32k, d = 512, run
   in a child process so its peak resident memory can be read (target < 2 GB).

Run by hand: ``.venv/bin/python benchmarks/metric_engine.py [--quick]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np
import torch

from ncviz.metrics import collapse_result


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def colab_style_loop(features, labels, weight, bias, num_classes, batch_size=128):
    """Two passes over batches, a Python loop over classes in each batch, per-sample outer
    products for Σ_W and a per-sample loop for the nearest class centre — the structure of the
    routine most NC papers copied. Returns nc1 and nc4 so that the work cannot be skipped."""
    n, d = features.shape
    means = torch.zeros(num_classes, d, dtype=torch.float64)
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for start in range(0, n, batch_size):
        h, y = features[start : start + batch_size], labels[start : start + batch_size]
        for c in range(num_classes):
            idx = (y == c).nonzero(as_tuple=True)[0]
            means[c] += h[idx].sum(dim=0)
            counts[c] += len(idx)
    means /= counts[:, None]
    within = torch.zeros(d, d, dtype=torch.float64)
    agree = 0
    for start in range(0, n, batch_size):
        h, y = features[start : start + batch_size], labels[start : start + batch_size]
        logits = h @ weight.T + bias
        for c in range(num_classes):
            idx = (y == c).nonzero(as_tuple=True)[0]
            if len(idx) == 0:
                continue
            z = h[idx] - means[c]
            within += torch.matmul(z.unsqueeze(-1), z.unsqueeze(1)).sum(dim=0)
            net_pred = logits[idx].argmax(dim=1)
            scores = torch.stack([torch.norm(h[i] - means, dim=1) for i in idx])
            agree += int((scores.argmin(dim=1) == net_pred).sum())
    within /= n
    centred = means - means.mean(dim=0)
    between = centred.T @ centred / num_classes
    vals, vecs = torch.linalg.eigh(between)
    vals, vecs = vals[-(num_classes - 1) :], vecs[:, -(num_classes - 1) :]
    nc1 = float(torch.trace(within @ vecs @ torch.diag(1 / vals) @ vecs.T)) / num_classes
    return nc1, 1 - agree / n


def engine_vs_baselines(n: int, d: int, num_classes: int, colab_fraction: float) -> None:
    rng = np.random.default_rng(0)
    means = rng.standard_normal((num_classes, d))
    labels = rng.integers(0, num_classes, n)
    features = torch.from_numpy(means[labels] + rng.standard_normal((n, d)))
    labels_t = torch.from_numpy(labels)
    weight = torch.from_numpy(means + 0.1 * rng.standard_normal(means.shape))
    bias = torch.zeros(num_classes, dtype=torch.float64)

    gram = best_time(lambda: features.T @ features, 3)
    engine = best_time(lambda: collapse_result(features, labels_t, weight, bias), 3)
    m = int(n * colab_fraction)
    colab_part = best_time(
        lambda: colab_style_loop(features[:m], labels_t[:m], weight, bias, num_classes), 1
    )
    colab = colab_part * n / m
    nc1_loop, nc4_loop = colab_style_loop(features[:m], labels_t[:m], weight, bias, num_classes)
    check = collapse_result(features[:m], labels_t[:m], weight, bias).metrics
    assert (
        abs(check["nc1"] - nc1_loop) < 1e-8 * abs(nc1_loop) and abs(check["nc4"] - nc4_loop) < 1e-12
    )
    scaled = "" if m == n else f" (loop timed on {m} samples, scaled ×{n / m:.0f})"
    print(
        f"N={n} d={d} C={num_classes}: X.T@X {gram:.3f}s | engine {engine:.3f}s "
        f"= {engine / gram:.2f}× X.T@X (target ≤ 1.5) | per-class loop {colab:.2f}s "
        f"= engine is {colab / engine:.1f}× faster (target ≥ 10){scaled}"
    )


PAIR_CHILD = """
import resource, time, torch
from ncviz.metrics.geometry import geometry_metrics
C, d = {c}, {d}
g = torch.Generator().manual_seed(0)
m = torch.randn(C, d, generator=g, dtype=torch.float64); m -= m.mean(0)
w = torch.randn(C, d, generator=g, dtype=torch.float64)
var = torch.rand(C, generator=g, dtype=torch.float64)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
scalars, _ = geometry_metrics(m, w, var, max_matrix_classes=0)
t = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(t, base / 2**20, peak / 2**20, scalars["nc2_etf_distance"])
"""


def pair_metrics_memory(num_classes: int, d: int) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PAIR_CHILD.format(c=num_classes, d=d)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    seconds, base_gb, peak_gb = (float(v) for v in out[:3])
    print(
        f"pair metrics C={num_classes} d={d}: {seconds:.1f}s, peak RSS {peak_gb:.2f} GB "
        f"(inputs + torch loaded {base_gb:.2f} GB; a C×C float64 matrix alone would be "
        f"{num_classes**2 * 8 / 2**30:.1f} GB; target < 2 GB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument(
        "--colab-fraction", type=float, default=0.2, help="share of N the slow loop is timed on"
    )
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    n, classes, pair_c = (5_000, (10,), 2_000) if args.quick else (50_000, (10, 100), 32_000)
    for num_classes in classes:
        engine_vs_baselines(n, 512, num_classes, args.colab_fraction)
    pair_metrics_memory(pair_c, 512)


if __name__ == "__main__":
    main()
