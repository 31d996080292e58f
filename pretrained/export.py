"""Write melodies as MIDI, MusicXML, WAV and npz files."""

from __future__ import annotations

import inspect
import json
import logging
import wave
from pathlib import Path

import numpy as np

from .encoding import tokens_to_pretty_midi, write_midi, write_musicxml
from .errors import UserInputError
from .meter import DEFAULT_METER, Meter
from .vocab import DEFAULT_VOCABULARY, Vocabulary

FORMATS = ("midi", "musicxml", "wav")
SAMPLE_RATE = 22050

logger = logging.getLogger(__name__)
_WARNED: set[str] = set()
"""Audio warnings already logged: a report renders many clips, and one line per cause is enough."""


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        logger.warning(message)


def soundfont_path() -> Path:
    """The General MIDI soundfont that pretty_midi ships (TimGM6mb.sf2)."""
    import pretty_midi

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def fluidsynth_available() -> bool:
    """True when pyfluidsynth imports; otherwise logs why (once) and audio falls back to sine waves."""
    try:
        import fluidsynth  # noqa: F401  (pyfluidsynth, which needs the libfluidsynth system library)
    except (ImportError, OSError) as error:
        _warn_once(
            f"fluidsynth is unavailable ({type(error).__name__}: {error}); audio falls back to sine waves "
            "(install the system library: apt-get install libfluidsynth3)"
        )
        return False
    return True


def render_audio(
    tokens: np.ndarray,
    vocab: Vocabulary = DEFAULT_VOCABULARY,
    tempo: float = 120.0,
    sample_rate: int = SAMPLE_RATE,
) -> tuple[np.ndarray, str]:
    """(mono float waveform in [-1, 1], renderer name): fluidsynth with a GM soundfont, else sine waves."""
    pm = tokens_to_pretty_midi(tokens, vocab, tempo)
    audio, renderer = None, "sine"
    if fluidsynth_available():
        try:
            # pretty_midi 0.2.11 renamed sf2_path to synthesizer (a path or a fluidsynth.Synth)
            renamed = "synthesizer" in inspect.signature(pm.fluidsynth).parameters
            soundfont = {"synthesizer" if renamed else "sf2_path": str(soundfont_path())}
            audio = pm.fluidsynth(fs=sample_rate, **soundfont)
            renderer = "fluidsynth"
        except Exception as error:  # a broken fluidsynth install falls back to sine synthesis, and says why
            _warn_once(
                f"fluidsynth failed to render audio ({type(error).__name__}: {error}); falling back to sine waves"
            )
            audio = None
    if audio is None:
        with np.errstate(invalid="ignore"):  # pretty_midi normalises a silent melody by 0: NaN, made silence
            audio = np.nan_to_num(pm.synthesize(fs=sample_rate), nan=0.0)
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak > 0:
        audio = 0.9 * audio / peak
    return audio.astype(np.float32), renderer


def write_wav(
    tokens: np.ndarray, path: str | Path, vocab: Vocabulary = DEFAULT_VOCABULARY, tempo: float = 120.0
) -> str:
    """Write a 16-bit mono WAV; returns the renderer used."""
    audio, renderer = render_audio(tokens, vocab, tempo)
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes(pcm.tobytes())
    return renderer


def export_melodies(
    tokens: np.ndarray,
    out: str | Path,
    formats: tuple[str, ...] = ("midi",),
    vocab: Vocabulary = DEFAULT_VOCABULARY,
    key: str | None = None,
    prefix: str = "sample",
    metadata: dict | None = None,
    primer: np.ndarray | None = None,
    meter: Meter | str = DEFAULT_METER,
) -> dict[str, int]:
    """Write ``samples.npz`` (array ``tokens``) and one file per melody and format; returns counts.

    A primer, if given, is prepended in the MIDI/MusicXML/WAV files but not in ``samples.npz``. MIDI and
    MusicXML files carry the ``meter`` and (given) the ``key``.
    """
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown format(s) {sorted(unknown)}; choose from {', '.join(FORMATS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out / "samples.npz",
        tokens=np.asarray(tokens, dtype=np.int64),
        vocabulary=np.array(json.dumps(vocab.to_dict())),
    )
    counts = {fmt: 0 for fmt in formats}
    renderers = set()
    width = len(str(max(len(tokens) - 1, 0)))
    for i, melody in enumerate(tokens):
        full = melody if primer is None else np.concatenate([primer, melody])
        stem = out / f"{prefix}_{i:0{width}d}"
        if "midi" in formats:
            write_midi(full, stem.with_suffix(".mid"), vocab, meter=meter, key=key)
            counts["midi"] += 1
        if "musicxml" in formats:
            write_musicxml(full, stem.with_suffix(".musicxml"), vocab, key, meter)
            counts["musicxml"] += 1
        if "wav" in formats:
            renderers.add(write_wav(full, stem.with_suffix(".wav"), vocab))
            counts["wav"] += 1
    info = {"count": len(tokens), "files": counts, "audio_renderer": sorted(renderers), **(metadata or {})}
    (out / "samples.json").write_text(json.dumps(info, indent=2) + "\n")
    return counts


def load_samples(path: str | Path, vocab: Vocabulary = DEFAULT_VOCABULARY, length: int | None = None) -> np.ndarray:
    """Tokens from a ``samples.npz`` (array ``tokens``) or a folder of MIDI files (cut/padded to ``length``)."""
    from .encoding import read_midi

    path = Path(path)
    if path.is_dir() and (path / "samples.npz").is_file():
        # `notetune sample` writes both; the npz keeps the exact token spelling, MIDI only the sound.
        path = path / "samples.npz"
    if path.is_file() and path.suffix == ".npz":
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise UserInputError(f"{path} is not a readable .npz file ({error}); give a samples.npz") from error
        with data:
            if "tokens" not in data:
                raise UserInputError(f"{path} has no array 'tokens' (found {', '.join(data.files)})")
            tokens = np.asarray(data["tokens"], dtype=np.int64)
        if tokens.ndim != 2:
            raise UserInputError(f"{path}: 'tokens' must be a 2-D array (melodies × steps), got shape {tokens.shape}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab.size):
            raise UserInputError(f"{path}: tokens outside the vocabulary 0..{vocab.size - 1}")
        return tokens if length is None else tokens[:, :length]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
        if not files:
            raise UserInputError(f"{path} holds no samples.npz and no MIDI files")
        length = length or 32
        rows = []
        for f in files:
            try:
                rows.append(read_midi(f, vocab, length))
            except Exception as error:  # a bad file is skipped, not fatal
                import logging

                logging.getLogger(__name__).warning("skipped %s: %s", f, error)
        if not rows:
            raise UserInputError(f"none of the {len(files)} MIDI files in {path} could be read")
        return np.stack(rows)
    raise UserInputError(f"{path}: expected a samples.npz file or a folder of MIDI files")
