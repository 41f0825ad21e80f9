"""Datasets by spec: bundled (scikit-learn digits, synthetic Gaussians) or the user's own files.

A **data spec** is a source plus options, written as a string or a dict (run.json)::

    builtin:digits?split=train&shape=image          scikit-learn's 8×8 digits, fixed split
    builtin:gaussian?classes=10&dim=32&per_class=200  synthetic Gaussian classes
    builtin:colored-digits?split=all&envs=0.9,0.8&test=0.1   digits coloured per environment
    data/train.npz | .pt | .safetensors             `inputs` + `labels` (or `targets`)
    data/train.csv?label_column=y&group_column=env  feature columns + a label (+ group) column
    data/images.zip                                 one sub-folder per class (PNG/JPEG)

Tensor files may also hold ``groups`` (one environment/domain per sample, integers or text):
every analysis then adds per-group metrics (``ncviz.metrics.groups``).

Options for every source: ``per_class`` (subsample each class to at most this many),
``imbalance`` (``step:K:R`` — the first K classes keep all samples, the rest 1/R of them;
``longtail:R`` — class c keeps a fraction R^(−c/(C−1))), ``seed``.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np
import torch

from ncviz.errors import DataError
from ncviz.load.archive import MAX_ZIP_UNCOMPRESSED, open_zip, safe_members
from ncviz.load.limits import check_data_file

SPLITS = ("train", "test", "all")
DIGITS_TEST_SIZE = 397  # 1,797 digits → 1,400 train / 397 test, stratified, random_state=0
MAX_IMAGE_PIXELS = 16_000_000  # per image, checked from the header before decoding
MAX_ZIP_PIXELS = 64_000_000  # all images of a zip together (≈ 768 MB as float32 RGB)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
TENSOR_SUFFIXES = (".npz", ".pt", ".pth", ".safetensors")


@dataclass(frozen=True)
class DataSpec:
    """Where the data come from and how to subsample them (see the module docstring)."""

    source: str
    split: str = "train"
    shape: str = "vector"
    per_class: int | None = None
    imbalance: str | None = None
    seed: int = 0
    label_column: str = "label"
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: DataSpec | Mapping[str, Any] | str) -> DataSpec:
        if isinstance(spec, DataSpec):
            return spec
        if isinstance(spec, Mapping):
            known = {k: v for k, v in spec.items() if k in cls.__dataclass_fields__}
            extra = {k: v for k, v in spec.items() if k not in cls.__dataclass_fields__}
            params = {**dict(known.pop("params", {}) or {}), **extra}
            return cls(**known, params=params)._validated()
        source, _, query = str(spec).partition("?")
        options: dict[str, Any] = {}
        params = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key in ("per_class", "seed"):
                options[key] = _as_int(key, value)
            elif key in cls.__dataclass_fields__:
                options[key] = value
            else:
                params[key] = value
        return cls(source=source, params=params, **options)._validated()

    def _validated(self) -> DataSpec:
        if self.split not in SPLITS:
            raise DataError(f"split must be one of {SPLITS}, got {self.split!r}.")
        if self.shape not in ("vector", "image", "tokens"):
            raise DataError(
                f"shape must be 'vector', 'image' or 'tokens' (integer ids), got {self.shape!r}."
            )
        if self.per_class is not None and self.per_class < 1:
            raise DataError(f"per_class must be a positive integer, got {self.per_class}.")
        if self.imbalance:
            _parse_imbalance(self.imbalance)
        return self

    @property
    def split_label(self) -> str:
        """What the ``split`` column of a metrics table says: the split of a bundled dataset,
        else the data file's name without suffix (e.g. ``cifar10-test``)."""
        return self.split if self.source.startswith("builtin:") else Path(self.source).stem

    def to_dict(self) -> dict[str, Any]:
        out = {"source": self.source, "split": self.split, "shape": self.shape, "seed": self.seed}
        for key in ("per_class", "imbalance"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.label_column != "label":
            out["label_column"] = self.label_column
        if self.params:
            out["params"] = dict(self.params)
        return out


@dataclass
class Dataset:
    """Inputs with class labels (classification) or target vectors (regression)."""

    inputs: torch.Tensor
    labels: torch.Tensor | None
    targets: torch.Tensor | None
    classes: list[str]
    name: str
    groups: np.ndarray | None = None  # one group name per sample (environments, domains)
    _fingerprint: tuple[tuple[int, ...], str] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def answers(self) -> torch.Tensor:
        """The class labels (classification), else the regression targets."""
        answers = self.labels if self.labels is not None else self.targets
        if answers is None:
            raise DataError(f"{self.name} has neither labels nor targets.")
        return answers

    def __post_init__(self) -> None:
        if len(self.inputs) == 0:
            raise DataError(f"{self.name} holds no samples.")
        for other in (self.labels, self.targets):
            if other is not None and len(other) != len(self.inputs):
                raise DataError(
                    f"{self.name}: {len(self.inputs)} inputs but {len(other)} labels/targets; "
                    "they must have one entry per sample."
                )
        if self.groups is not None:
            self.groups = np.asarray(self.groups).astype(str)
            if self.groups.shape != (len(self.inputs),):
                raise DataError(
                    f"{self.name}: `groups` must hold one group per sample ({len(self.inputs)}), "
                    f"got shape {self.groups.shape}."
                )
        if not torch.isfinite(self.inputs).all():
            raise DataError(f"{self.name}: inputs contain NaN or Inf; clean the data first.")
        if (
            self.labels is not None
            and len(self.labels)
            and (int(self.labels.min()) < 0 or int(self.labels.max()) >= len(self.classes))
        ):
            raise DataError(
                f"{self.name}: labels must be class indices 0..{len(self.classes) - 1} "
                "(one per class name)."
            )

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def task(self) -> str:
        return "classification" if self.labels is not None else "regression"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, index: np.ndarray) -> Dataset:
        idx = torch.as_tensor(index, dtype=torch.int64)
        return replace(
            self,
            _fingerprint=None,
            inputs=self.inputs[idx],
            labels=None if self.labels is None else self.labels[idx],
            targets=None if self.targets is None else self.targets[idx],
            groups=None if self.groups is None else self.groups[np.asarray(index, np.int64)],
        )

    def fingerprint(self) -> str:
        """Content hash of inputs and labels/targets (a cache-key ingredient), computed once per
        set of tensors (a Dataset is treated as immutable; replace tensors, do not edit them)."""
        identity = (id(self.inputs), id(self.labels), id(self.targets), id(self.groups))
        if self._fingerprint is not None and self._fingerprint[0] == identity:
            return self._fingerprint[1]
        digest = hashlib.sha256()
        for tensor in (self.inputs, self.labels, self.targets):
            if tensor is not None:
                array = tensor.contiguous().numpy()
                digest.update(str((array.dtype, array.shape)).encode())
                digest.update(array.tobytes())
        if self.groups is not None:
            digest.update("\0".join(self.groups.tolist()).encode())
        self._fingerprint = (identity, digest.hexdigest())
        return self._fingerprint[1]


