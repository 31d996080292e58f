"""Control: any key by transposing the prior, primers, and constraints as action masks — for sampling,
for the environment's prior and for the tuning policy (which must still equal the prior at step 0)."""

import json

import numpy as np
import pretty_midi
import pytest
import torch
from notetune.agents.config import TuneConfig
from notetune.agents.run import TuneError, TuneRun
from notetune.envs import MelodyEnv, MelodyVecEnv
from notetune.pretrained.constraints import (
    ConstraintError,
    Constraints,
    format_primer,
    parse_primer,
    violations,
)
from notetune.pretrained.errors import UserInputError
from notetune.pretrained.model import NoteRNN, PriorProduct
from notetune.pretrained.sampling import sample_tokens, token_log_probs
from notetune.pretrained.transpose import OUT_OF_RANGE_LOGIT, key_transposition, transpose_model
from notetune.pretrained.vocab import DEFAULT_VOCABULARY, NO_EVENT, NOTE_OFF
from notetune.rewards import RewardSet
from notetune.rewards.keys import ALL_KEYS, Key
from notetune.scripts.cli import main

VOCAB = DEFAULT_VOCABULARY


@pytest.fixture(scope="module")
def c_major_prior(tiny_prior) -> NoteRNN:
    """The tiny prior pushed toward C major (as the shipped prior is): out-of-key notes lose 8 logits."""
    model = NoteRNN(tiny_prior.config)
    model.load_state_dict(tiny_prior.state_dict())
    with torch.no_grad():
        model.head.bias[~torch.from_numpy(Key.parse("C major").in_key_mask(VOCAB).copy())] -= 8.0
    return model.eval()


def pitch_classes(tokens: np.ndarray) -> np.ndarray:
    onsets = tokens[tokens >= 2]
    return (VOCAB.token_to_pitch(onsets)) % 12


# ---------------------------------------------------------------------------------------------- keys


def test_every_key_is_reached_by_the_smallest_shift_of_the_c_major_prior():
    c_major = Key.parse("C major")
    assert key_transposition(c_major, Key.parse("G major")) == -5
    assert key_transposition(c_major, Key.parse("D minor")) == 5  # A minor → D minor
    assert key_transposition(c_major, Key.parse("A minor")) == 0
    assert key_transposition(c_major, Key.parse("F# major")) == -6
    assert key_transposition(Key.parse("A minor"), Key.parse("E minor")) == -5
    assert {key_transposition(c_major, key) for key in ALL_KEYS} == set(range(-6, 6))


def test_a_transposed_prior_is_the_prior_shifted_and_renormalised(tiny_prior):
    shifted = transpose_model(tiny_prior, 7)
    assert type(shifted) is NoteRNN and shifted.config == tiny_prior.config
    # A melody in the middle of the range, and the same melody a fifth higher.
    melody = torch.tensor([[14, 1, 16, 0, 18, 1, 21, 19, 18, 16, 14, 1]])
    up = torch.where(melody >= 2, melody + 7, melody)
    old = torch.softmax(tiny_prior(torch.cat([torch.tensor([[38]]), melody[:, :-1]], 1))[0], -1)[0]
    new = torch.softmax(shifted(torch.cat([torch.tensor([[38]]), up[:, :-1]], 1))[0], -1)[0]
    kept = torch.ones(38, dtype=torch.bool)
    kept[38 - 7 :] = False  # the top fifth of the old range leaves the vocabulary
    renormalised = old[:, kept] / old[:, kept].sum(-1, keepdim=True)
    assert torch.allclose(new[:, :2], renormalised[:, :2], atol=1e-5)  # rest and hold
    assert torch.allclose(new[:, 2 + 7 :], renormalised[:, 2:], atol=1e-5)  # pitches, moved up a fifth
    assert new[:, 2 : 2 + 7].max() == 0  # nothing below the shifted range
    assert shifted.head.bias[2].item() == OUT_OF_RANGE_LOGIT


def test_sampling_in_g_major_from_a_c_major_prior(c_major_prior):
    g_major = transpose_model(c_major_prior, key_transposition(Key.parse("C major"), Key.parse("G major")))
    tokens = sample_tokens(g_major, 500, 32, seed=0)
    classes = pitch_classes(tokens)
    in_g = np.isin(classes, Key.parse("G major").scale_pitch_classes).mean()
    assert in_g > 0.95 and (classes == 6).mean() > 0.05 and (classes == 5).mean() < 0.01  # F# in, F out
    assert tokens.max() <= 37 - 5  # the top five pitches had no source in C and are never played


