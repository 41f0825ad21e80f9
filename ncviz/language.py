"""Next-token classes of causal language models (Wu & Papyan 2024, *Linguistic Collapse*,
arXiv 2405.17767).

A corpus is cut into sequences of ``context`` tokens. Every position t whose next position t+1 is
a real token (padding and the last position of each sequence are masked) is one sample: its
features are the hidden state at t that the LM head reads, its class the token id at t+1. The
classes are the vocabulary (C = V, often C ≫ d, Zipfian counts); the classifier is the LM head
(with tied embeddings it is the token embedding). Rare tokens are dropped by ``min_count``
(default 2: a class needs two samples for a variance).

Corpora (a data spec's source, ``?context=N`` sets the sequence length, default 64;
``?max_tokens=N`` keeps the first N tokens):

- token ids: ``.npy`` (1-D stream, or sequences × length) or ``.safetensors`` with
  ``input_ids`` (and optionally ``attention_mask``; 0 marks padding);
- text: ``.txt`` (one stream) or ``.jsonl`` (one ``{"text": …}`` document per line, joined by
  the end-of-text token when the vocabulary has one), tokenised by a ``vocab.txt`` beside the
  corpus (word level, see :class:`Vocabulary`) or by the tokenizer saved in an ``hf:`` model
  folder (transformers).

Statistics stream over the corpus in two passes with memory O(V·d + d²), re-running the model in
the second pass (no O(N·d) feature store).
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ncviz.errors import DataError, OptionError
from ncviz.extract.extractor import ProgressFn, best_device
from ncviz.extract.layers import INPUT_SUFFIX, hook_layer
from ncviz.extract.passes import Capture, CapturedLayer, PassSettings, run_passes
from ncviz.load.datasets import DataSpec
from ncviz.load.limits import check_data_file
from ncviz.metrics import CollapseStatistics
from ncviz.metrics.threads import threads_for

TEXT_SUFFIXES = (".txt", ".jsonl")
ID_SUFFIXES = (".npy", ".safetensors")
DEFAULT_CONTEXT = 64
DEFAULT_MIN_COUNT = 2  # a token class needs two occurrences for a within-class variance
VOCAB_FILE = "vocab.txt"
PAD, UNK, EOS = "<pad>", "<unk>", "<eos>"
_WORD = re.compile(r"\w+|[^\w\s]")


def is_token_corpus(spec: DataSpec | str | dict) -> bool:
    """True for a text corpus (.txt/.jsonl); token-id files are corpora when the task says so."""
    return Path(DataSpec.parse(spec).source).suffix.lower() in TEXT_SUFFIXES


@dataclass(frozen=True)
class Vocabulary:
    """A word-level tokenizer: ``tokens[i]`` is the string of id i (``vocab.txt``, one per line).

    Text is lower-cased and split into words and punctuation; unknown words map to ``<unk>``
    (which must then be in the vocabulary).

    >>> vocab = Vocabulary(("<pad>", "<unk>", "the", "cat", "."))
    >>> vocab.encode("The cat sat.")
    [2, 3, 1, 4]
    >>> vocab.decode([2, 3])
    'the cat'
    """

    tokens: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(set(self.tokens)) != len(self.tokens):
            raise DataError("the vocabulary lists a token twice; each line must be unique.")

    @classmethod
    def read(cls, path: Path) -> Vocabulary:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise DataError(f"{path.name} is not a readable UTF-8 vocabulary ({error}).") from None
        return cls(tuple(lines))

    def write(self, path: Path) -> None:
        path.write_text("\n".join(self.tokens) + "\n", encoding="utf-8")

    @property
    def ids(self) -> dict[str, int]:
        return {token: index for index, token in enumerate(self.tokens)}

    def encode(self, text: str) -> list[int]:
        ids, unk = self.ids, self.ids.get(UNK)
        out = []
        for word in _WORD.findall(text.lower()):
            index = ids.get(word, unk)
            if index is None:
                raise DataError(
                    f"the word {word!r} is not in the vocabulary and it has no {UNK} token."
                )
            out.append(index)
        return out

    def decode(self, ids: Sequence[int]) -> str:
        return " ".join(self.tokens[i] for i in ids)


@dataclass(frozen=True)
class Tokenizer:
    """What reading text needs: ``encode`` (text → ids), the string of every id, and the id
    that joins documents and the one that pads (None when the vocabulary has none)."""

    encode: Callable[[str], list[int]]
    strings: list[str]
    eos: int | None = None
    pad: int | None = None


def word_tokenizer(vocab: Vocabulary) -> Tokenizer:
    ids = vocab.ids
    return Tokenizer(vocab.encode, list(vocab.tokens), ids.get(EOS), ids.get(PAD))


def hf_tokenizer(folder: Path) -> Tokenizer:
    """The tokenizer saved in a transformers model folder (``save_pretrained``), read offline."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise OptionError(
            "text with an hf: model needs transformers: pip install 'ncviz[hf]'."
        ) from None
    try:
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except (OSError, ValueError) as error:
        raise DataError(
            f"{folder.name} has no readable tokenizer ({str(error)[:120]}); save it with "
            "tokenizer.save_pretrained, or give token ids (.npy/.safetensors)."
        ) from None
    strings = [str(s) for s in tok.convert_ids_to_tokens(list(range(len(tok))))]
    return Tokenizer(
        lambda text: list(tok(text, add_special_tokens=False)["input_ids"]),
        strings,
        tok.eos_token_id,
        tok.pad_token_id,
    )