def _as_int(key: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DataError(f"{key} must be an integer, got {value!r}.") from None


def _encode(labels: np.ndarray, name: str) -> tuple[torch.Tensor, list[str]]:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataError(f"{name}: labels must be one per sample (1-D), got shape {labels.shape}.")
    if labels.dtype.kind == "f":
        if not np.all(labels == np.round(labels)):
            raise DataError(
                f"{name}: labels are non-integer floats; store them as `targets` for regression."
            )
        labels = labels.astype(np.int64)
    classes, codes = np.unique(labels, return_inverse=True)
    return torch.from_numpy(codes.astype(np.int64)), [str(c) for c in classes]


def _from_arrays(arrays: dict[str, Any], name: str, tokens: bool = False) -> Dataset:
    if "inputs" not in arrays:
        raise DataError(
            f"{name} has no `inputs` array (found: {', '.join(sorted(arrays)) or 'nothing'}); "
            "save `inputs` plus `labels` or `targets`."
        )
    raw = np.asarray(arrays["inputs"])
    if tokens and raw.dtype.kind not in "iu":
        raise DataError(f"{name}: shape=tokens needs integer token ids, got {raw.dtype} inputs.")
    # token ids stay int64 for embedding layers; everything else (uint8 pixels too) is float32
    inputs = torch.as_tensor(raw, dtype=torch.int64 if tokens else torch.float32)
    groups = arrays.get("groups")
    if "labels" in arrays:
        labels, classes = _encode(np.asarray(arrays["labels"]), name)
        return Dataset(inputs, labels, None, classes, name, groups=groups)
    if "targets" in arrays:
        targets = torch.as_tensor(np.asarray(arrays["targets"]), dtype=torch.float32)
        targets = targets[:, None] if targets.ndim == 1 else targets
        return Dataset(inputs, None, targets, [], name)
    raise DataError(f"{name} has `inputs` but neither `labels` nor `targets`; add one of them.")


def _read_tensor_file(path: Path, tokens: bool = False) -> Dataset:
    suffix = path.suffix.lower()
    check_data_file(path)
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
        elif suffix == ".safetensors":
            from safetensors.torch import load_file

            arrays = load_file(str(path))
        else:
            arrays = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any reader failure is a bad file, reported in one line
        raise DataError(
            f"{path.name} is not a readable {suffix} data file ({type(error).__name__}: "
            f"{str(error).splitlines()[0][:100] if str(error) else 'no detail'})."
        ) from None
    if not isinstance(arrays, dict):
        raise DataError(f"{path.name} must hold a dict of arrays (inputs, labels/targets).")
    arrays = {k: v.numpy() if isinstance(v, torch.Tensor) else v for k, v in arrays.items()}
    return _from_arrays(arrays, path.name, tokens)


def _read_csv(path: Path, label_column: str, group_column: str | None = None) -> Dataset:
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{path.name} is empty; it needs a header and one row per sample."
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"{path.name} is not a readable CSV ({str(error)[:100]}).") from None
    if frame.empty:
        raise DataError(f"{path.name} has a header but no rows.")
    if label_column not in frame.columns:
        raise DataError(
            f"{path.name} has no label column {label_column!r} (columns: "
            f"{', '.join(map(str, frame.columns[:8]))}); name it with label_column=…"
        )
    groups = None
    if group_column is not None:
        if group_column not in frame.columns:
            raise DataError(
                f"{path.name} has no group column {group_column!r} (columns: "
                f"{', '.join(map(str, frame.columns[:8]))}); name it with group_column=…"
            )
        groups = frame.pop(group_column).astype(str).to_numpy()
    features = frame.drop(columns=[label_column])
    non_numeric = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if non_numeric:
        raise DataError(f"{path.name}: feature columns must be numeric, not {non_numeric[:5]}.")
    labels, classes = _encode(frame[label_column].to_numpy(), path.name)
    inputs = torch.as_tensor(features.to_numpy(dtype=np.float32))
    return Dataset(inputs, labels, None, classes, path.name, groups=groups)


