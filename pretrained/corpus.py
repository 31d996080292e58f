"""Build the training corpus: monophonic melodies from music21's bundled corpus and MIDI folders,
transposed to C major / A minor and written as one compact token file.

The token file (npz) holds ``tokens`` (all melodies concatenated, uint8), ``offsets`` (n + 1 melody
boundaries), ``source`` (where each melody came from), ``original_key`` and ``transposition``
(semitones applied, octave shifts included), ``meter`` (the time signature at the first note, e.g.
``"6/8"``; ``""`` when the file gives none) and ``pickup`` (steps from the first note to the first bar
line: the anacrusis; 0 when the melody starts on a downbeat). Key analysis uses music21 here, at build
time only. Files written before meters were recorded load with ``meter`` = ``""`` and ``pickup`` = 0.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .encoding import NoteEvent, canonicalize, notes_to_tokens
from .errors import UserInputError
from .vocab import DEFAULT_VOCABULARY, HOLD, NUM_SPECIAL, REST, Vocabulary

logger = logging.getLogger(__name__)

DEFAULT_CORPUS = Path(__file__).parent / "data" / "corpus.npz"
MUSIC21_COLLECTIONS = ("essenFolksong", "oneills1850", "ryansMammoth", "airdsAirs", "miscFolk", "bach")
MIDI_SUFFIXES = (".mid", ".midi", ".MID", ".MIDI")
MAX_MIDI_BYTES = 8 * 1024 * 1024
MIN_NOTES = 8
MIN_STEPS = 32
MAX_STEPS = 65_536  # 68 minutes at 120 bpm; longer is a broken file, not a melody


class CorpusError(UserInputError):
    """The corpus cannot be built or read."""


@dataclass(frozen=True)
class Job:
    """One unit of parsing work: an ABC tune's text, a MusicXML path or a MIDI path."""

    kind: str  # "abc" | "musicxml" | "midi"
    source: str  # e.g. "oneills1850/0001-0050.abc#X:1" or a file path
    payload: str  # ABC text or a file path
    collection: str = ""
    """What the JSON summary counts the melody under: the music21 collection or the MIDI folder."""


@dataclass
class Melody:
    tokens: np.ndarray
    source: str
    original_key: str
    transposition: int
    rounded: bool = False
    meter: str = ""
    """Time signature at the first note ("4/4", "6/8", ...; "" if unknown)."""
    collection: str = ""
    """The music21 collection or MIDI folder it came from."""
    pickup: int = 0
    """Steps from the first note to the first bar line (the anacrusis; 0 = starts on a downbeat)."""


@dataclass
class Skipped:
    source: str
    reason: str
    detail: str = ""


@dataclass
class BuildSummary:
    melodies: int = 0
    tokens: int = 0
    skipped: Counter = field(default_factory=Counter)
    rounded_to_grid: int = 0
    duplicates_removed: int = 0
    sources: Counter = field(default_factory=Counter)
    skipped_files: list = field(default_factory=list)
    token_shares: dict = field(default_factory=dict)
    sha256: str = ""

    def to_dict(self) -> dict:
        return {
            "melodies": self.melodies,
            "tokens": self.tokens,
            "skipped": dict(sorted(self.skipped.items())),
            "rounded_to_grid": self.rounded_to_grid,
            "duplicates_removed": self.duplicates_removed,
            "sources": dict(sorted(self.sources.items())),
            "skipped_files": [{"source": s, "reason": r} for s, r in self.skipped_files],
            "token_shares": self.token_shares,
            "sha256": self.sha256,
        }


# ----------------------------------------------------------------------------------------- jobs


def split_abc_tunes(text: str) -> list[str]:
    """Split an ABC file into its tunes (each begins at an ``X:`` line); file-header fields are kept."""
    parts = re.split(r"(?m)^(?=X:)", text)
    header = "" if parts[0].lstrip().startswith("X:") else parts.pop(0)
    header_fields = "\n".join(line for line in header.splitlines() if re.match(r"^[A-Za-z]:", line))
    tunes = []
    for part in parts:
        if not part.strip():
            continue
        first, _, rest = part.partition("\n")
        tunes.append(f"{first}\n{header_fields}\n{rest}" if header_fields else part)
    return tunes


