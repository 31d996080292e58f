"""What a reward sees and what it returns.

A reward is called once per environment step with a :class:`StepBatch` — every melody of the batch at the same
step ``t`` — and returns one float per melody. Three forms are accepted:

* a **batched function** ``fn(batch: StepBatch) -> np.ndarray`` of shape (B,) (the fast path);
* a **simple function** ``fn(tokens: np.ndarray, t: int) -> float`` for one melody, batched by a Python loop;
* a **stateful reward**: a subclass of :class:`StatefulReward`, built once per reward set with the
  :class:`RewardSetup`, told ``reset(batch_size)`` at the start of every batch of episodes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
from notetune.pretrained.errors import UserInputError
from notetune.pretrained.form import Form, FormLayout
from notetune.pretrained.meter import DEFAULT_METER, Meter
from notetune.pretrained.vocab import DEFAULT_VOCABULARY, Vocabulary

from .keys import Key

DEFAULT_LENGTH = 32
"""Steps in a composition: two 4/4 bars of 16th notes, as in RL Tuner."""


class RewardError(RuntimeError):
    """A reward raised, or returned something other than B finite floats; the message names the reward."""


class UnknownRewardError(UserInputError):
    """A reward or reward-set name that is neither registered, a dotted path, nor an entry point."""


@dataclass(frozen=True)
class RewardSetup:
    """What a reward set is built for: fixed for the whole training run."""

    key: Key = field(default_factory=Key)
    """Key the music-theory rules judge against (default C major)."""
    vocab: Vocabulary = DEFAULT_VOCABULARY
    """Token layout (default: RL Tuner's 38 classes, MIDI 48..83)."""
    length: int = DEFAULT_LENGTH
    """Steps per composition; end-of-piece rules fire at ``t == length - 1``."""
    corpus: Sequence[np.ndarray] | None = None
    """Training melodies (1-D token arrays, any length) for rewards that compare with the corpus."""
    meter: Meter = DEFAULT_METER
    """The bar of bar-level rules and statistics (4/4: 16 steps). RL Tuner's rules keep their 8-step "bar"."""
    form: Form | None = None
    """Phrase form (e.g. ``Form.parse("AABA")``) for the ``form`` rewards; None without one."""
    phrase_bars: int = 0
    """Bars per phrase of the structure statistics without a form (0: a quarter of the piece)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", Key.parse(self.key))
        object.__setattr__(self, "meter", Meter.parse(self.meter, self.vocab))
        if self.meter.steps_per_quarter != self.vocab.steps_per_quarter:
            raise ValueError(
                f"meter {self.meter} counts {self.meter.steps_per_quarter} steps a quarter, the vocabulary "
                f"{self.vocab.steps_per_quarter}; build it with Meter.parse({str(self.meter)!r}, vocab)"
            )
        if self.form is not None:
            object.__setattr__(self, "form", Form.parse(self.form))
        if self.length < 8:
            raise ValueError(f"compositions must be at least one 8-step bar long, got length {self.length}")
        if self.form is not None:
            self.form.layout(self.length, self.meter)  # raises FormError when the form does not fit

    @property
    def form_layout(self) -> FormLayout | None:
        """The form's phrases placed on ``length`` steps, or None without a form."""
        return None if self.form is None else self.form.layout(self.length, self.meter)


@dataclass(frozen=True)
class StepBatch:
    """Every melody of a batch at step ``t``, just after the action at ``t`` was chosen."""

    tokens: np.ndarray
    """(B, t+1) int: each composition so far, the new action last."""
    t: int
    """Index of the new action (0 for the first note)."""
    key: Key = field(default_factory=Key)
    vocab: Vocabulary = DEFAULT_VOCABULARY
    length: int = DEFAULT_LENGTH
    """Steps per composition; ``t == length - 1`` is the last step."""
    state: dict[str, Any] = field(default_factory=dict)
    """This reward's scratch space for the current episodes; emptied by ``RewardSet.reset``."""
    prior_log_probs: np.ndarray | None = None
    """(B, V) float: the prior's log-probabilities at this step, when the environment supplies them — or (B,), the
    log-probability of the action alone, when an evaluation scores finished compositions."""
    meter: Meter = DEFAULT_METER
    """The meter of bar-level rules (``meter.steps_per_bar``)."""

    @property
    def batch_size(self) -> int:
        return self.tokens.shape[0]

    @property
    def action(self) -> np.ndarray:
        """(B,) the token just chosen."""
        return self.tokens[:, self.t]

    @property
    def action_log_prior(self) -> np.ndarray | None:
        """(B,) log p_prior of the action just chosen (None when no prior log-probabilities were passed)."""
        if self.prior_log_probs is None:
            return None
        if self.prior_log_probs.ndim == 1:
            return self.prior_log_probs
        return self.prior_log_probs[np.arange(self.batch_size), self.action]

    @property
    def is_last_step(self) -> bool:
        return self.t == self.length - 1

    def zeros(self) -> np.ndarray:
        """(B,) float zeros: the reward of a rule that does not fire at this step."""
        return np.zeros(self.batch_size)


@runtime_checkable
class BatchedReward(Protocol):
    """Anything a reward set can call: ``reward(batch) -> (B,) floats``."""

    def __call__(self, batch: StepBatch) -> np.ndarray: ...


class StatefulReward:
    """Base class for rewards that remember something between steps.

    Subclasses set ``name`` (or are registered with ``@reward("name")``), may read ``self.setup`` (key, vocab,
    length, corpus) in ``__init__``, start fresh per-melody arrays in :meth:`reset`, and are then called at
    ``t = 0, 1, ..., length - 1`` in order. Whatever ``reset`` does not clear persists across episodes.
    """

    name: str = ""

    def __init__(self, setup: RewardSetup | None = None) -> None:
        self.setup = setup if setup is not None else RewardSetup()
        self.batch_size = 0
        self._next_t = 0

    def reset(self, batch_size: int) -> None:
        """Start ``batch_size`` new episodes."""
        self.batch_size = batch_size
        self._next_t = 0

    def __call__(self, batch: StepBatch) -> np.ndarray:
        if batch.t != self._next_t or batch.batch_size != self.batch_size:
            raise RuntimeError(
                f"{type(self).__name__} follows each episode step by step: call reset({batch.batch_size}) "
                f"and then t = 0, 1, 2, ...; got t = {batch.t} (expected {self._next_t}) for "
                f"{batch.batch_size} melodies (reset for {self.batch_size})"
            )
        self._next_t = batch.t + 1
        return self.step(batch)

    def step(self, batch: StepBatch) -> np.ndarray:
        """The reward of every melody at ``batch.t``; update the state with ``batch.action``."""
        raise NotImplementedError


class SimpleFunctionReward:
    """Batches a one-melody reward ``fn(tokens, t) -> float`` with a Python loop (the slow path)."""

    def __init__(self, fn: Callable[[np.ndarray, int], float]) -> None:
        self.fn = fn

    def __call__(self, batch: StepBatch) -> np.ndarray:
        return np.array([float(self.fn(melody, batch.t)) for melody in batch.tokens], dtype=np.float64)


def is_simple_function(fn: Callable[..., Any]) -> bool:
    """True if ``fn`` takes ``(tokens, t)`` (two required positional parameters), False for ``(batch)``."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: treat as batched
        return False
    positional = [
        p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    ]
    return len(positional) >= 2


def check_reward_output(name: str, values: Any, batch_size: int) -> np.ndarray:
    """``values`` as a (B,) float64 array, or a :class:`RewardError` naming the reward and the problem."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise RewardError(f"reward '{name}' returned {type(values).__name__}, not numbers: {error}") from error
    if array.shape != (batch_size,):
        raise RewardError(
            f"reward '{name}' returned shape {array.shape}; expected ({batch_size},), one float per melody"
        )
    if not np.isfinite(array).all():
        bad = np.flatnonzero(~np.isfinite(array))
        raise RewardError(
            f"reward '{name}' returned {array[bad[0]]} for melody {bad[0]} "
            f"({bad.size} of {batch_size} values are NaN or inf)"
        )
    return array
