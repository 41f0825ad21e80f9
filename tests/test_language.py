"""Next-token classes of causal LMs (ncviz.language): corpora, masking, exact statistics, the
bundled LM run, and an hf: model with its own tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ncviz.analysis import analyze
from ncviz.cli import main as cli_main
from ncviz.demos.language import LanguageDemoSettings, train_language_run
from ncviz.errors import DataError
from ncviz.language import (
    Vocabulary,
    next_token_pairs,
    read_corpus,
    token_statistics,
    word_tokenizer,
)
from ncviz.load import build_model
from ncviz.metrics import collapse_result

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "checkpoints" / "markov-lm"
PAIR_METRICS = (
    "cdnv",
    "gnc2_log_mean",
    "gnc2_log_var",
    "unc3_mean",
    "unc3_var",
    "nc1",
    "nc4",
    "accuracy",
    "nc2_equiangle_means",
    "nc3",
)


def test_next_token_pairs_skip_padding_and_the_last_position():
    rng = np.random.default_rng(0)
    ids = torch.from_numpy(rng.integers(0, 9, size=(3, 6)))
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [0, 1, 1, 1, 1, 0]])
    hidden = torch.from_numpy(rng.standard_normal((3, 6, 4)))
    features, labels = next_token_pairs(hidden, ids, mask)
    expected = [(b, t) for b in range(3) for t in range(5) if mask[b, t] and mask[b, t + 1]]
    assert len(expected) == 5 + 2 + 3
    assert torch.equal(features, torch.stack([hidden[b, t] for b, t in expected]))
    assert labels.tolist() == [int(ids[b, t + 1]) for b, t in expected]


def test_corpora_from_ids_text_and_jsonl(tmp_path):
    vocab = Vocabulary(("<pad>", "<unk>", "<eos>", "the", "cat", "sat", "."))
    vocab.write(tmp_path / "vocab.txt")
    (tmp_path / "story.txt").write_text("The cat sat. The dog sat.")
    corpus = read_corpus(f"{tmp_path / 'story.txt'}?context=4", word_tokenizer(vocab))
    assert corpus.ids.tolist() == [[3, 4, 5, 6], [3, 1, 5, 6]]  # "dog" is unknown
    assert corpus.num_samples == 6 and corpus.strings[4] == "cat"
    lines = [json.dumps({"text": "the cat"}), "", json.dumps({"text": "sat ."})]
    (tmp_path / "docs.jsonl").write_text("\n".join(lines))
    corpus = read_corpus(f"{tmp_path / 'docs.jsonl'}?context=3", word_tokenizer(vocab))
    assert corpus.ids.tolist() == [[3, 4, 2], [5, 6, 0]]  # joined by <eos>, padded by <pad>
    assert corpus.mask.tolist() == [[True] * 3, [True, True, False]]

    from safetensors.numpy import save_file

    save_file(
        {
            "input_ids": np.array([[5, 6, 7], [1, 2, 0]]),
            "attention_mask": np.array([[1, 1, 1], [1, 1, 0]]),
        },
        str(tmp_path / "ids.safetensors"),
    )
    corpus = read_corpus(tmp_path / "ids.safetensors")
    assert corpus.num_samples == 3 and corpus.counts(8).tolist() == [0, 0, 1, 0, 0, 0, 1, 1]

    with pytest.raises(DataError, match="no tokenizer was found"):
        read_corpus(tmp_path / "story.txt")
    np.save(tmp_path / "floats.npy", np.zeros(5))
    with pytest.raises(DataError, match="token ids must be integers"):
        read_corpus(tmp_path / "floats.npy")
    (tmp_path / "bad.jsonl").write_text('{"body": 1}\n')
    with pytest.raises(DataError, match="line 1"):
        read_corpus(tmp_path / "bad.jsonl", word_tokenizer(vocab))


def _naive_pairs(model, corpus, layer_module, wants_input):
    """Hidden states by a plain forward per sequence, pairs by explicit loops."""
    seen = {}
    if wants_input:
        hook = layer_module.register_forward_pre_hook(lambda _m, a: seen.__setitem__("h", a[0]))
    else:
        hook = layer_module.register_forward_hook(lambda _m, _a, o: seen.__setitem__("h", o))
    features, labels = [], []
    with torch.no_grad():
        for ids, mask in zip(corpus.ids, corpus.mask):
            model(ids[None])
            for t in range(len(ids) - 1):
                if mask[t] and mask[t + 1]:
                    features.append(seen["h"][0, t].double().numpy())
                    labels.append(int(ids[t + 1]))
    hook.remove()
    return np.array(features), np.array(labels)


def test_token_statistics_equal_a_naive_reference_with_padding_and_rare_tokens(tmp_path):
    torch.manual_seed(0)
    kwargs = {"vocab_size": 40, "d_model": 16, "layers": 2, "heads": 2, "context": 12}
    model = build_model({"name": "tiny_lm", "kwargs": kwargs}).double()  # exact references
    rng = np.random.default_rng(1)
    stream = rng.zipf(1.4, size=900)
    stream = stream[stream < 40][:700]  # Zipfian ids: some tokens once, token 0 never
    np.save(tmp_path / "ids.npy", stream)
    corpus = read_corpus(f"{tmp_path / 'ids.npy'}?context=12")  # the last window is padded
    assert not bool(corpus.mask[-1].all())
    stats = token_statistics(
        model,
        corpus,
        ["blocks.1", "lm_head:input"],
        ("lm_head", model.lm_head),
        batch_size=5,
        min_count=2,
    )
    modules = {"blocks.1": (model.blocks[1], False), "lm_head:input": (model.lm_head, True)}
    for layer, (module, wants_input) in modules.items():
        features, labels = _naive_pairs(model, corpus, module, wants_input)
        counts = np.bincount(labels, minlength=40)
        assert (counts == 1).any() and (counts == 0).any()
        weight = model.lm_head.weight.detach().double() if wants_input else None
        reference = collapse_result(features, labels, weight, min_count=2)
        names = np.array([str(c) for c in range(40)])
        ours = stats[layer].compute(classes=names)
        assert ours.metrics["classes_kept"] == (counts >= 2).sum()
        assert ours.metrics["samples_dropped"] == counts[counts == 1].sum()
        for key in PAIR_METRICS:
            if key in reference.metrics:
                assert ours.metrics[key] == pytest.approx(reference.metrics[key], rel=1e-9), key
        if wants_input:
            assert "unc3_var" in ours.metrics


def test_the_bundled_lm_run_collapses_as_it_trains():
    """NC4 agreement (1 − nc4) rises and cdnv falls from the first checkpoint to the last."""
    analysis = analyze(BUNDLED, cache=False)
    assert analysis.task == "language" and analysis.layers[-1] == "lm_head:input"
    first = analysis.metrics_at(analysis.checkpoints[0], "lm_head:input")
    last = analysis.metrics_at(analysis.checkpoints[-1], "lm_head:input")
    assert 1 - last["nc4"] > (1 - first["nc4"]) + 0.3, (first["nc4"], last["nc4"])
    assert last["cdnv"] < 0.5 * first["cdnv"], (first["cdnv"], last["cdnv"])
    assert analysis.log["val_loss"][-1] < 0.3 * analysis.log["val_loss"][0]
    assert sum(p.stat().st_size for p in BUNDLED.iterdir()) < 10 * 2**20


def test_training_the_lm_run_writes_a_run_the_cli_analyses(tmp_path):
    settings = LanguageDemoSettings(
        vocab=64,
        d_model=16,
        heads=2,
        train_tokens=20_000,
        analysed_tokens=4_096,
        steps=20,
        checkpoints=(0, 20),
    )
    folder = train_language_run(tmp_path, settings)
    assert sorted(p.name for p in folder.glob("*.safetensors")) == [
        "step_0000.safetensors",
        "step_0020.safetensors",
    ]
    out = tmp_path / "out"
    assert cli_main(["analyze", str(folder), "--out", str(out), "--no-cache"]) == 0
    import pandas as pd

    table = pd.read_csv(out / "metrics.csv")
    kept = table[(table.metric == "classes_kept") & (table.layer == "lm_head:input")]
    assert len(kept) == 2 and set(table["epoch"]) == {0, 20}


def test_an_hf_causal_lm_with_its_own_tokenizer_reads_text(tmp_path):
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    words = ["[PAD]", "[UNK]", "a", "b", "c", "d"]
    backend = tokenizers.Tokenizer(
        tokenizers.models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]")
    )
    backend.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]"
    )
    folder = tmp_path / "gpt"
    config = transformers.GPT2Config(
        vocab_size=len(words), n_embd=8, n_layer=2, n_head=2, n_positions=16
    )
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (tmp_path / "text.txt").write_text("a b c d " * 30)
    checkpoint = folder / "model.safetensors"
    analysis = analyze(
        checkpoint,
        f"{tmp_path / 'text.txt'}?context=8",
        model={"name": f"hf:{folder}"},
        cache=False,
    )
    assert analysis.task == "language"
    assert analysis.layers == ["transformer.h.0", "transformer.h.1", "lm_head:input"]
    result = analysis.results[(checkpoint.name, "lm_head:input")]
    assert sorted(result.classes) == ["a", "b", "c", "d"]  # [PAD]/[UNK] never follow: dropped
    assert result.metrics["classes_dropped"] == 2


def test_the_recorder_records_next_token_classes_from_a_training_loop(tmp_path):
    from ncviz import Recorder

    torch.manual_seed(0)
    kwargs = {"vocab_size": 30, "d_model": 8, "layers": 1, "heads": 2, "context": 10}
    model = build_model({"name": "tiny_lm", "kwargs": kwargs}).double()
    rng = np.random.default_rng(3)
    ids = torch.from_numpy(rng.integers(0, 30, size=(24, 10)))
    mask = torch.ones_like(ids)
    mask[::3, 7:] = 0  # padded sequences
    batches = [{"input_ids": ids[i : i + 8], "attention_mask": mask[i : i + 8]} for i in (0, 8, 16)]
    with Recorder(tmp_path / "run", task="language") as recorder:
        metrics = recorder.capture(model, batches, step=5)
    assert list(metrics) == ["blocks.0", "lm_head:input"]
    analysis = analyze(tmp_path / "run")
    assert analysis.task == "language"
    corpus = read_corpus_from(ids, mask)
    features, labels = _naive_pairs(model, corpus, model.lm_head, True)
    reference = collapse_result(features, labels, model.lm_head.weight.detach(), min_count=2)
    ours = analysis.metrics_at(analysis.checkpoints[0], "lm_head:input")
    for key in ("cdnv", "gnc2_log_var", "nc4", "unc3_var", "classes_kept", "samples_dropped"):
        assert ours[key] == pytest.approx(reference.metrics[key], rel=1e-9), key


def read_corpus_from(ids, mask):
    from ncviz.language import as_corpus

    return as_corpus((ids, mask))