def test_transposition_back_and_forth_keeps_the_middle_of_the_range(tiny_prior):
    back = transpose_model(transpose_model(tiny_prior, 3), -3)
    melody = torch.tensor([[20, 1, 22, 0, 24, 1, 18]])
    # Pitches near the edges lost their mass on the way; in the middle only renormalisation differs.
    difference = back.sequence_log_probs(melody) - tiny_prior.sequence_log_probs(melody)
    assert torch.allclose(difference, difference[:, :1].expand_as(difference), atol=0.3)


def test_a_g_learning_model_transposes_as_a_whole(tiny_prior):
    torch.manual_seed(2)
    product = PriorProduct(NoteRNN(tiny_prior.config).eval(), tiny_prior)
    shifted = transpose_model(product, 4)
    assert isinstance(shifted, PriorProduct)
    log_probs, _ = shifted.start(1)
    assert log_probs[0, 2:6].exp().max() == 0  # nothing below the shifted range
    assert sample_tokens(shifted, 50, 16, seed=0).min() >= 0


def test_the_environment_loads_the_shipped_prior_in_the_requested_key():
    env = MelodyEnv(key="G major")
    _, info = env.reset(seed=0)
    in_g = Key.parse("G major").in_key_mask(VOCAB)
    assert np.exp(info["prior_log_probs"])[in_g].sum() > 0.9
    assert env.batch.rewards.key == Key.parse("G major")


# --------------------------------------------------------------------------------------------- primer


def test_primer_text_and_midi_files_become_tokens(tmp_path):
    assert parse_primer("60 _ 62 _ 64 r", VOCAB).tolist() == [14, NO_EVENT, 16, NO_EVENT, 18, NOTE_OFF]
    assert parse_primer("C4, D4 hold E4 rest", VOCAB).tolist() == [14, 16, NO_EVENT, 18, NOTE_OFF]
    assert format_primer(parse_primer("67 _ 69 r", VOCAB), VOCAB) == "67 _ 69 r"
    pm = pretty_midi.PrettyMIDI(initial_tempo=120)
    piano = pretty_midi.Instrument(0)
    for i, pitch in enumerate([62, 64, 66]):  # 8th notes starting on beat 2
        piano.notes.append(pretty_midi.Note(90, pitch, 0.5 + i * 0.25, 0.5 + (i + 1) * 0.25))
    pm.instruments.append(piano)
    pm.write(str(tmp_path / "primer.mid"))
    assert parse_primer(str(tmp_path / "primer.mid"), VOCAB).tolist() == [16, 1, 18, 1, 20, 1]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("60 62 99", "pitch 99 is outside the model's range 48..83"),
        ("60 x 62", "cannot read pitch 'x'"),
        ("C D E", "needs an octave"),
        ("  ", "the primer is empty"),
        ("missing.mid", "primer file missing.mid not found"),
    ],
)
def test_bad_primers_are_refused_with_the_reason(text, message):
    with pytest.raises(ConstraintError, match=message):
        parse_primer(text, VOCAB)


def test_the_prior_is_warmed_on_the_primer(tiny_prior):
    primer = parse_primer("60 _ 67 _", VOCAB)
    env = MelodyEnv(tiny_prior, "notetune", primer=primer)
    _, info = env.reset(seed=0)
    log_probs, state = tiny_prior.start(1)
    for token in primer:
        log_probs, state = tiny_prior.step(torch.tensor([int(token)]), state)
    assert np.allclose(info["prior_log_probs"], log_probs[0].double().numpy(), atol=1e-6)
    obs, *_ = env.step(14)
    assert obs[1] == 14 and (obs[2:] == 38).all()  # the primer is not part of the composition


# ---------------------------------------------------------------------------------------- constraints

CONSTRAINTS = ["step:0,28=C4", "step:31=hold", "pitches=C,D,E,G,A", "rhythm=X.x.x.x.|x...x.._"]


