"""ONNX graphs as architecture-as-data: a custom model reaches a shared server without its code.

A model exported with ``torch.onnx.export(model, (x,), "model.onnx", dynamo=True, optimize=False,
dynamic_shapes=({0: "batch"},))`` carries, per node, the module path it came from (metadata
``pkg.torch.onnx.name_scopes``). From it:

* **layers** are named like ``model.named_modules()`` (``neck``, ``neck.1``, …), so they match the
  Recorder and torch hooks; a module's output is the value its nodes produce for the rest of the
  graph, ``"<module>:input"`` the value it reads from outside;
* the **classifier** is the module of the last ``Gemm``/``MatMul`` with a weight initializer (or the
  one named), giving ``classifier:input`` and W, b;
* **weights** of a checkpoint (``.safetensors`` with the state dict) replace the initializers of
  the same name — export with ``optimize=False`` so that initializers keep their parameter names.

Graphs are data, but a file can still point elsewhere: external data must be a plain file beside
the graph (no absolute path, ``..`` or link), and operator domains are limited to ONNX's own,
ONNX Runtime's and the graph's local functions. ONNX Runtime runs the graph with every chosen
layer added as an output.
"""

from __future__ import annotations

import ast
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ncviz.errors import CheckpointError, DataError, OptionError, did_you_mean
from ncviz.extract.layers import INPUT_SUFFIX

SCOPES_KEY = "pkg.torch.onnx.name_scopes"
STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft"}
LINEAR_OPS = ("Gemm", "MatMul")


def require_onnx() -> tuple[Any, Any]:
    """The ``onnx`` and ``onnxruntime`` modules, or one line saying what to install."""
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise OptionError(
            "ONNX models need the onnx and onnxruntime packages: pip install 'ncviz[onnx]'."
        ) from None
    return onnx, onnxruntime


@dataclass
class OnnxGraph:
    """A checked ONNX model and what ncviz reads from it."""

    path: Path
    model: Any
    input_name: str
    input_type: np.dtype
    outputs: dict[str, str]  # layer name → ONNX value name, in graph order
    classifier: str | None = None
    weight: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    initializers: set[str] = field(default_factory=set)

    @property
    def layers(self) -> list[str]:
        return list(self.outputs)

    def default_layers(self) -> list[str]:
        """Top-level modules, then the classifier input (a module whose output *is* the
        classifier input is listed once, as the classifier input)."""
        clf = self.classifier + INPUT_SUFFIX if self.classifier else None
        top = [
            n
            for n in self.outputs
            if "." not in n and not n.endswith(INPUT_SUFFIX) and n != self.classifier
        ]
        if clf is None:
            return top
        return [n for n in top if self.outputs[n] != self.outputs[clf]] + [clf]


def _check_external_data(model: Any, folder: Path, name: str) -> None:
    for tensor in model.graph.initializer:
        if tensor.data_location != 1:  # TensorProto.EXTERNAL
            continue
        entries = {entry.key: entry.value for entry in tensor.external_data}
        location = entries.get("location", "")
        relative = Path(location)
        target = folder / relative
        if (
            not location
            or relative.is_absolute()
            or ".." in relative.parts
            or target.is_symlink()
            or folder.resolve() not in target.resolve().parents
        ):
            raise CheckpointError(
                f"{name} keeps weights in {location!r}, outside its own folder; refused — "
                "export with the data file beside the graph (a plain file name)."
            )
        if not target.is_file():
            raise CheckpointError(
                f"{name} needs its external data file {relative.name} beside it; upload both."
            )


def _check_domains(model: Any, name: str) -> None:
    local = {function.domain for function in model.functions}
    allowed = STANDARD_DOMAINS | local
    used = {op.domain for op in model.opset_import} | {n.domain for n in model.graph.node}
    unknown = sorted(used - allowed)
    if unknown:
        raise CheckpointError(
            f"{name} uses operators from domain {unknown[0]!r}, which ncviz does not run "
            "(custom operators execute native code); export with standard ONNX operators."
        )


