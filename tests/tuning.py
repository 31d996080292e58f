"""The settings of a tiny tuning run that trains in seconds on the tiny prior and corpus of conftest.py, and
how a model's log-probabilities are read one step at a time."""

import torch
from notetune.agents.config import TuneConfig

TINY_RUN = dict(
    length=8,
    num_envs=64,
    steps=8192,
    max_minutes=0,
    eval_every=4096,
    eval_size=256,
    confirm_size=256,
    checkpoint_every=4096,
    threads=1,
    progress=False,
    kl_coef=0.05,
    kl_target=0.0,
    learning_rate=3e-3,
    patience=0,
    max_kl=100.0,
)


def tiny_config(out, prior_dir: str, corpus_path: str, **overrides) -> TuneConfig:
    """A TuneConfig of the tiny run writing to ``out``, with ``overrides``."""
    return TuneConfig(**{**TINY_RUN, "prior": prior_dir, "corpus": corpus_path, "out": str(out), **overrides})


def stepped_log_probs(model, tokens: torch.Tensor) -> torch.Tensor:
    """log p of each token of (B, T) melodies, stepping ``model`` one token at a time with carried state."""
    log_probs, state = model.start(len(tokens))
    rows = [log_probs.gather(1, tokens[:, :1])[:, 0]]
    for t in range(1, tokens.shape[1]):
        log_probs, state = model.step(tokens[:, t - 1], state)
        rows.append(log_probs.gather(1, tokens[:, t : t + 1])[:, 0])
    return torch.stack(rows, 1)