def music21_jobs(collections: Iterable[str] = MUSIC21_COLLECTIONS) -> Iterator[Job]:
    """Jobs for the monophonic melodies bundled with music21 (Bach: the soprano line of each chorale)."""
    import music21

    root = Path(music21.__file__).parent / "corpus"
    for collection in collections:
        folder = root / collection
        if not folder.is_dir():
            raise CorpusError(f"music21 collection {collection!r} not found under {root}")
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.suffix == ".abc":
                text = path.read_text(encoding="latin-1")
                for tune in split_abc_tunes(text):
                    number = re.match(r"X:\s*(\S*)", tune)
                    yield Job("abc", f"{rel}#X:{number.group(1) if number else '?'}", tune, collection)
            elif collection == "bach" and path.suffix in (".mxl", ".xml"):
                yield Job("musicxml", rel, str(path), collection)


def midi_jobs(folder: str | Path) -> Iterator[Job]:
    folder = Path(folder)
    if not folder.is_dir():
        raise CorpusError(f"MIDI folder {folder} does not exist")
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in MIDI_SUFFIXES:
            yield Job("midi", str(path), str(path), str(folder))


# ------------------------------------------------------------------------------------- parsing


def _notes_from_music21(score) -> tuple[list[tuple[float, float, int]], object]:
    """(offset, quarterLength, pitch) of the top line of the first part, ties merged."""
    from music21 import chord, note

    parts = getattr(score, "parts", None)
    part = parts[0] if parts is not None and len(parts) else score
    # In place: the score is ours alone, and copying it first was a fifth of the parsing time.
    part.stripTies(inPlace=True)
    flat = part.flatten()
    events = []
    for element in flat.notes:
        if element.duration.isGrace or element.quarterLength <= 0:
            continue
        if isinstance(element, chord.Chord):
            pitch = max(p.midi for p in element.pitches)
        elif isinstance(element, note.Note):
            pitch = element.pitch.midi
        else:
            continue
        events.append((float(element.offset), float(element.quarterLength), int(pitch)))
    return events, part


def meter_and_pickup_music21(part, first_offset: float, steps_per_quarter: int) -> tuple[str, int]:
    """(time signature at the first note, steps from the first note to the next bar line) of a music21 part.

    The bar line is the end of the measure holding the first note, so a short first measure (an ABC or
    MusicXML pickup bar) and a tune that opens with a rest both count; without measures the pickup is 0.
    """
    from music21 import meter, stream

    signatures = part.recurse().getElementsByClass(meter.TimeSignature)
    signature = signatures.first() if hasattr(signatures, "first") else next(iter(signatures), None)
    name = signature.ratioString if signature is not None else ""
    measures = list(part.getElementsByClass(stream.Measure))
    if not measures or signature is None:
        return name, 0
    bar_steps = int(round(signature.barDuration.quarterLength * steps_per_quarter))
    for measure in measures:
        end = float(measure.offset) + float(measure.duration.quarterLength)
        if float(measure.offset) <= first_offset + 1e-9 < end:
            return name, int(round((end - first_offset) * steps_per_quarter)) % max(bar_steps, 1)
    return name, 0


def meter_and_pickup_midi(pm, first_tick: float, steps_per_quarter: int) -> tuple[str, int]:
    """(time signature at the first note, steps from it to the next downbeat) of a pretty_midi file."""
    changes = [ts for ts in pm.time_signature_changes if pm.time_to_tick(ts.time) <= first_tick + 1e-6]
    signature = changes[-1] if changes else (pm.time_signature_changes[0] if pm.time_signature_changes else None)
    if signature is None:
        return "", 0
    ticks_per_step = pm.resolution / steps_per_quarter
    bar_steps = int(round(signature.numerator * 4 / signature.denominator * steps_per_quarter))
    since = (first_tick - pm.time_to_tick(signature.time)) / ticks_per_step
    return f"{signature.numerator}/{signature.denominator}", int(round(-since)) % max(bar_steps, 1)


