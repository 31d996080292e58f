"""The algorithms of ``notetune tune``, chosen by name as in SB3: the batched fast path (ppo, a2c, grpo, rloo) on
one :class:`~notetune.envs.MelodyVecEnv`, and RL Tuner's value-based learners (dqn, psi, g)."""

from __future__ import annotations

from typing import Any

import numpy as np
from notetune.envs.vec_env import MelodyVecEnv
from notetune.pretrained.model import NoteModel
from notetune.pretrained.piece import Piece
from notetune.rewards.reward_set import RewardSet

from .config import FAST_PATH, TuneConfig
from .kl import KLController

__all__ = ["FAST_PATH", "build_algorithm", "phrase_lags"]


def phrase_lags(config: TuneConfig, piece: Piece) -> tuple[int, ...]:
    """The earlier-phrase lags the policy's position bias copies from: a soft form's, with ``phrase_copy``."""
    layout = piece.layout
    if not (config.position_bias and config.phrase_copy) or layout is None or piece.strict:
        return ()
    return layout.phrase_lags


def build_algorithm(
    config: TuneConfig,
    prior: NoteModel,
    rewards: RewardSet,
    length: int,
    primer: np.ndarray | None,
    allowed: np.ndarray | None,
    piece: Piece,
    fixed_beta: bool = False,
) -> Any:
    """The learner ``config.algo`` names, its policy a copy of ``prior``. ``fixed_beta`` holds β at 1 (the
    distributional solver: the optimum of the reward λ·g is then p_prior·exp(λ·g))."""
    if config.algo not in FAST_PATH:
        from .dqn import build_q_learner

        return build_q_learner(config, prior, rewards)
    from .ppo import MelodyA2C, MelodyPPO

    env = MelodyVecEnv(
        prior,
        rewards,
        config.num_envs,
        length,
        log_prior_weight=1.0 if config.kl_mode == "rl_tuner" else 0.0,
        primer=primer,
        allowed=allowed,
        form=piece.strict_layout,
    )
    if fixed_beta:
        kl = KLController(1.0, None, config.kl_horizon)
    else:
        kl = KLController(
            config.kl_coef, config.kl_target or None, config.kl_horizon, config.kl_min_beta, config.kl_max_beta
        )
    common = dict(
        learning_rate=config.learning_rate,
        gamma=config.gamma,
        gae_lambda=config.gae_lambda,
        ent_coef=config.ent_coef,
        vf_coef=config.vf_coef,
        max_grad_norm=config.max_grad_norm,
        kl_mode="none" if config.kl_mode == "rl_tuner" else "full",
        kl_controller=kl,
        normalize_advantage=config.normalize_advantage,
        seed=config.seed,
        policy_kwargs={
            "value_hidden": config.value_hidden,
            "position_bias": bool(config.position_bias),
            "phrase_lags": phrase_lags(config, piece),
            "phrase_gate": bool(config.phrase_gate),
        },
    )
    if config.algo == "a2c":
        return MelodyA2C(env, prior, **common)
    clipped = dict(n_epochs=config.n_epochs, batch_size=config.batch_size, clip_range=config.clip_range)
    if config.algo == "ppo":
        return MelodyPPO(env, prior, target_kl=config.target_kl or None, **clipped, **common)
    from .grpo import MelodyGRPO

    return MelodyGRPO(
        env,
        prior,
        group_size=config.group_size,
        advantage=config.algo,
        kl_estimator=config.kl_estimator,
        **clipped,
        **common,
    )