def test_constraints_read_as_a_musician_writes_them():
    allowed = Constraints.parse(CONSTRAINTS).allowed(32, VOCAB)
    assert allowed.shape == (32, 38)
    assert np.flatnonzero(allowed[0]).tolist() == [14]  # C4 fixed (and the rhythm says a note must start)
    assert np.flatnonzero(allowed[31]).tolist() == [NO_EVENT]
    assert not allowed[1, 2:].any() and allowed[1, :2].all()  # "." : hold or rest, no new note
    assert np.flatnonzero(allowed[15]).tolist() == [NO_EVENT]  # "_" : hold only
    onsets = VOCAB.token_to_pitch(np.flatnonzero(allowed[2, 2:]) + 2) % 12
    assert set(onsets.tolist()) == {0, 2, 4, 7, 9}
    assert Constraints.parse("rhythm=x.").allowed(4, VOCAB)[:, 14].tolist() == [True, False, True, False]


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["step:0=C#4", "pitches=C,D,E"], r"'step:0=C#4' and 'pitches=C,D,E' leave no token allowed at step 0"),
        (["step:5=60", "rhythm=x..."], "leave no token allowed at step 5"),
        (["step:40=C4"], r"step 40 is beyond the composition \(steps 0..31\)"),
        (["step:0=C9"], "outside the model's range 48..83"),
        (["tempo=120"], "unknown constraint 'tempo'"),
        (["rhythm=x-x-"], "rhythm symbols are x"),
        (["step:0=C"], "needs an octave"),
        (["pitches"], "cannot read constraint"),
    ],
)
def test_impossible_or_unreadable_constraints_are_refused_with_the_reason(texts, message):
    with pytest.raises(ConstraintError, match=message):
        Constraints.parse(texts).allowed(32, VOCAB)


def test_every_constraint_holds_in_all_of_1000_samples_with_a_primer_in_g_major(c_major_prior):
    model = transpose_model(c_major_prior, -5)
    constraints = ["step:0,16=G4", "step:30=rest", "pitches=G,A,B,D,E", "rhythm=X.x.x...|x.x.x.._"]
    allowed = Constraints.parse(constraints).allowed(32, VOCAB)
    primer = parse_primer("67 _ 71 _ 74 _ _ _", VOCAB)
    tokens, log_probs = sample_tokens(model, 1000, 32, seed=5, primer=primer, allowed=allowed, return_log_probs=True)
    assert (tokens[:, 0] == 21).all() and (tokens[:, 16] == 21).all() and (tokens[:, 30] == NOTE_OFF).all()
    assert set(np.unique(pitch_classes(tokens)).tolist()) <= {7, 9, 11, 2, 4}
    pattern = "X.x.x...x.x.x.._" * 2
    for step, symbol in enumerate(pattern):
        column = tokens[:, step]
        if symbol == "X":
            assert (column >= 2).all(), step
        if symbol == ".":
            assert (column < 2).all(), step
        if symbol == "_":
            assert (column == NO_EVENT).all(), step
    assert violations(tokens, allowed).sum() == 0
    # The reported log-probabilities are the model's, renormalised over the allowed tokens.
    assert np.allclose(log_probs, token_log_probs(model, tokens, primer=primer, allowed=allowed), atol=1e-5)
    assert np.allclose(log_probs[:, 0], 0.0, atol=1e-6)  # a fixed step has probability 1


def test_the_environment_renormalises_the_prior_over_allowed_actions_and_refuses_the_rest(tiny_prior):
    allowed = Constraints.parse(["pitches=C,E,G", "rhythm=x."]).allowed(32, VOCAB)
    env = MelodyVecEnv(tiny_prior, RewardSet.from_spec("notetune"), num_envs=4, allowed=allowed)
    env.reset()
    prior = env.prior_log_probs
    assert np.allclose(np.exp(prior).sum(axis=1), 1.0)
    assert np.isneginf(prior[:, ~allowed[0]]).all() and np.isfinite(prior[:, allowed[0]]).all()
    assert np.array_equal(env.action_masks(), np.tile(allowed[0], (4, 1)))
    assert np.array_equal(np.stack(env.env_method("action_masks")), env.action_masks())
    env.step(np.array([14, 18, 21, 0]))
    with pytest.raises(ValueError, match="action 14 at step 1 breaks the constraints"):
        env.step(np.array([1, 1, 14, 1]))


# ------------------------------------------------------------------------------------------- tuning


