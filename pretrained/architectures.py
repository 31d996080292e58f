"""The prior architectures by name — what ``pretrain --arch`` chooses and config.json's ``arch`` records."""

from __future__ import annotations

from typing import Literal, get_args

from .lookback import LookbackConfig, LookbackLSTM
from .model import NoteModel, NoteRNN, NoteRNNConfig

ArchName = Literal["note_rnn", "lookback_lstm"]
"""The architecture names, as a type (so `--arch` offers exactly these choices)."""

ARCHITECTURES: dict[str, tuple[type[NoteModel], type]] = {
    "note_rnn": (NoteRNN, NoteRNNConfig),
    "lookback_lstm": (LookbackLSTM, LookbackConfig),
}
"""arch name → (model class, config class). ``note_rnn`` (the LSTM) is what a checkpoint without ``arch`` is."""

DEFAULT_ARCH: ArchName = "note_rnn"
assert set(get_args(ArchName)) == set(ARCHITECTURES), "ArchName must list exactly the ARCHITECTURES"


class UnknownArchitectureError(ValueError):
    """An ``arch`` name that is not in :data:`ARCHITECTURES`."""


def architecture(name: str) -> tuple[type[NoteModel], type]:
    """(model class, config class) of ``name``; one clear line naming the known ones otherwise."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(ARCHITECTURES)
        raise UnknownArchitectureError(f"unknown prior architecture {name!r}; known: {known}") from None


def build_model(name: str, config_fields: dict) -> NoteModel:
    """A fresh model of architecture ``name`` from its config fields (``vocab`` as a Vocabulary or a dict)."""
    model_class, config_class = architecture(name)
    fields = dict(config_fields)
    if isinstance(fields.get("vocab"), dict):
        return model_class(config_class.from_dict(fields))
    known = set(config_class.__dataclass_fields__)
    return model_class(config_class(**{k: v for k, v in fields.items() if k in known}))