def quantize(events: list[tuple[float, float, int]], steps_per_quarter: int) -> tuple[list[NoteEvent], bool, bool]:
    """Notes on the step grid; returns (notes, rounded, collided). Starts at the first note."""
    if not events:
        return [], False, False
    events.sort()
    first = events[0][0]
    notes, rounded, starts = [], False, set()
    for offset, length, pitch in events:
        start_f = (offset - first) * steps_per_quarter
        end_f = (offset - first + length) * steps_per_quarter
        start, end = int(round(start_f)), int(round(end_f))
        if abs(start_f - start) > 1e-6 or abs(end_f - end) > 1e-6:
            rounded = True
        if start in starts:
            return notes, rounded, True
        starts.add(start)
        notes.append(NoteEvent(start, max(end, start + 1), pitch))
    return notes, rounded, False


# music21's ``Stream.analyze("key")`` profiles (analysis.discrete.AardenEssen).
AARDEN_ESSEN_WEIGHTS = {
    "major": (
        *(17.7661, 0.145624, 14.9265, 0.160186, 19.8049, 11.3587),
        *(0.291248, 22.062, 0.145624, 8.15494, 0.232998, 4.95122),
    ),
    "minor": (
        *(18.2648, 0.737619, 14.0499, 16.8599, 0.702494, 14.4362),
        *(0.702494, 18.6161, 4.56621, 1.93186, 7.37619, 1.75623),
    ),
}


def _key_correlations(distribution: list[float], weights: tuple[float, ...]) -> list[float]:
    """Pearson correlation of the pitch-class distribution with the profile rotated to each tonic,
    accumulated in the order music21 uses, so ties and rounding resolve exactly as there."""
    profile_mean = sum(weights) / len(weights)
    histogram_mean = sum(distribution) / len(distribution)
    result = [0.0] * 12
    for tonic in range(12):
        top = right = left = 0.0
        for pc in range(12):
            top += (weights[(pc - tonic) % 12] - profile_mean) * (distribution[pc] - histogram_mean)
            right += (weights[(pc - tonic) % 12] - profile_mean) ** 2
            left += (distribution[pc] - histogram_mean) ** 2
        result[tonic] = 0.0 if right == 0 or left == 0 else float(top / ((right * left) ** 0.5))
    return result


def analyze_key(notes: list[NoteEvent], steps_per_quarter: int = 4) -> tuple[int, str]:
    """(tonic pitch class, "major"|"minor") — music21's ``analyze("key")`` (Aarden-Essen profiles,
    duration-weighted pitch classes) computed directly: building music21's Key objects and scales for
    all 24 candidates was half of the corpus build's time, for the same answer."""
    distribution = [0.0] * 12
    for n in notes:
        distribution[n.pitch % 12] += (n.end - n.start) / steps_per_quarter
    candidates = []
    for mode, weights in AARDEN_ESSEN_WEIGHTS.items():
        candidates += [(r, tonic, mode) for tonic, r in enumerate(_key_correlations(distribution, weights))]
    _, tonic, mode = max(candidates)  # music21 sorts (coefficient, tonic, mode) and takes the last
    return tonic, mode


def analyze_key_music21(notes: list[NoteEvent], steps_per_quarter: int = 4) -> tuple[int, str]:
    """The same analysis through music21 itself (slow; kept to test :func:`analyze_key` against)."""
    from music21 import note, stream

    s = stream.Stream()
    for n in notes:  # coreInsert + one coreElementsChanged: insert() re-sorts each time (quadratic)
        s.coreInsert(
            n.start / steps_per_quarter, note.Note(n.pitch, quarterLength=(n.end - n.start) / steps_per_quarter)
        )
    s.coreElementsChanged()
    k = s.analyze("key")
    return int(k.tonic.pitchClass), str(k.mode)


