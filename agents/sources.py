"""What ``evaluate``, ``compare`` and ``listen`` read: melodies sampled from a model, read from files (samples.npz,
a MIDI folder) or cut from the corpus, and the references they are judged against (the prior, the corpus n-gram index).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from notetune.pretrained.checkpoint import CONFIG, SHIPPED_MODELS, find_checkpoint, load_checkpoint
from notetune.pretrained.corpus import DEFAULT_CORPUS, load_corpus
from notetune.pretrained.errors import UserInputError
from notetune.pretrained.export import load_samples
from notetune.pretrained.form import FormLayout
from notetune.pretrained.model import NoteRNN, PriorProduct
from notetune.pretrained.sampling import sample_tokens, token_log_probs
from notetune.pretrained.transpose import transpose_to_key
from notetune.pretrained.vocab import DEFAULT_VOCABULARY, Vocabulary
from notetune.rewards import Key
from notetune.rewards.metrics import NoteNgramIndex

logger = logging.getLogger(__name__)

SourceKind = Literal["model", "samples", "corpus"]


@dataclass
class SampleSource:
    """Melodies to evaluate and where they came from (a model's samples, files, or corpus windows)."""

    label: str
    kind: SourceKind
    path: str
    tokens: np.ndarray = field(repr=False)
    vocab: Vocabulary = DEFAULT_VOCABULARY
    key: str | None = None
    """The key the model was tuned for (None: not recorded; evaluation then uses C major)."""
    checkpoint: Path | None = None
    model_log_probs: np.ndarray | None = field(default=None, repr=False)
    """(N, T) log-probabilities of the tokens under the sampling distribution (models only)."""
    settings: dict[str, Any] = field(default_factory=dict)
    tuned: dict[str, Any] | None = None
    """A tuned model's ``tuned`` section of its config.json (its reward spec and weights); None otherwise."""


def is_model_path(spec: str | Path) -> bool:
    """True for a shipped prior's name ("default", "lookback", ...), a checkpoint or a tuning run directory."""
    path = Path(spec)
    if str(spec) in SHIPPED_MODELS and not path.exists():
        return True
    return (path / CONFIG).is_file() or (path / "model" / CONFIG).is_file()


def is_corpus_file(path: str | Path) -> bool:
    path = Path(path)
    if not (path.is_file() and path.suffix == ".npz"):
        return False
    try:
        with np.load(path, allow_pickle=False) as data:
            return "offsets" in data.files
    except (OSError, ValueError):  # not an npz at all: load_samples says so in one line
        return False


def load_source(
    spec: str | Path,
    *,
    num: int | None = 1000,
    length: int = 32,
    seed: int = 0,
    temperature: float = 1.0,
    label: str | None = None,
    key: str | None = None,
    form: FormLayout | None = None,
) -> SampleSource:
    """The melodies ``spec`` names, ready to evaluate (a model is transposed to ``key`` when given; a strict
    ``form`` layout masks its sampling).

    A model (``default``, a checkpoint or run directory) is sampled ``num`` times with ``seed``; a corpus file
    gives ``num`` random ``length``-step windows; a samples.npz or MIDI folder gives its first ``num``
    melodies. ``num=None`` (files only) takes everything.
    """
    spec = str(spec)
    if is_model_path(spec):
        return sample_source(
            spec, num=num or 1000, length=length, seed=seed, temperature=temperature, label=label, key=key, form=form
        )
    path = Path(spec)
    if is_corpus_file(path):
        corpus = load_corpus(path)
        windows = corpus.windows(length)
        total = len(windows)
        if num is not None and num < total:
            windows = windows[np.random.default_rng(seed).choice(total, size=num, replace=False)]
        return SampleSource(
            label or "corpus",
            "corpus",
            spec,
            windows,
            corpus.vocab,
            key="C major",
            settings={"corpus_windows": total, "window_length": length, "seed": seed},
        )
    if path.is_dir() and (path / "samples.npz").is_file():
        path = path / "samples.npz"  # the exact tokens; MIDI files beside it keep only the canonical spelling
    vocab = _samples_vocabulary(path)
    tokens = load_samples(path, vocab, length=None if path.suffix == ".npz" else length)
    if num is not None:
        tokens = tokens[:num]
    name = path.parent.name if path.name == "samples.npz" else path.stem if path.is_file() else path.name
    return SampleSource(label or name or spec, "samples", spec, tokens, vocab)


def sample_source(
    spec: str,
    *,
    num: int,
    length: int = 32,
    seed: int = 0,
    temperature: float = 1.0,
    label: str | None = None,
    batch_size: int = 4096,
    key: str | None = None,
    form: FormLayout | None = None,
) -> SampleSource:
    """``num`` melodies sampled from a model, with their log-probabilities under the sampling distribution.

    With ``key``, the model is first transposed from the key it writes in to that key. ``form`` (a strict
    form's layout) copies returning phrases through the sampling masks.
    """
    checkpoint = find_checkpoint(spec)
    model, config = load_checkpoint(checkpoint)
    if key is not None:
        model = transpose_to_key(model, Key.parse(config.get("key") or "C major"), Key.parse(key))
        config = {**config, "key": str(Key.parse(key))}
    started = time.perf_counter()
    tokens, log_probs = sample_tokens(
        model, num, length, temperature, seed, batch_size=batch_size, return_log_probs=True, form=form
    )
    if temperature != 1.0:  # sample_tokens reports temperature-1 log-probabilities; KL needs the sampler's
        log_probs = token_log_probs(model, tokens, temperature=temperature, form=form)
    seconds = time.perf_counter() - started
    if label is None:
        label = (
            "default prior"
            if spec == "default"
            else (checkpoint.parent.name if checkpoint.name == "model" else checkpoint.name)
        )
        if temperature != 1.0:
            label += f" (T={temperature:g})"
    settings = {
        "checkpoint": str(checkpoint),
        "seed": seed,
        "temperature": temperature,
        "sampling_seconds": round(seconds, 3),
        **({"form_strict": form.form.text} if form is not None else {}),
    }
    tuned = config.get("tuned") or {}
    if tuned.get("form_strict") and form is None:
        logger.warning(
            "%s was tuned under the strict form %s: add --form %s --form-strict to sample it as it was tuned",
            label,
            tuned.get("form"),
            tuned.get("form"),
        )
    return SampleSource(
        label,
        "model",
        spec,
        tokens,
        model.vocab,
        config.get("key"),
        checkpoint.resolve(),
        log_probs,
        settings,
        config.get("tuned"),
    )


def _samples_vocabulary(path: Path) -> Vocabulary:
    """The vocabulary written into a samples.npz (the default one for MIDI folders and older files)."""
    npz = path / "samples.npz" if path.is_dir() else path
    if npz.suffix == ".npz" and npz.is_file():
        try:
            with np.load(npz, allow_pickle=False) as data:
                if "vocabulary" in data.files:
                    return Vocabulary.from_dict(json.loads(str(data["vocabulary"])))
        except (OSError, ValueError) as error:
            raise UserInputError(f"{npz} is not a readable samples file ({error}); give a samples.npz") from error
    return DEFAULT_VOCABULARY


@dataclass
class Prior:
    """The reference model for ``log_prior_per_token`` and the KL estimate."""

    model: NoteRNN | PriorProduct
    checkpoint: Path
    key: str = "C major"
    """The key the prior writes in (its checkpoint's ``key``)."""

    def in_key(self, key: str) -> NoteRNN | PriorProduct:
        """The prior moved to ``key`` through the vocabulary (its log p is then judged in that key)."""
        return transpose_to_key(self.model, Key.parse(self.key), Key.parse(key))


def reference_prior(spec: str, sources: Sequence[SampleSource]) -> str:
    """The prior that ``spec`` names for judging ``sources``: 'auto' is the prior the tuned ones were tuned
    from (their ``from_prior``) when they share one that is still there — without tuned models, the one
    untuned model itself — else 'default'; anything else is itself. So a model tuned from the Lookback LSTM
    has its log p and KL measured against the Lookback LSTM, and the Lookback LSTM against itself (KL 0)."""
    if spec != "auto":
        return spec
    tuned_from = {str((source.tuned or {}).get("from_prior") or "") for source in sources if source.tuned}
    if not tuned_from:
        tuned_from = {str(source.checkpoint) for source in sources if source.kind == "model" and source.checkpoint}
    if len(tuned_from) == 1:
        (path,) = tuned_from
        if path and Path(path).is_dir():
            return path
    return "default"


def load_prior(spec: str | None) -> Prior | None:
    """The prior named by ``spec`` ("default", a directory); None for "none".

    A missing shipped prior only skips the likelihood metrics (with a warning); a missing named one is an
    error.
    """
    if spec is None or str(spec).lower() in ("", "none"):
        return None
    checkpoint = find_checkpoint(spec)
    if str(spec) == "default" and not (checkpoint / CONFIG).is_file():
        logger.warning("no shipped prior at %s: likelihood metrics skipped (pass --prior DIR)", checkpoint)
        return None
    model, config = load_checkpoint(checkpoint)
    return Prior(model, checkpoint.resolve(), config.get("key") or "C major")


_CORPUS_INDICES: dict[Path, NoteNgramIndex] = {}
_CORPUS_MELODIES: dict[Path, list[np.ndarray]] = {}


def _corpus_file(spec: str | None, skipped: str) -> Path | None:
    """The corpus file ``spec`` names ("default": the shipped one), or None for "none" or a missing shipped one."""
    if spec is None or str(spec).lower() in ("", "none"):
        return None
    path = DEFAULT_CORPUS if str(spec) == "default" else Path(spec)
    if not path.is_file() and str(spec) == "default":
        logger.warning("no corpus at %s: %s skipped (build it with `notetune corpus`)", path, skipped)
        return None
    return path.resolve()


def load_corpus_index(spec: str | None) -> tuple[NoteNgramIndex | None, str | None]:
    """The n-gram index of a corpus file ("default": the shipped corpus; None/"none": no novelty metrics).

    A missing shipped corpus only skips the novelty metrics (with a warning); a missing named file is fatal.
    """
    path = _corpus_file(spec, "novelty metrics")
    if path is None:
        return None, None
    if path not in _CORPUS_INDICES:
        corpus = load_corpus(path)
        _CORPUS_INDICES[path] = NoteNgramIndex.from_flat(corpus.tokens, corpus.offsets)
    return _CORPUS_INDICES[path], str(path)


def load_corpus_melodies(spec: str | None) -> list[np.ndarray] | None:
    """The melodies of a corpus file, for rewards that compare with the corpus (``corpus_copy``); None for "none"."""
    path = _corpus_file(spec, "corpus-based rewards")
    if path is None:
        return None
    if path not in _CORPUS_MELODIES:
        _CORPUS_MELODIES[path] = load_corpus(path).melodies()
    return _CORPUS_MELODIES[path]