def _check_image_size(image: Any, member: str, archive: str) -> int:
    """The image's pixel count, read from its header before any pixel is decoded; refused above
    MAX_IMAGE_PIXELS (a small file can declare a huge image: a decompression bomb)."""
    width, height = image.size
    if width * height > MAX_IMAGE_PIXELS:
        raise DataError(
            f"{archive}: {member} is {width}×{height} pixels; the limit is "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} million per image — resize the images first."
        )
    return width * height


def _read_image_zip(path: Path, image_size: int | None) -> Dataset:
    from PIL import Image, UnidentifiedImageError

    with open_zip(path) as archive:
        images = safe_members(archive, path.name, IMAGE_SUFFIXES)
        # class = the folder directly above the image (ignores one wrapping top folder)
        parts = [Path(i.filename).parts for i in images]
        if not images or any(len(p) < 2 for p in parts):
            raise DataError(
                f"{path.name} must contain one folder per class with images inside "
                "(e.g. cat/001.png, dog/002.png)."
            )
        names = [p[-2] for p in parts]
        total_pixels = 0  # every header first: refused before any image is decoded
        for info in images:
            with archive.open(info) as handle:
                try:
                    header = Image.open(io.BytesIO(handle.read(MAX_ZIP_UNCOMPRESSED)))
                except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
                    raise DataError(
                        f"{path.name}: {info.filename} is not a readable image."
                    ) from None
            total_pixels += _check_image_size(header, info.filename, path.name)
        if total_pixels > MAX_ZIP_PIXELS:
            raise DataError(
                f"{path.name}: the images hold {total_pixels / 1e6:.0f} million pixels in all; "
                f"the limit is {MAX_ZIP_PIXELS / 1e6:.0f} million — upload fewer or smaller images."
            )
        pixels, mode, size = [], None, None
        for info in images:
            try:
                with archive.open(info) as handle:
                    image = Image.open(io.BytesIO(handle.read(MAX_ZIP_UNCOMPRESSED)))
                    image.load()
            except (UnidentifiedImageError, OSError, zipfile.BadZipFile):
                raise DataError(f"{path.name}: {info.filename} is not a readable image.") from None
            mode = mode or ("L" if image.mode in ("L", "1", "I;16") else "RGB")
            image = image.convert(mode)
            if image_size:
                image = image.resize((image_size, image_size))
            if size is None:
                size = image.size
            elif image.size != size:
                raise DataError(
                    f"{path.name}: images differ in size ({size} vs {image.size} in "
                    f"{info.filename}); pass image_size=… to resize them."
                )
            array = np.asarray(image, dtype=np.float32) / 255.0
            pixels.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
    labels, classes = _encode(np.array(names), path.name)
    return Dataset(torch.from_numpy(np.stack(pixels)), labels, None, classes, path.name)


