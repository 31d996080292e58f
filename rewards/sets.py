"""The named reward sets: ``rl_tuner`` (faithful), ``notetune`` (the corrected default), ``notetune_long``
(``notetune`` with bar-level returns and cadences, for long pieces) and ``form`` (added to a spec with a form)."""

from __future__ import annotations

from .form import FORM_WEIGHTS
from .long_rules import NOTETUNE_LONG_WEIGHTS
from .notetune_rules import NOTETUNE_WEIGHTS
from .registry import register_reward_set
from .rl_tuner import RL_TUNER_RULES

RL_TUNER_C = 0.5
"""RL Tuner's c: the music-theory sum is paid with weight 1/c = 2 (the agent adds the prior's log p)."""

RL_TUNER_WEIGHTS = dict.fromkeys(RL_TUNER_RULES, 1.0 / RL_TUNER_C)

DEFAULT_REWARD_SET = "notetune"

register_reward_set("rl_tuner", RL_TUNER_WEIGHTS)
register_reward_set("notetune", NOTETUNE_WEIGHTS)
register_reward_set("notetune_long", NOTETUNE_LONG_WEIGHTS)
register_reward_set("form", FORM_WEIGHTS)
