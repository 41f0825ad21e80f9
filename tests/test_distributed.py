"""Two processes (gloo, CPU) with disjoint shards give exactly the single-process metrics."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ncviz.distributed import shard_indices
from ncviz.extract import extract
from ncviz.load import build_model, classifier_module, load_dataset, read_checkpoint

pytestmark = pytest.mark.slow  # starts torchrun with several processes

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "checkpoints" / "digits-mlp" / "epoch_0100.safetensors"
SPEC = {
    "name": "mlp",
    "kwargs": {"in_features": 64, "num_classes": 10, "widths": [128] * 3, "batchnorm": True},
}


def _metrics() -> dict[str, float]:
    model = build_model(SPEC)
    model.load_state_dict(read_checkpoint(CHECKPOINT).state_dict)
    name, clf = classifier_module(model)
    data = load_dataset("builtin:digits")
    out = extract(
        model, data, ["blocks.0", "classifier:input"], classifier=(name, clf), device="cpu"
    )
    return {layer: plan.statistics.compute().metrics for layer, plan in out.items()}


def _worker(rank: int, world_size: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size
    )
    try:
        metrics = _metrics()
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(metrics))
    finally:
        dist.destroy_process_group()


def test_shards_are_disjoint_and_cover_everything():
    shards = [shard_indices(10, r, 3) for r in range(3)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(10))
    assert [len(s) for s in shards] == [4, 3, 3]


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_two_ranks_give_the_single_process_metrics(tmp_path):
    expected = _metrics()
    mp.start_processes(
        _worker,
        args=(2, str(tmp_path / "init"), str(tmp_path)),
        nprocs=2,
        join=True,
        start_method="spawn",
    )
    for rank in range(2):
        got = json.loads((tmp_path / f"rank{rank}.json").read_text())
        for layer, metrics in expected.items():
            for key, value in metrics.items():
                assert got[layer][key] == pytest.approx(value, rel=1e-9, abs=1e-12), (layer, key)


def test_ncviz_analyze_under_torchrun_writes_the_single_process_table(tmp_path):
    import subprocess
    import sys

    import pandas as pd

    from ncviz.analysis import analyze

    run = ROOT / "checkpoints" / "digits-mlp-imbalanced-R10"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "ncviz",
        "analyze",
        str(run),
        "--device",
        "cpu",
        "--no-cache",
        "--out",
        str(tmp_path / "out"),
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    table = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    expected = analyze(run, cache=False).table
    merged = table.merge(expected, on=["checkpoint", "layer", "metric"], suffixes=("", "_one"))
    assert len(merged) == len(expected) > 0
    np.testing.assert_allclose(merged["value"], merged["value_one"], rtol=1e-9, atol=1e-12)
