"""Cost of the AGOP and of geometric complexity against one forward + backward pass over the same
inputs, and the error of the Hutchinson estimator against the exact GC as samples grow.

On the bundled digits MLP (final checkpoint) and the 1,400 training digits; every ratio is
measured in this run (min of 5 repeats, methods interleaved).

    python benchmarks/feature_learning.py
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from ncviz.feature_learning import agop, geometric_complexity
from ncviz.load import build_model, load_dataset, load_weights, read_checkpoint
from ncviz.load.runs import open_run

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 5


def _model() -> nn.Module:
    run = open_run(ROOT / "checkpoints" / "digits-mlp")
    net = build_model(run.model)
    load_weights(net, read_checkpoint(run.checkpoints[-1]).state_dict)
    return net.eval()


def main() -> None:
    torch.set_num_threads(max(1, torch.get_num_threads()))
    net = _model()
    data = load_dataset("builtin:digits")
    x, y = data.inputs, data.labels

    def forward_backward() -> None:
        net.zero_grad()
        nn.functional.cross_entropy(net(x), y, reduction="sum").backward()

    methods = {
        "forward + backward (baseline)": forward_backward,
        "AGOP, first layer (C = 10 outputs)": lambda: agop(net, x, "blocks.0.0"),
        "AGOP, first layer, sketch k = 2": lambda: agop(net, x, "blocks.0.0", outputs=2),
        "AGOP, every linear layer (4)": lambda: [
            agop(net, x, name) for name in ("blocks.0.0", "blocks.1.0", "blocks.2.0", "classifier")
        ],
        "GC exact (d = 128 embedding dims)": lambda: geometric_complexity(net, x),
        "GC Hutchinson, 1 sample": lambda: geometric_complexity(
            net, x, estimator="hutchinson", samples=1
        ),
        "GC Hutchinson, 8 samples": lambda: geometric_complexity(
            net, x, estimator="hutchinson", samples=8
        ),
    }
    times = {name: [] for name in methods}
    for _ in range(REPEATS):
        for name, method in methods.items():
            start = time.perf_counter()
            method()
            times[name].append(time.perf_counter() - start)
    base = min(times["forward + backward (baseline)"])
    print(f"digits MLP, N = {len(x)}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name, values in times.items():
        print(f"{name:38s} {min(values) * 1e3:8.1f} ms  {min(values) / base:7.1f}× baseline")

    exact = geometric_complexity(net, x).value
    print(f"\nGC exact = {exact:.4f}; Hutchinson (relative error | reported stderr, 3 seeds):")
    for samples in (1, 4, 16, 64):
        rows = [
            geometric_complexity(net, x, estimator="hutchinson", samples=samples, seed=seed)
            for seed in range(3)
        ]
        errors = " ".join(
            f"{abs(r.value - exact) / exact:.4f}|{r.stderr / exact:.4f}" for r in rows
        )
        print(f"  samples = {samples:3d}: {errors}")


def on_cuda() -> None:
    """Where CUDA is present: every --agop/--gc row on the GPU against the CPU, and both times."""
    import copy

    from ncviz.feature_learning import feature_learning_rows

    net = _model()
    data = load_dataset("builtin:digits")
    rows, times = {}, {}
    for device in ("cpu", "cuda"):
        model = copy.deepcopy(net).to(device)
        start = time.perf_counter()
        rows[device] = feature_learning_rows(
            model, data.inputs.to(device), data.labels, "classifier", ("agop", "gc")
        )
        times[device] = time.perf_counter() - start
    worst = max(
        abs(value - rows["cuda"][layer][key]) / max(abs(value), 1e-12)
        for layer, values in rows["cpu"].items()
        for key, value in values.items()
    )
    print(
        f"\n{torch.cuda.get_device_name()}: --agop --gc rows CUDA vs CPU, largest relative "
        f"difference {worst:.2e}; CPU {times['cpu']:.2f} s, CUDA {times['cuda']:.2f} s"
    )


if __name__ == "__main__":
    main()
    if torch.cuda.is_available():
        on_cuda()
