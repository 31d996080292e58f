"""The Note RNN: an LSTM language model over the token vocabulary.

Its public interface is all that later code uses — ``initial_state``, ``start``, ``step`` (one token for a
batch, state carried), ``features``/``forward``/``logits_and_features`` (a sequence) and
``sequence_log_probs``. Nothing outside this module needs to know it is an LSTM: other architectures
(:mod:`notetune.pretrained.lookback`) derive from :class:`NoteModel` and offer the same methods.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

from .vocab import DEFAULT_VOCABULARY, Vocabulary

State = tuple[torch.Tensor, ...]
"""(h, c) of the LSTM; with a position bias also the steps read (B,), and with phrase copies the last inputs
(B, max lag)."""


def config_to_dict(config: Any) -> dict:
    """An architecture dataclass as config.json stores it (the vocabulary as its own dict, tuples as lists)."""
    data = {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(config).items()}
    data["vocab"] = config.vocab.to_dict()
    return data


def config_fields(cls: type, data: dict) -> tuple[Vocabulary, dict]:
    """(vocabulary, the other fields) of a stored architecture, refusing fields ``cls`` does not have."""
    data = dict(data)
    vocab = Vocabulary.from_dict(data.pop("vocab"))
    unknown = set(data) - {name for name in cls.__dataclass_fields__ if name != "vocab"}
    if unknown:
        raise ValueError(f"unknown model fields {sorted(unknown)}")
    return vocab, {key: tuple(value) if isinstance(value, list) else value for key, value in data.items()}


@dataclass(frozen=True)
class NoteRNNConfig:
    """Architecture of a Note RNN; saved in the checkpoint's config.json."""

    vocab: Vocabulary = field(default_factory=lambda: DEFAULT_VOCABULARY)
    embedding_dim: int = 32
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.0
    position_bias: int = 0
    """Rows of a learned logit bias per position (see :class:`PositionBias`); 0 = none (a pretrained prior)."""
    phrase_lags: tuple[int, ...] = ()
    """Steps back to the same place in each earlier phrase that the position bias can copy from (a form's)."""
    phrase_start: int = -1
    """Row of the piece's first step (the primer's length) for the copy gate per phrase; -1 = no gate."""

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NoteRNNConfig:
        vocab, fields = config_fields(cls, data)
        return cls(vocab=vocab, **fields)


