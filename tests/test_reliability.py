"""Reliability: bad input is refused with one clear line before any training work, bad files are skipped
and counted, checkpoints survive truncation, runs are reproducible, and no pickle is ever loaded.
The slow cases (many bad files, repeated SIGKILLs, cross-process determinism) are in scripts/chaos.py."""

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch
from notetune.agents.checkpoints import list_checkpoints
from notetune.agents.config import TuneConfig
from notetune.agents.run import TuneRun, load_run
from notetune.pretrained import corpus as corpus_module
from notetune.pretrained.checkpoint import load_checkpoint, save_checkpoint
from notetune.pretrained.corpus import build_corpus, midi_jobs
from notetune.pretrained.model import NoteRNN, NoteRNNConfig
from notetune.pretrained.vocab import Vocabulary
from notetune.scripts.cli import main

REPOSITORY = Path(__file__).resolve().parents[1]
PACKAGES = ("pretrained", "rewards", "envs", "agents", "scripts")
BAD_REWARDS = '''
def explode(tokens, t):
    """A plugin with a bug."""
    raise RuntimeError("boom")


def not_a_number(tokens, t):
    """A plugin that divides by zero at step 3."""
    return float("nan") if t == 3 else 0.0
'''


def melody_track(pitches, program=0, drum=False, step=0.25):
    track = pretty_midi.Instrument(program=program, is_drum=drum)
    for i, pitch in enumerate(pitches):
        track.notes.append(pretty_midi.Note(90, pitch, i * step, (i + 1) * step))
    return track


def write_midi(path, *tracks):
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    pm.instruments.extend(tracks)
    pm.write(str(path))
    return path


def tune_args(tmp_path, prior_dir, corpus_path, *extra):
    return [
        "tune",
        "--prior",
        prior_dir,
        "--corpus",
        corpus_path,
        "--out",
        str(tmp_path / "run"),
        "--length",
        "8",
        "--num-envs",
        "32",
        "--steps",
        "2048",
        "--max-minutes",
        "0",
        "--eval-every",
        "1024",
        "--eval-size",
        "64",
        "--confirm-size",
        "128",
        "--checkpoint-every",
        "1024",
        "--threads",
        "1",
        "--no-progress",
        *extra,
    ]


def tiny_config(tmp_path, prior_dir, corpus_path, name="run", **overrides):
    settings = dict(
        prior=prior_dir,
        corpus=corpus_path,
        out=str(tmp_path / name),
        length=8,
        num_envs=32,
        steps=2048,
        max_minutes=0,
        eval_every=1024,
        eval_size=64,
        confirm_size=128,
        checkpoint_every=512,
        threads=1,
        progress=False,
        patience=0,
    )
    settings.update(overrides)
    return TuneConfig(**settings)


# ------------------------------------------------------------------------------------------ bad files


