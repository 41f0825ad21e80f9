"""Options of the collapse metrics, with the defaults fixed in docs/metrics.md."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from numbers import Real
from typing import Any

from ncviz.errors import OptionError
from ncviz.metrics.conventions import DEFAULT_CONVENTION, convention
from ncviz.metrics.spectra import check_centring

GLOBAL_MEAN_CHOICES = ("class", "sample")


@dataclass(frozen=True)
class CollapseOptions:
    """Conventions of the classification metrics.

    Attributes:
        global_mean: "class" — μ_G is the mean of the class means (Papyan et al. 2020, default);
            "sample" — μ_G is the mean of all samples.
        dist_exp: exponent p of the squared mean distance in ``cdnv`` (1 by default; 2 is the
            Linguistic Collapse convention).
        tau: relative threshold of ``rank_means`` (s_k > τ·s_1), 1e-2 by default.
        minority_classes: labels of the minority classes; default: classes with fewer samples
            than half the largest class, or in a long tail the rarer half (see
            :func:`~ncviz.metrics.classification.default_minority`).
        min_count: drop classes with fewer samples than this (language models use 2; 1 keeps
            every class seen once, as Linguistic Collapse does). ``None`` (default for
            classification) treats a class with fewer than 2 samples as an error.
        max_matrix_classes: C×C cosine matrices are returned for plots only up to this C.
        means_centring: the class-mean matrix whose rank is reported: "centred" [μ_c − μ_G]
            (``rank_means``, Papyan et al.) or "uncentred" [μ_c] (``rank_means_uncentred``,
            the deep-UFM papers).
        convention: whose rows are reported (:mod:`ncviz.metrics.conventions`): "ncviz"
            (default) or a paper's preset. Build options for a preset with :meth:`preset` or
            ``from_kwargs(convention=…)``, which also set the preset's other options.
    """

    global_mean: str = "class"
    dist_exp: float = 1.0
    tau: float = 1e-2
    minority_classes: Sequence[Any] | None = None
    min_count: int | None = None
    max_matrix_classes: int = 2048
    means_centring: str = "centred"
    convention: str = DEFAULT_CONVENTION

    def __post_init__(self) -> None:
        for name in ("dist_exp", "tau", "min_count", "max_matrix_classes"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, Real)):
                raise OptionError(f"{name} must be a number, got {value!r}.")
        if self.minority_classes is not None and isinstance(self.minority_classes, (str, dict)):
            raise OptionError("minority_classes must be a list of class labels.")
        if self.global_mean not in GLOBAL_MEAN_CHOICES:
            raise OptionError(
                f"global_mean must be one of {GLOBAL_MEAN_CHOICES}, got {self.global_mean!r}."
            )
        check_centring(self.means_centring)
        convention(self.convention)  # an unknown name is one line naming the valid ones
        if not self.dist_exp > 0:
            raise OptionError(
                f"dist_exp must be positive (1 or 2 in the papers), got {self.dist_exp}."
            )
        if not 0 < self.tau < 1:
            raise OptionError(f"tau must lie in (0, 1) (default 0.01), got {self.tau}.")
        if self.min_count is not None and (
            int(self.min_count) != self.min_count or self.min_count < 1
        ):
            raise OptionError(f"min_count must be a positive integer, got {self.min_count}.")

    @classmethod
    def from_kwargs(cls, **options: Any) -> CollapseOptions:
        """Build from keyword options, naming any unknown option in the error. With
        ``convention=NAME`` the preset's options come first and the others override them.

        >>> CollapseOptions.from_kwargs(convention="lc2024", dist_exp=1.0).changes()
        {'min_count': 1, 'convention': 'lc2024'}
        """
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise OptionError(
                f"unknown option(s) {', '.join(unknown)}; "
                f"known options: {', '.join(sorted(known))}."
            )
        preset = convention(options.get("convention", DEFAULT_CONVENTION)).options
        return cls(**{**preset, **options})

    @classmethod
    def preset(cls, name: str, **options: Any) -> CollapseOptions:
        """The options of convention ``name`` (``ncviz conventions`` lists them), some
        replaced by ``options``.

        >>> CollapseOptions.preset("lc2024").changes()
        {'dist_exp': 2.0, 'min_count': 1, 'convention': 'lc2024'}
        """
        return cls.from_kwargs(**{**options, "convention": name})

    @classmethod
    def of(cls, options: CollapseOptions | None = None, **kwargs: Any) -> CollapseOptions:
        """``options`` (an object) or the keyword ``kwargs`` — not both.

        >>> CollapseOptions.of(tau=0.05) == CollapseOptions.of(CollapseOptions(tau=0.05))
        True
        """
        if options is None:
            return cls.from_kwargs(**kwargs)
        if kwargs:
            raise OptionError(
                f"pass the metric options as one CollapseOptions or as keywords, not both "
                f"(got options and {', '.join(sorted(kwargs))})."
            )
        if not isinstance(options, CollapseOptions):
            raise OptionError(f"options must be a CollapseOptions, got {type(options).__name__}.")
        return options

    def changes(self) -> dict[str, Any]:
        """The options that differ from the defaults (what a user chose): for cache keys, and
        for a run's own options, which fill in only what the user left at its default.

        >>> CollapseOptions(tau=0.05, dist_exp=1.0).changes()
        {'tau': 0.05}
        """
        default = CollapseOptions()
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        }

    def updated(self, **options: Any) -> CollapseOptions:
        """These options with some replaced, validated again (an unknown name is one line).

        A new ``convention`` brings its preset's options along (the others given override them).

        >>> CollapseOptions(tau=0.05).updated(min_count=2).changes()
        {'tau': 0.05, 'min_count': 2}
        """
        CollapseOptions.from_kwargs(**options)  # names and values checked alone first
        if "convention" in options:
            options = {**convention(options["convention"]).options, **options}
        return replace(self, **options)
