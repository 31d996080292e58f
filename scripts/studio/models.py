"""The models a studio offers, by name: the shipped prior, checkpoints, tuning runs and the trials of a sweep."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from notetune.pretrained.checkpoint import CONFIG, CheckpointError, find_checkpoint, load_checkpoint
from notetune.pretrained.model import NoteRNN, PriorProduct
from notetune.pretrained.transpose import PRIOR_KEY, key_transposition, transpose_model
from notetune.pretrained.vocab import Vocabulary
from notetune.rewards.keys import Key

from .errors import StudioError

PRIOR_NAME = "default"
"""The shipped, untuned prior: always loaded; log p of every melody is measured under it."""


@dataclass
class StudioModel:
    """A loaded model and what the page shows about it."""

    name: str
    kind: str
    """"prior", "checkpoint", "tuned run" or "sweep trial"."""
    path: Path
    model: NoteRNN | PriorProduct
    key: Key
    """The key the model writes in without transposition (its config's ``key``, else C major)."""
    _transposed: dict[int, NoteRNN | PriorProduct] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def in_key(self, key: Key) -> NoteRNN | PriorProduct:
        """The model moved to ``key`` (relabelled pitch tokens; cached, safe from several threads)."""
        semitones = key_transposition(self.key, key)
        with self._lock:
            if semitones not in self._transposed:
                self._transposed[semitones] = transpose_model(self.model, semitones)
            return self._transposed[semitones]

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "key": str(self.key), "path": str(self.path)}


def _load(name: str, kind: str, path: str | Path | None) -> StudioModel:
    directory = find_checkpoint(path)
    model, config = load_checkpoint(directory)
    try:
        key = Key.parse(config.get("key") or PRIOR_KEY)
    except ValueError as error:
        raise CheckpointError(f"{directory / CONFIG}: {error}") from error
    return StudioModel(name, kind, directory, model, key)


def _specs(spec: str) -> list[tuple[str, str, Path]]:
    """(name, kind, path) of each model a ``--model`` value means: NAME=DIR names it, a sweep gives its trials."""
    name, sep, location = spec.partition("=")
    if not sep:
        name, location = "", spec
    path = Path(location)
    trials = path / "trials"
    if path.is_dir() and not (path / CONFIG).is_file() and not (path / "model").is_dir() and trials.is_dir():
        found = [(t, t / "model") for t in sorted(trials.iterdir()) if (t / "model" / CONFIG).is_file()]
        if not found:
            raise CheckpointError(f"sweep {path} has no finished trial with a model (looked in {trials}/*/model)")
        prefix = name or path.name
        return [(f"{prefix}/{trial.name}", "sweep trial", model) for trial, model in found]
    kind = "tuned run" if (path / "model" / CONFIG).is_file() else "checkpoint"
    return [(name or path.resolve().name, kind, path)]


class ModelLibrary:
    """The loaded models by name; the first is the one the page starts with."""

    def __init__(self, models: Sequence[StudioModel]) -> None:
        self.models = {m.name: m for m in models}
        if PRIOR_NAME not in self.models:
            raise ValueError(f"a model library needs the prior {PRIOR_NAME!r}")
        vocabularies = {m.model.vocab for m in models}
        if len(vocabularies) > 1:
            raise CheckpointError(
                "the models use different vocabularies "
                + "; ".join(f"{m.name}: {m.model.vocab}" for m in models)
                + "; load models of one vocabulary"
            )
        self.vocab: Vocabulary = models[0].model.vocab

    @classmethod
    def load(cls, specs: Sequence[str] = ()) -> ModelLibrary:
        """The shipped prior plus every model of ``specs`` (``default``, a checkpoint, run or sweep directory)."""
        models: list[StudioModel] = []
        for spec in specs:
            if spec == PRIOR_NAME:
                continue
            for name, kind, path in _specs(spec):
                unique, n = name, 2
                while unique == PRIOR_NAME or any(m.name == unique for m in models):
                    unique, n = f"{name}-{n}", n + 1
                models.append(_load(unique, kind, path))
        models.append(_load(PRIOR_NAME, "prior", None))
        return cls(models)

    @property
    def names(self) -> list[str]:
        return list(self.models)

    @property
    def prior(self) -> StudioModel:
        return self.models[PRIOR_NAME]

    def get(self, name: str, field_name: str = "model") -> StudioModel:
        if name not in self.models:
            raise StudioError(field_name, f"unknown model {name!r}; loaded models: {', '.join(self.models)}")
        return self.models[name]
