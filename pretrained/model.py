"""The Note RNN: an LSTM language model over the token vocabulary.

Its public interface is all that later code uses — ``initial_state``, ``start``, ``step`` (one token for a
batch, state carried), ``features``/``forward``/``logits_and_features`` (a sequence) and
``sequence_log_probs``. Nothing outside this module needs to know it is an LSTM: other architectures
(:mod:`notetune.pretrained.lookback`) derive from :class:`NoteModel` and offer the same methods.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from .vocab import DEFAULT_VOCABULARY, Vocabulary

State = tuple[torch.Tensor, torch.Tensor]


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
    return vocab, data


@dataclass(frozen=True)
class NoteRNNConfig:
    """Architecture of a Note RNN; saved in the checkpoint's config.json."""

    vocab: Vocabulary = field(default_factory=lambda: DEFAULT_VOCABULARY)
    embedding_dim: int = 32
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> NoteRNNConfig:
        vocab, fields = config_fields(cls, data)
        return cls(vocab=vocab, **fields)


class NoteModel(nn.Module):
    """What every prior architecture offers: subclasses define ``initial_state``, ``logits_and_features``
    and the attributes ``config``, ``vocab``, ``num_actions``, ``start_token``, ``head`` and ``dropout``."""

    arch = "note_model"
    """The name checkpoints record in config.json (``arch``) and ``pretrain --arch`` chooses by."""

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

    # --------------------------------------------------------------------------------- state
    def initial_state(self, batch_size: int) -> State:
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        weight = self.head.weight
        return torch.zeros(shape, dtype=weight.dtype, device=weight.device), torch.zeros(
            shape, dtype=weight.dtype, device=weight.device
        )

    # ------------------------------------------------------------------------------- compute
    def features(self, inputs: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """LSTM outputs (B, T, H) for input ids (B, T)."""
        if state is None:
            state = self.initial_state(inputs.shape[0])
        output, state = self.lstm(self.embedding(inputs), state)
        return output, state

    def logits_and_features(
        self, inputs: torch.Tensor, state: State | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        output, state = self.features(inputs, state)
        return self.head(self.dropout(output)), output, state


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
