"""A trusted ``torch.export`` archive (``.pt2``): loading one runs code from the file, so it is
read only for the operator's own files (``--trust``); otherwise it is a checkpoint path that
:func:`ncviz.load.read_checkpoint` refuses with its explanation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from ncviz.analysis.options import AnalysisOptions
from ncviz.analysis.table import Analysis, Result, RowKey, make_table, result_rows
from ncviz.errors import CheckpointError, OptionError
from ncviz.extract import INPUT_SUFFIX, extract
from ncviz.load import DataSpec, ModelSpec, load_dataset
from ncviz.sources.base import ProgressFn, Source
from ncviz.sources.checkpoints import extracted_result


def load_exported_program(path: Path) -> tuple[Any, str]:
    """A trusted ``torch.export`` archive as a module with the original module names (after
    ``torch.export.unflatten``) and the name of its head: the last module with a 2-D weight."""
    try:
        net = torch.export.unflatten(torch.export.load(str(path)))
    except Exception as error:
        raise CheckpointError(
            f"{path.name} is not a loadable torch.export archive "
            f"({str(error).splitlines()[0][:120]})."
        ) from None
    heads = [
        n
        for n, m in net.named_modules()
        if getattr(m, "weight", None) is not None and m.weight.ndim == 2
    ]
    return net, heads[-1] if heads else ""


@dataclass(frozen=True)
class ExportedSource(Source):
    """A ``.pt2`` archive through the same hooks and statistics as any checkpoint."""

    kind: ClassVar[str] = "pt2"
    path: Path
    data: DataSpec
    model: ModelSpec | None = None

    @classmethod
    def detect(cls, path: Path, options: AnalysisOptions) -> ExportedSource | None:
        if path.suffix.lower() != ".pt2" or not options.trust_remote_code:
            return None
        if options.data is None:
            raise OptionError("a .pt2 model needs data: pass --data (a data spec or file).")
        return cls(path, options.data, options.model)

    def analyze(self, options: AnalysisOptions, progress: ProgressFn | None = None) -> Analysis:
        net, head = load_exported_program(self.path)
        head = (self.model.classifier if self.model is not None else None) or head
        modules = dict(net.named_modules())
        if head and head not in modules:
            raise OptionError(f"{self.path.name} has no module {head!r} to use as the classifier.")
        dataset = load_dataset(self.data)
        chosen = list(
            options.layers
            or [
                *(n for n, _ in net.named_children() if n != head),
                *([head + INPUT_SUFFIX] if head else []),
            ]
        )
        extracted = extract(
            net,
            dataset,
            chosen,
            classifier=(head, modules[head]) if head else None,
            device=options.device,
            options=options.extract,
            progress=progress,
            keep_features=dataset.labels is None,
        )
        rows: list[dict[str, Any]] = []
        results: dict[tuple[str, str], Result] = {}
        key = RowKey(self.path.stem, self.path.name, None, None, self.data.split_label)
        for layer, item in extracted.items():
            head_module = modules[head] if head and layer == head + INPUT_SUFFIX else None
            result = extracted_result(item, dataset, head_module, options.metrics)
            results[(self.path.name, layer)] = result
            rows += result_rows(key, layer, result)
        return Analysis(
            run=self.path.stem,
            table=make_table(rows),
            results=results,
            layers=chosen,
            checkpoints=[self.path.name],
            task="classification" if dataset.labels is not None else "regression",
            source=str(self.path),
            data=self.data.to_dict(),
            model={"name": "pt2", "kwargs": {"file": self.path.name}},
            origin=self,
        )
