"""`evaluate --key`: the model is transposed to the key before it is judged in that key."""

import json

import numpy as np
from notetune.scripts.cli import main


def test_evaluating_the_prior_in_g_major_transposes_it(tmp_path):
    out = tmp_path / "g.json"
    argv = ["evaluate", "--model", "default", "--num", "300", "--resamples", "50", "--corpus", "none"]
    assert main([*argv, "--key", "G major", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["settings"]["key"] == "G major"
    # The shipped prior writes in C major; moved to G major its notes stay in key (rule 1 judged in G major),
    assert result["metrics"]["not_in_key"]["value"] < 0.02
    # F# (pitch class 6) is now common and F (5) rare,
    counts = np.array(result["pitch_class_counts"])
    assert counts[6] > 10 * counts[5]
    # and the prior, transposed the same way, still scores its own samples with KL exactly 0.
    assert abs(result["metrics"]["kl_per_token"]["value"]) < 1e-9
