"""A reward set: the rewards an environment pays, their weights, and the per-episode state they keep.

The environment builds one per run and calls, for every batch of synchronous episodes::

    rewards = RewardSet.from_spec("notetune", key="D minor")
    rewards.reset(batch_size)
    for t in range(rewards.length):
        ...                                   # choose tokens[:, t]
        terms = rewards.step(tokens, t, prior_log_probs)   # {name: (B,) unweighted}
        reward = rewards.total(terms)                       # sum of weight * term
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from notetune.pretrained.errors import UserInputError
from notetune.pretrained.form import Form
from notetune.pretrained.meter import DEFAULT_METER, Meter
from notetune.pretrained.vocab import DEFAULT_VOCABULARY, Vocabulary

from .core import (
    DEFAULT_LENGTH,
    BatchedReward,
    RewardError,
    RewardSetup,
    StepBatch,
    UnknownRewardError,
    check_reward_output,
)
from .keys import Key
from .registry import RewardEntry, entry_for, get_reward, is_reward_set, reward_set_weights

SpecItem = str | Callable[..., Any]


def parse_spec(spec: str | SpecItem | Iterable[SpecItem]) -> list[tuple[SpecItem, float | None]]:
    """Split a spec into ``(item, weight or None)`` pairs.

    A spec is a comma-separated string (``"notetune,corpus_copy=0.5"``), or a list of such strings and of
    Python callables. ``NAME=WEIGHT`` sets a reward's weight, or scales every weight of a reward set.
    """
    if isinstance(spec, str) or callable(spec):
        spec = [spec]
    items: list[tuple[SpecItem, float | None]] = []
    for element in spec:
        if callable(element):
            items.append((element, None))
            continue
        for text in str(element).split(","):
            text = text.strip()
            if not text:
                continue
            name, sep, weight_text = text.rpartition("=")
            if not sep:
                items.append((text, None))
                continue
            try:
                weight = float(weight_text)
            except ValueError:
                raise UserInputError(
                    f"cannot read weight {weight_text!r} in {text!r}; write NAME=WEIGHT with a number, "
                    "e.g. --reward 'notetune,key=3'"
                ) from None
            items.append((name.strip(), weight))
    return items


class RewardSet:
    """Named rewards with weights; returns every term separately so each can be logged on its own."""

    def __init__(
        self, entries: Sequence[RewardEntry], weights: Mapping[str, float], setup: RewardSetup | None = None
    ) -> None:
        self.setup = setup if setup is not None else RewardSetup()
        names = [entry.name for entry in entries]
        if len(set(names)) != len(names):
            duplicated = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"two rewards are called {', '.join(repr(n) for n in duplicated)}; names must be unique")
        self.entries = tuple(entries)
        self._rewards: list[tuple[str, BatchedReward]] = [(e.name, e.build(self.setup)) for e in entries]
        self.weights: dict[str, float] = {name: 1.0 for name in names}
        self.set_weights(weights)
        self._states: dict[str, dict[str, Any]] = {name: {} for name in names}
        self._batch_size: int | None = None

    @classmethod
    def from_spec(
        cls,
        spec: str | SpecItem | Iterable[SpecItem],
        weights: Mapping[str, float] | None = None,
        *,
        key: Key | str = "C major",
        vocab: Vocabulary = DEFAULT_VOCABULARY,
        length: int = DEFAULT_LENGTH,
        corpus: Sequence[np.ndarray] | None = None,
        meter: Meter | str = DEFAULT_METER,
        form: Form | str | None = None,
        phrase_bars: int = 0,
    ) -> RewardSet:
        """Build a reward set from names, reward-set names and dotted paths, each optionally ``NAME=WEIGHT``.

        ``weights`` (name → weight) is applied last and overrides the spec. A later item for a reward already
        in the set changes its weight, so ``"rl_tuner,key=5"`` is RL Tuner with a stronger key rule.
        ``meter`` ("4/4", "3/4", "6/8") sets the bar of bar-level rules; ``form`` ("AABA") the phrases of the
        ``form`` rewards; ``phrase_bars`` the phrases of the structure statistics without a form.
        """
        setup = RewardSetup(
            key=Key.parse(key),
            vocab=vocab,
            length=length,
            corpus=corpus,
            meter=Meter.parse(meter, vocab),
            form=form,
            phrase_bars=phrase_bars,
        )
        entries: dict[str, RewardEntry] = {}
        spec_weights: dict[str, float] = {}

        def add(entry: RewardEntry, weight: float) -> None:
            existing = entries.get(entry.name)
            if existing is not None and existing.target is not entry.target:
                raise ValueError(
                    f"two different rewards are called '{entry.name}' ({existing.target!r} and {entry.target!r})"
                )
            entries[entry.name] = entry
            spec_weights[entry.name] = weight

        for item, weight in parse_spec(spec):
            if callable(item):
                name = getattr(item, "reward_name", None) or getattr(item, "name", None) or item.__name__
                add(entry_for(name, item), 1.0 if weight is None else weight)
            elif is_reward_set(item):
                scale = 1.0 if weight is None else weight
                for name, default in reward_set_weights(item).items():
                    add(get_reward(name), scale * default)
            else:
                add(get_reward(item), 1.0 if weight is None else weight)
        if not entries:
            raise UserInputError("the reward spec is empty; name at least one reward or reward set, e.g. 'notetune'")
        reward_set = cls(list(entries.values()), spec_weights, setup)
        reward_set.set_weights(weights or {})
        return reward_set

    @property
    def names(self) -> tuple[str, ...]:
        """Term names, in the order ``step`` returns them."""
        return tuple(name for name, _ in self._rewards)

    @property
    def key(self) -> Key:
        return self.setup.key

    @property
    def vocab(self) -> Vocabulary:
        return self.setup.vocab

    @property
    def length(self) -> int:
        return self.setup.length

    @property
    def meter(self) -> Meter:
        return self.setup.meter

    @property
    def form(self) -> Form | None:
        return self.setup.form

    def set_weights(self, weights: Mapping[str, float]) -> None:
        """Change the weights of terms already in the set."""
        for name, weight in weights.items():
            if name not in self.weights:
                close = difflib.get_close_matches(name, list(self.weights), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise UnknownRewardError(
                    f"weight given for '{name}', which is not in this reward set{hint} terms: {', '.join(self.weights)}"
                )
            weight = float(weight)
            if not np.isfinite(weight):
                raise UserInputError(f"weight of '{name}' must be finite, got {weight}")
            self.weights[name] = weight

    def reset(self, batch_size: int) -> None:
        """Start ``batch_size`` new episodes: clears every reward's per-episode state."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._batch_size = batch_size
        for name, fn in self._rewards:
            self._states[name] = {}
            reset = getattr(fn, "reset", None)
            if reset is not None:
                try:
                    reset(batch_size)
                except Exception as error:
                    raise RewardError(f"reward '{name}' failed to reset: {type(error).__name__}: {error}") from error

    def step(self, tokens: np.ndarray, t: int, prior_log_probs: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Every term, unweighted, for the action ``tokens[:, t]``: ``{name: (B,) float64}``.

        ``tokens`` is (B, >= t+1); only columns ``0..t`` are read, so an environment may pass its buffer.
        Steps must come in order ``t = 0, 1, ...`` after :meth:`reset`.
        """
        tokens = np.asarray(tokens)
        if tokens.ndim != 2 or tokens.shape[1] < t + 1 or t < 0:
            raise ValueError(f"tokens must be (batch, >= t+1) = (B, >= {t + 1}); got shape {tokens.shape}")
        if self._batch_size != tokens.shape[0]:
            raise ValueError(
                f"call reset({tokens.shape[0]}) before stepping {tokens.shape[0]} melodies "
                f"(the set was reset for {self._batch_size})"
            )
        if tokens.dtype != np.int64:
            tokens = tokens.astype(np.int64)  # small unsigned ints would wrap in interval arithmetic
        composition = tokens[:, : t + 1]
        action = composition[:, t]
        if action.min() < 0 or action.max() >= self.vocab.size:
            raise ValueError(
                f"tokens at step {t} must be classes 0..{self.vocab.size - 1}; got {action.min()}..{action.max()}"
            )
        if prior_log_probs is not None:
            prior_log_probs = np.asarray(prior_log_probs)
            if prior_log_probs.shape not in ((tokens.shape[0], self.vocab.size), (tokens.shape[0],)):
                raise ValueError(
                    f"prior_log_probs must be (B, V) = ({tokens.shape[0]}, {self.vocab.size}) or the action's "
                    f"(B,) = ({tokens.shape[0]},); got {prior_log_probs.shape}"
                )
        setup = self.setup
        terms: dict[str, np.ndarray] = {}
        for name, fn in self._rewards:
            batch = StepBatch(
                composition, t, setup.key, setup.vocab, setup.length, self._states[name], prior_log_probs, setup.meter
            )
            try:
                values = fn(batch)
            except RewardError:
                raise
            except Exception as error:
                raise RewardError(f"reward '{name}' failed at step {t}: {type(error).__name__}: {error}") from error
            terms[name] = check_reward_output(name, values, composition.shape[0])
        return terms

    def total(self, terms: Mapping[str, np.ndarray]) -> np.ndarray:
        """The weighted sum ``sum(weight * term)`` over this set's terms, (B,)."""
        missing = [name for name in self.weights if name not in terms]
        if missing:
            raise KeyError(f"terms missing for {', '.join(missing)}; pass the dict returned by step()")
        if not self.names:  # an empty set (a target run without music reward) pays nothing
            return np.zeros(self._batch_size or 0)
        total = np.zeros_like(terms[self.names[0]], dtype=np.float64)
        for name, weight in self.weights.items():
            if weight:
                total += weight * terms[name]
        return total

    def evaluate(self, compositions: np.ndarray, prior_log_probs: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Run whole compositions (B, length) through the set: ``{name: (B, length)}`` per-step terms.

        ``prior_log_probs``, if given, is (B, length, V). Resets the set's episode state.
        """
        compositions = np.asarray(compositions)
        if compositions.ndim != 2 or compositions.shape[1] != self.length:
            raise ValueError(f"compositions must be (B, {self.length}); got shape {compositions.shape}")
        self.reset(compositions.shape[0])
        per_step = {name: np.zeros(compositions.shape) for name in self.names}
        for t in range(self.length):
            log_probs = None if prior_log_probs is None else prior_log_probs[:, t]
            for name, values in self.step(compositions, t, log_probs).items():
                per_step[name][:, t] = values
        return per_step

    def __repr__(self) -> str:
        terms = ", ".join(f"{name}={weight:g}" for name, weight in self.weights.items())
        return f"RewardSet({terms}; key={self.key}, length={self.length})"
