"""Read model checkpoints safely and normalise the layouts real training code writes.

Untrusted files are never unpickled with code execution: ``.safetensors`` is read as is, and
``.pt``/``.pth``/``.ckpt``/``.bin`` only through ``torch.load(weights_only=True)``, which restores
tensors and plain containers and refuses everything else. TorchScript archives and
``torch.package`` files are recognised before loading and refused with the conversion command.

Layouts normalised: ``{'state_dict': …}`` (Lightning, whose keys carry a ``model.`` prefix),
``{'model': sd, 'epoch': n}`` and similar wrappers, and the ``module.`` (DDP/DataParallel) and
``_orig_mod.`` (torch.compile) key prefixes.
"""

from __future__ import annotations

import argparse
import hashlib
import pickle
import re
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ncviz.errors import CheckpointError

SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar")  # .tar: timm's checkpoint-N.pth.tar
CHECKPOINT_SUFFIXES = SAFETENSORS_SUFFIXES + TORCH_SUFFIXES

# Keys under which training code nests the model's state dict, most specific first.
_STATE_KEYS = ("state_dict", "model_state_dict", "model_state", "model", "net", "network", "module")
_STEP_KEYS = {"epoch": "epoch", "global_step": "step", "step": "step", "iteration": "step"}
# wrappers whose name prefixes every key: DDP, torch.compile, Lightning's self.model/self.net
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.", "net.", "network.")
# an epoch/step only from an explicit token: epoch_12, ep12, step-300, epoch=3-step=45,
# checkpoint-7 (timm); never from other digits (resnet18.pt, vit_224.pt)
_NAME_NUMBER = re.compile(
    r"(?:^|[^a-z])(?:epoch|ep|step|iter|it|ckpt|checkpoint)[_=\-]?(\d+)", re.IGNORECASE
)
PT2_REFUSAL = (
    "{name} is a torch.export archive, and loading one can run code (torch warns against "
    "untrusted archives), so ncviz does not open it; export the model to ONNX "
    "(torch.onnx.export(..., dynamo=True)) or save its state_dict as .safetensors."
)
CONVERT_HINT = (
    "convert it on your own machine with `ncviz convert --trust FILE` "
    "(writes its weights as .safetensors, with the model's class name in the metadata)"
)


@dataclass
class Checkpoint:
    """A normalised state dict with what is known about when it was saved."""

    state_dict: dict[str, torch.Tensor]
    path: Path | None = None
    epoch: int | None = None
    step: int | None = None
    sha256: str = ""
    metadata: dict[str, str] = field(default_factory=dict)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def number_from_name(name: str) -> int | None:
    """Epoch/step in a file name from an explicit token: ``epoch_010.pt`` → 10,
    ``ckpt-250.safetensors`` → 250, ``epoch=3-step=45.ckpt`` → 3; ``resnet18.pt`` → None."""
    stem = Path(name).name.split(".")[0]
    match = _NAME_NUMBER.search(stem)
    return int(match.group(1)) if match else None


def _refuse_code_archives(path: Path) -> None:
    if not zipfile.is_zipfile(path):
        return
    try:
        names = zipfile.ZipFile(path).namelist()
    except (zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path.name} is a damaged zip archive ({error}).") from None
    if any(n.endswith("/constants.pkl") or "/code/__torch__" in n for n in names):
        raise CheckpointError(
            f"{path.name} is a TorchScript archive, which ncviz does not load (it carries code); "
            f"save model.state_dict() instead, or {CONVERT_HINT}."
        )
    if any(n.endswith(".data/extern_modules") for n in names):
        raise CheckpointError(
            f"{path.name} is a torch.package archive, which ncviz does not load (it carries "
            f"code); {CONVERT_HINT}."
        )