def test_bad_midi_files_in_a_corpus_folder_are_skipped_and_counted(tmp_path, monkeypatch):
    folder = tmp_path / "midi"
    folder.mkdir()
    scale = [60, 62, 64, 65, 67, 69, 71, 72, 71, 69, 67, 65, 64, 62, 60, 60]
    tune = [67, 64, 64, 65, 62, 62, 60, 62, 64, 65, 67, 67, 67, 69, 71, 72]
    write_midi(folder / "good.mid", melody_track(scale))
    # Bass, drums and melody: the melody (highest pitched track) is kept.
    write_midi(
        folder / "band.mid",
        melody_track([p - 24 for p in tune], 33),
        melody_track([36, 38] * 8, drum=True),
        melody_track(tune),
    )
    write_midi(folder / "drums.mid", melody_track([36, 38, 42, 46] * 4, drum=True))
    valid = (folder / "good.mid").read_bytes()
    expected = {
        "drums.mid": "drums_only",
        "empty.mid": "empty",
        "no_notes.mid": "empty",
        "huge.mid": "too_large",
        "text.mid": "corrupt",
        "garbage.mid": "corrupt",
    }
    for cut in (10, 22, len(valid) // 2, len(valid) - 1):
        (folder / f"truncated_{cut}.mid").write_bytes(valid[:cut])
        expected[f"truncated_{cut}.mid"] = "corrupt"
    rng = np.random.default_rng(0)
    for i in range(3):
        (folder / f"noise_{i}.mid").write_bytes(rng.integers(0, 256, 200 * (i + 1), dtype=np.uint8).tobytes())
        expected[f"noise_{i}.mid"] = "corrupt"
    (folder / "empty.mid").write_bytes(b"")
    write_midi(folder / "no_notes.mid")
    (folder / "text.mid").write_text("my favourite notes: C D E\n")
    (folder / "garbage.mid").write_bytes(
        b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0MTrk\xff\xff\xff\xff" + b"\x90" * 64
    )
    monkeypatch.setattr(corpus_module, "MAX_MIDI_BYTES", 64 * 1024)  # "huge" without writing 8 MB in a test
    (folder / "huge.mid").write_bytes(valid + bytes(70 * 1024))

    summary = build_corpus(midi_jobs(folder), tmp_path / "corpus.npz", workers=1, progress=False)
    reasons = {Path(source).name: reason for source, reason in summary.skipped_files}
    assert reasons == expected
    assert sum(summary.skipped.values()) == len(expected) == 13
    assert summary.melodies == 2
    assert summary.skipped["corrupt"] == 9 and summary.skipped["too_large"] == 1


def test_an_empty_corpus_folder_or_file_is_one_clear_error(tmp_path, tiny_prior_dir, capsys):
    (tmp_path / "nothing").mkdir()
    assert (
        main(["corpus", "build", "--no-music21", "--midi", str(tmp_path / "nothing"), "--out", str(tmp_path / "c.npz")])
        == 2
    )
    assert "the corpus is empty: 0 inputs" in capsys.readouterr().err
    np.savez(tmp_path / "empty.npz", tokens=np.zeros(0, dtype=np.uint8))
    assert main(tune_args(tmp_path, tiny_prior_dir, str(tmp_path / "empty.npz"))) == 2
    assert "is not a notetune corpus file" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------------------- bad settings


def test_unknown_reward_is_refused_before_the_run_directory_exists(tmp_path, tiny_prior_dir, tiny_corpus_path, capsys):
    assert main(tune_args(tmp_path, tiny_prior_dir, tiny_corpus_path, "--reward", "tonik")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'tonic'" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        ("explode", "reward 'explode' failed at step 0: RuntimeError: boom"),
        ("not_a_number", "reward 'not_a_number' returned nan"),
    ],
)
def test_a_reward_plugin_that_raises_or_returns_nan_stops_with_one_clear_error(
    plugin, message, tmp_path, tiny_prior_dir, tiny_corpus_path, monkeypatch, capsys
):
    (tmp_path / "bad_rewards.py").write_text(BAD_REWARDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(tune_args(tmp_path, tiny_prior_dir, tiny_corpus_path, "--reward", f"bad_rewards:{plugin}")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "model").exists()


def test_a_prior_for_another_vocabulary_is_refused_before_tuning(tmp_path, tiny_corpus_path, capsys):
    wide = NoteRNN(NoteRNNConfig(vocab=Vocabulary(36, 95), embedding_dim=4, hidden_size=8))
    save_checkpoint(wide, tmp_path / "wide")
    assert main(tune_args(tmp_path, str(tmp_path / "wide"), tiny_corpus_path)) == 2
    err = capsys.readouterr().err
    assert "uses vocabulary" in err and "min_pitch=36" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("stepz = 100\n", "unknown field 'stepz' (did you mean 'steps'?)"),
        ('steps = "many"\n', "'steps' must be an integer"),
        ('constraint = "step:0=C4"\n', "'constraint' must be a list"),
        ('key = "H major"\n', "cannot read key 'H major'"),
        ('constraint = ["step:0=C4", "rhythm=.x"]\n', "leave no token allowed at step 0"),
    ],
)
def test_a_bad_tuning_config_is_one_clear_error_before_any_work(
    toml, message, tmp_path, tiny_prior_dir, tiny_corpus_path, capsys
):
    (tmp_path / "bad.toml").write_text(toml)
    assert main(tune_args(tmp_path, tiny_prior_dir, tiny_corpus_path, "--config", str(tmp_path / "bad.toml"))) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------ checkpoints and seeds


