"""The model side of the one evaluation pipeline: sample a model, score the samples under the prior, and hand
tokens and log-probabilities to :func:`notetune.rewards.evaluation.evaluate_tokens`.

Checkpoint selection during tuning (:func:`evaluate_policy`), ``evaluate`` and ``compare``
(:func:`evaluate_source`), sweeps and the benchmarks all end in that one function, so a figure means the same
everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
from notetune.pretrained.errors import UserInputError
from notetune.pretrained.form import form_violations
from notetune.pretrained.meter import DEFAULT_METER
from notetune.pretrained.model import NoteRNN
from notetune.pretrained.piece import Piece
from notetune.pretrained.sampling import sample_tokens, token_log_probs
from notetune.pretrained.vocab import Vocabulary
from notetune.rewards import Key
from notetune.rewards.evaluation import Evaluation, evaluate_tokens
from notetune.rewards.metrics import NoteNgramIndex
from notetune.rewards.reward_set import RewardSet

from .sources import Prior, SampleSource, load_corpus_index


def evaluate_policy(
    model: NoteRNN,
    prior: NoteRNN,
    *,
    num: int,
    length: int,
    seed: int,
    key: Key | str = "C major",
    primer: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
    rewards: RewardSet | None = None,
    corpus_index: NoteNgramIndex | None = None,
    resamples: int = 1000,
    label: str = "policy",
    piece: Piece | None = None,
) -> Evaluation:
    """Every figure of ``num`` compositions sampled from ``model`` with ``seed`` (a fixed seed, so checkpoints
    compare), scored under ``prior``.

    With a primer or constraint mask, the model and the prior are conditioned and masked exactly as in
    training, so KL and log p_prior measure what the policy is trained on. ``rewards`` should be a fresh set
    (an evaluation must not change the state of the set that trains the policy). ``piece`` gives the meter of
    the structure metrics and the form: a strict form masks sampling and the prior's log p as in training.
    """
    piece = piece or Piece(length)
    form = piece.strict_layout
    tokens, log_probs = sample_tokens(
        model, num, length, seed=seed, return_log_probs=True, primer=primer, allowed=allowed, form=form
    )
    log_prior = token_log_probs(prior, tokens, primer=primer, allowed=allowed, form=form)
    return evaluate_tokens(
        tokens,
        label,
        key=key,
        vocab=model.vocab,
        prior_log_probs=log_prior,
        model_log_probs=log_probs,
        rewards=rewards,
        corpus_index=corpus_index,
        resamples=resamples,
        seed=seed,
        meter=piece.meter,
        form=piece.layout,
        phrase_bars=piece.statistics_phrase_bars,
    )


def evaluate_source(
    source: SampleSource,
    *,
    prior: Prior | None = None,
    corpus: str | None = "default",
    key: str | None = None,
    rewards: Callable[[str], RewardSet] | None = None,
    paper_token_order: bool = False,
    set_size: int | None = None,
    resamples: int = 1000,
    seed: int = 0,
    piece: Piece | None = None,
) -> Evaluation:
    """Evaluate a source's melodies; the key defaults to the model's own, else C major.

    ``rewards`` builds a fresh reward set for the judged key (adds ``music_reward`` and ``reward_<name>``).
    ``piece`` gives the meter and form of the structure metrics; under a strict form the prior's log p is
    renormalised over what the form allows, as the source was sampled.
    """
    piece = piece or Piece(source.tokens.shape[1])
    form = piece.strict_layout if piece.length == source.tokens.shape[1] else None
    if form is not None and form_violations(source.tokens, form).any():
        form = None  # melodies that break the form (a corpus, files) are scored by the unmasked prior
    started = time.perf_counter()
    eval_key = str(Key.parse(key or source.key or "C major"))
    prior_log_probs = None
    if prior is not None:
        if prior.model.vocab != source.vocab:
            raise UserInputError(
                f"the prior {prior.checkpoint} uses vocabulary {prior.model.vocab} but {source.label} "
                f"uses {source.vocab}; pass a matching --prior or --prior none"
            )
        # The prior's own samples at temperature 1 in the judged key: its log p is the sampler's (KL exactly 0).
        same_model = (
            source.checkpoint == prior.checkpoint
            and source.settings.get("temperature", 1.0) == 1.0
            and eval_key == str(Key.parse(source.key or prior.key))
        )
        prior_log_probs = (
            source.model_log_probs if same_model else token_log_probs(prior.in_key(eval_key), source.tokens, form=form)
        )
    corpus_index, corpus_path = load_corpus_index(corpus)
    settings = {
        "source": source.path,
        "kind": source.kind,
        **source.settings,
        "prior": None if prior is None else str(prior.checkpoint),
        "corpus": corpus_path,
    }
    evaluation = evaluate_tokens(
        source.tokens,
        source.label,
        key=eval_key,
        vocab=source.vocab,
        prior_log_probs=prior_log_probs,
        model_log_probs=source.model_log_probs if prior is not None else None,
        rewards=rewards(eval_key) if rewards is not None else None,
        corpus_index=corpus_index,
        paper_token_order=paper_token_order,
        set_size=set_size,
        resamples=resamples,
        seed=seed,
        settings=settings,
        meter=piece.meter,
        form=piece.layout if piece.length == source.tokens.shape[1] else None,
        phrase_bars=piece.statistics_phrase_bars,
    )
    evaluation.settings["scoring_seconds"] = round(time.perf_counter() - started, 3)
    return evaluation


DEFAULT_EVALUATION_REWARD = "notetune"
"""The reward set ``evaluate`` and ``compare`` score with when neither the flag nor the tuned model names one."""


def reward_spec_for(
    spec: str | None, sources: Iterable[SampleSource]
) -> tuple[str | list[str], dict[str, float]] | None:
    """The reward spec and weights that ``evaluate`` / ``compare`` score ``sources`` with (None: no reward figures).

    ``spec`` is what the user gave ("none" for no reward figures). Without it, the tuned models' own spec and
    weights (their config.json's ``tuned`` section) when every tuned source agrees on them, so a tuned model's
    ``music_reward`` is the one it was trained for and every column of a comparison uses the same set; otherwise
    :data:`DEFAULT_EVALUATION_REWARD`.
    """
    if spec is not None:
        return None if spec.strip().lower() == "none" else (spec, {})
    tuned = [
        (list(s.tuned["reward"]), dict(s.tuned.get("weights") or {})) for s in sources if (s.tuned or {}).get("reward")
    ]
    if tuned and all(t == tuned[0] for t in tuned):
        return tuned[0]
    return DEFAULT_EVALUATION_REWARD, {}


def reward_builder(
    spec: str | list[str],
    weights: Mapping[str, float] | None = None,
    *,
    length: int,
    vocab: Vocabulary,
    corpus: Sequence[np.ndarray] | None = None,
    piece: Piece | None = None,
) -> Callable[[str], RewardSet]:
    """``key -> fresh RewardSet`` for :func:`evaluate_source`; builds one set at once so a bad spec fails here.
    ``piece`` gives the bar-level rules their meter and the ``form`` rewards their form (as in the run)."""
    meter = piece.meter if piece is not None else DEFAULT_METER
    form = piece.form if piece is not None else None

    def build(key: str) -> RewardSet:
        return RewardSet.from_spec(
            spec, weights, key=key, vocab=vocab, length=length, corpus=corpus, meter=meter, form=form
        )

    build("C major")
    return build
