"""Extraction speed, as ratios measured in one process on the same batches.

For an MLP on digits and resnet18_cifar on 2,048 random 32×32 images:
1. plain forward pass over all batches (inference_mode), no hooks;
2. extraction: hooks on the default layers (every block + classifier input), both statistics
   passes, activations written to the cache (pass 2 reads them back) — target ≤ 1.15× (1);
3. the same extraction again: a cache hit (no forward pass, statistics from cached activations);
4. reading the cached activations alone vs computing them (forward + hooks) — target ≥ 20×.

Run by hand: ``.venv/bin/python benchmarks/extraction.py [--device cuda] [--images 2048]``.
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
import torch
from timing import best_of

from ncviz.cache import cache_key
from ncviz.extract import ActivationCache, ExtractOptions, default_layers, extract
from ncviz.load import Dataset, build_model, classifier_module, load_dataset


def bench(label: str, model: torch.nn.Module, data: Dataset, device: str, batch: int, repeats: int):
    model = model.to(device).eval()
    name, clf = classifier_module(model)
    layers = default_layers(model, name, data.inputs[:2].to(device))

    def plain():
        with torch.inference_mode():
            for start in range(0, len(data), batch):
                model(data.inputs[start : start + batch].to(device))

    plain()  # warm-up
    t_plain = best_of(plain, repeats)
    options = ExtractOptions(batch_size=batch)
    root = tempfile.mkdtemp(prefix="ncviz-bench-")
    counter = iter(range(10**6))
    cache = ActivationCache(root)

    def run(checkpoint_id: str):
        return extract(
            model,
            data,
            layers,
            classifier=(name, clf),
            device=device,
            options=options,
            cache=cache,
            checkpoint_id=checkpoint_id,
        )

    t_miss = best_of(lambda: run(f"miss-{next(counter)}"), repeats)
    plans = run("hit")  # fills the cache for the hit timings
    t_hit = best_of(lambda: run("hit"), repeats)
    keys = [
        cache_key(
            checkpoint="hit",
            data=data.fingerprint(),
            layer=layer,
            pooled=plans[layer].pooled,
            autocast=False,
        )
        for layer in layers
    ]

    def read_cached():
        for key in keys:
            np.array(cache.get(key))

    t_read = best_of(read_cached, repeats)
    dims = ", ".join(f"{layer}:{plans[layer].dim}" for layer in layers)
    print(f"{label} on {device} ({len(data)} samples, batch {batch}; layers {dims})")
    print(f"  plain forward          {t_plain:8.3f}s")
    print(
        f"  extraction (miss)      {t_miss:8.3f}s = {t_miss / t_plain:.2f}× forward (target ≤ 1.15)"
    )
    print(f"  re-extraction (hit)    {t_hit:8.3f}s = {t_miss / t_hit:.1f}× faster than a miss")
    print(
        f"  cached activations     {t_read:8.3f}s to read = {t_plain / t_read:.1f}× faster than "
        f"computing them (target ≥ 20)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    digits = load_dataset("builtin:digits")
    mlp = build_model(
        {
            "name": "mlp",
            "kwargs": {
                "in_features": 64,
                "num_classes": 10,
                "widths": [256, 256, 256],
                "batchnorm": True,
            },
        }
    )
    bench("mlp 3×256 on digits", mlp, digits, args.device, 256, max(args.repeats, 3))
    images = Dataset(
        torch.randn(args.images, 3, 32, 32),
        torch.arange(args.images) % 10,
        None,
        [str(i) for i in range(10)],
        "random-32x32",
    )
    bench(
        "resnet18_cifar",
        build_model({"name": "resnet18_cifar"}),
        images,
        args.device,
        128,
        args.repeats,
    )


if __name__ == "__main__":
    main()
