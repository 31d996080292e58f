"""`listen score` counts per listener and tests listeners, not pooled answers, as the trials."""

import json

import pytest
from notetune.scripts.cli import main
from notetune.scripts.listening import KEY_FILE, score_listening_test


def write_answers(directory, path, prefer_a: int, prefer_b: int, listener: str | None):
    """An answer file preferring A on ``prefer_a`` pairs and B on the next ``prefer_b`` pairs."""
    key = json.loads((directory / KEY_FILE).read_text())
    answers = {}
    for i, pair in enumerate(key["pairs"][: prefer_a + prefer_b]):
        wanted = "A" if i < prefer_a else "B"
        answers[pair["pair"]] = "1" if pair["first"] == wanted else "2"
    data = {"test_id": key["test_id"], "answers": answers}
    if listener is not None:
        data["listener"] = listener
    path.write_text(json.dumps(data))
    return path


def test_one_keen_listener_does_not_make_a_significant_result(listening_test, tmp_path):
    files = [write_answers(listening_test, tmp_path / "keen.json", 8, 0, "keen")]
    files += [write_answers(listening_test, tmp_path / f"mild{i}.json", 3, 5, f"mild {i}") for i in range(2)]
    result = score_listening_test(listening_test, files)
    # Pooled, 14 of 24 answers for A; per listener, one for A and two for B.
    assert (result.prefer_a, result.prefer_b, result.listeners) == (14, 10, 3)
    assert [(x.listener, x.prefer_a, x.prefer_b, x.majority) for x in result.per_listener] == [
        ("keen", 8, 0, "A"),
        ("mild 0", 3, 5, "B"),
        ("mild 1", 3, 5, "B"),
    ]
    assert result.listeners_preferring == {"A": 1, "B": 2, "tie": 0}
    assert result.sign_test_p_value == pytest.approx(1.0)  # 1 of 3 listeners: no evidence either way


def test_many_pairs_from_one_listener_are_one_trial_of_the_sign_test(listening_test, tmp_path):
    result = score_listening_test(listening_test, [write_answers(listening_test, tmp_path / "a.json", 8, 0, "solo")])
    assert result.p_value == pytest.approx(2 / 2**8)  # the pooled test treats the 8 answers as independent
    assert result.sign_test_p_value == pytest.approx(1.0)  # one listener: two-sided sign test of 1 of 1


def test_ties_are_dropped_and_files_of_one_name_are_one_listener(listening_test, tmp_path):
    files = [
        write_answers(listening_test, tmp_path / "x1.json", 3, 0, "x"),
        write_answers(listening_test, tmp_path / "x2.json", 0, 1, "x"),  # x saved twice: one listener, 3 : 1 for A
        write_answers(listening_test, tmp_path / "tie.json", 2, 2, "y"),
    ] + [write_answers(listening_test, tmp_path / f"z{i}.json", 5, 1, f"z{i}") for i in range(4)]
    result = score_listening_test(listening_test, files)
    assert result.listeners == 6 and result.listeners_preferring == {"A": 5, "B": 0, "tie": 1}
    assert result.sign_test_p_value == pytest.approx(2 / 2**5)  # 5 of 5 listeners with a majority


def test_older_answer_files_without_a_name_count_as_one_listener_each(listening_test, tmp_path):
    files = [write_answers(listening_test, tmp_path / f"old{i}.json", 6, 2, None) for i in range(2)]
    files.append(write_answers(listening_test, tmp_path / "blank.json", 6, 2, "  "))
    result = score_listening_test(listening_test, files)
    assert result.listeners == 3 and result.listeners_preferring["A"] == 3
    assert all("(no name)" in x.listener for x in result.per_listener)


def test_listen_score_prints_both_tests_and_says_which(listening_test, tmp_path, capsys):
    files = [write_answers(listening_test, tmp_path / f"l{i}.json", 6, 2, f"listener {i}") for i in range(3)]
    out = tmp_path / "result.json"
    assert main(["listen", "score", str(listening_test), *map(str, files), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "listener 0: 6 / 2 / 0 / 0 → A" in printed
    assert "sign test over listeners' majorities" in printed and "3 prefer A, 0 prefer B" in printed
    assert "two-sided p = 0.2500" in printed  # sign test, 3 of 3
    assert "treating every answer as independent" in printed
    data = json.loads(out.read_text())
    assert data["sign_test_p_value"] == pytest.approx(0.25) and data["listeners_preferring"]["A"] == 3
    assert data["per_listener"][0] == {
        "listener": "listener 0",
        "prefer_a": 6,
        "prefer_b": 2,
        "no_preference": 0,
        "unanswered": 0,
        "majority": "A",
    }
