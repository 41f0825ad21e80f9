"""The options of one analysis, validated once where they enter (CLI, page, library call) and
passed whole to the source that reads the run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ncviz.cache import ActivationCache
from ncviz.errors import OptionError
from ncviz.extract import ExtractOptions
from ncviz.feature_learning import FEATURE_LEARNING
from ncviz.load import DataSpec, ModelSpec
from ncviz.metrics import CollapseOptions

ProgressFn = Callable[[int, int, str], None]


def metric_options(**options: Any) -> dict[str, Any]:
    """Keyword options of the collapse metrics, checked against
    :class:`~ncviz.metrics.CollapseOptions` (an unknown name or a bad value is one line).

    >>> metric_options(tau=0.05)
    {'tau': 0.05}
    """
    CollapseOptions.from_kwargs(**options)
    return dict(options)


@dataclass(frozen=True)
class AnalysisOptions:
    """Everything an analysis needs besides its source path.

    Attributes:
        data: the data spec (a run's ``run.json`` supplies it when None).
        model: the model spec (likewise).
        layers: layer names; None = each source's default.
        device: "cuda", "cpu" or None (CUDA when available).
        extract: batch size, pooling, autocast and min_count of the extraction.
        metrics: options of the collapse metrics, one validated
            :class:`~ncviz.metrics.CollapseOptions` handed whole to the statistics.
        cache: the activation cache, or None.
        checkpoint_filter: keep only the checkpoints for which it returns True.
        trust_remote_code: let a model spec (or a ``.pt2``) run code from its files.
        confine_to: a folder every file read must resolve inside (the shared server's folder).
        language: next-token classes of a causal LM (also chosen by a run's task).
        feature_learning: ``"agop"`` and/or ``"gc"`` rows.
        ood: out-of-distribution data run through each checkpoint beside the analysed data:
            every layer then gets ``nc5`` (:mod:`ncviz.metrics.ood`).
    """

    data: DataSpec | None = None
    model: ModelSpec | None = None
    layers: tuple[str, ...] | None = None
    device: str | None = None
    extract: ExtractOptions = field(default_factory=ExtractOptions)
    metrics: CollapseOptions = field(default_factory=CollapseOptions)
    cache: ActivationCache | None = None
    checkpoint_filter: Callable[[Path], bool] | None = None
    trust_remote_code: bool = False
    confine_to: Path | None = None
    language: bool = False
    feature_learning: tuple[str, ...] = ()
    ood: DataSpec | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.feature_learning) - set(FEATURE_LEARNING))
        if unknown:
            raise OptionError(
                f"unknown feature-learning measure(s) {unknown}; choose from {FEATURE_LEARNING}."
            )

    def with_metrics(self, metrics: Mapping[str, Any] | CollapseOptions) -> AnalysisOptions:
        """These options with other metric options (validated; ``min_count`` reaches the
        extraction too)."""
        if isinstance(metrics, CollapseOptions):
            checked = CollapseOptions.of(metrics)
        else:
            checked = CollapseOptions.from_kwargs(**metrics)
        extract = replace(self.extract, min_count=checked.min_count)
        return replace(self, metrics=checked, extract=extract)

    def with_run_metrics(self, run_options: Mapping[str, Any]) -> AnalysisOptions:
        """A run's own metric options (run.json's ``metric_options``) under these: each fills
        in an option the user left at its default."""
        return self.with_metrics({**run_options, **self.metrics.changes()})

    @classmethod
    def parse(
        cls,
        data: DataSpec | Mapping[str, Any] | str | None = None,
        *,
        model: ModelSpec | Mapping[str, Any] | str | None = None,
        layers: list[str] | tuple[str, ...] | None = None,
        device: str | None = None,
        batch_size: int = 256,
        pool: str = "auto",
        autocast: bool = False,
        cache: ActivationCache | bool | None = True,
        checkpoint_filter: Callable[[Path], bool] | None = None,
        trust_remote_code: bool = False,
        confine_to: str | Path | None = None,
        language: bool = False,
        feature_learning: tuple[str, ...] | list[str] = (),
        ood: DataSpec | Mapping[str, Any] | str | None = None,
        **metrics: Any,
    ) -> AnalysisOptions:
        """The options from the loose keywords of :func:`ncviz.analysis.analyze`."""
        checked = CollapseOptions.from_kwargs(**metrics)
        return cls(
            data=None if data is None else DataSpec.parse(data),
            model=None if model is None else ModelSpec.parse(model),
            layers=tuple(layers) if layers else None,
            device=device,
            extract=ExtractOptions(
                batch_size=batch_size,
                pool=pool,
                autocast=autocast,
                min_count=checked.min_count,
            ),
            metrics=checked,
            cache=ActivationCache() if cache is True else (cache or None),
            checkpoint_filter=checkpoint_filter,
            trust_remote_code=trust_remote_code,
            confine_to=None if confine_to is None else Path(confine_to),
            language=language,
            feature_learning=tuple(feature_learning),
            ood=None if ood is None else DataSpec.parse(ood),
        )
