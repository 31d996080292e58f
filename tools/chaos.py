"""``make chaos``: the slow reliability checks, each run the way a user would hit it.

- corpus: a folder of bad MIDI files (empty, text, random bytes, truncated, bit-flipped, drum-only, multi-track,
  20 tracks, no notes, zero-length notes, absurd tempos, out-of-range pitches, a file over the size limit, one
  with thousands of notes, one with a note lasting hours) built by ``notetune corpus build --workers 2``: every
  bad file must be skipped and counted, every good one kept, and the build must not crash.
- kills: a tuning run (G major, with a primer and a constraint) is SIGKILLed at random moments and resumed with
  ``notetune tune --resume``; once, the newest checkpoint is truncated on disk first and must be passed over.
  The run must end with the configured number of steps, a verified checkpoint and a loadable model.
- determinism: ``notetune sample`` and a short tuning run, each twice in fresh processes with one seed, must
  write byte-identical files.

Prints what was tried and what survived, writes ``chaos.json`` into ``--out``, exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mido
import numpy as np

LONG_PIECE_SECONDS = 60
"""Most time one long (but ordinary) MIDI file may take to parse."""
MEMORY_LIMIT = 6 * 2**30
"""Address-space limit of every child process, so a runaway allocation fails instead of hurting the machine."""


@dataclass
class Stage:
    """What one chaos stage tried, what survived, and what failed."""

    name: str
    tried: dict[str, int] = field(default_factory=dict)
    survived: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def check(self, ok: bool, failure: str) -> bool:
        if not ok:
            self.failures.append(failure)
        return ok


def notetune(*args: str) -> subprocess.Popen:
    """Start ``notetune ARGS`` in a fresh Python process (memory-limited, one torch thread)."""
    return subprocess.Popen(
        [sys.executable, "-m", "notetune.scripts.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_limit_memory,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def finish(process: subprocess.Popen, timeout: float = 1800) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        return -999, out, err + f"\n(timed out after {timeout:.0f} s)"
    return process.returncode, out, err


def tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------- corpus


def _midi(
    path: Path,
    tracks: list[list[tuple[int, int, int]]],
    ticks_per_beat: int = 480,
    drum_tracks: tuple[int, ...] = (),
    tempo: int | None = None,
) -> None:
    """Write (start_tick, end_tick, pitch) notes, one list per track, with mido (no checks on purpose)."""
    midi = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    for index, notes in enumerate(tracks):
        track = mido.MidiTrack()
        if tempo is not None and index == 0:
            track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
        channel = 9 if index in drum_tracks else index % 9
        # At one tick: endings of sounding notes, then onsets, then endings of zero-length notes.
        events = sorted([(s, 1, p) for s, _, p in notes] + [(e, 0 if e > s else 2, p) for s, e, p in notes])
        now = 0
        for tick, order, pitch in events:
            kind = "note_on" if order == 1 else "note_off"
            velocity = 90 if kind == "note_on" else 0
            track.append(mido.Message(kind, note=pitch, velocity=velocity, channel=channel, time=tick - now))
            now = tick
        midi.tracks.append(track)
    midi.save(str(path))


def _melody(rng: random.Random, count: int = 40, low: int = 57, high: int = 79) -> list[tuple[int, int, int]]:
    """A C-major melody of eighth and quarter notes (480 ticks per quarter)."""
    pitch, tick, notes = 67, 0, []
    for _ in range(count):
        pitch = min(max(pitch + rng.choice([-4, -3, -2, -1, 1, 2, 3, 5]), low), high)
        if pitch % 12 in (1, 3, 6, 8, 10):
            pitch += 1
        length = rng.choice([240, 240, 480])
        notes.append((tick, tick + length, pitch))
        tick += length
    return notes


def write_bad_corpus(folder: Path, seed: int, huge_mb: int) -> dict[str, set[str]]:
    """Write the chaos corpus; returns file name → the outcomes that count as surviving it."""
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    expected: dict[str, set[str]] = {}
    for i in range(4):
        _midi(folder / f"good_{i}.mid", [_melody(rng)])
        expected[f"good_{i}.mid"] = {"kept"}
    valid = (folder / "good_0.mid").read_bytes()
    (folder / "empty.mid").write_bytes(b"")
    (folder / "text.mid").write_text("a shopping list, not a MIDI file\n")
    expected.update({"empty.mid": {"empty"}, "text.mid": {"corrupt"}})
    for i in range(5):
        (folder / f"noise_{i}.mid").write_bytes(rng.randbytes(rng.randint(1, 4000)))
        expected[f"noise_{i}.mid"] = {"corrupt", "empty"}
    for i in range(2):
        junk = rng.randbytes(rng.randint(10, 500))
        (folder / f"header_then_junk_{i}.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0" + junk)
        expected[f"header_then_junk_{i}.mid"] = {"corrupt", "empty"}
    for i, cut in enumerate(sorted(rng.sample(range(1, len(valid) - 1), 6))):
        (folder / f"truncated_{i}.mid").write_bytes(valid[:cut])
        expected[f"truncated_{i}.mid"] = {"corrupt", "empty"}
    for i in range(6):
        flipped = bytearray(valid)
        for position in rng.sample(range(len(valid)), 8):
            flipped[position] = rng.randrange(256)
        (folder / f"bit_flipped_{i}.mid").write_bytes(bytes(flipped))
        expected[f"bit_flipped_{i}.mid"] = {
            "kept",
            "duplicate",
            "corrupt",
            "empty",
            "too_short",
            "out_of_range",
            "zero_length",
            "two_notes_on_one_step",
            "unreadable",
            "drums_only",
        }
    drums = [(i * 240, i * 240 + 120, rng.choice([36, 38, 42, 46])) for i in range(64)]
    _midi(folder / "drums_only.mid", [drums], drum_tracks=(0,))
    _midi(folder / "drums_two_kits.mid", [drums, drums], drum_tracks=(0, 1))
    expected.update({"drums_only.mid": {"drums_only"}, "drums_two_kits.mid": {"drums_only"}})
    for i in range(2):
        melody = _melody(rng)
        bass = [(s, e, p - 24) for s, e, p in melody[::2]]
        _midi(folder / f"band_{i}.mid", [bass, drums, melody], drum_tracks=(1,))
        expected[f"band_{i}.mid"] = {"kept"}
    _midi(folder / "twenty_tracks.mid", [_melody(rng, 12, 40 + i, 60 + i) for i in range(20)])
    expected["twenty_tracks.mid"] = {"kept", "out_of_range", "too_short", "two_notes_on_one_step"}
    _midi(folder / "no_notes.mid", [[]])
    _midi(folder / "zero_length_notes.mid", [[(i * 240, i * 240, 60 + i % 12) for i in range(40)]])
    _midi(folder / "out_of_range.mid", [[(i * 240, i * 240 + 240, 10 + (i * 37) % 110) for i in range(40)]])
    _midi(folder / "tempo_1_microsecond.mid", [_melody(rng)], tempo=1)
    _midi(folder / "tempo_16_seconds.mid", [_melody(rng)], tempo=16_000_000)
    expected.update(
        {
            "no_notes.mid": {"empty"},
            "zero_length_notes.mid": {"zero_length", "too_short", "empty"},
            "out_of_range.mid": {"out_of_range"},
            "tempo_1_microsecond.mid": {"kept", "duplicate"},
            "tempo_16_seconds.mid": {"kept", "duplicate"},
        }
    )
    with open(folder / "huge.mid", "wb") as f:  # a valid file followed by megabytes of junk
        f.write(valid)
        f.write(b"\x00" * (huge_mb * 2**20))
    expected["huge.mid"] = {"too_large"}
    # One note lasting ~10 million ticks at 1 tick per quarter: 40 million 16th-note steps from 100 bytes.
    _midi(
        folder / "note_lasting_hours.mid",
        [[(i, i + 1, 60 + i) for i in range(9)] + [(9, 9_999_000, 69)]],
        ticks_per_beat=1,
    )
    expected.update(
        {
            # 40 million steps from 100 bytes: keeping it costs gigabytes of memory per worker.
            "note_lasting_hours.mid": {"too_long", "corrupt", "unreadable"},
        }
    )
    return expected


def corpus_stage(out: Path, seed: int, huge_mb: int, many_notes: int) -> Stage:
    stage = Stage("corpus")
    folder = out / "bad_midi"
    expected = write_bad_corpus(folder, seed, huge_mb)
    stage.tried["files"] = len(expected)
    stage.tried["bad files"] = sum(not name.startswith(("good_", "band_")) for name in expected)
    started = time.monotonic()
    code, stdout, stderr = finish(
        notetune(
            "corpus", "build", "--no-music21", "--midi", str(folder), "--out", str(out / "corpus.npz"), "--workers", "2"
        ),
        timeout=3600,
    )
    stage.notes.append(f"corpus build took {time.monotonic() - started:.0f} s")
    if not stage.check(code == 0, f"corpus build exited {code}: {tail(stderr)}"):
        return stage
    summary = json.loads((out / "corpus.json").read_text())
    skipped = {Path(item["source"]).name: item["reason"] for item in summary["skipped_files"]}
    with np.load(out / "corpus.npz", allow_pickle=False) as data:
        kept = {Path(str(source)).name for source in data["source"]}
        lengths = np.diff(data["offsets"])
        longest = int(lengths.max()) if len(lengths) else 0
        longest_name = Path(str(data["source"][int(np.argmax(lengths))])).name if len(lengths) else ""
    accounted = len(kept) + len(skipped) + summary["duplicates_removed"]
    stage.check(accounted == len(expected), f"{len(expected)} files in, {accounted} accounted for")
    for name, outcomes in sorted(expected.items()):
        outcome = "kept" if name in kept else skipped.get(name, "duplicate")
        if stage.check(outcome in outcomes, f"{name}: {outcome}, expected {' or '.join(sorted(outcomes))}"):
            stage.survived[outcome] = stage.survived.get(outcome, 0) + 1
    stage.notes.append(f"skipped by reason: {summary['skipped']}; kept {summary['melodies']} melodies")
    stage.notes.append(f"longest kept melody: {longest:,} steps ({longest_name})")
    # A long piece (a piano sonata has ~20,000 notes, ~160 KB of MIDI), timed on its own.
    long_piece = out / "long_piece.mid"
    _midi(long_piece, [[(i * 120, i * 120 + 120, 60 + (i * 7) % 24) for i in range(many_notes)]])
    from notetune.pretrained.corpus import Job, parse_job

    stage.tried["files"] += 1
    started = time.monotonic()
    result = parse_job(Job("midi", str(long_piece), str(long_piece)))
    seconds = time.monotonic() - started
    outcome = getattr(result, "reason", "kept")
    stage.notes.append(
        f"long_piece.mid ({many_notes:,} notes, {long_piece.stat().st_size // 1024} KB): "
        f"{outcome} after {seconds:.0f} s"
    )
    if stage.check(
        seconds < LONG_PIECE_SECONDS,
        f"long_piece.mid took {seconds:.0f} s to parse "
        f"(limit {LONG_PIECE_SECONDS} s): one long file stalls a corpus build",
    ):
        stage.survived[outcome] = stage.survived.get(outcome, 0) + 1
    return stage


# -------------------------------------------------------------------------------------------- kills


def _tiny_prior_and_corpus(out: Path) -> tuple[Path, Path]:
    import torch
    from notetune.pretrained.checkpoint import save_checkpoint
    from notetune.pretrained.corpus import BuildSummary, Melody, write_corpus
    from notetune.pretrained.model import NoteRNN, NoteRNNConfig
    from notetune.pretrained.vocab import DEFAULT_VOCABULARY, HOLD

    torch.manual_seed(0)
    prior = out / "tiny_prior"
    save_checkpoint(NoteRNN(NoteRNNConfig(embedding_dim=8, hidden_size=16)).eval(), prior, extra={"key": "C major"})
    rng = np.random.default_rng(0)
    scale = DEFAULT_VOCABULARY.pitch_to_token(np.array([48, 50, 52, 53, 55, 57, 59, 60, 62, 64, 65, 67, 69, 71, 72]))
    melodies = [
        Melody(rng.choice(np.concatenate([scale, [HOLD] * 3]), 64).astype(np.uint8), f"synthetic/{i}", "C major", 0)
        for i in range(40)
    ]
    corpus = out / "tiny_corpus.npz"
    write_corpus(melodies, corpus, DEFAULT_VOCABULARY, BuildSummary())
    return prior, corpus


def kill_stage(out: Path, seed: int, kills: int, steps: int) -> Stage:
    from notetune.agents.checkpoints import list_checkpoints, verify_checkpoint
    from notetune.agents.run import load_run
    from notetune.pretrained.checkpoint import load_checkpoint
    from notetune.pretrained.sampling import sample_tokens

    stage = Stage("kills")
    rng = random.Random(seed)
    prior, corpus = _tiny_prior_and_corpus(out)
    run = out / "run"
    command = [
        "tune",
        "--prior",
        str(prior),
        "--corpus",
        str(corpus),
        "--out",
        str(run),
        "--length",
        "8",
        "--num-envs",
        "64",
        "--steps",
        str(steps),
        "--max-minutes",
        "0",
        "--eval-every",
        "65536",
        "--eval-size",
        "128",
        "--confirm-size",
        "256",
        "--checkpoint-every",
        "2048",
        "--threads",
        "1",
        "--no-progress",
        "--key",
        "G major",
        "--primer",
        "67 _ 71 _ 74 _ _ _",
        "--constraint",
        "pitches=G,A,B,C,D,E,F#",
    ]
    checkpoints = run / "checkpoints"
    truncate_after = min(2, kills - 1)
    # Kill moments spread over 0.2-7 s after each (re)start: during imports, building, training, evaluating,
    # writing checkpoints.
    delays = [rng.uniform(0.2 + 6.8 * i / kills, 0.2 + 6.8 * (i + 1) / kills) for i in range(kills)]
    rng.shuffle(delays)
    attempts = 0
    while stage.tried.get("SIGKILLs", 0) < kills and attempts < 3 * kills:
        attempts += 1
        resuming = (run / "config.json").is_file()
        process = notetune(*(["tune", "--resume", str(run), "--no-progress"] if resuming else command))
        delay = delays[(attempts - 1) % kills]
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
        code, _, stderr = finish(process, timeout=60)
        if code != -signal.SIGKILL:
            stage.check(code == 0, f"attempt {attempts} exited {code} before its kill: {tail(stderr)}")
            stage.notes.append(f"attempt {attempts} ended by itself after {delay:.1f} s (exit {code})")
            if code == 0:
                break
            continue
        stage.tried["SIGKILLs"] = stage.tried.get("SIGKILLs", 0) + 1
        valid = [p for p in list_checkpoints(checkpoints) if verify_checkpoint(p) is None]
        stage.notes.append(
            f"kill {stage.tried['SIGKILLs']} after {delay:.1f} s ({'resume' if resuming else 'start'}): "
            f"newest valid checkpoint {valid[-1].name if valid else 'none'}"
        )
        if stage.tried["SIGKILLs"] - 1 == truncate_after and len(valid) >= 2:
            newest = valid[-1] / "policy.safetensors"
            newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 3])
            stage.tried["truncated checkpoints"] = 1
            try:
                resumed = load_run(run)
            except Exception as error:  # a crash here is exactly what chaos looks for
                stage.failures.append(f"load_run after truncation raised {type(error).__name__}: {error}")
            else:
                if stage.check(
                    resumed.resumed_from == str(valid[-2]),
                    f"truncated {valid[-1].name}, but resume chose {resumed.resumed_from}",
                ):
                    stage.survived["truncated checkpoint passed over"] = 1
    stage.check(stage.tried.get("SIGKILLs", 0) >= kills, f"only {stage.tried.get('SIGKILLs', 0)} kills landed")
    resume = ["tune", "--resume", str(run), "--no-progress"] if (run / "config.json").is_file() else command
    code, stdout, stderr = finish(notetune(*resume), timeout=1800)
    if not stage.check(code == 0, f"final resume exited {code}: {tail(stderr)}"):
        return stage
    record = json.loads((run / "run.json").read_text())
    stage.check(record["steps"] == steps, f"run.json says {record['steps']} steps, configured {steps}")
    stage.check(record["stop_reason"] == "completed the configured steps", f"stopped: {record['stop_reason']}")
    newest = list_checkpoints(checkpoints)[-1]
    stage.check(
        verify_checkpoint(newest) is None and newest.name == f"step_{steps:012d}",
        f"newest checkpoint {newest.name}: {verify_checkpoint(newest) or 'not the final step'}",
    )
    model, config = load_checkpoint(run / "model")
    stage.check(sample_tokens(model, 8, 8).shape == (8, 8), "the exported model does not sample")
    if not stage.failures:
        stage.survived["SIGKILLs"] = stage.tried["SIGKILLs"]
        stage.survived["runs finished with the configured steps"] = 1
    stage.notes.append(f"final: {record['steps']:,} steps, resumed from {Path(record['resumed_from'] or '-').name}")
    return stage


# -------------------------------------------------------------------------------------- determinism


def _same_files(stage: Stage, label: str, first: Path, second: Path, suffixes: tuple[str, ...]) -> None:
    names = sorted(p.relative_to(first) for p in first.rglob("*") if p.suffix in suffixes)
    different = [str(n) for n in names if sha256(first / n) != sha256(second / n)]
    stage.tried[label] = len(names)
    if stage.check(names and not different, f"{label}: {len(different)} of {len(names)} differ ({different[:3]})"):
        stage.survived[label] = len(names)


def determinism_stage(out: Path, seed: int) -> Stage:
    stage = Stage("determinism")
    prior, corpus = (
        _tiny_prior_and_corpus(out)
        if not (out / "tiny_prior").is_dir()
        else (out / "tiny_prior", out / "tiny_corpus.npz")
    )
    sample = [
        "sample",
        "--num",
        "64",
        "--seed",
        str(seed),
        "--key",
        "D minor",
        "--primer",
        "62 _ 65 _ 69 _ _ _",
        "--constraint",
        "pitches=D,E,F,G,A,Bb,C,C#",
        "--constraint",
        "step:28=D4",
        "--format",
        "midi,wav",
    ]
    tune = [
        "tune",
        "--prior",
        str(prior),
        "--corpus",
        str(corpus),
        "--length",
        "8",
        "--num-envs",
        "64",
        "--steps",
        "16384",
        "--max-minutes",
        "0",
        "--eval-every",
        "8192",
        "--eval-size",
        "128",
        "--confirm-size",
        "256",
        "--checkpoint-every",
        "8192",
        "--threads",
        "1",
        "--no-progress",
        "--seed",
        str(seed),
    ]
    for name in ("a", "b"):
        for args in ([*sample, "--out", str(out / f"samples_{name}")], [*tune, "--out", str(out / f"tune_{name}")]):
            code, _, stderr = finish(notetune(*args), timeout=1800)
            stage.check(code == 0, f"notetune {args[0]} exited {code}: {tail(stderr)}")
    if stage.failures:
        return stage
    _same_files(stage, "sample files (midi, wav, npz)", out / "samples_a", out / "samples_b", (".mid", ".wav", ".npz"))
    _same_files(
        stage,
        "tuning checkpoint files",
        out / "tune_a" / "checkpoints",
        out / "tune_b" / "checkpoints",
        (".safetensors",),
    )
    _same_files(stage, "exported model", out / "tune_a" / "model", out / "tune_b" / "model", (".safetensors",))
    return stage


# --------------------------------------------------------------------------------------------- main

STAGES = ("corpus", "kills", "determinism")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out/chaos", help="scratch folder (emptied first) and chaos.json")
    parser.add_argument("--only", default=",".join(STAGES), help=f"comma-separated stages: {', '.join(STAGES)}")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bad files and the kill moments")
    parser.add_argument("--kills", type=int, default=6, help="SIGKILLs to land on the tuning run (at least 5)")
    parser.add_argument("--steps", type=int, default=1_048_576, help="steps of the killed tuning run")
    parser.add_argument("--huge-mb", type=int, default=9, help="size of the oversized MIDI file")
    parser.add_argument("--many-notes", type=int, default=20_000, help="notes in the long MIDI file")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    runners: dict[str, Callable[[], Stage]] = {
        "corpus": lambda: corpus_stage(out / "corpus", args.seed, args.huge_mb, args.many_notes),
        "kills": lambda: kill_stage(out / "kills", args.seed, args.kills, args.steps),
        "determinism": lambda: determinism_stage(out / "determinism", args.seed),
    }
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage(s) {unknown}; choose from {', '.join(STAGES)}")
    stages = []
    for name in chosen:
        (out / name).mkdir()
        started = time.monotonic()
        print(f"chaos: {name} ...", flush=True)
        stage = runners[name]()
        stage.seconds = round(time.monotonic() - started, 1)
        stages.append(stage)
        print(f"  tried    {stage.tried}\n  survived {stage.survived}")
        for note in stage.notes:
            print(f"  note     {note}")
        for failure in stage.failures:
            print(f"  FAILED   {failure}")
        print(f"  {'ok' if not stage.failures else 'FAILED'} in {stage.seconds:.0f} s", flush=True)
    (out / "chaos.json").write_text(json.dumps([stage.__dict__ for stage in stages], indent=2) + "\n")
    failed = [stage.name for stage in stages if stage.failures]
    print(f"chaos: {'FAILED: ' + ', '.join(failed) if failed else 'every stage survived'} (details: {out}/chaos.json)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