def find_tokenizer(corpus: Path, model_name: str | None = None) -> Tokenizer | None:
    """``vocab.txt`` beside the corpus (or in its parent run folder), else the tokenizer of an
    ``hf:`` model folder; None when neither exists."""
    for folder in (corpus.parent, corpus.parent.parent):
        if (folder / VOCAB_FILE).is_file():
            return word_tokenizer(Vocabulary.read(folder / VOCAB_FILE))
    if model_name and model_name.startswith("hf:"):
        return hf_tokenizer(Path(model_name[3:]))
    return None


@dataclass(frozen=True)
class TokenCorpus:
    """``ids`` (sequences × length, int64) and ``mask`` (True = a real token) of one corpus,
    plus the token strings when a tokenizer is known."""

    ids: torch.Tensor
    mask: torch.Tensor
    strings: list[str] | None = None
    name: str = "corpus"

    @property
    def num_samples(self) -> int:
        """Positions with a real next token: the samples of the next-token classes."""
        return int((self.mask[:, :-1] & self.mask[:, 1:]).sum())

    def counts(self, vocab_size: int) -> np.ndarray:
        """How often each token id occurs as a next token."""
        valid = self.mask[:, :-1] & self.mask[:, 1:]
        return np.bincount(self.ids[:, 1:][valid].numpy(), minlength=vocab_size)

    def fingerprint(self) -> str:
        import hashlib

        digest = hashlib.sha256(self.ids.numpy().tobytes())
        digest.update(self.mask.numpy().tobytes())
        return digest.hexdigest()[:16]


