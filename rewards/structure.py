"""Structure of long pieces: bars that return, phrases and the form they make, cadences, the climax.

Pure numpy over (N, T) token arrays, vectorised over the pieces. Every per-piece figure is a (numerator,
denominator) pair per composition, like :func:`~notetune.rewards.statistics.table1_counts`, so the evaluation
pipeline can pool it (``sum(num) / sum(den)``) and bootstrap it. Pass canonical tokens (one spelling per
sound) when comparing sets, as for the diversity metrics.

Definitions (the same the ``form`` and ``notetune_long`` rewards pay):

* a bar **repeats exactly** when its tokens (onsets, pitches, holds and rests) equal an earlier bar of the same
  piece; **transposed** when they do after shifting all its pitches by one interval (same rhythm, same
  intervals; exact repeats included). The share is over the bars that have an earlier bar (bars 2..n).
* two phrases **agree** at a step when both are silent, or both sound — both starting a note or both holding
  one — pitches that differ by the phrases' common transposition (the interval that makes most steps agree);
  similarity is agreeing steps / phrase steps.
* a **cadence** ends a phrase: its last note lasts at least a quarter (holds count, a rest ends it; a rest
  may follow, a breath) on a stable degree of the key (1, 3 or 5). The piece **ends on the tonic** when its
  last note is a tonic lasting at least a quarter and still sounding at the last step.
* the **climax** is the highest note; it is unique when no other note reaches that pitch.
"""

from __future__ import annotations

import numpy as np
from notetune.pretrained.form import NEW, RETURN, STABLE_DEGREES, VARIATION, FormLayout
from notetune.pretrained.meter import DEFAULT_METER, Meter
from notetune.pretrained.vocab import DEFAULT_VOCABULARY, NUM_SPECIAL, Vocabulary

from .keys import Key
from .metrics import note_onsets, sounding_pitches
from .statistics import Ratio, table1_counts

SIMILAR = 0.75
"""Phrase similarity from which two phrases count as the same material (form detection, compliance)."""
DEFAULT_PHRASE_BARS = 2
"""Bars per phrase when no form says otherwise (8 bars = four 2-bar phrases)."""
_LETTERS = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))


# ------------------------------------------------------------------------------------------------ bars
def bars_of(tokens: np.ndarray, meter: Meter | str = DEFAULT_METER) -> np.ndarray:
    """(N, bars, steps per bar) view of the whole bars of (N, T) pieces (a trailing partial bar is dropped)."""
    tokens = np.asarray(tokens, dtype=np.int64)
    meter = Meter.parse(meter)
    count = meter.bars(tokens.shape[1])
    return tokens[:, : count * meter.steps_per_bar].reshape(tokens.shape[0], count, meter.steps_per_bar)


def relative_to_first_note(windows: np.ndarray) -> np.ndarray:
    """Windows (..., L) with pitches taken relative to each window's first note (specials unchanged)."""
    onset = windows >= NUM_SPECIAL
    first = np.take_along_axis(windows, onset.argmax(axis=-1)[..., None], axis=-1)
    return np.where(onset, windows - first + 256, windows)  # + 256 keeps relative pitches clear of 0 and 1


def repeats_earlier(windows: np.ndarray) -> np.ndarray:
    """(N, W) bool: window w equals some window w' < w of the same piece (exact comparison, no hashing)."""
    count, width, steps = windows.shape
    rows = np.ascontiguousarray(windows.astype(np.int16))
    keys = rows.view(np.dtype((np.void, 2 * steps))).reshape(count, width)
    earlier = np.tril(np.ones((width, width), dtype=bool), -1)
    return ((keys[:, :, None] == keys[:, None, :]) & earlier).any(axis=2)


def bar_repetition(tokens: np.ndarray, meter: Meter | str = DEFAULT_METER) -> tuple[np.ndarray, np.ndarray]:
    """(exact, transposed): (N, bars) bool, the bar repeats an earlier bar of its piece (bar 0 never does)."""
    bars = bars_of(tokens, meter)
    return repeats_earlier(bars), repeats_earlier(relative_to_first_note(bars))


