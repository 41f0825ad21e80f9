"""Recorder capture cost, as ratios measured in one process over the same loader.

1. a plain forward pass over the loader (inference_mode, eval), no hooks;
2. ``Recorder.capture``: hooks on the layers, both statistics passes (one forward: pass 2
   replays the held layer outputs), the sample, the entry written — target ≤ 2.2× (1);
and the entry's size on disk. Cases: resnet18_cifar on 2,048 random 32×32 images (default block
layers + classifier input) and an MLP head over 50,000 × 512 features with C = 100 (the issue's
size case).

Both ratios are printed on the CPU and, when there is one, on the GPU (``--device`` picks).

Run by hand: ``.venv/bin/python benchmarks/recorder.py [--device cpu] [--images 2048]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from timing import best_of
from torch import nn

import ncviz
from ncviz.load import build_model


def bench(label: str, model: nn.Module, loader: list, layers, device: str, repeats: int) -> None:
    model = model.to(device).eval()

    def plain() -> None:
        with torch.inference_mode():
            for x, _ in loader:
                model(x.to(device, non_blocking=True))

    folder = Path(tempfile.mkdtemp(prefix="ncviz-bench-"))
    rec = ncviz.Recorder(folder / "run", layers=layers)
    step = iter(range(10**6))

    def record() -> None:
        rec.capture(model, loader, step=next(step))

    plain()  # warm-up (cuDNN autotuning, allocator)
    record()
    t_plain = best_of(plain, repeats)
    t_record = best_of(record, repeats)
    entry = max((folder / "run").glob("*.safetensors"), key=lambda p: p.stat().st_mtime)
    n = sum(len(y) for _, y in loader)
    size_mb = entry.stat().st_size / 2**20
    print(
        f"{label:<34} N={n:>6}  forward {t_plain:7.3f} s  capture {t_record:7.3f} s  "
        f"ratio {t_record / t_plain:5.2f}× (target ≤ 2.2)  entry {size_mb:6.1f} MB  "
        f"layers {len(rec.layers)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", action="append", help="cpu and/or cuda (default: cpu, and cuda when present)"
    )
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    devices = args.device or ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    print(f"devices {devices}, torch {torch.__version__}, threads {torch.get_num_threads()}")

    images = torch.randn(args.images, 3, 32, 32)
    labels = torch.arange(args.images) % 10
    loader = [(images[k : k + 256], labels[k : k + 256]) for k in range(0, args.images, 256)]
    resnet = build_model({"name": "resnet18_cifar", "kwargs": {"num_classes": 10}})
    for device in devices:
        label = f"resnet18_cifar, default layers, {device}"
        bench(label, resnet, loader, "auto", device, args.repeats)

    n, d, c = 50_000, 512, 100
    y = torch.arange(n) % c
    features = torch.randn(c, d)[y] + torch.randn(n, d)
    loader = [(features[k : k + 4096], y[k : k + 4096]) for k in range(0, n, 4096)]
    head = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, c))
    for device in devices:
        bench(f"MLP head, 50k × 512, C = 100, {device}", head, loader, ["1"], device, args.repeats)


if __name__ == "__main__":
    main()