def _torch_load(path: Path) -> Any:
    _refuse_code_archives(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # odd pickle protocols in junk files warn first
            # reference training scripts (torchvision's, timm's) save their argparse.Namespace
            # beside the weights: plain data, allowed; anything else that needs a class is not
            with torch.serialization.safe_globals([argparse.Namespace]):
                return torch.load(path, map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError as error:
        if "global" not in str(error).lower():  # junk bytes, not a pickle of Python objects
            raise CheckpointError(
                f"{path.name} is not a readable PyTorch checkpoint (corrupt or not a torch file); "
                "re-save it with torch.save(model.state_dict())."
            ) from None
        raise CheckpointError(
            f"{path.name} needs arbitrary unpickling (it stores Python objects such as a whole "
            f"model, not just tensors), which is refused for safety; {CONVERT_HINT}."
        ) from None
    except Exception as error:  # a parser fed junk may raise anything; all mean "unreadable"
        raise CheckpointError(
            f"{path.name} is not a readable PyTorch checkpoint (truncated or corrupt: "
            f"{str(error).splitlines()[0][:120]}); re-save it with torch.save(model.state_dict())."
        ) from None


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
        return load_file(str(path)), metadata
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path.name} is not a readable safetensors file ({str(error)[:120]}); "
            "re-save it with safetensors.torch.save_file."
        ) from None


def _is_tensor_dict(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and len(value) > 0
        and all(isinstance(k, str) for k in value)
        and any(isinstance(v, torch.Tensor) for v in value.values())
    )


def _unwrap(obj: Any, name: str) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """Find the state dict inside common wrappers; collect epoch/step found along the way."""
    counters: dict[str, int] = {}
    for _ in range(4):
        if not isinstance(obj, Mapping):
            break
        for key, target in _STEP_KEYS.items():
            if isinstance(obj.get(key), int) and target not in counters:
                counters[target] = int(obj[key])
        nested = next((obj[k] for k in _STATE_KEYS if isinstance(obj.get(k), Mapping)), None)
        if nested is None:
            break
        obj = nested
    if not _is_tensor_dict(obj):
        raise CheckpointError(
            f"{name} holds no state dict of tensors (found {type(obj).__name__}); save "
            "model.state_dict(), or a dict with it under 'state_dict' or 'model'."
        )
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}, counters


def strip_prefixes(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove ``module.``/``_orig_mod.``/``model.`` while every key carries the same one."""
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if state_dict and all(k.startswith(prefix) for k in state_dict):
                state_dict = {k[len(prefix) :]: v for k, v in state_dict.items()}
                changed = True
    # torch.compile inside DDP (or the reverse) leaves the prefix mid-key
    return {
        k.replace("._orig_mod.", ".").replace("_orig_mod.", ""): v for k, v in state_dict.items()
    }


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Load one checkpoint file safely into a normalised :class:`Checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist or is not a file.")
    suffix = path.suffix.lower()
    if suffix == ".pt2":
        raise CheckpointError(PT2_REFUSAL.format(name=path.name))
    if suffix not in CHECKPOINT_SUFFIXES:
        raise CheckpointError(
            f"{path.name}: unknown checkpoint type {suffix!r}; use .safetensors (preferred) or "
            ".pt/.pth/.ckpt saved with torch.save(model.state_dict())."
        )
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path.name} is empty (0 bytes); the upload or save was cut off.")
    counters: dict[str, int] = {}
    metadata: dict[str, str] = {}
    if suffix in SAFETENSORS_SUFFIXES:
        state, metadata = _read_safetensors(path)
        for key in ("epoch", "step"):
            if _int_or_none(metadata.get(key)) is not None:
                counters[key] = int(metadata[key])
    else:
        state, counters = _unwrap(_torch_load(path), path.name)
    state = strip_prefixes(state)
    epoch = counters.get("epoch")
    if epoch is None and counters.get("step") is None:
        epoch = number_from_name(path.name)
    return Checkpoint(
        state_dict=state,
        path=path,
        epoch=epoch,
        step=counters.get("step"),
        sha256=file_sha256(path),
        metadata=metadata,
    )


def save_safetensors(
    state_dict: Mapping[str, torch.Tensor], path: str | Path, **metadata: Any
) -> Path:
    """Write a state dict as safetensors (contiguous, shared storage broken) with metadata."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    save_file(
        tensors, str(path), metadata={k: str(v) for k, v in metadata.items() if v is not None}
    )
    return path
