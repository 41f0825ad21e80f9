"""Next-token collapse on a GPU (run by hand where CUDA is present).

1. The bundled markov-lm run analysed on the CPU and on CUDA: the largest relative difference of
   any metric (the forward pass differs in float32 rounding only) and both times.
2. A GPT-2-small-sized head at vocabulary scale: ``tiny_lm`` with V = 32,000, d = 768, 2 blocks,
   contexts of 128, over 2^18 Zipfian tokens, both passes on CUDA: time and peak GPU memory.

    python benchmarks/language_device.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ncviz.analysis import analyze
from ncviz.language import TokenCorpus, token_statistics
from ncviz.load import build_model

ROOT = Path(__file__).resolve().parents[1]


def bundled_cpu_vs_cuda() -> None:
    times, tables = {}, {}
    for device in ("cpu", "cuda"):
        start = time.perf_counter()
        analysis = analyze(ROOT / "checkpoints" / "markov-lm", device=device, cache=False)
        times[device] = time.perf_counter() - start
        tables[device] = analysis.table.set_index(["checkpoint", "layer", "metric"])["value"]
    cpu, cuda = tables["cpu"], tables["cuda"].reindex(tables["cpu"].index)
    finite = np.isfinite(cpu.to_numpy()) & np.isfinite(cuda.to_numpy())
    rel = np.abs(cpu - cuda).to_numpy()[finite] / np.maximum(np.abs(cpu.to_numpy()[finite]), 1e-12)
    print(f"markov-lm: {len(cpu)} values, max relative CPU/CUDA difference {rel.max():.2e}")
    print(f"markov-lm analysis: CPU {times['cpu']:.1f} s, CUDA {times['cuda']:.1f} s")
    for key in ("nc4", "cdnv"):
        print(
            f"  {key} at lm_head:input, first → last checkpoint (CUDA):",
            [
                round(float(cuda[(c, "lm_head:input", key)]), 4)
                for c in (cuda.index.levels[0][0], cuda.index.levels[0][-1])
            ],
        )


def vocabulary_scale(vocab: int = 32_000, dim: int = 768, tokens: int = 1 << 18) -> None:
    torch.manual_seed(0)
    kwargs = {"vocab_size": vocab, "d_model": dim, "layers": 2, "heads": 12, "context": 128}
    model = build_model({"name": "tiny_lm", "kwargs": kwargs}).cuda()
    ids = (np.random.default_rng(0).zipf(1.1, size=tokens) - 1) % vocab
    corpus = TokenCorpus(
        torch.from_numpy(ids.reshape(-1, 128)), torch.ones(tokens // 128, 128, dtype=torch.bool)
    )
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    start = time.perf_counter()
    stats = token_statistics(
        model, corpus, ["lm_head:input"], ("lm_head", model.lm_head), batch_size=64
    )
    result = stats["lm_head:input"].compute()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(
        f"V = {vocab:,}, d = {dim}, {tokens:,} tokens, 2 passes on CUDA: {seconds:.1f} s, "
        f"peak GPU memory {peak:.2f} GiB; {int(result.metrics['classes_kept']):,} classes kept, "
        f"cdnv {result.metrics['cdnv']:.4f}, nc4 {result.metrics['nc4']:.4f}"
    )


if __name__ == "__main__":
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA device")
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    bundled_cpu_vs_cuda()
    vocabulary_scale()