def transposition_to_c(tonic: int, mode: str, pitches: np.ndarray, vocab: Vocabulary) -> int | None:
    """Semitones that move the melody to C major / A minor and inside the pitch range (None if impossible)."""
    target = 0 if mode == "major" else 9
    shift = (target - tonic) % 12
    if shift > 6:
        shift -= 12
    low, high = int(pitches.min()) + shift, int(pitches.max()) + shift
    for octaves in sorted(range(-4, 5), key=abs):
        if vocab.min_pitch <= low + 12 * octaves and high + 12 * octaves <= vocab.max_pitch:
            return shift + 12 * octaves
    return None


def _melody_from_notes(
    job: Job, notes: list[NoteEvent], rounded: bool, vocab: Vocabulary, meter: str = "", pickup: int = 0
) -> Melody | Skipped:
    if len(notes) < MIN_NOTES or notes[-1].end < MIN_STEPS:
        return Skipped(job.source, "too_short", f"{len(notes)} notes")
    if max(n.end for n in notes) > MAX_STEPS:
        return Skipped(job.source, "too_long", f"{max(n.end for n in notes)} steps (limit {MAX_STEPS})")
    tonic, mode = analyze_key(notes, vocab.steps_per_quarter)
    pitches = np.array([n.pitch for n in notes])
    shift = transposition_to_c(tonic, mode, pitches, vocab)
    if shift is None:
        return Skipped(job.source, "out_of_range", f"span {pitches.max() - pitches.min()} semitones")
    shifted = [NoteEvent(n.start, n.end, n.pitch + shift) for n in notes]
    tokens = canonicalize(notes_to_tokens(shifted, vocab))
    names = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
    return Melody(
        tokens.astype(np.uint8), job.source, f"{names[tonic]} {mode}", shift, rounded, meter, job.collection, pickup
    )


@contextmanager
def _without_beaming() -> Iterator[None]:
    """music21's ABC reader beams every part it reads (``makeBeams``): engraving only — it changes no
    pitch, onset or duration — and a third of the parsing time. Skipped while the corpus is read."""
    from music21 import stream

    original = stream.Stream.makeBeams
    stream.Stream.makeBeams = lambda self, *args, **kwargs: None if kwargs.get("inPlace") else self
    try:
        yield
    finally:
        stream.Stream.makeBeams = original


def parse_job(job: Job, vocab: Vocabulary = DEFAULT_VOCABULARY) -> Melody | Skipped:
    """Parse one job into a melody, or say why it was skipped. Never raises for bad input."""
    try:
        if job.kind == "midi":
            return _parse_midi(job, vocab)
        from music21 import converter

        with warnings.catch_warnings(), _without_beaming():
            warnings.simplefilter("ignore")
            if job.kind == "abc":
                score = converter.parse(job.payload, format="abc")
            else:  # no pickle cache: writing and re-reading one took as long as parsing the chorale
                score = converter.parse(job.payload, forceSource=True, storePickle=False)
        events, part = _notes_from_music21(score)
        notes, rounded, collided = quantize(events, vocab.steps_per_quarter)
        if collided:
            return Skipped(job.source, "two_notes_on_one_step", "triplets or 32nds collide on the 16th grid")
        first = min(offset for offset, _, _ in events) if events else 0.0
        meter, pickup = meter_and_pickup_music21(part, first, vocab.steps_per_quarter)
        return _melody_from_notes(job, notes, rounded, vocab, meter, pickup)
    except Exception as error:  # a corrupt file must never stop the build
        return Skipped(job.source, "unreadable", f"{type(error).__name__}: {error}"[:200])


