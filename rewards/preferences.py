"""Pairwise preferences between melodies: the studio's ``preferences.jsonl`` schema, parsed and validated.

One JSON object a line::

    {"a": [tokens], "b": [tokens], "winner": "a" | "b" | "tie",
     "key": "C major", "length": 32, "listener": "...", "source": "..."}

``key`` (default C major), ``length``, ``listener`` and ``source`` are optional; other fields (the two models,
a time stamp, a simulated listener's ``p_a``) are kept in ``extra``. Bad lines are skipped and counted by
reason, never fatal: a file collected over weeks should not be lost to one truncated line. No file I/O here:
a caller reads the file and passes its lines.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from notetune.pretrained.errors import UserInputError
from notetune.pretrained.vocab import DEFAULT_VOCABULARY, Vocabulary

from .keys import Key

Winner = Literal["a", "b", "tie"]
WINNERS: tuple[str, ...] = ("a", "b", "tie")
DEFAULT_KEY = "C major"

SKIP_REASONS: dict[str, str] = {
    "malformed": "not a JSON object with token lists 'a' and 'b'",
    "unknown_winner": "'winner' is not 'a', 'b' or 'tie'",
    "out_of_vocabulary": "a token outside the vocabulary",
    "wrong_length": "a melody of another length",
    "unknown_key": "a 'key' that is not a key name",
}
"""Why a line was skipped: reason → what was wrong with it."""

_KNOWN_FIELDS = {"a", "b", "winner", "key", "length", "listener", "source"}


class PreferenceError(UserInputError):
    """Preference data that cannot be used at all (no valid pair, several lengths)."""


@dataclass(frozen=True)
class PreferencePair:
    """One answer: two melodies of the same length and which one the listener preferred."""

    a: np.ndarray
    """(T,) int64 tokens of the first melody."""
    b: np.ndarray
    """(T,) int64 tokens of the second melody."""
    winner: Winner
    key: Key = field(default_factory=Key)
    """The key both melodies are written in (the reward model reads them moved to C major)."""
    listener: str = ""
    source: str = ""
    line: int = 0
    """1-based line number in the input (0 when built in code)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Fields beyond the schema, kept as read (models, time stamp, ``p_a``)."""

    @property
    def length(self) -> int:
        return int(self.a.shape[0])

    @property
    def target(self) -> float:
        """P(a preferred) as a training label: 1 for a, 0 for b, 0.5 for a tie."""
        return {"a": 1.0, "b": 0.0, "tie": 0.5}[self.winner]

    def to_json(self) -> str:
        """The pair as one line of ``preferences.jsonl``."""
        data: dict[str, Any] = {
            "a": [int(t) for t in self.a],
            "b": [int(t) for t in self.b],
            "winner": self.winner,
            "key": str(self.key),
            "length": self.length,
        }
        if self.listener:
            data["listener"] = self.listener
        if self.source:
            data["source"] = self.source
        data.update(self.extra)
        return json.dumps(data, separators=(",", ":"))


@dataclass
class PreferenceData:
    """The valid pairs of a file, and what was skipped."""

    pairs: list[PreferencePair]
    skipped: dict[str, int] = field(default_factory=dict)
    """Reason → number of lines skipped for it (reasons in :data:`SKIP_REASONS`)."""
    first_skipped: dict[str, int] = field(default_factory=dict)
    """Reason → line number of the first line skipped for it (to find it in the file)."""

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def length(self) -> int:
        """Steps per melody (every pair has this length)."""
        if not self.pairs:
            raise PreferenceError("no valid preference pairs")
        return self.pairs[0].length

    @property
    def listeners(self) -> list[str]:
        """Distinct listener names, sorted ('' for pairs without one)."""
        return sorted({pair.listener for pair in self.pairs})

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(a (N, T), b (N, T), target (N,)) with target = P(a preferred)."""
        if not self.pairs:
            raise PreferenceError("no valid preference pairs")
        a = np.stack([pair.a for pair in self.pairs])
        b = np.stack([pair.b for pair in self.pairs])
        return a, b, np.array([pair.target for pair in self.pairs])

    def subset(self, indices: Iterable[int]) -> PreferenceData:
        return PreferenceData([self.pairs[i] for i in indices])

    def summary(self) -> str:
        """One line: pairs read, winners, listeners and skipped lines by reason."""
        winners = Counter(pair.winner for pair in self.pairs)
        text = (
            f"{len(self.pairs)} pairs (a {winners['a']}, b {winners['b']}, tie {winners['tie']}) "
            f"from {len(self.listeners)} listener(s)"
        )
        if self.skipped:
            parts = [
                f"{count} {reason} (first at line {self.first_skipped[reason]}: {SKIP_REASONS[reason]})"
                for reason, count in sorted(self.skipped.items())
            ]
            text += "; skipped " + ", ".join(parts)
        return text


