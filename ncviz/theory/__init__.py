"""Unconstrained-features models: the classic UFM, the deep UFM and the regression UFM."""

from ncviz.theory.deep_ufm import DeepUFMResult, DeepUFMSettings, dnc_reference_loss, train_deep_ufm
from ncviz.theory.regression_ufm import (
    RegressionUFMResult,
    RegressionUFMSettings,
    train_regression_ufm,
)
from ncviz.theory.sweeps import sweep
from ncviz.theory.ufm import UFMResult, UFMSettings, train_ufm

__all__ = [
    "DeepUFMResult",
    "DeepUFMSettings",
    "RegressionUFMResult",
    "RegressionUFMSettings",
    "UFMResult",
    "UFMSettings",
    "dnc_reference_loss",
    "sweep",
    "train_deep_ufm",
    "train_regression_ufm",
    "train_ufm",
]