def _windows(stream: np.ndarray, context: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A 1-D token stream cut into sequences of ``context``; the last one padded."""
    count = -(-len(stream) // context)
    ids = np.full(count * context, pad, dtype=np.int64)
    ids[: len(stream)] = stream
    mask = np.zeros(count * context, dtype=bool)
    mask[: len(stream)] = True
    return torch.from_numpy(ids.reshape(count, context)), torch.from_numpy(
        mask.reshape(count, context)
    )


def _read_ids(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    check_data_file(path)
    try:
        if path.suffix.lower() == ".npy":
            ids, mask = np.load(path, allow_pickle=False), None
        else:
            from safetensors.numpy import load_file

            arrays = load_file(str(path))
            if "input_ids" not in arrays:
                raise DataError(
                    f"{path.name} has no `input_ids` (found: {', '.join(sorted(arrays))})."
                )
            ids, mask = arrays["input_ids"], arrays.get("attention_mask")
    except DataError:
        raise
    except Exception as error:
        raise DataError(
            f"{path.name} is not a readable token-id file ({type(error).__name__})."
        ) from None
    if ids.dtype.kind not in "iu" or ids.ndim not in (1, 2):
        raise DataError(
            f"{path.name}: token ids must be integers, 1-D (a stream) or 2-D (sequences × "
            f"length); got {ids.dtype} of shape {ids.shape}."
        )
    if mask is not None and mask.shape != ids.shape:
        raise DataError(f"{path.name}: attention_mask {mask.shape} ≠ input_ids {ids.shape}.")
    return ids.astype(np.int64), None if mask is None else mask.astype(bool)


def _read_text(path: Path, tokenizer: Tokenizer) -> np.ndarray:
    check_data_file(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path.name} is not readable UTF-8 text ({error}).") from None
    if path.suffix.lower() == ".txt":
        return np.asarray(tokenizer.encode(text), dtype=np.int64)
    stream: list[int] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)["text"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DataError(
                f'{path.name} line {number}: each line must be a JSON object with "text".'
            ) from None
        if stream and tokenizer.eos is not None:
            stream.append(tokenizer.eos)
        stream += tokenizer.encode(str(document))
    return np.asarray(stream, dtype=np.int64)


def read_corpus(
    spec: DataSpec | str | dict, tokenizer: Tokenizer | None = None, base: Path | None = None
) -> TokenCorpus:
    """The corpus a data spec names, as sequences of ``context`` tokens (see module docstring).

    >>> import tempfile, numpy as np
    >>> path = Path(tempfile.mkdtemp()) / "ids.npy"
    >>> np.save(path, np.arange(10))
    >>> corpus = read_corpus(f"{path}?context=4")
    >>> corpus.ids.tolist(), corpus.num_samples
    ([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 0, 0]], 7)
    """
    spec = DataSpec.parse(spec)
    path = Path(spec.source)
    if not path.is_absolute() and base is not None:
        path = base / path
    if not path.is_file():
        raise DataError(f"the corpus {path.name} does not exist.")
    context = _positive(spec.params.get("context", DEFAULT_CONTEXT), "context")
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        if tokenizer is None:
            raise DataError(
                f"{path.name} is text and no tokenizer was found: put a {VOCAB_FILE} (one token "
                "per line) beside it, use an hf: model folder with its tokenizer, or give token "
                "ids (.npy/.safetensors)."
            )
        ids, mask = _read_text(path, tokenizer), None
    elif suffix in ID_SUFFIXES:
        ids, mask = _read_ids(path)
    else:
        raise DataError(
            f"{path.name}: a corpus is {', '.join(TEXT_SUFFIXES + ID_SUFFIXES)}, not {suffix}."
        )
    pad = tokenizer.pad if tokenizer is not None and tokenizer.pad is not None else 0
    if ids.ndim == 1:
        if "max_tokens" in spec.params:
            ids = ids[: _positive(spec.params["max_tokens"], "max_tokens")]
        seqs, masks = _windows(ids, context, pad)
    else:
        seqs = torch.from_numpy(ids)
        masks = torch.ones_like(seqs, dtype=torch.bool) if mask is None else torch.from_numpy(mask)
    if seqs.shape[1] < 2 or int((masks[:, :-1] & masks[:, 1:]).sum()) == 0:
        raise DataError(f"{path.name} holds no position with a next token; give longer text.")
    if int(seqs.min()) < 0:
        raise DataError(f"{path.name}: token ids must be non-negative.")
    strings = tokenizer.strings if tokenizer is not None else None
    return TokenCorpus(seqs, masks, strings, path.stem)


def _positive(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise DataError(f"{name} must be a positive integer, got {value!r}.")
    return number


def as_corpus(data: Any, name: str = "corpus") -> TokenCorpus:
    """A corpus from what a training loop holds: a :class:`TokenCorpus`; token ids (B×L tensor
    or array); a tuple ``(ids, mask)`` of equal shapes; a dict with ``input_ids`` (and
    ``attention_mask``); or an iterable (list, DataLoader) of such batches (padded to the
    longest, padding masked).

    >>> as_corpus({"input_ids": torch.tensor([[1, 2, 3]])}).num_samples
    2
    >>> as_corpus([torch.tensor([[1, 2]]), torch.tensor([[3, 4, 5]])]).mask.tolist()
    [[True, True, False], [True, True, True]]
    """
    if isinstance(data, TokenCorpus):
        return data
    single = _as_batch(data)
    if single is not None:
        ids, mask = single
    else:
        try:
            found = [_as_batch(batch) for batch in data]
        except TypeError:
            found = [None]
        batches = [b for b in found if b is not None]
        if not found or len(batches) < len(found):
            raise DataError(
                "token data must be ids (B×L), (ids, mask), a dict with input_ids, or batches "
                "of these."
            )
        length = max(ids.shape[1] for ids, _ in batches)
        ids = torch.cat([nn.functional.pad(i, (0, length - i.shape[1])) for i, _ in batches])
        mask = torch.cat([nn.functional.pad(m, (0, length - m.shape[1])) for _, m in batches])
    return TokenCorpus(ids.long().cpu(), mask.bool().cpu(), None, name)


def _as_batch(batch: Any) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(ids, mask) of one batch, or None when ``batch`` is not a single batch."""
    mask = None
    if isinstance(batch, dict) and "input_ids" in batch:
        ids, mask = batch["input_ids"], batch.get("attention_mask")
    elif (
        isinstance(batch, tuple)
        and len(batch) == 2
        and _is_ids(batch[0])
        and tuple(batch[0].shape) == tuple(np.shape(batch[1]))
    ):
        ids, mask = batch
    elif _is_ids(batch):
        ids = batch
    else:
        return None
    ids = torch.as_tensor(np.asarray(ids) if not isinstance(ids, torch.Tensor) else ids)
    if ids.ndim != 2:
        raise DataError(f"token ids must be sequences × length, got shape {tuple(ids.shape)}.")
    mask = torch.ones_like(ids, dtype=torch.bool) if mask is None else torch.as_tensor(mask)
    return ids, mask.bool()