# Mixing of the standardised principal-component scores into correlated regression targets.
_PCA_TARGET_MIXING = np.array([[1.0, 0.0, 0.0], [0.6, 0.8, 0.0], [0.3, -0.4, 0.87]])


def _digits_pca_targets(inputs: np.ndarray, train_index: np.ndarray, dims: int) -> np.ndarray:
    """tanh of correlated mixtures of the top principal-component scores (PCA fitted on the
    training split), a smooth n-dimensional regression target derived from the images."""
    if not 1 <= dims <= 3:
        raise DataError(f"target=pca:N takes N in 1..3, got {dims}.")
    train = inputs[train_index]
    mean = train.mean(axis=0)
    _, _, components = np.linalg.svd(train - mean, full_matrices=False)
    scores = (inputs - mean) @ components[:dims].T
    scores /= scores[train_index].std(axis=0)
    return np.tanh(scores @ _PCA_TARGET_MIXING[:dims, :dims].T).astype(np.float32)


def _digits(spec: DataSpec) -> Dataset:
    """scikit-learn's digits (1,797 8×8 images, pixels scaled to [0, 1]); a fixed stratified
    split of 1,400 train / 397 test. ``target=pca:N`` gives an N-dimensional regression target
    (correlated tanh of the top principal components) instead of the class labels."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    inputs = digits.data.astype(np.float32) / 16.0
    train, test = train_test_split(
        np.arange(len(inputs)), test_size=DIGITS_TEST_SIZE, stratify=digits.target, random_state=0
    )
    index = {"train": np.sort(train), "test": np.sort(test), "all": np.arange(len(inputs))}[
        spec.split
    ]
    x = inputs[index]
    if spec.shape == "image":
        x = x.reshape(-1, 1, 8, 8)
    name = f"digits-{spec.split}"
    target = spec.params.get("target")
    if target is not None:
        kind, _, dims = str(target).partition(":")
        if kind != "pca":
            raise DataError(f"unknown digits target {target!r}; use target=pca:3.")
        targets = _digits_pca_targets(inputs, np.sort(train), _as_int("target", dims or 3))
        return Dataset(torch.from_numpy(x), None, torch.from_numpy(targets[index]), [], name)
    labels = torch.from_numpy(digits.target[index].astype(np.int64))
    return Dataset(torch.from_numpy(x), labels, None, [str(c) for c in range(10)], name)


# one colour (RGB) per digit class: the spurious feature of builtin:colored-digits
DIGIT_COLOURS = np.array(
    [
        [1.0, 0.1, 0.1],
        [0.1, 1.0, 0.1],
        [0.1, 0.1, 1.0],
        [1.0, 1.0, 0.1],
        [1.0, 0.1, 1.0],
        [0.1, 1.0, 1.0],
        [1.0, 0.55, 0.1],
        [0.55, 0.1, 1.0],
        [0.1, 0.55, 0.25],
        [0.6, 0.6, 0.6],
    ],
    dtype=np.float32,
)


def _correlations(text: Any, name: str) -> list[float]:
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or not all(0.0 <= v <= 1.0 for v in values):
        raise DataError(
            f"colored-digits {name} must be comma-separated probabilities in [0, 1] "
            f"(e.g. {name}=0.9,0.8), got {text!r}."
        )
    return values


def _colored_digits(spec: DataSpec) -> Dataset:
    """Digits painted in a colour that agrees with the label with probability p_e in
    environment e (else a random other class's colour): a spurious feature whose reliability
    changes across environments, as in Colored MNIST (Arjovsky et al. 2019).

    The training split (1,400 digits) is dealt at random into one environment per entry of
    ``envs`` (default ``0.9,0.8``: groups ``env1``, ``env2``); the test split (397) is the
    environment ``test`` with p = ``test`` (default 0.1: colour flipped). ``split=all`` holds
    all of them. Inputs are 3×8×8 (``shape=image``) or 192-vectors; ``groups`` names the
    environment of each sample.
    """
    params = spec.params
    envs = _correlations(params.get("envs", "0.9,0.8"), "envs")
    test_p = _correlations(params.get("test", "0.1"), "test")[0]
    parts = []
    for split in ("train", "test") if spec.split == "all" else (spec.split,):
        digits = _digits(replace(spec, split=split, shape="image", params={}))
        rng = np.random.default_rng(spec.seed + (0 if split == "train" else 1))
        count = len(digits)
        if split == "train":
            env = rng.permutation(np.arange(count) % len(envs))
            names = np.array([f"env{e + 1}" for e in env])
            agree = np.array(envs)[env]
        else:
            names, agree = np.full(count, "test"), np.full(count, test_p)
        labels = digits.labels.numpy()
        other = (labels + rng.integers(1, 10, count)) % 10
        colour = np.where(rng.random(count) < agree, labels, other)
        pixels = digits.inputs.numpy()  # N×1×8×8 in [0, 1]
        painted = pixels * DIGIT_COLOURS[colour][:, :, None, None]
        parts.append((painted.astype(np.float32), labels, names))
    x = np.concatenate([p[0] for p in parts])
    if spec.shape != "image":
        x = x.reshape(len(x), -1)
    return Dataset(
        torch.from_numpy(x),
        torch.from_numpy(np.concatenate([p[1] for p in parts])),
        None,
        [str(c) for c in range(10)],
        f"colored-digits-{spec.split}",
        groups=np.concatenate([p[2] for p in parts]),
    )


def _gaussian(spec: DataSpec) -> Dataset:
    params = spec.params
    num_classes = _as_int("classes", params.get("classes", 10))
    dim = _as_int("dim", params.get("dim", 32))
    per_class = _as_int("n", params.get("n", 200))
    separation = float(params.get("separation", 3.0))
    if num_classes < 2 or dim < 1 or per_class < 2:
        raise DataError("builtin:gaussian needs classes ≥ 2, dim ≥ 1 and n ≥ 2 per class.")
    rng = np.random.default_rng(spec.seed)
    means = rng.standard_normal((num_classes, dim)) * separation / np.sqrt(2)
    labels = np.repeat(np.arange(num_classes), per_class)
    inputs = means[labels] + rng.standard_normal((len(labels), dim))
    return Dataset(
        torch.from_numpy(inputs.astype(np.float32)),
        torch.from_numpy(labels),
        None,
        [str(c) for c in range(num_classes)],
        f"gaussian-{num_classes}x{dim}",
    )


BUILTINS = {"digits": _digits, "gaussian": _gaussian, "colored-digits": _colored_digits}


def _parse_imbalance(profile: str) -> tuple[str, tuple[float, ...]]:
    kind, *args = profile.split(":")
    try:
        values = tuple(float(a) for a in args)
    except ValueError:
        values = ()
    step_ok = kind == "step" and len(values) == 2 and values[0] == int(values[0]) >= 1
    ok = (step_ok and values[1] >= 1) or (
        kind == "longtail" and len(values) == 1 and values[0] >= 1
    )
    if not ok:
        raise DataError(
            f"imbalance {profile!r} is not a profile; use step:K:R (K majority classes, "
            "ratio R ≥ 1) or longtail:R (exponential, ratio R ≥ 1)."
        )
    return kind, values


def _imbalance_fractions(profile: str, num_classes: int) -> np.ndarray:
    """Share of its samples each class keeps: step:K:R or longtail:R (R = largest/smallest)."""
    kind, values = _parse_imbalance(profile)
    if kind == "step":
        majority, ratio = int(values[0]), values[1]
        if majority >= num_classes:
            raise DataError(
                f"step imbalance needs K < {num_classes} majority classes, got {majority}."
            )
        return np.where(np.arange(num_classes) < majority, 1.0, 1.0 / ratio)
    return values[0] ** (-np.arange(num_classes) / max(num_classes - 1, 1))


def subsample(dataset: Dataset, spec: DataSpec) -> Dataset:
    """Apply ``per_class`` and the imbalance profile (deterministic for a seed)."""
    if dataset.labels is None or (spec.per_class is None and not spec.imbalance):
        return dataset
    labels = dataset.labels.numpy()
    counts = np.bincount(labels, minlength=dataset.num_classes)
    if spec.imbalance:
        # majority classes keep `top` samples (per_class, or what the smallest class has)
        top = spec.per_class or counts.min()
        keep = np.maximum(np.floor(top * _imbalance_fractions(spec.imbalance, len(counts))), 1)
    else:
        keep = np.full(len(counts), spec.per_class)
    keep = np.minimum(keep, counts).astype(np.int64)
    rng = np.random.default_rng(spec.seed)
    chosen = []
    for cls in range(len(counts)):
        members = np.flatnonzero(labels == cls)
        chosen.append(rng.permutation(members)[: keep[cls]])
    return dataset.subset(np.sort(np.concatenate(chosen)))


def load_dataset(spec: DataSpec | dict[str, Any] | str) -> Dataset:
    """Load the data a spec names, then subsample/imbalance it as the spec says."""
    spec = DataSpec.parse(spec)
    if spec.source.startswith("builtin:"):
        name = spec.source.removeprefix("builtin:")
        if name not in BUILTINS:
            raise DataError(f"unknown builtin dataset {name!r}; choose one of {sorted(BUILTINS)}.")
        dataset = BUILTINS[name](spec)
    else:
        path = Path(spec.source)
        if not path.is_file():
            raise DataError(f"data file {spec.source!r} does not exist.")
        if path.stat().st_size == 0:
            raise DataError(f"{path.name} is empty (0 bytes).")
        suffix = path.suffix.lower()
        if suffix in TENSOR_SUFFIXES:
            dataset = _read_tensor_file(path, tokens=spec.shape == "tokens")
        elif suffix == ".csv":
            dataset = _read_csv(path, spec.label_column, spec.params.get("group_column"))
        elif suffix == ".zip":
            size = spec.params.get("image_size")
            dataset = _read_image_zip(path, None if size is None else _as_int("image_size", size))
        else:
            raise DataError(
                f"{path.name}: unsupported data type {suffix!r}; use .npz/.pt/.safetensors "
                "(inputs + labels), .csv, or a .zip of class folders."
            )
    return subsample(dataset, spec)