def _scopes(node: Any) -> list[str]:
    """The module path of a node (``['neck', 'neck.1']``), from the exporter's metadata."""
    for prop in node.metadata_props:
        if prop.key == SCOPES_KEY:
            try:
                value = ast.literal_eval(prop.value)  # a list of strings; literals only
            except (ValueError, SyntaxError):
                return []
            names = [str(v) for v in value[1:-1]] if isinstance(value, list) else []
            return [n for n in names if n and not n.startswith("_")]
    return []


def _module_values(model: Any, initializers: set[str]) -> dict[str, str]:
    """Layer name → value: each module's output and, for linear-like modules, its input."""
    nodes = list(model.graph.node)
    members: dict[str, list[int]] = {}
    for index, node in enumerate(nodes):
        for module in _scopes(node):
            members.setdefault(module, []).append(index)
    consumers: dict[str, list[int]] = {}
    for index, node in enumerate(nodes):
        for value in node.input:
            consumers.setdefault(value, []).append(index)
    graph_outputs = {o.name for o in model.graph.output}
    outputs: dict[str, str] = {}
    for module, indices in members.items():
        inside = set(indices)
        produced = [v for i in indices for v in nodes[i].output]
        leaving = [
            v
            for v in produced
            if v in graph_outputs or any(c not in inside for c in consumers.get(v, []))
        ]
        # a linear module's input (the classifier input, for its head): its own Gemm/MatMul's
        # data operand, as torch's forward pre-hook on that module sees it
        linear = [
            i for i in indices if nodes[i].op_type in LINEAR_OPS and _scopes(nodes[i])[-1] == module
        ]
        if linear and nodes[linear[0]].input[0] not in initializers:
            outputs[module + INPUT_SUFFIX] = nodes[linear[0]].input[0]
        if leaving:
            outputs[module] = leaving[-1]
    return outputs


def _initializer(model: Any, name: str) -> np.ndarray | None:
    from onnx import numpy_helper

    for tensor in model.graph.initializer:
        if tensor.name == name:
            return numpy_helper.to_array(tensor)
    return None


def _classifier(model: Any, wanted: str | None) -> tuple[str | None, Any, Any]:
    """(module, W, b) of the classifier: the named module's, else the last linear node's."""
    nodes = list(model.graph.node)
    candidates = []
    for node in nodes:
        scopes = _scopes(node)
        if node.op_type in LINEAR_OPS and scopes and _initializer(model, node.input[1]) is not None:
            candidates.append((scopes[-1], node))
    if wanted is not None:
        candidates = [(m, n) for m, n in candidates if m == wanted]
        if not candidates:
            raise OptionError(f"the graph has no linear layer from module {wanted!r}.")
    if not candidates:
        return None, None, None
    module, node = candidates[-1]
    matrix = _initializer(model, node.input[1])
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        weight = matrix if trans_b else matrix.T
        bias = _initializer(model, node.input[2]) if len(node.input) > 2 else None
    else:
        weight, bias = matrix.T, None
        for other in nodes:  # MatMul followed by Add(bias)
            if other.op_type == "Add" and node.output[0] in other.input:
                bias = next(
                    (b for b in (_initializer(model, v) for v in other.input) if b is not None),
                    None,
                )
    as_tensor = lambda a: None if a is None else torch.from_numpy(np.array(a, np.float64))  # noqa: E731
    return module, as_tensor(weight), as_tensor(bias)


def read_onnx(path: str | Path, *, classifier: str | None = None) -> OnnxGraph:
    """Load and check an ONNX graph (external data confined to its folder, standard operator
    domains), with its layers and classifier."""
    onnx, _ = require_onnx()
    path = Path(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:
        raise CheckpointError(
            f"{path.name} is not a readable ONNX model ({str(error).splitlines()[0][:80]})."
        ) from None
    _check_external_data(model, path.parent, path.name)
    _check_domains(model, path.name)
    try:
        onnx.load_external_data_for_model(model, str(path.parent))
    except Exception:  # onnx's message names server paths: not shown
        raise CheckpointError(
            f"{path.name}: its external data cannot be read; upload the .onnx.data file that the "
            "export wrote beside the graph, unchanged."
        ) from None
    initializers = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise CheckpointError(
            f"{path.name} has {len(inputs)} inputs; ncviz feeds graphs with one input (the batch)."
        )
    elem = inputs[0].type.tensor_type.elem_type
    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem))
    outputs = _module_values(model, initializers)
    if not outputs:
        raise CheckpointError(
            f"{path.name} carries no module names; export it with torch.onnx.export(..., "
            "dynamo=True) so that its nodes keep them."
        )
    module, weight, bias = _classifier(model, classifier)
    return OnnxGraph(
        path, model, inputs[0].name, dtype, outputs, module, weight, bias, initializers
    )


