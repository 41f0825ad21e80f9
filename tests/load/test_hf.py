"""Hugging Face models as save_pretrained folders: the class config.json names, tied weights,
token ids kept as integers. Built with the real transformers (a dev requirement), offline."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ncviz.analysis import analyze
from ncviz.errors import OptionError
from ncviz.load import build_model, load_dataset, load_weights, read_checkpoint

transformers = pytest.importorskip("transformers", reason="transformers is a dev requirement")


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    transformers.logging.set_verbosity_error()
    folder = tmp_path_factory.mktemp("bert")
    config = transformers.BertConfig(
        vocab_size=30,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
    )
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def test_sequence_classifier_is_built_as_the_class_config_names(bert_folder, tmp_path):
    model = build_model({"name": f"hf:{bert_folder}"})
    assert type(model).__name__ == "BertForSequenceClassification"
    ids = np.random.default_rng(0).integers(4, 30, size=(60, 10))
    labels = np.arange(60) % 3
    np.savez(tmp_path / "tokens.npz", inputs=ids, labels=labels)
    data = load_dataset(f"{tmp_path / 'tokens.npz'}?shape=tokens")
    assert data.inputs.dtype == torch.int64  # token ids are not cast to float
    analysis = analyze(
        bert_folder / "model.safetensors",
        f"{tmp_path / 'tokens.npz'}?shape=tokens",
        model={"name": f"hf:{bert_folder}"},
        cache=False,
    )
    assert analysis.layers[-1] == "classifier:input"
    assert 0.0 <= analysis.metrics_at("model.safetensors", "classifier:input")["accuracy"] <= 1


def test_tied_weights_stored_once_still_load(tmp_path):
    config = transformers.GPT2Config(vocab_size=40, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    transformers.GPT2LMHeadModel(config).save_pretrained(tmp_path)
    state = read_checkpoint(tmp_path / "model.safetensors").state_dict
    assert "lm_head.weight" not in state  # tied to the token embedding, saved once
    model = build_model({"name": f"hf:{tmp_path}"})
    load_weights(model, state)
    assert torch.equal(model.lm_head.weight, state["transformer.wte.weight"])


def test_a_class_transformers_lacks_needs_the_cli_flag(bert_folder, tmp_path):
    folder = tmp_path / "custom"
    folder.mkdir()
    config = json.loads((bert_folder / "config.json").read_text())
    config["architectures"] = ["LabSecretModel"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(OptionError, match="--trust-remote-code"):
        build_model({"name": f"hf:{folder}"})
