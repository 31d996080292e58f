"""notetune.rewards: pure, batched reward functions for tuning melody models, and the paper's statistics.

Importing this package registers the built-in rewards and the ``rl_tuner``, ``notetune``, ``notetune_long`` and
``form`` sets.
No torch, no gymnasium, no file I/O: numpy and the token vocabulary only.
"""

from notetune.pretrained.meter import Meter, MeterError

from . import form, long_rules, notetune_rules, novelty, rl_tuner, sets  # noqa: F401  (imported to register rewards and sets)
from .core import (
    DEFAULT_LENGTH,
    RewardError,
    RewardSetup,
    StatefulReward,
    StepBatch,
    UnknownRewardError,
)
from .form import Form, FormError
from .keys import ALL_KEYS, Key
from .registry import (
    ENTRY_POINT_GROUP,
    get_reward,
    register_reward_set,
    registered_reward_sets,
    registered_rewards,
    reward,
)
from .reward_set import RewardSet, parse_spec
from .sets import DEFAULT_REWARD_SET
from .statistics import PAPER_TABLE1, STATISTICS, format_table1, table1_statistics

__all__ = [
    "ALL_KEYS",
    "DEFAULT_LENGTH",
    "DEFAULT_REWARD_SET",
    "Form",
    "FormError",
    "ENTRY_POINT_GROUP",
    "PAPER_TABLE1",
    "STATISTICS",
    "Key",
    "Meter",
    "MeterError",
    "RewardError",
    "RewardSet",
    "RewardSetup",
    "StatefulReward",
    "StepBatch",
    "UnknownRewardError",
    "format_table1",
    "get_reward",
    "parse_spec",
    "register_reward_set",
    "registered_reward_sets",
    "registered_rewards",
    "reward",
    "table1_statistics",
]
