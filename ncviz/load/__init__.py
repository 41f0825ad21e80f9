"""Loading: checkpoints (safe formats only), model architectures, datasets, features files, runs."""

from ncviz.load.architectures import (
    ModelSpec,
    available_architectures,
    build_model,
    classifier_module,
    load_weights,
)
from ncviz.load.checkpoints import Checkpoint, read_checkpoint, save_safetensors
from ncviz.load.datasets import Dataset, DataSpec, load_dataset
from ncviz.load.features_file import FeaturesFile, is_features_file, read_features_file

__all__ = [
    "Checkpoint",
    "DataSpec",
    "Dataset",
    "FeaturesFile",
    "ModelSpec",
    "available_architectures",
    "build_model",
    "classifier_module",
    "is_features_file",
    "load_dataset",
    "load_weights",
    "read_checkpoint",
    "read_features_file",
    "save_safetensors",
]
