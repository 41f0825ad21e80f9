"""Model architectures by name, and loading a state dict into them with a precise key diff.

A **model spec** is plain data — ``{"name": "mlp", "kwargs": {...}, "classifier": null}`` — naming
an architecture of the registry (``mlp``, ``cnn``, ``resnet18_cifar``, ``tiny_lm``; every
``torchvision.models`` name when torchvision is installed; ``hf:<local folder>`` for transformers
models saved with ``save_pretrained``). ``classifier`` names the module whose weight/bias is the
classifier (default: the last ``nn.Linear``).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ncviz.errors import CheckpointError, OptionError
from ncviz.load.checkpoints import WRAPPER_PREFIXES
from ncviz.load.limits import check_model_size

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class MLP(nn.Module):
    """Fully connected: ``blocks.i`` = Linear → [BatchNorm] → activation; then ``classifier``."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        widths: Sequence[int] = (256, 256, 256),
        activation: str = "relu",
        bias: bool = True,
        batchnorm: bool = False,
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise OptionError(
                f"mlp activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}."
            )
        blocks = []
        width_in = in_features
        for width in widths:
            layers: list[nn.Module] = [nn.Linear(width_in, width, bias=bias)]
            if batchnorm:
                layers.append(nn.BatchNorm1d(width))
            layers.append(_ACTIVATIONS[activation]())
            blocks.append(nn.Sequential(*layers))
            width_in = width
        self.flatten = nn.Flatten()
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(width_in, num_classes, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.blocks(self.flatten(x)))


class SmallCNN(nn.Module):
    """Two or more conv blocks (Conv3×3 → BN → ReLU → [MaxPool]) → global pool → fc → classifier.

    Sized for 1×8×8 digits and 3×32×32 CIFAR-like images; pooling halves the map after each
    block while it is larger than 4×4.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        image_size: int = 8,
        widths: Sequence[int] = (32, 64),
        hidden: int = 128,
    ) -> None:
        super().__init__()
        blocks = []
        channels, size = in_channels, image_size
        for width in widths:
            layers: list[nn.Module] = [
                nn.Conv2d(channels, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
            ]
            if size > 4:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            blocks.append(nn.Sequential(*layers))
            channels = width
        self.features = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Sequential(nn.Linear(channels, hidden), nn.BatchNorm1d(hidden), nn.ReLU())
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.fc(self.flatten(self.pool(self.features(x)))))


class BasicBlock(nn.Module):
    """ResNet basic block with torchvision's module names (conv1, bn1, conv2, bn2, downsample)."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18Cifar(nn.Module):
    """ResNet-18 for 32×32 inputs (3×3 stem, no max-pool), with torchvision's state-dict keys."""

    def __init__(self, num_classes: int = 10, in_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        planes = [width, 2 * width, 4 * width, 8 * width]
        in_planes = width
        for index, (out_planes, stride) in enumerate(zip(planes, (1, 2, 2, 2)), start=1):
            blocks = [BasicBlock(in_planes, out_planes, stride), BasicBlock(out_planes, out_planes)]
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
            in_planes = out_planes
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class TinyCausalLM(nn.Module):
    """A small causal transformer language model: token + position embeddings, ``blocks.i``
    (pre-norm self-attention with a causal mask, then an MLP), a final ``norm`` and ``lm_head``,
    whose weight is the token embedding (tied, as in GPT-2). Input: token ids B×L (L ≤
    ``context``); output: next-token logits B×L×V."""

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        layers: int = 2,
        heads: int = 4,
        context: int = 64,
    ) -> None:
        super().__init__()
        self.context = context
        self.embed = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d_model, heads, 4 * d_model, dropout=0.0, batch_first=True, norm_first=True
            )
            for _ in range(layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        self.lm_head.weight = self.embed.weight
        nn.init.normal_(self.embed.weight, std=0.02)
        nn.init.normal_(self.position.weight, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        if length > self.context:
            raise OptionError(
                f"sequences of {length} tokens exceed the model's context of {self.context}."
            )
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=ids.device)
        hidden = self.embed(ids) + self.position(torch.arange(length, device=ids.device))
        for block in self.blocks:
            hidden = block(hidden, src_mask=mask, is_causal=True)
        return self.lm_head(self.norm(hidden))


def _tiny_deq(**kwargs: Any) -> nn.Module:
    from ncviz.deq import TinyDEQ  # a deep equilibrium model (ncviz.deq)

    return TinyDEQ(**kwargs)


REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "cnn": SmallCNN,
    "resnet18_cifar": ResNet18Cifar,
    "tiny_lm": TinyCausalLM,
    "tiny_deq": _tiny_deq,
}