def test_tuning_policy_in_g_major_with_primer_and_constraints_equals_the_prior_at_step_0(
    tmp_path, c_major_prior, tiny_corpus_path
):
    from notetune.pretrained.checkpoint import save_checkpoint

    save_checkpoint(c_major_prior, tmp_path / "prior", extra={"key": "C major"})
    config = TuneConfig(
        prior=str(tmp_path / "prior"),
        corpus=tiny_corpus_path,
        out=str(tmp_path / "run"),
        length=16,
        num_envs=64,
        steps=1024,
        max_minutes=0,
        threads=1,
        progress=False,
        key="G major",
        primer="67 _ 69 _ 71 _ r",
        constraint=["step:0=G4", "pitches=G,A,B,D,E", "rhythm=X.x.x..._"],
    )
    run = TuneRun(config)
    algorithm = run.algorithm
    assert torch.equal(algorithm.policy.actor.head.bias, transpose_model(c_major_prior, -5).head.bias)
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import configure

    class Continue(BaseCallback):
        def _on_step(self) -> bool:
            return True

    algorithm.set_logger(configure(None, []))
    callback = Continue()
    callback.init_callback(algorithm)
    algorithm.env.reset()
    algorithm.collect_rollouts(algorithm.env, callback, algorithm.rollout_buffer, 16)
    rollout = algorithm.rollout
    assert (rollout.log_probs - rollout.log_prior).abs().max() < 1e-5  # KL = 0 before any update
    assert violations(rollout.tokens.numpy(), run.allowed).sum() == 0
    classes = pitch_classes(rollout.tokens.numpy())
    assert np.isin(classes, [7, 9, 11, 2, 4]).all()
    # The update replays whole sequences: same primer, same masks, same log π as the rollout.
    log_probs, entropy, _ = algorithm.policy.evaluate_sequences(rollout.tokens)
    assert torch.allclose(log_probs, rollout.log_probs, atol=1e-5) and torch.isfinite(entropy).all()
    # SB3's predict() reads observations and must apply the same primer and masks.
    observation = np.full((1, 17), 38)
    observation[0, 0] = 0
    action, _ = algorithm.policy.predict(observation, deterministic=True)
    assert int(action[0]) == 21


def test_value_based_tuning_refuses_primers_and_constraints(tmp_path, tiny_prior_dir, tiny_corpus_path):
    config = TuneConfig(
        prior=tiny_prior_dir,
        corpus=tiny_corpus_path,
        out=str(tmp_path / "run"),
        algo="dqn",
        constraint=["step:0=C4"],
        threads=1,
        progress=False,
    )
    with pytest.raises(TuneError, match="need --algo ppo, a2c, grpo or rloo"):
        TuneRun(config)
    config.algo, config.constraint = "ppo", ["step:0=C#4", "pitches=C,D"]
    with pytest.raises(UserInputError, match="leave no token allowed at step 0"):
        TuneRun(config)
    assert not (tmp_path / "run").exists()


# ---------------------------------------------------------------------------------------------- CLI


def test_sample_command_in_another_key_with_primer_and_constraints(tmp_path, tiny_prior_dir, capsys):
    def sample(out):
        return main(
            [
                "sample",
                "--model",
                tiny_prior_dir,
                "--num",
                "20",
                "--seed",
                "3",
                "--out",
                str(out),
                "--key",
                "D minor",
                "--primer",
                "62 _ 65 _ 69 _ _ _",
                "--constraint",
                "step:0=D4",
                "--constraint",
                "pitches=D,E,F,G,A,Bb,C",
                "--format",
                "midi,musicxml",
            ]
        )

    assert sample(tmp_path / "a") == 0 and sample(tmp_path / "b") == 0
    printed = capsys.readouterr().out
    assert "in D minor (model transposed +5 semitones), after a primer of 8 steps, under 2 constraint(s)" in printed
    with np.load(tmp_path / "a" / "samples.npz") as data:
        tokens = data["tokens"]
    assert tokens.shape == (20, 32) and (tokens[:, 0] == 16).all()  # samples.npz leaves the primer out
    assert np.isin(pitch_classes(tokens), [2, 4, 5, 7, 9, 10, 0]).all()
    midi = pretty_midi.PrettyMIDI(str(tmp_path / "a" / "sample_00.mid"))
    notes = midi.instruments[0].notes
    assert [n.pitch for n in notes[:3]] == [62, 65, 69] and notes[0].start == 0.0  # the MIDI keeps it
    assert notes[3].pitch == 62 and notes[3].start == pytest.approx(8 * 0.125)
    info = json.loads((tmp_path / "a" / "samples.json").read_text())
    assert info["key"] == "D minor" and info["primer"] == "62 _ 65 _ 69 _ _ _" and len(info["constraint"]) == 2
    # Same seed, same bytes (MusicXML is left out: music21 writes a random part id and today's date).
    for name in ("sample_00.mid", "sample_19.mid", "samples.npz"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_sample_command_reports_bad_keys_and_constraints_in_one_line(tmp_path, tiny_prior_dir, capsys):
    common = ["sample", "--model", tiny_prior_dir, "--out", str(tmp_path)]
    assert main([*common, "--key", "H major"]) == 2
    assert "cannot read key 'H major'" in capsys.readouterr().err
    assert main([*common, "--constraint", "step:0=C#4", "--constraint", "pitches=C,E,G"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "leave no token allowed at step 0" in err
    assert main([*common, "--primer", "60 62 100"]) == 2
    assert "pitch 100 is outside the model's range" in capsys.readouterr().err
    assert not (tmp_path / "samples.npz").exists()
