"""Fitting a Bradley–Terry reward ensemble to preference pairs, and the figures that judge it.

Arrays in, model out: ``a`` and ``b`` are (N, T) melodies in C major, ``target`` (N,) is P(a ≻ b) as labelled
(1, 0, or 0.5 for a tie). Each member minimises the Bradley–Terry log-loss ``BCE(σ(r(a) − r(b)), target)``
on its own bootstrap resample of the pairs, from its own seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .model import NoteRNN
from .reward_model import RewardEnsemble, RewardModelConfig


@dataclass(frozen=True)
class RewardTraining:
    """How each member is trained."""

    epochs: int = 100
    """Most passes over the (resampled) pairs."""
    patience: int = 15
    """Stop a member after this many epochs without a better loss on its left-out pairs (0 = run every epoch)."""
    batch_size: int = 64
    """Pairs per Adam step."""
    learning_rate: float = 3e-3
    """Adam learning rate."""
    weight_decay: float = 1e-2
    """AdamW weight decay (the pairs are few: keep members simple)."""
    bootstrap: bool = True
    """Each member sees a resample (with replacement) of the pairs; False: all members see all pairs."""


def train_ensemble(
    config: RewardModelConfig,
    a: np.ndarray,
    b: np.ndarray,
    target: np.ndarray,
    training: RewardTraining = RewardTraining(),
    prior: NoteRNN | None = None,
    seed: int = 0,
) -> RewardEnsemble:
    """A fitted, standardised ensemble (eval mode)."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    target = np.asarray(target, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2 or target.shape != (len(a),) or len(a) == 0:
        raise ValueError(f"need (N, T) melodies a and b and (N,) targets; got {a.shape}, {b.shape}, {target.shape}")
    torch.manual_seed(seed)
    model = RewardEnsemble(config, prior)
    melodies = torch.from_numpy(np.concatenate([a, b]))
    with torch.no_grad():
        inputs = model.inputs(melodies)  # the frozen prior's features are computed once
    labels = torch.from_numpy(target).float()
    count = len(a)
    rng = np.random.default_rng(seed)
    for index, member in enumerate(model.members):
        torch.manual_seed(seed * 1000 + index)
        chosen = rng.integers(0, count, count) if training.bootstrap and config.members > 1 else np.arange(count)
        _train_member(member, inputs, count, torch.from_numpy(chosen), labels, training, rng)
    _standardise(model, inputs)
    return model.eval()


def _train_member(
    member: nn.Module,
    inputs: torch.Tensor,
    count: int,
    chosen: torch.Tensor,
    labels: torch.Tensor,
    training: RewardTraining,
    rng: np.random.Generator,
) -> None:
    """Adam on the chosen pairs; with a bootstrap, the pairs left out of the resample (about a third) pick
    the epoch to keep — the member's own early stopping, no data set aside."""
    optimizer = torch.optim.AdamW(member.parameters(), lr=training.learning_rate, weight_decay=training.weight_decay)
    loss_fn = nn.BCEWithLogitsLoss()
    left_out = torch.from_numpy(np.setdiff1d(np.arange(count), chosen.numpy()))
    watch = training.patience > 0 and len(left_out) > 0
    best_loss, best_state, waited = float("inf"), None, 0
    for _ in range(training.epochs):
        member.train()
        order = chosen[torch.from_numpy(rng.permutation(len(chosen)))]
        for begin in range(0, len(order), training.batch_size):
            pairs = order[begin : begin + training.batch_size]
            loss = loss_fn(_logits(member, inputs, pairs, count), labels[pairs])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if not watch:
            continue
        member.eval()
        with torch.no_grad():
            held_loss = float(loss_fn(_logits(member, inputs, left_out, count), labels[left_out]))
        if held_loss < best_loss - 1e-4:
            best_loss, waited = held_loss, 0
            best_state = {name: t.detach().clone() for name, t in member.state_dict().items()}
        else:
            waited += 1
            if waited >= training.patience:
                break
    if best_state is not None:
        member.load_state_dict(best_state)
    member.eval()


def _logits(member: nn.Module, inputs: torch.Tensor, pairs: torch.Tensor, count: int) -> torch.Tensor:
    """r(a) − r(b) for the given pair indices (inputs hold all a's, then all b's)."""
    score_a, score_b = member(inputs[torch.cat([pairs, pairs + count])]).chunk(2)
    return score_a - score_b


@torch.no_grad()
def _standardise(model: RewardEnsemble, inputs: torch.Tensor) -> None:
    raw = torch.stack([member(inputs) for member in model.members])
    model.offset.copy_(raw.mean(dim=1))
    model.scale.copy_(raw.std(dim=1).clamp_min(1e-6))


def preference_metrics(p_a: np.ndarray, target: np.ndarray, bins: int = 10) -> dict[str, float]:
    """How well predicted P(a ≻ b) fits the answers.

    ``pairwise_accuracy``: share of decided (non-tie) pairs whose winner has p > 0.5 (p = 0.5 counts half);
    ``log_loss``: mean binary cross-entropy in nats, ties with target 0.5; ``ece``: expected calibration
    error over ``bins`` equal-width bins of p — Σ share(bin) · |mean p − share of a wins| in that bin.
    """
    p_a = np.clip(np.asarray(p_a, dtype=np.float64), 1e-7, 1 - 1e-7)
    target = np.asarray(target, dtype=np.float64)
    decided = target != 0.5
    correct = np.where(p_a == 0.5, 0.5, (p_a > 0.5) == (target > 0.5))
    log_loss = -(target * np.log(p_a) + (1 - target) * np.log(1 - p_a))
    which = np.minimum((p_a * bins).astype(int), bins - 1)
    ece = 0.0
    for index in range(bins):
        inside = which == index
        if inside.any():
            ece += inside.mean() * abs(p_a[inside].mean() - target[inside].mean())
    return {
        "pairs": int(len(p_a)),
        "pairwise_accuracy": float(correct[decided].mean()) if decided.any() else float("nan"),
        "log_loss": float(log_loss.mean()) if len(p_a) else float("nan"),
        "ece": float(ece),
    }
