"""Unconstrained-features models (the classic UFM, the deep UFM, the regression UFM) and Deep
RFM (collapse from the AGOP alone)."""

from ncviz.theory.deep_rfm import DeepRFMResult, DeepRFMSettings, run_deep_rfm
from ncviz.theory.deep_ufm import DeepUFMResult, DeepUFMSettings, dnc_reference_loss, train_deep_ufm
from ncviz.theory.regression_ufm import (
    RegressionUFMResult,
    RegressionUFMSettings,
    train_regression_ufm,
)
from ncviz.theory.sweeps import sweep, sweep_summary
from ncviz.theory.ufm import UFMResult, UFMSettings, train_ufm

__all__ = [
    "DeepRFMResult",
    "DeepRFMSettings",
    "DeepUFMResult",
    "DeepUFMSettings",
    "RegressionUFMResult",
    "RegressionUFMSettings",
    "UFMResult",
    "UFMSettings",
    "dnc_reference_loss",
    "run_deep_rfm",
    "sweep",
    "sweep_summary",
    "train_deep_ufm",
    "train_regression_ufm",
    "train_ufm",
]
