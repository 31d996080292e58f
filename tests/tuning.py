"""The settings of a tiny tuning run that trains in seconds on the tiny prior and corpus of conftest.py."""

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