def _is_ids(value: Any) -> bool:
    return (isinstance(value, torch.Tensor) and not value.is_floating_point()) or (
        isinstance(value, np.ndarray) and value.dtype.kind in "iu"
    )


def lm_head(model: nn.Module, name: str | None = None) -> tuple[str, nn.Module]:
    """The LM head: the module called ``name``, else the model's output embeddings
    (transformers' ``get_output_embeddings``), else its last linear layer."""
    from ncviz.load.architectures import classifier_module

    embeddings = getattr(model, "get_output_embeddings", None)
    if name is None and callable(embeddings):
        output = embeddings()
        found = [n for n, m in model.named_modules() if output is not None and m is output]
        if found and isinstance(output, nn.Module):
            return found[0], output
    return classifier_module(model, name)


def next_token_pairs(
    hidden: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features and next-token labels of every position that has a real next token.

    ``hidden`` is B×L×d (the states the LM head reads), ``ids`` and ``mask`` B×L (mask: True or
    1 = a real token, e.g. a tokenizer's ``attention_mask``). Position t is kept when t and t+1
    are real tokens; its label is ``ids[:, t+1]``. For a training loop with ``ncviz.Recorder``:
    ``recorder.update(*next_token_pairs(h, batch["input_ids"], batch["attention_mask"]))``.

    >>> h = torch.arange(6.0).reshape(1, 3, 2)
    >>> features, labels = next_token_pairs(h, torch.tensor([[7, 8, 9]]))
    >>> features.tolist(), labels.tolist()
    ([[0.0, 1.0], [2.0, 3.0]], [8, 9])
    """
    if hidden.ndim != 3 or hidden.shape[:2] != ids.shape:
        raise DataError(
            f"hidden states {tuple(hidden.shape)} do not match token ids {tuple(ids.shape)} "
            "(expected B×L×d and B×L)."
        )
    keep = _next_token_positions(ids, mask)
    return hidden[:, :-1][keep], ids[:, 1:][keep]


def _next_token_positions(ids: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """B×(L−1) mask of the positions t with a real token at t and t+1."""
    valid = torch.ones_like(ids, dtype=torch.bool) if mask is None else mask.bool()
    return valid[:, :-1] & valid[:, 1:]


def token_layers(model: nn.Module, classifier: str) -> list[str]:
    """Default layers: each block of the model's longest ``ModuleList`` (the transformer
    blocks), then the LM head's input (the features of the next-token classes)."""
    lists = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m)]
    names = []
    if lists:
        prefix, blocks = max(lists, key=lambda item: len(item[1]))
        names = [f"{prefix}.{index}" for index in range(len(blocks))]
    return [*names, classifier + INPUT_SUFFIX]


