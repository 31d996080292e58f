"""Gymnasium environments in which a note model writes melodies; ``notetune/Melody-v0`` is registered."""

from gymnasium.envs.registration import register

from .composition import CompositionBatch, StepResult
from .melody_env import MelodyEnv, observation_space
from .prior import PriorScorer
from .vec_env import MelodyVecEnv, NullMelodyVecEnv

register(id="notetune/Melody-v0", entry_point="notetune.envs.melody_env:MelodyEnv", max_episode_steps=None)

__all__ = [
    "CompositionBatch",
    "MelodyEnv",
    "MelodyVecEnv",
    "NullMelodyVecEnv",
    "PriorScorer",
    "StepResult",
    "observation_space",
]