class PositionBias(nn.Module):
    """A learned bias of each token's logit at each position of a melody: ``SCALE · weight[k, v]`` is added to the
    logit of token ``v`` as the ``k``-th token after the start token (primer tokens count), zero beyond the
    last row.

    A recurrent prior knows where it is in the bar (or not even that) but not where it is in the piece; a
    tuned policy that must end on a held tonic at step 124, or cadence at each phrase end, gets that knowledge
    from this table. It starts at zero, so a policy with it equals its prior (KL = 0) before its first update;
    tuning adds it (``position_bias`` rows in the architecture's config) and the exported model keeps it.

    With ``phrase_lags`` (a form's phrase length and its multiples) it is also a pointer into earlier phrases:
    ``COPY_SCALE · copy[k, j]`` is added to the logit of the token ``phrase_lags[j]`` steps before position ``k``.
    A policy writing a form learns, position by position, to copy the first A into each returning A and to
    steer B away from what A played there: the decision is one scalar per step and phrase, not something the
    recurrent state must count its way to. The model carries the last ``max(phrase_lags)`` inputs to read them.

    With ``phrase_start`` ≥ 0 (the row of the piece's first step) each copy weight is also raised by a gate
    shared by the whole phrase, ``COPY_SCALE · gate[p, j]`` for the ``p``-th phrase (``phrase_lags[0]`` steps
    each): "copy the first A into this A" is then one decision learned from every step of the phrase at once,
    where the weight per step hears only its own step. At 16 bars the third A must copy from 128 or 192 steps
    back, beyond the Lookback prior's own lags (16, 32, 64): without the gate its weights per step averaged
    1.8 nats (lags 128 and 192 together) after 6.4 M steps of an AABA run, against 4.6 for the second A's lag 64.
    """

    SCALE = 32.0
    """The bias is ``SCALE · weight``: each entry is one scalar that few updates touch, and Adam moves a parameter
    by about the learning rate per update whatever its gradient, so at the policy's 1e-4 an unscaled table would
    move a logit by 0.4 nat in 4,000 updates; scaled, it moves as far as the task asks."""
    COPY_SCALE = 128.0
    """The phrase copies are ``COPY_SCALE · copy``: a copy is paid through many noisy steps, and at ``SCALE`` its
    weights reached under 1 nat in 1.7 M steps of an AABA run, too little to copy a phrase."""

    def __init__(self, rows: int, size: int, phrase_lags: tuple[int, ...] = (), phrase_start: int = -1) -> None:
        super().__init__()
        if rows < 1:
            raise ValueError(f"a position bias needs at least one row, got {rows}")
        if phrase_lags and min(phrase_lags) < 1:
            raise ValueError(f"phrase lags must be positive step counts, got {phrase_lags}")
        if phrase_lags and not -1 <= phrase_start < rows:
            raise ValueError(f"the piece's first step must be a row of the bias (0 to {rows - 1}), got {phrase_start}")
        self.weight = nn.Parameter(torch.zeros(rows, size))
        self.phrase_lags = tuple(phrase_lags)
        self.copy = nn.Parameter(torch.zeros(rows, len(phrase_lags))) if phrase_lags else None
        self.window = max(phrase_lags, default=0)
        """Inputs the model carries for the copies (0 without)."""
        self.phrase_start = phrase_start if phrase_lags else -1
        self.gate: nn.Parameter | None = None
        if self.phrase_start >= 0:
            phrases = -(-(rows - self.phrase_start) // self.phrase_lags[0])
            self.gate = nn.Parameter(torch.zeros(phrases, len(phrase_lags)))

    def copy_weights(self, positions: torch.Tensor) -> torch.Tensor:
        """``COPY_SCALE · (copy + gate of the phrase)`` at each of ``positions`` (B, T): (B, T, lags)."""
        assert self.copy is not None
        weights = self._rows(self.copy, self.COPY_SCALE, positions)
        if self.gate is None:
            return weights
        steps = positions - self.phrase_start  # the primer's rows (negative) have no phrase
        phrases = torch.div(steps, self.phrase_lags[0], rounding_mode="floor").clamp(min=0)
        gates = self._rows(self.gate, self.COPY_SCALE, phrases)
        return weights + gates.masked_fill((steps < 0).unsqueeze(-1), 0.0)

    def initial_history(self, batch_size: int, none: int, device: torch.device) -> torch.Tensor:
        """(B, window) inputs before the start: ``none`` (the start token) copies nothing."""
        return torch.full((batch_size, self.window), none, dtype=torch.long, device=device)

    @staticmethod
    def _rows(table: torch.Tensor, scale: float, positions: torch.Tensor) -> torch.Tensor:
        """``scale · table`` at each of ``positions`` (B, T), zero past its last row: (B, T, columns)."""
        rows = table.shape[0]
        return (scale * table[positions.clamp(max=rows - 1)]).masked_fill((positions >= rows).unsqueeze(-1), 0.0)

    def forward(
        self,
        logits: torch.Tensor,
        steps: torch.Tensor,
        inputs: torch.Tensor | None = None,
        history: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``logits`` (B, T, V) after ``inputs`` (B, T) whose first is the ``steps`` (B,)-th read, ``history``
        (B, window) the inputs before them (both only with phrase lags); the biased logits."""
        length = logits.shape[1]
        positions = steps.unsqueeze(1) + torch.arange(length, device=logits.device)
        biased = logits + self._rows(self.weight, self.SCALE, positions)
        if self.copy is None:
            return biased
        tokens = torch.cat([history, inputs], dim=1)  # column window + i is inputs[:, i]
        weights = self.copy_weights(positions)  # (B, T, lags)
        size = logits.shape[-1]
        copies = torch.zeros(*logits.shape[:2], size + 1, dtype=logits.dtype, device=logits.device)
        for index, lag in enumerate(self.phrase_lags):
            # Input i predicts position steps + i; the token `lag` positions before is input steps + i + 1 - lag.
            then = tokens[:, self.window + 1 - lag : self.window + 1 - lag + length]
            copies.scatter_add_(-1, then.clamp(max=size).unsqueeze(-1), weights[..., index : index + 1])
        return biased + copies[..., :size]

    def advance(self, history: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """The history (B, window) after reading ``inputs`` (B, T)."""
        return torch.cat([history, inputs], dim=1)[:, -self.window :]


def position_bias(config: Any) -> PositionBias | None:
    """The :class:`PositionBias` an architecture config asks for (``position_bias`` rows), or None."""
    rows = getattr(config, "position_bias", 0)
    if not rows:
        return None
    lags, start = getattr(config, "phrase_lags", ()), getattr(config, "phrase_start", -1)
    return PositionBias(rows, config.vocab.size, lags, start)


@torch.no_grad()
def with_position_bias(
    model: NoteModel, rows: int, phrase_lags: tuple[int, ...] = (), phrase_start: int = -1
) -> NoteModel:
    """A copy of ``model`` with a position bias of at least ``rows`` rows (its own rows kept, new ones zero),
    copying from ``phrase_lags`` (its own when none are given) with a gate per phrase from row ``phrase_start``
    (its own gate, when it has one for those lags): the same distribution as ``model``, tables more to learn.
    How a tuning policy starts from its prior."""
    own = getattr(model, "position", None)
    rows = max(rows, 0 if own is None else own.weight.shape[0])
    if not phrase_lags and own is not None:
        phrase_lags = own.phrase_lags
    lags = tuple(phrase_lags)
    if own is not None and own.gate is not None and own.phrase_lags == lags:
        phrase_start = own.phrase_start  # a gate the model has is kept: the copy starts as the model itself
    config = replace(model.config, position_bias=rows, phrase_lags=lags, phrase_start=phrase_start if lags else -1)
    result = type(model)(config).to(model.head.weight.device)
    weights = {name: value for name, value in model.state_dict().items() if not name.startswith("position.")}
    result.load_state_dict(weights, strict=False)
    if own is not None:
        result.position.weight[: own.weight.shape[0]] = own.weight
        if own.copy is not None and own.phrase_lags == lags:
            result.position.copy[: own.copy.shape[0]] = own.copy
            if own.gate is not None:
                result.position.gate[: own.gate.shape[0]] = own.gate
    return result.train(model.training)


class NoteModel(nn.Module):
    """What every prior architecture offers: subclasses define ``initial_state``, ``logits_and_features``
    and the attributes ``config``, ``vocab``, ``num_actions``, ``start_token``, ``head`` and ``dropout``."""

    arch = "note_model"
    """The name checkpoints record in config.json (``arch``) and ``pretrain --arch`` chooses by."""
    position: PositionBias | None
    """The learned bias per position of a tuned model (None for a pretrained prior); set by each architecture."""

    def initial_state(self, batch_size: int):
        raise NotImplementedError

    def logits_and_features(self, inputs: torch.Tensor, state=None) -> tuple[torch.Tensor, torch.Tensor, object]:
        """(logits (B, T, V) of the next token, features (B, T, hidden_size) for a value head, state)."""
        raise NotImplementedError

    def features(self, inputs: torch.Tensor, state=None) -> tuple[torch.Tensor, object]:
        """Hidden features (B, T, hidden_size) for input ids (B, T), and the state after them."""
        _, features, state = self.logits_and_features(inputs, state)
        return features, state

    def forward(self, inputs: torch.Tensor, state=None) -> tuple[torch.Tensor, object]:
        """Logits (B, T, V) of the next token after each input."""
        logits, _, state = self.logits_and_features(inputs, state)
        return logits, state

    def step(self, tokens: torch.Tensor, state) -> tuple[torch.Tensor, object]:
        """Log-probabilities (B, V) of the next token after feeding ``tokens`` (B,)."""
        logits, state = self.forward(tokens.view(-1, 1), state)
        return torch.log_softmax(logits[:, 0], dim=-1), state

    def start(self, batch_size: int) -> tuple[torch.Tensor, object]:
        """Log-probabilities of the first token of a melody, and the state after the start token."""
        device = self.head.weight.device
        tokens = torch.full((batch_size,), self.start_token, dtype=torch.long, device=device)
        return self.step(tokens, self.initial_state(batch_size))

    def sequence_log_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        """log p(token_t | start, tokens_<t) for each position of (B, T) melodies, shape (B, T)."""
        start = torch.full((tokens.shape[0], 1), self.start_token, dtype=torch.long, device=tokens.device)
        logits, _ = self.forward(torch.cat([start, tokens[:, :-1]], dim=1))
        return torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


class NoteRNN(NoteModel):
    """Embedding → LSTM → linear logits over ``vocab.size`` tokens.

    The input vocabulary has one extra id, ``start_token`` (= vocab.size), fed first so that sampling
    starts where training melodies start.
    """

    arch = "note_rnn"

    def __init__(self, config: NoteRNNConfig = NoteRNNConfig()) -> None:
        super().__init__()
        self.config = config
        self.vocab = config.vocab
        self.num_actions = config.vocab.size
        self.start_token = config.vocab.size
        self.embedding = nn.Embedding(config.vocab.size + 1, config.embedding_dim)
        self.lstm = nn.LSTM(
            config.embedding_dim,
            config.hidden_size,
            config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab.size)
        self.position = position_bias(config)

    # --------------------------------------------------------------------------------- state
    def initial_state(self, batch_size: int) -> State:
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        weight = self.head.weight
        h = torch.zeros(shape, dtype=weight.dtype, device=weight.device)
        if self.position is None:
            return h, torch.zeros_like(h)
        steps = torch.zeros(batch_size, dtype=torch.long, device=weight.device)
        if self.position.copy is None:
            return h, torch.zeros_like(h), steps
        return h, torch.zeros_like(h), steps, self.position.initial_history(batch_size, self.start_token, h.device)

    # ------------------------------------------------------------------------------- compute
    def features(self, inputs: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """LSTM outputs (B, T, H) for input ids (B, T)."""
        if state is None:
            state = self.initial_state(inputs.shape[0])
        output, (h, c) = self.lstm(self.embedding(inputs), (state[0], state[1]))
        if self.position is None:
            return output, (h, c)
        if self.position.copy is None:
            return output, (h, c, state[2] + inputs.shape[1])
        return output, (h, c, state[2] + inputs.shape[1], self.position.advance(state[3], inputs))

    def logits_and_features(
        self, inputs: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        if state is None:
            state = self.initial_state(inputs.shape[0])
        output, new_state = self.features(inputs, state)
        logits = self.head(self.dropout(output))
        if self.position is not None:
            logits = self.position(logits, state[2], inputs, *state[3:])
        return logits, output, new_state


class PriorProduct(nn.Module):
    """π(a|h) ∝ exp(Q(h, a)) · p_prior(a|h): G-learning's policy, a Q-network combined with its prior.

    It offers the same sampling interface as the Note RNN (``start``, ``step``, ``forward``,
    ``sequence_log_probs``), so tuned G models sample and evaluate like any other checkpoint.
    """

    architecture = "prior_product"

    def __init__(self, actor: NoteModel, prior: NoteModel) -> None:
        super().__init__()
        if actor.config != prior.config:
            raise ValueError("the Q-network and the prior must share one architecture")
        self.actor = actor
        self.prior = prior
        self.config = actor.config
        self.vocab = actor.vocab
        self.num_actions = actor.num_actions
        self.start_token = actor.start_token
        self.arch = actor.arch

    def initial_state(self, batch_size: int):
        return self.actor.initial_state(batch_size), self.prior.initial_state(batch_size)

    def forward(self, inputs: torch.Tensor, state=None):
        actor_state, prior_state = state if state is not None else (None, None)
        q_values, actor_state = self.actor(inputs, actor_state)
        prior_logits, prior_state = self.prior(inputs, prior_state)
        return q_values + torch.log_softmax(prior_logits, dim=-1), (actor_state, prior_state)

    def step(self, tokens: torch.Tensor, state):
        logits, state = self.forward(tokens.view(-1, 1), state)
        return torch.log_softmax(logits[:, 0], dim=-1), state

    def start(self, batch_size: int):
        device = self.actor.head.weight.device
        tokens = torch.full((batch_size,), self.start_token, dtype=torch.long, device=device)
        return self.step(tokens, self.initial_state(batch_size))

    def sequence_log_probs(self, tokens: torch.Tensor) -> torch.Tensor:
        start = torch.full((tokens.shape[0], 1), self.start_token, dtype=torch.long, device=tokens.device)
        logits, _ = self.forward(torch.cat([start, tokens[:, :-1]], dim=1))
        return torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
