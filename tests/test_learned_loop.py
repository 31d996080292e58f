"""The preference loop without people, end to end on a tiny budget: a simulated listener answers pairs of the
prior's melodies, DPO tunes on them, and the listener then prefers the tuned model over the prior."""

import numpy as np
from notetune.agents.dpo import DPOConfig, train_dpo
from notetune.agents.listener_loop import SimulateConfig, judge_share_against, simulate_listening
from notetune.pretrained.vocab import NUM_SPECIAL
from notetune.rewards.preferences import parse_preferences


def high_notes(tokens: np.ndarray) -> np.ndarray:
    """A listener who likes melodies that sit high: the mean struck pitch token."""
    struck = tokens >= NUM_SPECIAL
    return np.where(struck, tokens, 0).sum(1) / np.maximum(struck.sum(1), 1)


def test_simulated_listener_loop_raises_the_judges_preference(tmp_path):
    pairs, ceiling = simulate_listening(SimulateConfig(pairs=200, noise=0.5, seed=3), high_notes)
    lines = [pair.to_json() for pair in pairs]
    data = parse_preferences(lines)
    assert len(data) == 200 and data.skipped == {} and 0.5 < ceiling < 1
    record = train_dpo(DPOConfig(out=str(tmp_path / "dpo"), epochs=2, learning_rate=1e-3, eval_size=100), lines)
    assert record["chosen"]["epoch"] > 0
    before = judge_share_against(high_notes, "default", "default", size=500)
    after = judge_share_against(high_notes, str(tmp_path / "dpo"), "default", size=500)
    assert abs(before - 0.5) < 0.06 and after > 0.6
