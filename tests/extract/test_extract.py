"""Extracted features equal a manual forward pass; the cache is exact, atomic and bounded."""

from __future__ import annotations

import multiprocessing
import os

import numpy as np
import pytest
import torch

from ncviz.extract import ActivationCache, ExtractOptions, default_layers, extract, list_layers
from ncviz.load import build_model, classifier_module, load_dataset
from ncviz.metrics import collapse_result


def _randomised(spec):
    torch.manual_seed(0)
    model = build_model(spec)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model


def _manual(model, inputs, module_name, use_input=False):
    store = []
    module = dict(model.named_modules())[module_name]
    if use_input:
        handle = module.register_forward_pre_hook(lambda _m, args: store.append(args[0]))
    else:
        handle = module.register_forward_hook(lambda _m, _a, out: store.append(out))
    with torch.no_grad():
        model.eval()(inputs)
    handle.remove()
    return store[0]


def test_mlp_features_and_metrics_equal_a_manual_forward_pass():
    data = load_dataset("builtin:digits?per_class=30")
    model = _randomised(
        {"name": "mlp", "kwargs": {"in_features": 64, "num_classes": 10, "widths": [32, 16]}}
    )
    name, clf = classifier_module(model)
    out = extract(
        model,
        data,
        ["blocks.0", "classifier:input"],
        classifier=(name, clf),
        options=ExtractOptions(batch_size=37),
        keep_features=True,
        device="cpu",  # compared bit for bit with a CPU forward pass
    )
    manual_in = _manual(model, data.inputs, "classifier", use_input=True)
    manual_block = _manual(model, data.inputs, "blocks.0")
    assert torch.equal(torch.from_numpy(out["classifier:input"].features), manual_in)
    assert torch.equal(torch.from_numpy(out["blocks.0"].features), manual_block)
    expected = collapse_result(manual_in, data.labels, clf.weight.detach(), clf.bias.detach())
    got = out["classifier:input"].statistics.compute()
    for key, value in expected.metrics.items():
        assert got.metrics[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    assert "nc3" not in out["blocks.0"].statistics.compute().metrics  # W is not this layer's


def test_conv_maps_are_flattened_or_pooled():
    data = load_dataset("builtin:digits?shape=image&per_class=5")
    model = _randomised({"name": "cnn", "kwargs": {"in_channels": 1, "num_classes": 10}})
    flat = extract(
        model,
        data,
        ["features.0"],
        options=ExtractOptions(pool="flatten"),
        keep_features=True,
        device="cpu",
    )["features.0"]
    pooled = extract(
        model,
        data,
        ["features.0"],
        options=ExtractOptions(pool="avg"),
        keep_features=True,
        device="cpu",
    )["features.0"]
    raw = _manual(model, data.inputs, "features.0")  # N × 32 × 4 × 4
    assert flat.dim == 32 * 4 * 4 and not flat.pooled
    np.testing.assert_array_equal(flat.features, raw.reshape(len(raw), -1).numpy())
    np.testing.assert_allclose(pooled.features, raw.mean(dim=(2, 3)).numpy(), rtol=1e-6)


def test_auto_pooling_keeps_big_conv_layers_tractable():
    data = load_dataset("builtin:gaussian?classes=2&dim=3072&n=4")
    data.inputs = data.inputs.reshape(-1, 3, 32, 32)
    model = _randomised({"name": "resnet18_cifar", "kwargs": {"num_classes": 2, "width": 8}})
    out = extract(model, data, ["layer1.0", "fc:input"])
    assert out["layer1.0"].pooled and out["layer1.0"].dim == 8  # 8×32×32 = 8192 > 4096
    assert not out["fc:input"].pooled and out["fc:input"].dim == 64


def test_default_layers_and_listing():
    mlp = build_model(
        {"name": "mlp", "kwargs": {"in_features": 64, "num_classes": 10, "widths": [8, 8, 8]}}
    )
    sample = torch.zeros(2, 64)
    # the last block's output *is* the classifier input: listed once
    assert default_layers(mlp, "classifier", sample) == ["blocks.0", "blocks.1", "classifier:input"]
    resnet = build_model({"name": "resnet18_cifar", "kwargs": {"width": 4}})
    layers = default_layers(resnet, "fc", torch.zeros(2, 3, 32, 32))
    assert layers[:3] == ["conv1", "bn1", "layer1.0"] and layers[-1] == "fc:input"
    assert len([n for n in layers if n.startswith("layer")]) == 8
    shapes = {
        info.name: info.output_shape for info in list_layers(resnet, torch.zeros(2, 3, 32, 32))
    }
    assert shapes["layer2.0"] == (8, 16, 16) and shapes["fc:input"] == (32,)


def test_resnet18_cifar_uses_torchvision_key_names():
    keys = set(build_model({"name": "resnet18_cifar"}).state_dict())
    for key in (
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer4.1.bn2.bias",
        "fc.weight",
        "fc.bias",
    ):
        assert key in keys
    torchvision = pytest.importorskip("torchvision")
    reference = set(torchvision.models.resnet18(num_classes=10).state_dict())
    assert keys == reference  # same names; only conv1's kernel shape differs (3×3 stem)


def _digits_mlp():
    data = load_dataset("builtin:digits?per_class=20")
    model = _randomised(
        {"name": "mlp", "kwargs": {"in_features": 64, "num_classes": 10, "widths": [16]}}
    )
    return data, model


def test_cache_hit_equals_miss_bit_for_bit(tmp_path):
    data, model = _digits_mlp()
    cache = ActivationCache(tmp_path)
    name, clf = classifier_module(model)
    # on the CPU: CUDA's index_add sums in no fixed order, so GPU metrics match only to ~1e-15
    kwargs = dict(
        classifier=(name, clf),
        cache=cache,
        checkpoint_id="ckpt-a",
        keep_features=True,
        device="cpu",
    )
    miss = extract(model, data, ["classifier:input"], **kwargs)["classifier:input"]
    hit = extract(model, data, ["classifier:input"], **kwargs)["classifier:input"]
    assert not miss.cache_hit and hit.cache_hit
    np.testing.assert_array_equal(hit.features, miss.features)
    assert hit.statistics.compute().metrics == miss.statistics.compute().metrics
    assert len(cache.entries()) == 1


def test_cancelled_extraction_leaves_no_cache_entry(tmp_path):
    data, model = _digits_mlp()
    cache = ActivationCache(tmp_path)

    def cancel(done, total, message):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract(
            model,
            data,
            ["classifier:input"],
            cache=cache,
            checkpoint_id="x",
            options=ExtractOptions(batch_size=16),
            progress=cancel,
        )
    assert cache.entries() == [] and not list(tmp_path.rglob(".tmp-*"))


def test_full_cache_evicts_the_least_recently_used(tmp_path):
    cache = ActivationCache(tmp_path, max_bytes=3 * 8000 + 500)
    for i in range(3):
        cache.put(f"{i:064x}", np.zeros((1000, 2), dtype=np.float32))
        os.utime(cache.path(f"{i:064x}"), (1000 + i, 1000 + i))
    assert cache.get(f"{0:064x}") is not None  # a hit refreshes entry 0
    cache.put(f"{3:064x}", np.zeros((1000, 2), dtype=np.float32))
    remaining = {p.stem for p in cache.entries()}
    assert f"{1:064x}" not in remaining and f"{0:064x}" in remaining and len(remaining) == 3


def test_cache_size_cap_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("NCVIZ_CACHE_MAX_GB", "0.5")
    assert ActivationCache(tmp_path).max_bytes == 2**29
    assert ActivationCache(tmp_path, max_bytes=10).max_bytes == 10


def _writer(root: str, seed: int, start, rounds: int) -> None:
    cache = ActivationCache(root)
    start.wait()
    for _ in range(rounds):
        cache.put("ab" * 32, np.full((20000, 8), seed, dtype=np.float32))


def test_two_processes_writing_one_entry_leave_one_valid_entry(tmp_path):
    context = multiprocessing.get_context("fork")
    start = context.Event()
    procs = [context.Process(target=_writer, args=(str(tmp_path), s, start, 20)) for s in (1, 2)]
    for proc in procs:
        proc.start()
    start.set()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    cache = ActivationCache(tmp_path)
    assert len(cache.entries()) == 1 and not list(tmp_path.rglob(".tmp-*"))
    array = np.asarray(cache.get("ab" * 32))
    assert array.shape == (20000, 8) and len(np.unique(array)) == 1 and array[0, 0] in (1, 2)


def test_one_budget_for_activations_results_and_sweeps(tmp_path):
    from ncviz.cache import CacheStore

    store = CacheStore(tmp_path, max_bytes=3 * 8200)
    cache = ActivationCache(tmp_path, max_bytes=store.max_bytes)
    old = store.folder("sweeps") / "old.parquet"
    with store.atomic(old) as handle:
        handle.write(b"x" * 8000)
    os.utime(old, (1000, 1000))
    results = store.folder("results") / "r.npz"
    with store.atomic(results) as handle:
        handle.write(b"y" * 8000)
    for i in range(2):
        cache.put(f"{i:064x}", np.zeros((1000, 2), dtype=np.float32))
    kinds = {p.parent.name if p.suffix != ".npy" else "activations" for p in store.entries()}
    assert not old.exists() and results.exists() and kinds == {"results", "activations"}
    assert store.size_bytes() <= store.max_bytes


def test_orphaned_temporary_files_are_swept(tmp_path):
    from ncviz.cache import CacheStore

    store = CacheStore(tmp_path)
    folder = store.folder("activations") / "ab"
    folder.mkdir(parents=True)
    stale, fresh = folder / ".tmp-dead.npy", folder / ".tmp-live.npy"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(stale, (1000, 1000))  # left by a process killed long ago
    assert store.evict() == [stale] and fresh.exists()


def test_a_mistyped_layer_is_answered_with_the_closest_names():
    from ncviz.errors import OptionError
    from ncviz.extract.layers import resolve_module

    model = torch.nn.Sequential()
    for index in range(30):  # more modules than a message lists
        model.add_module(f"block{index:02d}", torch.nn.Linear(2, 2))
    model.add_module("classifier", torch.nn.Linear(2, 2))
    with pytest.raises(OptionError, match=r"did you mean 'classifier:input'\?"):
        resolve_module(model, "clasifier:input")
    with pytest.raises(OptionError, match=r"did you mean 'block29'\?"):
        resolve_module(model, "blok29")


def test_writes_under_the_budget_do_not_rescan_the_cache(tmp_path, monkeypatch):
    """The folder is scanned on the first write, then only when the running total passes the
    budget (each scan cost a 25-checkpoint analysis ~12 ms per write)."""
    from ncviz.cache import CacheStore

    store = CacheStore(tmp_path / "roomy", max_bytes=10**9)
    scans = []
    evict = CacheStore.evict
    monkeypatch.setattr(CacheStore, "evict", lambda self: scans.append(1) or evict(self))
    for i in range(5):
        with store.atomic(store.folder("results") / f"{i}.npz") as handle:
            handle.write(b"x" * 1000)
    assert len(scans) == 1
    small = CacheStore(tmp_path / "small", max_bytes=2500)
    for i in range(3):
        with small.atomic(small.folder("results") / f"{i}.npz") as handle:
            handle.write(b"x" * 1000)
    assert len(scans) == 3  # its first write, and the one that passed 2,500 bytes
    assert small.size_bytes() <= 2500