@dataclass(frozen=True)
class ModelSpec:
    """Architecture name, its keyword arguments, and the classifier module's name (optional)."""

    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    classifier: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kwargs": dict(self.kwargs), "classifier": self.classifier}

    @classmethod
    def parse(cls, spec: ModelSpec | Mapping[str, Any] | str) -> ModelSpec:
        """From a ModelSpec, a dict, a JSON string / .json file, or ``name:key=value,…``."""
        if isinstance(spec, ModelSpec):
            return spec
        if isinstance(spec, str):
            text = spec.strip()
            if text.endswith(".json") and Path(text).is_file():
                text = Path(text).read_text()
            if text.startswith("{"):
                try:
                    spec = json.loads(text)
                except json.JSONDecodeError as error:
                    raise OptionError(f"model spec is not valid JSON: {error}.") from None
            else:
                return cls._parse_compact(text)
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise OptionError('a model spec needs a "name" (e.g. {"name": "mlp", "kwargs": {…}}).')
        kwargs, classifier = spec.get("kwargs") or {}, spec.get("classifier")
        if not isinstance(kwargs, Mapping):
            raise OptionError('a model spec\'s "kwargs" must be an object of keyword arguments.')
        if classifier is not None and not isinstance(classifier, str):
            raise OptionError('a model spec\'s "classifier" must be a module name (a string).')
        return cls(str(spec["name"]), dict(kwargs), classifier)

    @classmethod
    def _parse_compact(cls, text: str) -> ModelSpec:
        name, _, rest = text.partition(":")
        if name == "hf":
            return cls(text)  # hf:<folder> carries a path, not arguments
        kwargs: dict[str, Any] = {}
        for item in _split_top_level(rest):
            key, sep, value = item.partition("=")
            if not sep:
                raise OptionError(f"model argument {item!r} must be key=value.")
            try:
                kwargs[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                kwargs[key.strip()] = value
        return cls(name.strip(), kwargs)


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += char in "[{("
        depth -= char in "]})"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return [p.strip() for p in parts if p.strip()]


PLUGIN_GROUP = "ncviz.architectures"


def _search_path_stamp() -> tuple[tuple[str, int], ...]:
    """sys.path with each folder's modification time: installing a package changes it."""
    stamp = []
    for entry in sys.path:
        with contextlib.suppress(OSError):
            stamp.append((entry, os.stat(entry or ".").st_mtime_ns))
    return tuple(stamp)


@functools.lru_cache(maxsize=4)
def _plugin_entries(stamp: tuple[tuple[str, int], ...]) -> tuple[Any, ...]:
    """The entry points of :data:`PLUGIN_GROUP` (reading every installed package's metadata
    took 10 ms, once per checkpoint); read again when ``stamp`` (:func:`_search_path_stamp`)
    says a package was installed."""
    from importlib.metadata import entry_points

    return tuple(entry_points(group=PLUGIN_GROUP))


def plugin_architectures() -> dict[str, Callable[..., nn.Module]]:
    """Architectures that installed packages register under the entry-point group
    ``ncviz.architectures`` (name → a callable returning an ``nn.Module``): the way a lab adds its
    own model code to a shared container, by installing a package there (see
    ``examples/ncviz-lab-models``). A plugin that fails to load is left out with a warning; the
    built-in names always win."""
    found: dict[str, Callable[..., nn.Module]] = {}
    for entry in _plugin_entries(_search_path_stamp()):
        if entry.name in REGISTRY:
            continue
        try:
            found[entry.name] = entry.load()
        except Exception as error:  # a broken plugin must not take the registry down
            warnings.warn(
                f"ncviz architecture plugin {entry.name!r} could not be loaded: {error}",
                stacklevel=2,
            )
    return found


def available_architectures() -> list[str]:
    """Registry names, then every torchvision model when torchvision imports (an unusable
    torchvision, e.g. a CUDA build beside a CPU torch, is simply left out)."""
    names = sorted(REGISTRY) + sorted(plugin_architectures())
    try:
        tvm = _torchvision_models()
    except OptionError:
        return names
    return names + [f"torchvision:{n}" for n in tvm.list_models()]


def _torchvision_models() -> Any:
    """``torchvision.models``, or one line: absent, or present but broken. PyPI's torchvision
    next to the CPU torch raises RuntimeError ("operator torchvision::nms does not exist")."""
    try:
        import torchvision.models as tvm
    except ImportError:
        raise OptionError("torchvision is not installed (pip install 'ncviz[vision]').") from None
    except Exception as error:
        raise OptionError(
            f"torchvision unusable: {str(error).splitlines()[0][:120]} — install the torchvision "
            "build made for your torch (e.g. torch==2.14.1 with torchvision==0.29.1)."
        ) from None
    return tvm


# keyword arguments that make a model loader run Python code shipped with the model files
CODE_RUNNING_OPTIONS = ("trust_remote_code", "code_revision")


def build_model(
    spec: ModelSpec | Mapping[str, Any] | str, *, trust_remote_code: bool = False
) -> nn.Module:
    """Instantiate the architecture a spec names (weights untrained), in eval mode.

    The parameter count is checked on the ``meta`` device first (see :mod:`ncviz.load.limits`).
    Options that run code from model files (``trust_remote_code``) are refused unless
    ``trust_remote_code`` is passed here — only the CLI's ``--trust-remote-code`` does that.
    """
    spec = ModelSpec.parse(spec)
    kwargs = dict(spec.kwargs)
    asked = [k for k in CODE_RUNNING_OPTIONS if kwargs.get(k)]
    if asked and not trust_remote_code:
        raise OptionError(
            f"model option {asked[0]} would run Python code from the model files; it is honoured "
            "only with `ncviz analyze --trust-remote-code` on your own machine."
        )
    constructors = {**plugin_architectures(), **REGISTRY}
    if spec.name in constructors:
        build = constructors[spec.name]
        check_model_size(spec.name, lambda: build(**kwargs))
        try:
            model = build(**kwargs)
        except TypeError as error:
            raise OptionError(f"bad arguments for model {spec.name!r}: {error}.") from None
    elif spec.name.startswith("hf:"):
        model = _build_hf(spec.name[3:], kwargs)
    elif spec.name.startswith("timm:"):
        model = _build_timm(spec.name[5:], kwargs)
    else:
        model = _build_torchvision(spec.name.removeprefix("torchvision:"), kwargs)
    return model.eval()


def _build_torchvision(name: str, kwargs: dict[str, Any]) -> nn.Module:
    try:
        tvm = _torchvision_models()
    except OptionError as error:
        raise OptionError(
            f"unknown model {name!r}; built-in: {', '.join(sorted(REGISTRY))} ({error})"
        ) from None
    if name not in tvm.list_models():
        raise OptionError(f"unknown model {name!r}; see ncviz.load.available_architectures().")
    kwargs.setdefault("weights", None)  # never download weights
    check_model_size(name, lambda: tvm.get_model(name, **kwargs))
    return tvm.get_model(name, **kwargs)


def _build_timm(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """``timm:<name>``: ``timm.create_model(name, pretrained=False, **kwargs)`` (never downloads
    weights; the checkpoint brings them, e.g. timm's ``checkpoint-N.pth.tar``)."""
    try:
        import timm
    except ImportError:
        raise OptionError("timm: models need timm: pip install 'ncviz[timm]'.") from None
    except Exception as error:  # timm imports torchvision, which may be unusable (see above)
        raise OptionError(f"timm unusable: {str(error).splitlines()[0][:120]}.") from None
    if name not in timm.list_models():
        raise OptionError(f"timm has no model {name!r} (timm.list_models() lists them).")
    kwargs["pretrained"] = False
    check_model_size(f"timm:{name}", lambda: timm.create_model(name, **kwargs))
    try:
        return timm.create_model(name, **kwargs)
    except TypeError as error:
        raise OptionError(f"bad arguments for timm model {name!r}: {error}.") from None


def _build_hf(folder: str, kwargs: dict[str, Any]) -> nn.Module:
    """A ``save_pretrained`` folder as the class its ``config.json`` names (``architectures``,
    e.g. ``BertForSequenceClassification``, ``GPT2LMHeadModel``), taken from transformers
    itself — never from code in the folder (that needs ``trust_remote_code``, refused above
    unless the CLI flag allows it). Without ``architectures``: a causal LM, or the bare model
    with ``causal_lm=False``."""
    try:
        import transformers
    except ImportError:
        raise OptionError("hf: models need transformers: pip install 'ncviz[hf]'.") from None
    path = Path(folder)
    if not path.is_dir():
        raise OptionError(
            f"hf: model folder {path.name!r} does not exist (a save_pretrained folder)."
        )
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise OptionError(f"hf: {path.name} has no readable config.json.") from None
    named = (config.get("architectures") or [None])[0]
    causal = kwargs.pop("causal_lm", True)
    if named is not None:
        loader = getattr(transformers, str(named), None)
        known = isinstance(loader, type) and issubclass(loader, transformers.PreTrainedModel)
        if not known and kwargs.get("trust_remote_code"):  # allowed by the CLI flag only
            loader = transformers.AutoModelForCausalLM if causal else transformers.AutoModel
        elif not known:
            raise OptionError(
                f"hf: {path.name} names the class {named!r}, which transformers does not have; "
                "its own code would be needed (`ncviz analyze --trust-remote-code`, your "
                "machine only)."
            )
    else:
        loader = transformers.AutoModelForCausalLM if causal else transformers.AutoModel
    try:
        return loader.from_pretrained(str(path), local_files_only=True, **kwargs)
    except (OSError, ValueError) as error:
        raise OptionError(f"could not load hf model {path.name}: {str(error)[:160]}.") from None


def classifier_module(model: nn.Module, name: str | None = None) -> tuple[str, nn.Linear]:
    """The classifier: the module called ``name``, or the last ``nn.Linear`` registered."""
    modules = dict(model.named_modules())
    if name is not None:
        if name not in modules:
            raise OptionError(f"model has no module {name!r}; list them with `ncviz layers`.")
        module = modules[name]
        if not hasattr(module, "weight") or module.weight.ndim != 2:
            raise OptionError(
                f"module {name!r} is a {type(module).__name__}, not a linear classifier."
            )
        return name, module
    linears = [(n, m) for n, m in modules.items() if isinstance(m, nn.Linear)]
    if not linears:
        raise OptionError("model has no nn.Linear layer; name the classifier module in the spec.")
    return linears[-1]


def _summarise(keys: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" … (+{len(keys) - limit} more)" if len(keys) > limit else "")


def _with_tied(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Fill in parameters the model ties to another (GPT-2's ``lm_head.weight`` is the token
    embedding): a checkpoint stores such a tensor once, under either name."""
    groups: dict[int, list[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        groups.setdefault(parameter.data_ptr(), []).append(name)
    for names in groups.values():
        present = [n for n in names if n in state_dict]
        if present and len(names) > 1:
            for name in names:
                state_dict.setdefault(name, state_dict[present[0]])
    return state_dict


def load_weights(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint"
) -> None:
    """Load ``state_dict`` strictly; on mismatch, list missing, unexpected and mis-shaped keys.

    A wrapper prefix that :func:`~ncviz.load.checkpoints.strip_prefixes` removed but this model
    really has (its own child called ``net`` or ``model``) is put back first."""
    expected = model.state_dict()
    state_dict = _with_tied(model, dict(state_dict))
    if set(state_dict) != set(expected):
        for prefix in WRAPPER_PREFIXES:
            restored = {prefix + k: v for k, v in state_dict.items()}
            if set(restored) == set(expected):
                state_dict = restored
                break
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    misshaped = sorted(
        f"{k} {tuple(state_dict[k].shape)}≠{tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict)
        if tuple(state_dict[k].shape) != tuple(expected[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing {len(missing)}: {_summarise(missing)}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)}: {_summarise(unexpected)}")
    if misshaped:
        problems.append(f"mis-shaped {len(misshaped)}: {_summarise(misshaped)}")
    if problems:
        raise CheckpointError(
            f"{source} does not match the chosen architecture — "
            + "; ".join(problems)
            + ". Pick the architecture and arguments it was trained with."
        )
    model.load_state_dict(state_dict, strict=True)
