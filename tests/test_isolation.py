"""Every job on user input runs in a budgeted worker: an uploaded model whose Embedding, AGOP or
multi-centre job needs more memory than the budget fails for its own session with one line, and
the server (this process, its job runner) and another session carry on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncviz.analysis import AnalysisOptions, source_agop, source_multicentre
from ncviz.demos.catalog import bundled_runs_dir
from ncviz.load import DataSpec, ModelSpec, build_model, load_dataset, save_safetensors
from ncviz.server.jobs import JobRunner
from ncviz.server.requests import AnalysisRequest, embed_layer, run_request
from ncviz.sources import detect

# a wide second block: its 8,192-wide input to the head makes the AGOP 0.5 GiB in float64
SPEC = {"name": "mlp", "kwargs": {"in_features": 64, "num_classes": 10, "widths": [1024, 8192]}}
SAMPLES = 30_000  # blocks.0's features of every sample: 30k × 1024 float32 ≈ 0.12 GiB, twice
BUDGET_GB = 0.2
pytestmark = pytest.mark.slow  # runs a wide model on 30k samples in budgeted workers


def _upload(folder, spec, samples):
    """An 'uploaded' checkpoint and data file, as the Source page saves them."""
    torch.manual_seed(0)
    net = build_model(ModelSpec.parse(spec))
    checkpoint = folder / "wide.safetensors"
    save_safetensors(net.state_dict(), checkpoint)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, samples)
    inputs = (rng.standard_normal((samples, 64)) + labels[:, None]).astype(np.float32)
    data = folder / "data.npz"
    np.savez(data, inputs=inputs, labels=labels)
    return checkpoint, data


@pytest.fixture
def upload(tmp_path):
    return _upload(tmp_path, SPEC, SAMPLES)


def _finished(job):
    assert job.wait(900), f"job {job.label} never finished"  # a hang guard, not a timing
    return job


def test_follow_up_jobs_over_the_budget_fail_alone(upload, monkeypatch):
    checkpoint, data = upload
    monkeypatch.setenv("NCVIZ_WORKER_MEMORY_GB", str(BUDGET_GB))
    runner = JobRunner()
    # the analysis itself streams (O(d²) per layer) and fits the budget: the first layer only
    request = AnalysisRequest(str(checkpoint), "wide", str(data), SPEC, ("blocks.0",))
    analysis = _finished(
        runner.submit(request.key, "analysis", run_request, request, isolated=True)
    ).result
    assert analysis.metrics_at("wide.safetensors", "blocks.0")["nc1"] > 0
    source, name = analysis.origin, "wide.safetensors"

    # the embedding and multi-centre jobs hold every sample's 1024 features of blocks.0, the
    # AGOP at the head's input a 16,384² float64 matrix
    jobs = {
        "embedding": runner.submit(
            "emb", "embedding", embed_layer, source, name, "blocks.0", isolated=True
        ),
        "multi-centre": runner.submit(
            "mc", "multi-centre", source_multicentre, source, name, "blocks.0", isolated=True
        ),
        "agop": runner.submit(
            "agop", "AGOP", source_agop, source, name, "classifier:input", isolated=True
        ),
    }
    for what, job in jobs.items():
        _finished(job)
        assert job.status == "failed", what
        # refused before allocating (the passes' estimate) or stopped at the budget
        assert (
            f"needed more than {BUDGET_GB:.1f} GB of memory" in job.error
            or "this analysis needs about" in job.error
        ), (what, job.error)
        assert "\n" not in job.error and "Traceback" not in job.error

    # the same runner serves another session: a bundled run analysed in this process
    bystander = AnalysisRequest(str(bundled_runs_dir() / "digits-mlp"), "digits-mlp")
    done = _finished(
        runner.submit(bystander.key, "digits-mlp", run_request, bystander, isolated=False)
    )
    assert (
        done.status == "done"
        and done.result.metrics_at("epoch_0600.safetensors", "classifier:input")["accuracy"] == 1.0
    )
    # and the worker pool still serves: an embedding of that run in a worker
    shown = _finished(
        runner.submit(
            "emb-bystander",
            "embedding",
            embed_layer,
            done.result.origin,
            "epoch_0600.safetensors",
            "classifier:input",
            isolated=True,
        )
    )
    assert shown.status == "done", shown.error
    assert shown.result.n_total == len(load_dataset(DataSpec.parse(done.result.data)))


def test_a_source_travels_to_a_worker_and_reads_the_same_features(tmp_path):
    """A source is a small picklable object: the worker reads exactly what this process reads."""
    import pickle

    from ncviz.server.workers import run_in_worker

    small = {"name": "mlp", "kwargs": {"in_features": 64, "num_classes": 10, "widths": [32]}}
    checkpoint, data = _upload(tmp_path, small, 600)
    options = AnalysisOptions(data=DataSpec.parse(str(data)), model=ModelSpec.parse(small))
    source = detect(checkpoint, options)
    assert len(pickle.dumps(source)) < 4096
    here = embed_layer(source, "wide.safetensors", "blocks.0", max_points=500)
    there = run_in_worker(embed_layer, source, "wide.safetensors", "blocks.0", max_points=500)
    assert np.array_equal(here.coords, there.coords) and np.array_equal(here.labels, there.labels)