def _caller(model: nn.Module) -> Callable[[torch.Tensor, torch.Tensor], Any]:
    """How to run ``model`` on ids and mask: with ``attention_mask`` when its forward takes one."""
    try:
        takes_mask = "attention_mask" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        takes_mask = False
    if takes_mask:
        return lambda ids, mask: model(input_ids=ids, attention_mask=mask.long())
    return lambda ids, mask: model(ids)


def vocabulary_rows(head: nn.Module) -> int:
    """V: the rows of an LM head's weight (one per token)."""
    weight = getattr(head, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.ndim != 2:
        raise OptionError("the LM head has no 2-D weight; name the linear layer that reads tokens.")
    return int(weight.shape[0])


def _keeper(store: dict[str, torch.Tensor], key: str) -> Callable[[torch.Tensor | None], None]:
    """A hook callback that keeps a layer's output as ``store[key]``."""

    def keep(tensor: torch.Tensor | None) -> None:
        if tensor is not None:
            store[key] = tensor

    return keep


def token_statistics(
    model: nn.Module,
    corpus: TokenCorpus,
    layers: Sequence[str],
    classifier: tuple[str, nn.Module],
    *,
    device: str | None = None,
    batch_size: int = 32,
    min_count: int | None = DEFAULT_MIN_COUNT,
    progress: ProgressFn | None = None,
) -> dict[str, CollapseStatistics]:
    """Two-pass collapse statistics of the next-token classes at each layer.

    Classes are the rows of the LM head (C = V); the head's weight (and bias) is the classifier
    of the layer that feeds it (``<head>:input``). ``batch_size`` counts sequences. ``device``:
    move the model there ("auto": CUDA when present); None runs it where it is. The model's
    training mode is restored afterwards. An adapter of the one pass driver
    (:func:`ncviz.extract.passes.run_passes`): a batch is (ids, mask) with the next tokens as
    labels, and a layer's output is the features of the positions that have a next token.
    """
    vocab = vocabulary_rows(classifier[1])
    if int(corpus.ids.max()) >= vocab:
        raise DataError(
            f"{corpus.name} holds token id {int(corpus.ids.max())} but the LM head has {vocab} "
            "rows; the corpus was tokenised for another model."
        )
    target = _device(model, device)
    outputs: dict[str, torch.Tensor] = {}
    handles = [hook_layer(model, layer, _keeper(outputs, layer)) for layer in layers]
    run = _caller(model)
    starts = range(0, len(corpus.ids), batch_size)

    def batches(_pass: int) -> Iterator[tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]]:
        for start in starts:
            ids = corpus.ids[start : start + batch_size].to(target)
            mask = corpus.mask[start : start + batch_size].to(target)
            yield (ids, mask), ids[:, 1:][_next_token_positions(ids, mask)]

    def forward(inputs: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        ids, mask = inputs
        outputs.clear()
        with torch.inference_mode():
            run(ids, mask)
        found = {}
        for layer in layers:
            hidden = outputs.get(layer)
            if hidden is None or hidden.ndim != 3:
                raise OptionError(
                    f"layer {layer!r} gives no B×L×d hidden states; pick a block of the "
                    "transformer or the LM head's input."
                )
            found[layer] = next_token_pairs(hidden, ids, mask)[0]
        return found

    settings = PassSettings(
        task="classification",
        num_classes=vocab,
        class_names=class_names(corpus, vocab),
        min_count=min_count,
        classifier=classifier,
        device=target,
        check_repeat=False,
        stage=f"over {corpus.name}",
    )
    flops = 2 * sum(p.numel() for p in model.parameters()) * batch_size * corpus.ids.shape[1]
    was_training = model.training
    model.eval()
    try:
        with threads_for(flops):
            captured = run_passes(
                forward, batches, list(layers), settings, total=len(starts), progress=progress
            )
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    found = {}
    for layer, item in captured.layers.items():
        assert isinstance(item.statistics, CollapseStatistics)  # task "classification"
        found[layer] = item.statistics
    return found


def token_features(
    model: nn.Module,
    corpus: TokenCorpus,
    layer: str,
    *,
    device: str | None = None,
    batch_size: int = 32,
    limit: int = 20_000,
) -> tuple[np.ndarray, np.ndarray]:
    """The features (n×d) and next-token ids of the first ``limit`` samples of ``corpus`` at
    ``layer`` (for embeddings of the token features)."""
    target = _device(model, device)
    seen: dict[str, torch.Tensor] = {}
    handle = hook_layer(model, layer, _keeper(seen, "h"))
    run, features, labels, count = _caller(model), [], [], 0
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(corpus.ids), batch_size):
            ids = corpus.ids[start : start + batch_size].to(target)
            mask = corpus.mask[start : start + batch_size].to(target)
            with torch.inference_mode():
                run(ids, mask)
            h, y = next_token_pairs(seen["h"], ids, mask)
            features.append(h.float().cpu())
            labels.append(y.cpu())
            count += len(y)
            if count >= limit:
                break
    finally:
        handle.remove()
        model.train(was_training)
    return torch.cat(features)[:limit].numpy(), torch.cat(labels)[:limit].numpy()