def test_a_truncated_training_checkpoint_is_detected_and_the_previous_one_used(
    tmp_path, tiny_prior_dir, tiny_corpus_path
):
    TuneRun(tiny_config(tmp_path, tiny_prior_dir, tiny_corpus_path)).run()
    checkpoints = list_checkpoints(tmp_path / "run" / "checkpoints")
    newest, previous = checkpoints[-1], checkpoints[-2]
    weights = newest / "policy.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    run = load_run(tmp_path / "run")
    assert run.resumed_from == str(previous) and run.algorithm.num_timesteps == int(previous.name[5:]) < 2048
    record = run.run()
    assert record["steps"] == 2048 and record["stop_reason"] == "completed the configured steps"
    model, _ = load_checkpoint(tmp_path / "run" / "model")
    assert model.num_actions == 38


def test_same_seed_gives_byte_identical_trained_policies(tmp_path, tiny_prior_dir, tiny_corpus_path):
    def final_policy(name: str, seed: int) -> bytes:
        TuneRun(tiny_config(tmp_path, tiny_prior_dir, tiny_corpus_path, name, steps=1024, seed=seed)).run()
        return (list_checkpoints(tmp_path / name / "checkpoints")[-1] / "policy.safetensors").read_bytes()

    first = final_policy("a", seed=3)
    assert first == final_policy("b", seed=3)
    assert first != final_policy("c", seed=4)


# ------------------------------------------------------------------------------------------- pickles


def test_no_source_file_loads_a_pickle():
    risky = re.compile(
        r"torch\.load\((?![^)]*weights_only=True)|pickle\.loads?\(|allow_pickle\s*=\s*True|"
        r"\b(?:PPO|A2C|DQN|MaskablePPO|RecurrentPPO|MelodyPPO|MelodyA2C|RLTunerDQN)\.load\("
    )
    offenders = [
        f"{path.relative_to(REPOSITORY)}:{number}: {line.strip()}"
        for package in PACKAGES
        for path in sorted((REPOSITORY / package).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if risky.search(line)
    ]
    assert offenders == []


def test_loading_models_and_resuming_runs_never_unpickles(tmp_path, tiny_prior_dir, tiny_corpus_path, monkeypatch):
    TuneRun(tiny_config(tmp_path, tiny_prior_dir, tiny_corpus_path, steps=1024)).run()

    def refuse(*args, **kwargs):
        raise AssertionError("something tried to unpickle")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    load_checkpoint(tmp_path / "run" / "model")
    load_checkpoint(tiny_prior_dir)
    assert load_run(tmp_path / "run").resumed_from


def test_pickled_weights_given_by_a_user_are_refused(tmp_path, tiny_prior, tiny_corpus_path, capsys):
    torch.save(tiny_prior.state_dict(), tmp_path / "weights.pt")
    assert main(["sample", "--model", str(tmp_path / "weights.pt"), "--out", str(tmp_path / "s")]) == 2
    assert "pickled torch file; notetune loads weights only from safetensors" in capsys.readouterr().err
    assert main(tune_args(tmp_path, str(tmp_path / "weights.pt"), tiny_corpus_path)) == 2
    assert "pickled" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "s").exists()


def test_run_directory_records_the_control_settings(tmp_path, tiny_prior_dir, tiny_corpus_path):
    config = tiny_config(
        tmp_path,
        tiny_prior_dir,
        tiny_corpus_path,
        steps=512,
        key="D minor",
        primer="62 _ 65 _",
        constraint=["step:0=D4"],
    )
    TuneRun(config).run()
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["key"] == "D minor" and saved["primer"] == "62 _ 65 _" and saved["constraint"] == ["step:0=D4"]
    resumed = load_run(tmp_path / "run")
    assert resumed.primer.tolist() == [16, 1, 19, 1] and resumed.allowed[0].sum() == 1


def test_the_do_nothing_environment_of_the_tuning_benchmark_runs_ppo(tiny_prior):
    from notetune.agents.ppo import MelodyPPO
    from notetune.envs import NullMelodyVecEnv

    env = NullMelodyVecEnv(tiny_prior.num_actions, num_envs=16, length=8)
    algorithm = MelodyPPO(env, tiny_prior, seed=0)
    algorithm.learn(256)
    assert algorithm.num_timesteps == 256 and algorithm.last_rollout_stats["rollout/env_reward_per_composition"] == 0.0