def with_weights(graph: OnnxGraph, state_dict: dict[str, torch.Tensor], source: str) -> OnnxGraph:
    """The graph with its initializers replaced by a checkpoint's tensors of the same name
    (initializers the exporter made itself, shapes and constants, keep their values)."""
    from onnx import numpy_helper

    model = type(graph.model)()
    model.CopyFrom(graph.model)
    parameters = [t for t in model.graph.initializer if t.name in state_dict]
    if not parameters:
        raise CheckpointError(
            f"{source} shares no tensor name with the graph's weights; export the graph with "
            "optimize=False so that its initializers keep the parameter names."
        )
    for tensor in parameters:
        value = state_dict[tensor.name].detach().cpu().numpy()
        if tuple(value.shape) != tuple(tensor.dims):
            raise CheckpointError(
                f"{source}: {tensor.name} has shape {tuple(value.shape)}, the graph "
                f"{tuple(tensor.dims)}; this checkpoint belongs to another architecture."
            )
        tensor.CopyFrom(numpy_helper.from_array(value, tensor.name))
    module, weight, bias = _classifier(model, graph.classifier)
    return OnnxGraph(
        graph.path,
        model,
        graph.input_name,
        graph.input_type,
        graph.outputs,
        module,
        weight,
        bias,
        graph.initializers,
    )


class OnnxRunner:
    """An ONNX Runtime session that returns the chosen layers' values for a batch."""

    def __init__(self, graph: OnnxGraph, layers: list[str], threads: int | None = None) -> None:
        onnx, ort = require_onnx()
        unknown = [layer for layer in layers if layer not in graph.outputs]
        if unknown:
            raise OptionError(
                f"the graph has no layer {unknown[0]!r}; {did_you_mean(unknown[0], graph.layers)}."
            )
        model = type(graph.model)()
        model.CopyFrom(graph.model)
        existing = {o.name for o in model.graph.output}
        for layer in layers:
            value = graph.outputs[layer]
            if value not in existing:
                model.graph.output.append(onnx.helper.make_empty_tensor_value_info(value))
                existing.add(value)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        try:
            self.session = ort.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:
            raise CheckpointError(
                f"{graph.path.name} cannot be run ({str(error).splitlines()[0][:120]})."
            ) from None
        self.graph, self.layers = graph, layers
        self.values = [graph.outputs[layer] for layer in layers]

    def __call__(self, inputs: Any) -> dict[str, torch.Tensor]:
        array = np.asarray(inputs.numpy() if isinstance(inputs, torch.Tensor) else inputs)
        try:
            results = self.session.run(
                self.values, {self.graph.input_name: array.astype(self.graph.input_type)}
            )
        except Exception as error:
            text = str(error)
            needed = re.search(
                r"Failed to allocate memory for requested buffer of size (\d+)", text
            )
            if needed:  # onnxruntime's arena at the memory budget: not the data's fault
                raise DataError(
                    f"{self.graph.path.name} needs a {int(needed.group(1)) / 2**30:.1f} GiB tensor "
                    f"for {len(array)} sample(s), more memory than allowed; analyse fewer samples "
                    "per batch or a smaller graph."
                ) from None
            raise DataError(
                f"{self.graph.path.name} rejected the data ({text.splitlines()[0][:120]}); "
                "check that the data's shape matches the graph's input."
            ) from None
        return {layer: torch.from_numpy(np.asarray(v)) for layer, v in zip(self.layers, results)}