def capture_tokens(
    model: nn.Module,
    corpus: TokenCorpus,
    layers: Sequence[str] | str,
    head: tuple[str, nn.Module],
    *,
    min_count: int | None = DEFAULT_MIN_COUNT,
    sample_size: int = 5000,
    progress: ProgressFn | None = None,
) -> Any:
    """What ``ncviz.Recorder`` stores for a language model (its task "language"): the
    statistics of the next-token classes at each layer (``"auto"``: :func:`token_layers`) and
    the feature rows of the first ``sample_size`` positions with their next tokens."""
    chosen = token_layers(model, head[0]) if isinstance(layers, str) else list(layers)
    statistics = token_statistics(
        model, corpus, chosen, head, min_count=min_count, progress=progress
    )
    captured, labels = {}, np.zeros(0, dtype=np.int64)
    for layer in chosen:
        sample, labels = token_features(model, corpus, layer, limit=sample_size)
        captured[layer] = CapturedLayer(layer, sample.shape[1], False, statistics[layer], sample)
    return Capture("language", corpus.num_samples, captured, labels)


def _device(model: nn.Module, device: str | None) -> torch.device:
    """Where to run: ``device`` (the model is moved there), else where the model already is."""
    if device is not None:
        target = best_device(device)
        model.to(target)
        return target
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def class_names(corpus: TokenCorpus, vocab: int) -> np.ndarray:
    """The decoded string of every class (token id) when known, else the id as text."""
    if corpus.strings is not None and len(corpus.strings) >= vocab:
        return np.asarray(corpus.strings[:vocab], dtype=str)
    return np.asarray([str(i) for i in range(vocab)], dtype=str)
