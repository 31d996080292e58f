"""Budgets are steps: the same command and seed give the same model; a wall-clock cap is optional and reported."""

import hashlib
import json
from pathlib import Path

import pytest
from notetune.agents.run import TuneRun, corpus_rates
from notetune.pretrained.corpus import load_corpus
from notetune.pretrained.vocab import HOLD, REST
from tuning import tiny_config


def tiny_run(out: Path, prior_dir: str, corpus_path: str, **overrides) -> dict:
    settings = dict(steps=4096, eval_every=2048, eval_size=128, confirm_size=128, checkpoint_every=2048)
    return TuneRun(tiny_config(out, prior_dir, corpus_path, **{**settings, **overrides})).run()


def model_digest(run_dir: Path) -> str:
    return hashlib.sha256((run_dir / "model" / "model.safetensors").read_bytes()).hexdigest()


def test_same_seed_and_steps_export_the_same_model(tmp_path, tiny_prior_dir, tiny_corpus_path):
    first = tiny_run(tmp_path / "a", tiny_prior_dir, tiny_corpus_path, seed=3)
    second = tiny_run(tmp_path / "b", tiny_prior_dir, tiny_corpus_path, seed=3)
    tiny_run(tmp_path / "c", tiny_prior_dir, tiny_corpus_path, seed=4)
    assert first["steps"] == second["steps"] == 4096
    assert model_digest(tmp_path / "a") == model_digest(tmp_path / "b")
    assert model_digest(tmp_path / "a") != model_digest(tmp_path / "c")
    assert json.dumps(first["final_metrics"], sort_keys=True) == json.dumps(second["final_metrics"], sort_keys=True)
    assert first["budget"] == {"steps": 4096, "max_minutes": 0.0, "cut_short_by_time_cap": False}


def test_a_time_cap_ends_the_run_early_and_run_json_says_so(tmp_path, tiny_prior_dir, tiny_corpus_path):
    record = tiny_run(tmp_path / "capped", tiny_prior_dir, tiny_corpus_path, steps=1_000_000, max_minutes=1e-6)
    assert record["steps"] < 1_000_000
    assert record["stop_reason"].startswith("time cap")
    assert record["budget"]["cut_short_by_time_cap"] is True
    saved = json.loads((tmp_path / "capped" / "run.json").read_text())
    assert saved["budget"]["max_minutes"] == pytest.approx(1e-6)


def test_alarm_reference_rates_use_the_runs_length(tiny_corpus_path):
    corpus = load_corpus(tiny_corpus_path)
    for length in (8, 32):
        windows = corpus.windows(length, from_start_only=True)
        rates = corpus_rates(corpus, length)
        assert rates["hold_share"] == pytest.approx(float((windows == HOLD).mean()))
        assert rates["rest_share"] == pytest.approx(float((windows == REST).mean()))
    assert corpus_rates(corpus, 8) != corpus_rates(corpus, 32)