def _parse_midi(job: Job, vocab: Vocabulary) -> Melody | Skipped:
    import pretty_midi

    from .encoding import choose_melody_instrument, pretty_midi_to_notes

    size = os.path.getsize(job.payload)
    if size == 0:
        return Skipped(job.source, "empty", "0 bytes")
    if size > MAX_MIDI_BYTES:
        return Skipped(job.source, "too_large", f"{size} bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pm = pretty_midi.PrettyMIDI(job.payload)
    except Exception as error:
        return Skipped(job.source, "corrupt", f"{type(error).__name__}: {error}"[:200])
    if not any(inst.notes for inst in pm.instruments):
        return Skipped(job.source, "empty", "no notes")
    instrument = choose_melody_instrument(pm)
    if instrument is None:
        return Skipped(job.source, "drums_only", "only drum tracks")
    if all(n.end <= n.start for n in instrument.notes):
        return Skipped(job.source, "zero_length", "every note lasts 0 seconds")
    notes = pretty_midi_to_notes(pm, vocab.steps_per_quarter, instrument)
    if not notes:
        return Skipped(job.source, "empty", "no notes")
    first = min(n.start for n in notes)
    meter, pickup = meter_and_pickup_midi(pm, first * pm.resolution / vocab.steps_per_quarter, vocab.steps_per_quarter)
    # Reduce polyphony to the top line: at each onset step keep the highest pitch.
    top: dict[int, NoteEvent] = {}
    for n in notes:
        n = NoteEvent(n.start - first, n.end - first, n.pitch)
        if n.start not in top or n.pitch > top[n.start].pitch:
            top[n.start] = n
    ordered = [top[s] for s in sorted(top)]
    return _melody_from_notes(job, ordered, False, vocab, meter, pickup)


# ---------------------------------------------------------------------------------------- build


def build_corpus(
    jobs: Iterable[Job],
    out: str | Path,
    vocab: Vocabulary = DEFAULT_VOCABULARY,
    workers: int | None = None,
    progress: bool = True,
) -> BuildSummary:
    """Parse every job (in parallel), drop duplicates and write the token file and a JSON summary beside it."""
    jobs = list(jobs)
    workers = workers or min(2, os.cpu_count() or 1)
    summary = BuildSummary()
    melodies: list[Melody] = []
    results: Iterator[Melody | Skipped]
    if workers > 1 and len(jobs) > 1:
        executor = ProcessPoolExecutor(max_workers=workers)
        results = executor.map(parse_job, jobs, [vocab] * len(jobs), chunksize=8)
    else:
        executor = None
        results = (parse_job(job, vocab) for job in jobs)
    try:
        for result in _with_progress(results, len(jobs), progress):
            if isinstance(result, Skipped):
                summary.skipped[result.reason] += 1
                summary.skipped_files.append((result.source, result.reason))
                if result.reason not in ("too_short",):
                    logger.warning("skipped %s: %s (%s)", result.source, result.reason, result.detail)
            else:
                melodies.append(result)
    finally:
        if executor is not None:
            executor.shutdown()
    seen: set[bytes] = set()
    unique: list[Melody] = []
    for melody in melodies:
        key = melody.tokens.tobytes()
        if key in seen:
            summary.duplicates_removed += 1
            continue
        seen.add(key)
        unique.append(melody)
    if not unique:
        raise CorpusError(
            f"the corpus is empty: {len(jobs)} inputs gave no usable melody "
            f"(skipped: {dict(summary.skipped) or 'none'}); add MIDI files or music21 collections"
        )
    write_corpus(unique, out, vocab, summary)
    return summary


def _with_progress(results: Iterator, total: int, enabled: bool) -> Iterator:
    if not enabled:
        yield from results
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("corpus"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()) as bar:
        task = bar.add_task("parse", total=total)
        for result in results:
            bar.advance(task)
            yield result


def write_corpus(melodies: list[Melody], out: str | Path, vocab: Vocabulary, summary: BuildSummary) -> None:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lengths = np.array([len(m.tokens) for m in melodies], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    tokens = np.concatenate([m.tokens for m in melodies]).astype(np.uint8)
    tmp = out.with_suffix(".tmp.npz")
    np.savez_compressed(
        tmp,
        tokens=tokens,
        offsets=offsets,
        source=np.array([m.source for m in melodies]),
        original_key=np.array([m.original_key for m in melodies]),
        transposition=np.array([m.transposition for m in melodies], dtype=np.int8),
        meter=np.array([m.meter for m in melodies], dtype=str),
        pickup=np.array([m.pickup for m in melodies], dtype=np.int16),
        vocabulary=np.array(json.dumps(vocab.to_dict())),
    )
    os.replace(tmp, out)
    summary.melodies = len(melodies)
    summary.tokens = int(len(tokens))
    summary.rounded_to_grid = sum(m.rounded for m in melodies)
    summary.sources = Counter(m.collection or m.source.split("/")[0] or "midi" for m in melodies)
    summary.token_shares = {
        "hold": round(float(np.mean(tokens == HOLD)), 4),
        "rest": round(float(np.mean(tokens == REST)), 4),
        "onset": round(float(np.mean(tokens >= NUM_SPECIAL)), 4),
    }
    summary.sha256 = file_sha256(out)
    out.with_suffix(".json").write_text(json.dumps(summary.to_dict(), indent=2) + "\n")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------- read


@dataclass
class Corpus:
    """A loaded token file."""

    tokens: np.ndarray
    offsets: np.ndarray
    source: np.ndarray
    vocab: Vocabulary
    sha256: str
    meter: np.ndarray | None = None
    """Time signature of each melody ("" where unknown or the file predates meters)."""
    pickup: np.ndarray | None = None
    """Steps before each melody's first bar line (0 where unknown or the file predates pickups)."""

    def __post_init__(self) -> None:
        if self.meter is None:
            self.meter = np.full(len(self), "", dtype="<U1")
        if self.pickup is None:
            self.pickup = np.zeros(len(self), dtype=np.int64)

    def bar_steps(self, index: int, default: int = 16) -> int:
        """Steps per bar of melody ``index`` from its meter (``default`` when the meter is unknown)."""
        return meter_bar_steps(str(self.meter[index]), self.vocab.steps_per_quarter) or default

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def melody(self, index: int) -> np.ndarray:
        return self.tokens[self.offsets[index] : self.offsets[index + 1]]

    def melodies(self) -> list[np.ndarray]:
        return [self.melody(i) for i in range(len(self))]

    def windows(
        self, length: int = 32, step: int | None = None, from_start_only: bool = False, bar_aligned: bool = False
    ) -> np.ndarray:
        """Windows (n, length) from every melody, for statistics against human music.

        Windows start at each melody's first token; with ``bar_aligned`` they start at its first bar line
        instead (after the pickup), so window boundaries fall on bar lines.
        """
        step = step or length
        rows = []
        for i in range(len(self)):
            melody = self.melody(i)
            first = int(self.pickup[i]) if bar_aligned else 0
            starts = [first] if from_start_only else range(first, len(melody) - length + 1, step)
            rows.extend(melody[s : s + length] for s in starts if s + length <= len(melody))
        return canonicalize(np.stack(rows)) if rows else np.zeros((0, length), dtype=np.int64)


def meter_bar_steps(meter: str, steps_per_quarter: int = 4) -> int:
    """Steps per bar of a time signature such as "6/8" (0 if it cannot be read)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", meter or "")
    if not match or int(match.group(2)) == 0:
        return 0
    return int(round(int(match.group(1)) * 4 / int(match.group(2)) * steps_per_quarter))


def load_corpus(path: str | Path) -> Corpus:
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"corpus file {path} not found; build one with `notetune corpus build --out {path}`")
    try:
        with np.load(path, allow_pickle=False) as data:
            vocab = Vocabulary.from_dict(json.loads(str(data["vocabulary"])))
            if len(data["tokens"]) and int(data["tokens"].max()) >= vocab.size:
                raise ValueError(f"token {int(data['tokens'].max())} is outside its vocabulary of {vocab.size}")
            names = set(data.files)
            return Corpus(
                data["tokens"].astype(np.int64),
                data["offsets"],
                data["source"],
                vocab,
                file_sha256(path),
                meter=data["meter"] if "meter" in names else None,
                pickup=data["pickup"].astype(np.int64) if "pickup" in names else None,
            )
    except (KeyError, ValueError, OSError) as error:
        raise CorpusError(
            f"{path} is not a notetune corpus file ({error}); rebuild it with `notetune corpus build`"
        ) from error