# --------------------------------------------------------------------------------------------- phrases
def sounding_and_onsets(tokens: np.ndarray, vocab: Vocabulary = DEFAULT_VOCABULARY) -> tuple[np.ndarray, np.ndarray]:
    """(N, T) MIDI pitch sounding at each step (−1 in silence) and (N, T) bool "a note starts here"."""
    tokens = np.asarray(tokens, dtype=np.int64)
    return sounding_pitches(tokens, vocab), tokens >= NUM_SPECIAL


def agreement(
    first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray], vocab: Vocabulary = DEFAULT_VOCABULARY
) -> np.ndarray:
    """(M,) agreeing steps of two (M, L) segments, each given as (sounding pitch, onset) from
    :func:`sounding_and_onsets`, under the one transposition that makes most steps agree.

    A step agrees when both are silent, or both sound with the same onset-or-hold and pitches that differ by
    that interval: rhythm counts (an onset never agrees with a held note) and so does every held step.
    """
    (pitch_a, onset_a), (pitch_b, onset_b) = first, second
    rows = pitch_a.shape[0]
    silent = ((pitch_a < 0) & (pitch_b < 0)).sum(axis=1)
    both = (pitch_a >= 0) & (pitch_b >= 0) & (onset_a == onset_b)
    span = 2 * vocab.num_pitches - 1  # intervals −(P−1)..+(P−1)
    shift = pitch_a - pitch_b + vocab.num_pitches - 1
    best = np.zeros(rows, dtype=np.int64)
    chunk = max(1, 4_000_000 // span)  # rows per bincount, bounded in memory
    for begin in range(0, rows, chunk):
        part = slice(begin, min(rows, begin + chunk))
        row_ids, steps = np.nonzero(both[part])
        if row_ids.size == 0:
            continue
        size = part.stop - part.start
        cells = row_ids * span + shift[part][row_ids, steps]
        best[part] = np.bincount(cells, minlength=size * span).reshape(size, span).max(axis=1)
    return silent + best


def segment_agreement(
    tokens: np.ndarray, first: int, second: int, steps: int, vocab: Vocabulary = DEFAULT_VOCABULARY
) -> np.ndarray:
    """(N,) steps on which ``tokens[:, second:second+steps]`` agrees with ``tokens[:, first:first+steps]``.

    Read in the context of the whole piece (a segment starting with a hold holds the note before it).
    """
    pitch, onset = sounding_and_onsets(tokens[:, : max(first, second) + steps], vocab)
    a, b = slice(first, first + steps), slice(second, second + steps)
    return agreement((pitch[:, a], onset[:, a]), (pitch[:, b], onset[:, b]), vocab)


def phrases_of(tokens: np.ndarray, phrase_steps: int) -> np.ndarray:
    """(N, phrases, phrase_steps) whole phrases of (N, T) pieces."""
    tokens = np.asarray(tokens)
    count = tokens.shape[1] // phrase_steps
    return tokens[:, : count * phrase_steps].reshape(tokens.shape[0], count, phrase_steps)


def phrase_similarity(
    tokens: np.ndarray, phrase_steps: int, vocab: Vocabulary = DEFAULT_VOCABULARY, half: bool = False
) -> np.ndarray:
    """(N, P, P) share of agreeing steps between every two phrases of each piece (1 on the diagonal).

    With ``phrase_steps = meter.steps_per_bar`` it is the bar-level self-similarity matrix; its mean over
    pieces is the picture of a set's structure. ``half=True`` compares the phrases' first halves only (how
    a variation A' is recognised).
    """
    pitch, onset = (phrases_of(array, phrase_steps) for array in sounding_and_onsets(tokens, vocab))
    if half:
        pitch, onset = pitch[:, :, : phrase_steps // 2], onset[:, :, : phrase_steps // 2]
    count, num, steps = pitch.shape
    left, right = np.triu_indices(num, 1)

    def pairs(array: np.ndarray, index: np.ndarray) -> np.ndarray:
        return array[:, index].reshape(-1, steps)

    agree = agreement(
        (pairs(pitch, left), pairs(onset, left)), (pairs(pitch, right), pairs(onset, right)), vocab
    ).reshape(count, -1)
    similarity = np.ones((count, num, num))
    similarity[:, left, right] = similarity[:, right, left] = agree / steps
    return similarity


def detect_forms(
    tokens: np.ndarray, phrase_steps: int, vocab: Vocabulary = DEFAULT_VOCABULARY, threshold: float = SIMILAR
) -> np.ndarray:
    """(N,) form strings such as "AABA" or "AA'BA", labelling each piece's phrases by similarity.

    Left to right: a phrase takes the letter of the most similar earlier first-of-its-letter phrase when
    they agree on at least ``threshold`` of the steps; failing that, the letter primed when their first halves
    do; otherwise the next new letter.
    """
    similarity = phrase_similarity(tokens, phrase_steps, vocab)
    halves = phrase_similarity(tokens, phrase_steps, vocab, half=True)
    count, num, _ = similarity.shape
    letters = np.zeros((count, num), dtype=np.int64)
    primed = np.zeros((count, num), dtype=bool)
    is_first = np.zeros((count, num), dtype=bool)
    next_letter = np.zeros(count, dtype=np.int64)
    rows = np.arange(count)
    for phrase in range(num):
        whole = np.where(is_first[:, :phrase], similarity[:, phrase, :phrase], -1.0)
        half = np.where(is_first[:, :phrase], halves[:, phrase, :phrase], -1.0)
        best_whole = whole.argmax(axis=1) if phrase else np.zeros(count, dtype=np.int64)
        best_half = half.argmax(axis=1) if phrase else np.zeros(count, dtype=np.int64)
        returns = whole[rows, best_whole] >= threshold if phrase else np.zeros(count, dtype=bool)
        varies = ~returns & (half[rows, best_half] >= threshold) if phrase else np.zeros(count, dtype=bool)
        new = ~returns & ~varies
        letters[:, phrase] = np.where(
            returns, letters[rows, best_whole], np.where(varies, letters[rows, best_half], next_letter)
        )
        primed[:, phrase] = varies
        is_first[:, phrase] = new
        next_letter += new
    forms = np.full(count, "", dtype=f"<U{2 * num}")
    for phrase in range(num):
        forms = np.char.add(np.char.add(forms, _LETTERS[letters[:, phrase]]), np.where(primed[:, phrase], "'", ""))
    return forms


def form_shares(forms: np.ndarray) -> dict[str, Ratio]:
    """Per detected form, most common first: (1 where the piece has it, 1) per piece."""
    forms = np.asarray(forms)
    names, counts = np.unique(forms, return_counts=True)
    ones = np.ones(len(forms))
    return {str(name): ((forms == name).astype(np.float64), ones) for name in names[np.argsort(-counts, kind="stable")]}


# --------------------------------------------------------------------------------------- cadences, climax
def last_notes(windows: np.ndarray, vocab: Vocabulary = DEFAULT_VOCABULARY) -> tuple[np.ndarray, np.ndarray]:
    """(pitch token, duration in steps) of the last note of each (M, L) window; token −1 and 0 without notes.

    The duration counts the note's holds inside the window; a rest ends it.
    """
    windows = np.asarray(windows, dtype=np.int64)
    notes = note_onsets(windows)
    has_note = notes.counts > 0
    last = np.maximum(notes.counts - 1, 0)
    rows = np.arange(windows.shape[0])
    token = np.where(has_note, notes.tokens[rows, last] if notes.tokens.size else 0, -1)
    onset = notes.steps[rows, last] if notes.steps.size else np.zeros(windows.shape[0], dtype=np.int64)
    sounding = sounding_pitches(windows, vocab) >= 0
    duration = ((np.arange(windows.shape[1]) >= onset[:, None]) & sounding).sum(axis=1)
    return token, np.where(has_note, duration, 0)


def ends_with_cadence(
    windows: np.ndarray,
    key: Key | str = "C major",
    vocab: Vocabulary = DEFAULT_VOCABULARY,
    degrees: tuple[int, ...] = STABLE_DEGREES,
    to_the_end: bool = False,
) -> np.ndarray:
    """(M,) bool: the window's last note lasts at least a quarter and lies on one of ``degrees`` of the key.

    ``to_the_end=True`` also asks the note to sound at the window's last step (how a piece ends; a phrase may
    breathe after its cadence).
    """
    windows = np.asarray(windows, dtype=np.int64)
    token, duration = last_notes(windows, vocab)
    on_degree = Key.parse(key).degree_mask(vocab, degrees)[np.maximum(token, 0)] & (token >= 0)
    cadence = on_degree & (duration >= vocab.steps_per_quarter)
    if to_the_end:
        cadence &= sounding_pitches(windows, vocab)[:, -1] >= 0
    return cadence


def climax(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique, step): the highest note occurs once (as one onset), and the step of its first onset."""
    notes = note_onsets(tokens)
    pitch = np.where(notes.valid, notes.tokens, -1)
    highest = pitch.max(axis=1, initial=-1)
    at_highest = (pitch == highest[:, None]) & notes.valid
    unique = (highest >= 0) & (at_highest.sum(axis=1) == 1)
    step = np.take_along_axis(notes.steps, at_highest.argmax(axis=1)[:, None], axis=1)[:, 0] if pitch.size else highest
    return unique, step


# ------------------------------------------------------------------------------------------- statistics
STRUCTURE_STATISTICS = (
    "bar_repeated_exact",
    "bar_repeated_transposed",
    "distinct_bars",
    "phrase_cadences",
    "ends_on_tonic",
    "unique_climax",
    "climax_in_second_half",
)
"""Keys of :func:`structure_counts`, in report order."""


def structure_counts(
    tokens: np.ndarray,
    meter: Meter | str = DEFAULT_METER,
    key: Key | str = "C major",
    vocab: Vocabulary = DEFAULT_VOCABULARY,
    phrase_bars: int = DEFAULT_PHRASE_BARS,
) -> dict[str, Ratio]:
    """Per-piece (numerator, denominator) of the structure statistics of (N, T) pieces.

    - ``bar_repeated_exact`` / ``bar_repeated_transposed``: bars that repeat an earlier bar / bars after the first;
    - ``distinct_bars``: different bars (exact) per piece;
    - ``phrase_cadences``: phrase ends (every ``phrase_bars`` bars) with a cadence / phrases;
    - ``ends_on_tonic``: the last note is a tonic lasting at least a quarter, sounding to the end, per piece;
    - ``unique_climax``: a single highest note, per piece; ``climax_in_second_half``: that, in the second half.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    meter = Meter.parse(meter, vocab)
    count, length = tokens.shape
    num_bars = meter.bars(length)
    if num_bars < 1:
        raise ValueError(
            f"structure statistics need at least one {meter} bar ({meter.steps_per_bar} steps), got {length}"
        )
    exact, transposed = bar_repetition(tokens, meter)
    ones = np.ones(count)
    after_first = np.full(count, float(num_bars - 1))
    phrases = phrases_of(tokens, phrase_bars * meter.steps_per_bar)
    num_phrases = phrases.shape[1]
    cadences = (
        ends_with_cadence(phrases.reshape(count * num_phrases, -1), key, vocab).reshape(count, num_phrases).sum(axis=1)
        if num_phrases
        else np.zeros(count)
    )
    unique, step = climax(tokens)
    ends_on_tonic = ends_with_cadence(tokens, key, vocab, degrees=(1,), to_the_end=True)
    return {
        "bar_repeated_exact": (exact.sum(axis=1).astype(np.float64), after_first),
        "bar_repeated_transposed": (transposed.sum(axis=1).astype(np.float64), after_first),
        "distinct_bars": ((num_bars - exact.sum(axis=1)).astype(np.float64), ones),
        "phrase_cadences": (cadences.astype(np.float64), np.full(count, float(num_phrases))),
        "ends_on_tonic": (ends_on_tonic.astype(np.float64), ones),
        "unique_climax": (unique.astype(np.float64), ones),
        "climax_in_second_half": ((unique & (step >= length // 2)).astype(np.float64), ones),
    }


def structure_statistics(
    tokens: np.ndarray,
    meter: Meter | str = DEFAULT_METER,
    key: Key | str = "C major",
    vocab: Vocabulary = DEFAULT_VOCABULARY,
    phrase_bars: int = DEFAULT_PHRASE_BARS,
) -> dict[str, float]:
    """:func:`structure_counts` pooled over the pieces (``sum(num) / sum(den)``; NaN without a denominator)."""
    counts = structure_counts(tokens, meter, key, vocab, phrase_bars)
    return {name: _pooled(*counts[name]) for name in STRUCTURE_STATISTICS}


def _pooled(numerator: np.ndarray, denominator: np.ndarray) -> float:
    total = float(np.sum(denominator))
    return float(np.sum(numerator)) / total if total else float("nan")


def form_compliance_counts(
    tokens: np.ndarray, layout: FormLayout, vocab: Vocabulary = DEFAULT_VOCABULARY, threshold: float = SIMILAR
) -> dict[str, Ratio]:
    """Per piece, whether it follows ``layout``'s form: (1 or 0, 1) each.

    - ``returns_agree``: every returning phrase agrees with the first phrase of its label on at least
      ``threshold`` of its steps, and every variation's first half with its letter's first half;
    - ``contrasts_differ``: every new letter agrees with each earlier letter's first phrase on fewer, and
      every variation's second half with its letter's second half;
    - ``form_followed``: both.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    form, steps, half = layout.form, layout.phrase_steps, layout.half_steps
    pitch, onset = sounding_and_onsets(tokens, vocab)

    def share(first: int, second: int, width: int) -> np.ndarray:
        a, b = slice(first, first + width), slice(second, second + width)
        return agreement((pitch[:, a], onset[:, a]), (pitch[:, b], onset[:, b]), vocab) / width

    count = tokens.shape[0]
    agree = np.ones(count, dtype=bool)
    differ = np.ones(count, dtype=bool)
    firsts = [p for p, role in enumerate(form.roles) if role == NEW]
    for phrase, role in enumerate(form.roles):
        start, source = layout.start(phrase), layout.start(form.sources[phrase])
        if role == RETURN:
            agree &= share(source, start, steps) >= threshold
        elif role == VARIATION:
            agree &= share(source, start, half) >= threshold
            differ &= share(source + half, start + half, steps - half) < threshold
        else:
            for earlier in (p for p in firsts if p < phrase):
                differ &= share(layout.start(earlier), start, steps) < threshold
    ones = np.ones(count)
    return {
        "returns_agree": (agree.astype(np.float64), ones),
        "contrasts_differ": (differ.astype(np.float64), ones),
        "form_followed": ((agree & differ).astype(np.float64), ones),
    }


# ------------------------------------------------------------------------------ Table 1 on long pieces
def windowed_table1_counts(
    tokens: np.ndarray,
    meter: Meter | str = DEFAULT_METER,
    key: Key | str = "C major",
    vocab: Vocabulary = DEFAULT_VOCABULARY,
    window_bars: int = 2,
    paper_token_order: bool = False,
) -> dict[str, Ratio]:
    """Table 1's per-piece counts of long pieces, computed on bar-aligned windows of ``window_bars`` bars.

    RL Tuner's statistics describe 32-step (two-bar) compositions: their motif, autocorrelation and tonic
    rules read a piece from its start. A long piece is cut into consecutive windows starting on bar lines
    (a trailing partial window is dropped), :func:`table1_counts` scores every window as a composition, and
    each piece's numerators and denominators are summed over its windows. Pooled, a statistic is then the
    share over all windows (``starts_with_tonic``: of windows starting on the tonic; autocorrelations: the
    mean over varied windows), and the per-piece pairs bootstrap by piece, not by window.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    meter = Meter.parse(meter, vocab)
    window = window_bars * meter.steps_per_bar
    count, length = tokens.shape
    per_piece = length // window
    if per_piece < 1:
        raise ValueError(f"pieces of {length} steps hold no {window_bars}-bar window of {meter} ({window} steps)")
    windows = tokens[:, : per_piece * window].reshape(count * per_piece, window)
    counts = table1_counts(windows, key, vocab, paper_token_order)
    return {
        name: (numerator.reshape(count, per_piece).sum(axis=1), denominator.reshape(count, per_piece).sum(axis=1))
        for name, (numerator, denominator) in counts.items()
    }
