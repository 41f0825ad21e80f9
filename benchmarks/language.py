"""Language-model collapse at vocabulary scale: streamed token classes on the CPU.

C = 32,000 token classes with Zipfian frequencies, d = 768, N = 2,000,000 tokens, the LM head
(W, b) given; the features are generated batch by batch from fixed seeds (never held whole: 6 GB
in float32) and streamed through ``CollapseStatistics`` with ``min_count=2``, both passes, then
every metric (tiled pair metrics, NC4 agreement). Printed, measured in one child process so its
peak resident memory is the engine's:

* engine time (generation subtracted) against the floor, one float64 Gram XᵀX of the same
  streamed data (generation subtracted too);
* peak resident memory (target < 3 GB), classes kept and tokens dropped by ``min_count``.

Run by hand: ``.venv/bin/python benchmarks/language.py [--tokens 2000000] [--classes 32000]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

CHILD = r"""
import resource, sys, time, torch
from ncviz.metrics import CollapseStatistics

C, d, N, batch = {classes}, {dim}, {tokens}, 16384
g = torch.Generator().manual_seed(0)
means = torch.randn(C, d, generator=g)
weight = means + 0.1 * torch.randn(C, d, generator=g)
bias = 0.1 * torch.randn(C, generator=g)
zipf = 1.0 / torch.arange(1, C + 1, dtype=torch.float64) ** 1.1


def batches():
    for index, start in enumerate(range(0, N, batch)):
        gen = torch.Generator().manual_seed(1000 + index)
        n = min(batch, N - start)
        labels = torch.multinomial(zipf, n, replacement=True, generator=gen)
        features = torch.randn(n, d, generator=gen).mul_(0.5).add_(means[labels])
        yield features, labels


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


generate, _ = timed(lambda: [None for _ in batches()])


def gram():
    total = torch.zeros(d, d, dtype=torch.float64)
    for features, _ in batches():
        x = features.double()
        total.addmm_(x.T, x)
    return total


floor, _ = timed(gram)


def engine():
    stats = CollapseStatistics(C, d, weight, bias, min_count=2)
    for features, labels in batches():
        stats.update(features, labels)
    stats.start_second_pass()
    for features, labels in batches():
        stats.update(features, labels)
    return stats.compute()


seconds, result = timed(engine)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
kept = len(result.classes)
kept_tokens = int(result.arrays["class_counts"].sum())
print(generate, floor, seconds, peak, kept, len(result.dropped_classes), N - kept_tokens,
      result.metrics["nc4"], result.metrics["cdnv"], result.metrics["nc2_etf_distance"])
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2_000_000)
    parser.add_argument("--classes", type=int, default=32_000)
    parser.add_argument("--dim", type=int, default=768)
    args = parser.parse_args()
    child = CHILD.format(classes=args.classes, dim=args.dim, tokens=args.tokens)
    out = subprocess.run(
        [sys.executable, "-c", child], check=True, capture_output=True, text=True
    ).stdout.split()
    generate, floor, seconds, peak = (float(v) for v in out[:4])
    kept, dropped_classes, dropped_tokens = (int(v) for v in out[4:7])
    engine_net, floor_net = seconds - 2 * generate, floor - generate
    print(
        f"C={args.classes} d={args.dim} N={args.tokens:,} (Zipf 1.1, min_count=2): "
        f"{kept} classes kept, {dropped_classes} dropped ({dropped_tokens} tokens)\n"
        f"generation {generate:.1f}s per pass | floor (float64 XᵀX) {floor_net:.1f}s | engine "
        f"(both passes + every metric) {engine_net:.1f}s = {engine_net / floor_net:.1f}× "
        "the floor\n"
        f"peak resident memory {peak:.2f} GB (target < 3 GB) | nc4 {float(out[7]):.4f}, "
        f"cdnv {float(out[8]):.4g}, ETF distance {float(out[9]):.4f}"
    )


if __name__ == "__main__":
    main()
