"""Synthetic collapse data with known answers: simplex-ETF class means plus Gaussian noise."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ncviz.errors import InputError


def simplex_etf(num_classes: int, dim: int, seed: int = 0) -> np.ndarray:
    """C×d unit-norm vectors forming a simplex ETF: pairwise cosines all −1/(C−1)."""
    if num_classes < 2 or dim < num_classes - 1:
        raise InputError(f"a simplex ETF of C={num_classes} classes needs d ≥ C−1, got d={dim}.")
    centering = np.eye(num_classes) - 1.0 / num_classes
    u, _, _ = np.linalg.svd(centering)
    etf = u[:, : num_classes - 1] * np.sqrt(num_classes / (num_classes - 1))
    basis, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((dim, num_classes - 1)))
    return etf @ basis.T


@dataclass(frozen=True)
class SyntheticCollapse:
    """Features around ETF means; ``weight`` is the ideal self-dual classifier (rows = means)."""

    features: np.ndarray
    labels: np.ndarray
    weight: np.ndarray


def noisy_etf(
    num_classes: int = 10, dim: int = 64, per_class: int = 100, noise: float = 0.1, seed: int = 0
) -> SyntheticCollapse:
    """Class means on a unit simplex ETF, isotropic Gaussian within-class noise of std ``noise``.

    Population values (docs/metrics.md): nc1 = σ²(C−1)²/C, Tr Σ_W/Tr Σ_B = dσ²,
    cdnv = dσ²(C−1)/(2C).
    """
    means = simplex_etf(num_classes, dim, seed)
    rng = np.random.default_rng(seed + 1)
    labels = np.repeat(np.arange(num_classes), per_class)
    features = means[labels] + noise * rng.standard_normal((len(labels), dim))
    return SyntheticCollapse(features=features, labels=labels, weight=means)


@dataclass(frozen=True)
class MarkovLanguage:
    """A synthetic language: ``words[i]`` is token i; after token x comes ``successors[x, k]``
    with probability ``probabilities[k]``, or (with probability ``restart``) a fresh token
    drawn from the Zipfian unigram law ``unigram``."""

    words: tuple[str, ...]
    unigram: np.ndarray
    successors: np.ndarray
    probabilities: np.ndarray
    restart: float

    def sample(self, tokens: int, seed: int) -> np.ndarray:
        """A stream of ``tokens`` ids (int64)."""
        rng = np.random.default_rng(seed)
        choices = rng.choice(len(self.probabilities), size=tokens, p=self.probabilities)
        restarts = rng.random(tokens) < self.restart
        fresh = rng.choice(len(self.words), size=tokens, p=self.unigram)
        out = np.empty(tokens, dtype=np.int64)
        token = fresh[0]
        for i in range(tokens):
            out[i] = token
            token = fresh[i] if restarts[i] else self.successors[token, choices[i]]
        return out


def markov_language(
    vocab: int = 256,
    successors: int = 4,
    exponent: float = 1.1,
    restart: float = 0.05,
    seed: int = 0,
) -> MarkovLanguage:
    """A first-order Markov language with Zipfian token frequencies (the long tail of natural
    text, Zipf's law with ``exponent``) and structure a model can learn: each token has
    ``successors`` likely next tokens, drawn from the unigram law, with peaked probabilities
    (0.7, 0.2, 0.07, 0.03 for four). Words are pronounceable syllable strings, unique.

    >>> language = markov_language(vocab=20, seed=1)
    >>> stream = language.sample(1000, seed=2)
    >>> len(stream), int(stream.max()) < 20, len(set(language.words))
    (1000, True, 20)
    """
    if vocab < successors + 1:
        raise InputError(f"a language of {vocab} tokens cannot have {successors} successors.")
    rng = np.random.default_rng(seed)
    unigram = 1.0 / np.arange(1, vocab + 1) ** exponent
    unigram /= unigram.sum()
    table = np.stack(
        [rng.choice(vocab, successors, replace=False, p=unigram) for _ in range(vocab)]
    )
    weights = np.array([0.7, 0.2, 0.07, 0.03])[:successors] if successors <= 4 else None
    if weights is None:
        weights = 0.5 ** np.arange(successors)
    weights = weights / weights.sum()
    return MarkovLanguage(_words(vocab, rng), unigram, table, weights, restart)


def _words(count: int, rng: np.random.Generator) -> tuple[str, ...]:
    """``count`` distinct pronounceable words, short ones for the frequent tokens."""
    consonants, vowels = "bdfgklmnprstvz", "aeiou"
    syllables = [c + v for c in consonants for v in vowels]
    words: list[str] = []
    seen: set[str] = set()
    length = 1
    while len(words) < count:
        for _ in range(4 * count):
            word = "".join(rng.choice(syllables, size=length))
            if word not in seen:
                seen.add(word)
                words.append(word)
                if len(words) == count or len(words) >= len(syllables) ** length * 0.6:
                    break
        length += 1
    return tuple(words[:count])
