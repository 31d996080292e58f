"""Every source of preference pairs writes lines `reward fit` reads: a blind listening pack's answers
(`listen score --export-preferences`), the simulated listener under its `listen` name, and the studio's A/B mode."""

import json
import re
import shutil

import numpy as np
import pytest
from notetune.agents.sources import load_source
from notetune.rewards.preferences import parse_preferences
from notetune.scripts.cli import main
from notetune.scripts.listening import KEY_FILE, listening_preferences
from notetune.scripts.studio.workspace import Workspace


def answer_file(path, test_dir, listener, choices):
    """An answer file giving ``choices[i]`` ("A", "B", "none" or None = unanswered) for the i-th pair of the key."""
    key = json.loads((test_dir / KEY_FILE).read_text())
    answers = {}
    for pair, choice in zip(key["pairs"], choices, strict=True):
        if choice in ("A", "B"):
            answers[pair["pair"]] = "1" if pair["first"] == choice else "2"
        elif choice == "none":
            answers[pair["pair"]] = choice
    path.write_text(json.dumps({"test_id": key["test_id"], "listener": listener, "answers": answers}))
    return path


def test_a_blind_packs_answers_become_preference_pairs(listening_test, tmp_path, tiny_prior_dir, tiny_corpus_path):
    ana = answer_file(tmp_path / "ana.json", listening_test, "ana", ["A", "B", "none", None, "A", "A", "B", "A"])
    ben = answer_file(tmp_path / "ben.json", listening_test, "ben", ["B"] * 8)
    out = tmp_path / "prefs" / "listening.jsonl"
    assert main(["listen", "score", str(listening_test), str(ana), str(ben), "--export-preferences", str(out)]) == 0
    lines = out.read_text().splitlines()
    data = parse_preferences(lines)
    assert len(data) == len(lines) == 15 and data.skipped == {}  # ana left one pair unanswered
    key = json.loads((listening_test / KEY_FILE).read_text())
    expected = [("ana", c) for c in ["a", "b", "tie", "a", "a", "b", "a"]] + [("ben", "b")] * 8
    assert [(pair.listener, pair.winner) for pair in data.pairs] == expected
    assert [pair.extra["pair"] for pair in data.pairs[:3]] == [p["pair"] for p in key["pairs"][:3]]
    # a is the melody set A (the tuned model) played in that pair, b the one set B (the corpus) played.
    played_a = load_source(tiny_prior_dir, num=8).tokens
    played_b = load_source(tiny_corpus_path, num=8).tokens
    for pair, pair_key in zip(data.pairs[:3], key["pairs"][:3], strict=True):
        assert np.array_equal(pair.a, played_a[pair_key["first_melody"]])
        assert np.array_equal(pair.b, played_b[pair_key["first_melody"]])
    first = data.pairs[0]
    assert (str(first.key), first.length) == ("C major", 32)
    assert first.source == f"listening test {key['test_id']}: A tuned model, B human corpus"


def test_a_pack_without_its_melodies_or_an_existing_file_is_one_line(listening_test, tmp_path, capsys):
    old = tmp_path / "old"
    shutil.copytree(listening_test, old)
    key = json.loads((old / KEY_FILE).read_text())
    del key["tokens"]
    (old / KEY_FILE).write_text(json.dumps(key))
    answers = answer_file(tmp_path / "a.json", old, "ana", ["A"] * 8)
    out = tmp_path / "prefs.jsonl"
    assert main(["listen", "score", str(old), str(answers), "--export-preferences", str(out)]) == 2
    error = capsys.readouterr().err
    assert "does not keep the melodies it played" in error and "export the test again" in error
    assert error.count("\n") == 1 and not out.exists()
    out.write_text("kept\n")
    assert main(["listen", "score", str(listening_test), str(answers), "--export-preferences", str(out)]) == 2
    assert "exists; delete it or choose another --export-preferences" in capsys.readouterr().err
    assert out.read_text() == "kept\n"


def test_the_pairs_carry_the_key_the_pack_played_in(listening_test, tmp_path):
    key = json.loads((listening_test / KEY_FILE).read_text())
    assert key["sets"]["A"]["key"] == key["sets"]["B"]["key"] == "C major"  # the tiny prior's and the corpus's
    moved = tmp_path / "moved"
    shutil.copytree(listening_test, moved)
    answers = answer_file(tmp_path / "a.json", moved, "ana", ["A"] * 8)
    for keys, expected in ((("G major", None), "G major"), (("G major", "D minor"), "different keys (D minor, G")):
        key["sets"]["A"]["key"], key["sets"]["B"]["key"] = keys
        (moved / KEY_FILE).write_text(json.dumps(key))
        if keys[1] is None:
            assert {str(pair.key) for pair in listening_preferences(moved, [answers])} == {expected}
        else:
            with pytest.raises(ValueError, match=re.escape(expected)):
                listening_preferences(moved, [answers])


def test_listen_simulate_is_reward_simulate(tmp_path, tiny_prior_dir, capsys):
    args = ["--models", tiny_prior_dir, "--pairs", "12", "--length", "8", "--noise", "0.2", "--seed", "3"]
    judge = ["--judge", "notetune.rewards.listener:contour_arch"]
    assert main(["listen", "simulate", *judge, *args, "--out", str(tmp_path / "listen.jsonl")]) == 0
    assert main(["reward", "simulate", *judge, *args, "--out", str(tmp_path / "reward.jsonl")]) == 0
    assert "wrote 12 pairs" in capsys.readouterr().out
    lines = (tmp_path / "listen.jsonl").read_text().splitlines()
    assert lines == (tmp_path / "reward.jsonl").read_text().splitlines()
    data = parse_preferences(lines)
    assert len(data) == 12 and data.skipped == {} and data.listeners == ["simulated"]
    assert main(["listen", "simulate", *args, "--out", str(tmp_path / "listen.jsonl")]) == 2
    assert "exists; choose another --out or pass --append" in capsys.readouterr().err


def test_the_studios_answers_are_read_by_reward_fit(tmp_path, tiny_prior_dir, capsys):
    workspace = Workspace(tmp_path / "studio")
    rng = np.random.default_rng(0)
    for i in range(12):
        a, b = rng.integers(0, 38, 16).tolist(), rng.integers(0, 38, 16).tolist()
        winner = ("a", "b", "tie")[i % 3]
        listener = "ana" if i < 8 else "ben"
        answer = {"a": a, "b": b, "winner": winner, "key": "G major", "length": 16, "listener": listener}
        workspace.append_preference(answer | {"source": "studio", "model_a": "default", "model_b": "tiny"})
    lines = workspace.preferences.read_text().splitlines()
    data = parse_preferences(lines)
    assert len(data) == 12 and data.skipped == {}
    assert [pair.winner for pair in data.pairs[:3]] == ["a", "b", "tie"] and str(data.pairs[0].key) == "G major"
    assert data.listeners == ["ana", "ben"] and data.pairs[0].extra["model_b"] == "tiny"
    fit = ["reward", "fit", "--preferences", str(workspace.preferences), "--prior", tiny_prior_dir]
    fit += ["--architecture", "sequence", "--members", "1", "--epochs", "2", "--hidden-size", "4"]
    assert main([*fit, "--out", str(tmp_path / "rm")]) == 0
    printed = capsys.readouterr().out
    assert "12 pairs (a 4, b 4, tie 4) from 2 listener(s)" in printed and "skipped" not in printed
    assert "held out by listener" in printed
