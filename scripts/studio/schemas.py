"""The JSON bodies the studio's API accepts; unknown fields are refused by name, like a config's."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from .generation import MAX_COUNT
from .models import PRIOR_NAME

MAX_TOKENS = 4096
"""More tokens than any melody may have; lengths are checked against bars and meters after parsing."""


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class LockIn(Body):
    step: int
    """Step of the melody, from 0 (the first step after any primer)."""
    token: int
    """Token the step must have: 0 rest, 1 hold, 2.. a pitch (2 + MIDI pitch - 48 in the default vocabulary)."""


class ControlIn(Body):
    key: str = "C major"
    meter: str = "4/4"
    locked: list[LockIn] = Field(default_factory=list, max_length=MAX_TOKENS)
    constraints: list[Annotated[str, Field(max_length=400)]] = Field(default_factory=list, max_length=64)
    """Constraint texts as `notetune sample --constraint` reads them: 'pitches=C,D,E,G,A', 'rhythm=x...'."""
    primer: Annotated[str, Field(max_length=4000)] | Annotated[list[int], Field(max_length=256)] | None = None
    """Melody the model continues: a line such as '60 _ 62 _' or a list of tokens."""


class GenerateIn(ControlIn):
    model: str = PRIOR_NAME
    length: int = 32
    seed: int = Field(0, ge=0, le=2**31 - 1)
    temperature: float = Field(1.0, gt=0.0, le=10.0)
    count: int = Field(1, ge=1, le=MAX_COUNT)


class ScoreIn(ControlIn):
    tokens: list[int] = Field(max_length=MAX_TOKENS)


class ExportIn(Body):
    tokens: list[int] = Field(max_length=MAX_TOKENS)
    format: Literal["midi", "musicxml", "wav"] = "midi"
    key: str = "C major"
    meter: str = "4/4"
    tempo: float = Field(120.0, ge=30.0, le=300.0)
    """Quarter notes a minute."""
    metronome: bool = False
    """WAV only: a click on every beat."""
    title: str = Field("", max_length=200)


class MelodyIn(Body):
    tokens: list[int] = Field(max_length=MAX_TOKENS)
    key: str = "C major"
    meter: str = "4/4"
    locked: list[int] = Field(default_factory=list, max_length=MAX_TOKENS)
    """Locked steps."""
    title: str = Field("", max_length=200)
    model: str = Field("", max_length=200)
    action: str = Field("edit", max_length=64)
    """What this version changed ("add note", "regenerate", ...), kept in the history."""


class PreferenceIn(Body):
    a: list[int] = Field(max_length=MAX_TOKENS)
    b: list[int] = Field(max_length=MAX_TOKENS)
    winner: Literal["a", "b", "tie"]
    key: str = "C major"
    length: int
    listener: str = Field("anonymous", min_length=1, max_length=100)
    source: str = Field("studio", max_length=200)
    model_a: str = Field("", max_length=200)
    model_b: str = Field("", max_length=200)
