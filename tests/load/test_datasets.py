"""Every dataset source, subsampling/imbalance, and each bad-data case with its message."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from ncviz.errors import DataError
from ncviz.load import DataSpec, load_dataset


def test_builtin_digits_has_a_fixed_stratified_split():
    train = load_dataset("builtin:digits")
    test = load_dataset("builtin:digits?split=test&shape=image")
    assert (len(train), len(test)) == (1400, 397)
    assert train.inputs.shape == (1400, 64) and test.inputs.shape == (397, 1, 8, 8)
    assert float(train.inputs.max()) <= 1.0 and train.num_classes == 10
    again = load_dataset("builtin:digits")
    assert torch.equal(again.inputs, train.inputs)
    assert len(load_dataset({"source": "builtin:digits", "split": "all"})) == 1797


def test_builtin_gaussian_takes_its_parameters():
    data = load_dataset("builtin:gaussian?classes=4&dim=7&n=25&seed=3")
    assert data.inputs.shape == (100, 7) and data.num_classes == 4
    assert not torch.equal(
        data.inputs, load_dataset("builtin:gaussian?classes=4&dim=7&n=25").inputs
    )


def test_step_and_longtail_imbalance_and_per_class():
    step = load_dataset("builtin:digits?per_class=100&imbalance=step:5:10")
    counts = np.bincount(step.labels.numpy())
    assert list(counts) == [100] * 5 + [10] * 5
    tail = load_dataset("builtin:digits?per_class=100&imbalance=longtail:100")
    counts = np.bincount(tail.labels.numpy())
    assert counts[0] == 100 and counts[-1] == 1 and np.all(np.diff(counts) <= 0)
    assert list(np.bincount(load_dataset("builtin:digits?per_class=7").labels.numpy())) == [7] * 10


@pytest.mark.parametrize("suffix", [".npz", ".pt", ".safetensors"])
def test_tensor_files_with_labels_or_targets(tmp_path, suffix):
    inputs = np.random.default_rng(0).standard_normal((12, 5)).astype(np.float32)
    labels = np.array(["b", "a", "c"] * 4)
    targets = np.random.default_rng(1).standard_normal((12, 2)).astype(np.float32)
    path, reg = tmp_path / f"d{suffix}", tmp_path / f"r{suffix}"
    if suffix == ".npz":
        np.savez(path, inputs=inputs, labels=labels)
        np.savez(reg, inputs=inputs, targets=targets)
    elif suffix == ".pt":
        torch.save({"inputs": torch.from_numpy(inputs), "labels": torch.arange(12) % 3}, path)
        torch.save({"inputs": torch.from_numpy(inputs), "targets": torch.from_numpy(targets)}, reg)
    else:
        save_file({"inputs": torch.from_numpy(inputs), "labels": torch.arange(12) % 3}, str(path))
        save_file(
            {"inputs": torch.from_numpy(inputs), "targets": torch.from_numpy(targets)}, str(reg)
        )
    data = load_dataset(str(path))
    assert data.task == "classification" and data.num_classes == 3
    np.testing.assert_array_equal(data.inputs.numpy(), inputs)
    regression = load_dataset(str(reg))
    assert regression.task == "regression" and regression.targets.shape == (12, 2)


def test_csv_with_label_column(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x1,x2,y\n1,2,cat\n3,4,dog\n5,6,cat\n")
    data = load_dataset(f"{path}?label_column=y")
    assert data.inputs.shape == (3, 2) and data.classes == ["cat", "dog"]
    assert data.labels.tolist() == [0, 1, 0]


def test_csv_errors(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("x1,x2,y\n1,2,cat\n")
    with pytest.raises(DataError, match=r"no label column 'label' \(columns: x1, x2, y\)"):
        load_dataset(str(path))
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        load_dataset(str(tmp_path / "empty.csv"))
    (tmp_path / "header.csv").write_text("a,label\n")
    with pytest.raises(DataError, match="no rows"):
        load_dataset(str(tmp_path / "header.csv"))
    (tmp_path / "text.csv").write_text("a,label\nhello,1\n")
    with pytest.raises(DataError, match="must be numeric"):
        load_dataset(str(tmp_path / "text.csv"))


def _png(value: int, size=(6, 6), mode="L") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color=value).save(buffer, format="PNG")
    return buffer.getvalue()


def test_zip_of_class_folders(tmp_path):
    path = tmp_path / "images.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(3):
            archive.writestr(f"pets/cat/{i}.png", _png(10))
            archive.writestr(f"pets/dog/{i}.png", _png(200))
        archive.writestr("pets/README.txt", "ignored")
    data = load_dataset(str(path))
    assert data.inputs.shape == (6, 1, 6, 6) and data.classes == ["cat", "dog"]
    cats = data.inputs[data.labels == 0]
    assert torch.allclose(cats, torch.full_like(cats, 10 / 255))


def test_zip_errors_and_bombs(tmp_path):
    mixed = tmp_path / "mixed.zip"
    with zipfile.ZipFile(mixed, "w") as archive:
        archive.writestr("a/1.png", _png(1, (6, 6)))
        archive.writestr("b/1.png", _png(1, (7, 7)))
    with pytest.raises(DataError, match="pass image_size"):
        load_dataset(str(mixed))
    assert load_dataset(f"{mixed}?image_size=5").inputs.shape == (2, 1, 5, 5)
    flat = tmp_path / "flat.zip"
    with zipfile.ZipFile(flat, "w") as archive:
        archive.writestr("1.png", _png(1))
    with pytest.raises(DataError, match="one folder per class"):
        load_dataset(str(flat))
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a/huge.png", b"\0" * (20 << 20))
    with pytest.raises(DataError, match="zip bomb"):
        load_dataset(str(bomb))
    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("a/1.png", b"not an image")
    with pytest.raises(DataError, match="not a readable image"):
        load_dataset(str(broken))


def test_bad_specs_and_files(tmp_path):
    with pytest.raises(DataError, match=r"unknown builtin dataset 'cifar'; choose one of"):
        load_dataset("builtin:cifar")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "missing.npz"))
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        load_dataset(str(tmp_path / "empty.npz"))
    np.savez(tmp_path / "nolabels.npz", inputs=np.zeros((3, 2)))
    with pytest.raises(DataError, match="neither `labels` nor `targets`"):
        load_dataset(str(tmp_path / "nolabels.npz"))
    np.savez(tmp_path / "noinputs.npz", x=np.zeros((3, 2)))
    with pytest.raises(DataError, match="no `inputs` array"):
        load_dataset(str(tmp_path / "noinputs.npz"))
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        load_dataset(str(tmp_path / "junk.npz"))
    with pytest.raises(DataError, match="not a profile"):
        DataSpec.parse("builtin:digits?imbalance=steep:3")
    with pytest.raises(DataError, match="unsupported data type"):
        (tmp_path / "x.txt").write_text("1")
        load_dataset(str(tmp_path / "x.txt"))