class _Skip(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_preference_line(text: str, vocab: Vocabulary = DEFAULT_VOCABULARY, line: int = 0) -> PreferencePair:
    """One line as a pair; raises ``ValueError`` whose message is the skip reason."""
    try:
        return _parse(text, vocab, line)
    except _Skip as skip:
        raise ValueError(skip.reason) from None


def _tokens(value: Any, vocab: Vocabulary) -> np.ndarray:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(t, int) and not isinstance(t, bool) for t in value)
    ):
        raise _Skip("malformed")
    tokens = np.asarray(value, dtype=np.int64)
    if tokens.min() < 0 or tokens.max() >= vocab.size:
        raise _Skip("out_of_vocabulary")
    return tokens


def _parse(text: str, vocab: Vocabulary, line: int) -> PreferencePair:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise _Skip("malformed") from None
    if not isinstance(data, dict) or "a" not in data or "b" not in data:
        raise _Skip("malformed")
    a, b = _tokens(data["a"], vocab), _tokens(data["b"], vocab)
    if data.get("winner") not in WINNERS:
        raise _Skip("unknown_winner")
    length = data.get("length")
    if a.shape != b.shape or (length is not None and length != a.shape[0]):
        raise _Skip("wrong_length")
    try:
        key = Key.parse(data.get("key") or DEFAULT_KEY)
    except ValueError:
        raise _Skip("unknown_key") from None
    return PreferencePair(
        a=a,
        b=b,
        winner=data["winner"],
        key=key,
        listener=str(data.get("listener") or ""),
        source=str(data.get("source") or ""),
        line=line,
        extra={k: v for k, v in data.items() if k not in _KNOWN_FIELDS},
    )


def parse_preferences(
    lines: Iterable[str], vocab: Vocabulary = DEFAULT_VOCABULARY, length: int | None = None
) -> PreferenceData:
    """Valid pairs from the lines of a ``preferences.jsonl``, bad lines counted by reason.

    Blank lines are ignored. Every kept pair has one length: ``length`` if given, else the most common
    length among the valid lines (the others are skipped as ``wrong_length``).
    """
    pairs: list[PreferencePair] = []
    skipped: Counter[str] = Counter()
    first: dict[str, int] = {}

    def skip(reason: str, number: int) -> None:
        skipped[reason] += 1
        first.setdefault(reason, number)

    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            pairs.append(_parse(text, vocab, number))
        except _Skip as error:
            skip(error.reason, number)
    if length is None and pairs:
        counts = Counter(pair.length for pair in pairs)
        length = max(sorted(counts), key=lambda n: counts[n])  # ties: the shorter length
    kept = []
    for pair in pairs:
        if pair.length == length:
            kept.append(pair)
        else:
            skip("wrong_length", pair.line)
    return PreferenceData(kept, dict(skipped), first)


def preference_lines(pairs: Sequence[PreferencePair]) -> list[str]:
    """The pairs as ``preferences.jsonl`` lines (no newline characters)."""
    return [pair.to_json() for pair in pairs]
