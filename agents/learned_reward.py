"""``--reward learned:DIR``: a fitted reward model (``notetune reward fit``) as a term of any reward set.

:func:`learned_reward` is the resolver of the ``learned`` reward prefix (declared in the
``notetune.reward_prefixes`` entry-point group, and registered when this module is imported): for each reward
set it loads the ensemble, checks its vocabulary against the set's, and scores finished compositions written
in the set's key.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from notetune.pretrained.reward_model import RewardEnsemble, load_reward_model, read_reward_config
from notetune.pretrained.vocab import Vocabulary
from notetune.rewards.core import RewardSetup
from notetune.rewards.learned import LearnedReward
from notetune.rewards.registry import RewardFactory, register_reward_prefix

_LOADED: dict[tuple[str, float, Vocabulary], RewardEnsemble] = {}


def _load(directory: Path, vocab: Vocabulary) -> RewardEnsemble:
    """The ensemble in ``directory`` (loaded once per file version), refused if fitted for another vocabulary."""
    weights = directory / "model.safetensors"
    stamp = (str(directory.resolve()), weights.stat().st_mtime if weights.is_file() else 0.0, vocab)
    if stamp not in _LOADED:
        _LOADED[stamp] = load_reward_model(directory, expected_vocab=vocab)[0]
    return _LOADED[stamp]


def learned_reward(argument: str) -> RewardFactory:
    """The ``learned`` prefix: ``learned:DIR`` is the reward model saved in ``DIR``."""
    directory = Path(argument)
    read_reward_config(directory)  # a missing or wrong directory fails while the spec is read

    def build(setup: RewardSetup) -> LearnedReward:
        """The learned reward of the reward model in DIR: its conservative score at the last step."""
        model = _load(directory, setup.vocab)

        @torch.no_grad()
        def scorer(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return model.score(tokens, key=setup.key)

        return LearnedReward(scorer, model.config.spread_penalty, setup)

    return build


register_reward_prefix("learned", learned_reward)
