"""Move a note model to another key by relabelling its pitch tokens — no retraining.

The shipped prior was trained on melodies transposed to C major / A minor. Shifting every pitch token by
``k`` semitones turns it into a prior in another key: p'(pitch | history) = p(pitch − k | history − k).
For an embedding → LSTM → linear Note RNN that shift is exact when written into the weights: row ``j`` of
the new input embedding and output head is row ``j − k`` of the old ones. A Lookback LSTM is moved the
same way (its lag-token embeddings too): what it copies from its history moves with the history.
Pitches whose source would lie outside the vocabulary get a large negative output bias (probability 0,
the rest renormalised by the softmax) and, as inputs, the embedding of the same pitch class an octave
inside the range.

The result is a model of the same class (a :class:`NoteRNN`, Lookback LSTM or :class:`PriorProduct`), so
everything that copies, trains, samples or saves a prior works on it unchanged — including a tuning
policy initialised from it.
"""

from __future__ import annotations

import copy
from typing import Protocol, TypeVar

import torch
from torch import nn

from .model import NoteModel, PriorProduct
from .vocab import NUM_SPECIAL, Vocabulary

OUT_OF_RANGE_LOGIT = -1e4
"""Output bias of a pitch the shifted model never plays: exp(−1e4) is exactly 0 in float32."""

PRIOR_KEY = "C major"
"""The key of a checkpoint that does not record one: the corpus is transposed to C major / A minor."""

Model = TypeVar("Model", NoteModel, PriorProduct)


class KeyLike(Protocol):
    """A key as :class:`notetune.rewards.keys.Key` spells it: tonic pitch class and mode."""

    tonic: int
    mode: str


def relative_major_tonic(key: KeyLike) -> int:
    """Pitch class of the major key with the same notes (A minor → 0, i.e. C major)."""
    return key.tonic % 12 if key.mode == "major" else (key.tonic + 3) % 12


def key_transposition(source: KeyLike, target: KeyLike) -> int:
    """Semitones in −6..+5 that move a model in ``source`` to ``target``.

    Major and minor keys are matched through their relative majors (a C major / A minor prior becomes an
    F major / D minor prior by +5); the shift is the smallest one so the fewest pitches leave the range.
    """
    shift = (relative_major_tonic(target) - relative_major_tonic(source)) % 12
    return shift - 12 if shift > 5 else shift


def source_tokens(vocab: Vocabulary, semitones: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each token of the shifted model: the old token it reads (pitch − ``semitones``, folded by
    octaves into the range when outside it) and whether that source pitch was in range."""
    tokens = torch.arange(vocab.size)
    source = tokens.clone()
    in_range = torch.ones(vocab.size, dtype=torch.bool)
    for token in range(NUM_SPECIAL, vocab.size):
        pitch = int(vocab.token_to_pitch(token)) - semitones
        in_range[token] = vocab.min_pitch <= pitch <= vocab.max_pitch
        while pitch < vocab.min_pitch and pitch + 12 <= vocab.max_pitch:
            pitch += 12
        while pitch > vocab.max_pitch and pitch - 12 >= vocab.min_pitch:
            pitch -= 12
        pitch = min(max(pitch, vocab.min_pitch), vocab.max_pitch)  # ranges narrower than an octave
        source[token] = int(vocab.pitch_to_token(pitch))
    return source, in_range


@torch.no_grad()
def _transpose_note_model(model: NoteModel, semitones: int) -> NoteModel:
    shifted = copy.deepcopy(model)
    source, in_range = source_tokens(model.vocab, semitones)
    size = model.vocab.size
    # Every embedding of token ids (the input and, in a Lookback LSTM, each lag's); the start token (the
    # extra input id ``size``) keeps its own row.
    originals = dict(model.named_modules())
    for name, module in shifted.named_modules():
        if isinstance(module, nn.Embedding) and module.num_embeddings == size + 1:
            module.weight[:size] = originals[name].weight[source]
    shifted.head.weight.copy_(torch.where(in_range[:, None], model.head.weight[source], 0.0))
    shifted.head.bias.copy_(torch.where(in_range, model.head.bias[source], OUT_OF_RANGE_LOGIT))
    output = getattr(model, "output", None)
    if output is not None:  # a Q-network's V → V layer on the log-probabilities: rows and columns move
        weight = output.weight[source][:, source]
        shifted.output.weight.copy_(torch.where(in_range[:, None] & in_range[None, :], weight, 0.0))
        shifted.output.bias.copy_(torch.where(in_range, output.bias[source], OUT_OF_RANGE_LOGIT))
    position = getattr(model, "position", None)
    if position is not None:  # a tuned model's bias per position: its token columns move
        shifted.position.weight.copy_(torch.where(in_range[None, :], position.weight[:, source], 0.0))
    return shifted


def transpose_model(model: Model, semitones: int) -> Model:
    """A copy of ``model`` that plays everything ``semitones`` higher (negative: lower); 0 returns ``model``.

    The copy has the same class and config (a Note RNN with permuted embedding and head rows), so it trains,
    saves and samples like the original.
    """
    if not -127 <= semitones <= 127:
        raise ValueError(f"cannot transpose by {semitones} semitones")
    if semitones == 0:
        return model
    if isinstance(model, PriorProduct):
        return PriorProduct(
            _transpose_note_model(model.actor, semitones), _transpose_note_model(model.prior, semitones)
        ).train(model.training)
    if isinstance(model, NoteModel):
        return _transpose_note_model(model, semitones)
    raise TypeError(f"cannot transpose a {type(model).__name__}; expected a note model or PriorProduct")


def transpose_to_key(model: Model, model_key: KeyLike, target_key: KeyLike) -> Model:
    """``model`` (which writes in ``model_key``) moved to ``target_key``; see :func:`key_transposition`."""
    return transpose_model(model, key_transposition(model_key, target_key))
