"""The Lookback LSTM: a Note RNN that can copy what it played one, two or four bars ago.

An LSTM reads each token together with the tokens that lie one lag back from the step it predicts
(``lags`` = 16, 32, 64 steps: 1, 2 and 4 bars of 4/4), whether the last token repeated its lag-ago
token, and the position in the bar. Its output is a mixture, weighted by a learned gate over the LSTM
state, of

- the LSTM's own softmax over the vocabulary,
- "copy the token ``lag`` steps back" for each lag (a pointer over bar lags: literal repeats), and
- "copy the interval ``lag`` steps back" for each lag: the pitch of then, moved by how far the melody's
  current pitch lies from its pitch then (transposed repeats); holds and rests copy as they are.

Repeating a bar is one confident gate decision instead of sixteen token predictions, which is what the
plain LSTM cannot learn to do. The state carries the LSTM state, a ring of the last ``max(lags) + 1``
input tokens with the last sounding pitch at each, and the step count, so stepping one token at a time
gives exactly the log-probabilities of a whole sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from .model import NoteModel, config_fields, config_to_dict, position_bias
from .vocab import DEFAULT_VOCABULARY, NUM_SPECIAL, Vocabulary

LookbackState = tuple[torch.Tensor, ...]
"""(h, c, history (B, W) input ids, last sounding pitch token at each (B, W), steps read (B,),
steps each lag has been repeating for (B, lags)); with a position bias's phrase copies also the last inputs
(B, max phrase lag)."""

RUN_SCALE = 16.0
"""Repeat run lengths enter the network in bars of 16 steps, capped at 4 bars."""


@dataclass(frozen=True)
class LookbackConfig:
    """Architecture of a Lookback LSTM; saved in the checkpoint's config.json."""

    vocab: Vocabulary = field(default_factory=lambda: DEFAULT_VOCABULARY)
    embedding_dim: int = 64
    hidden_size: int = 192
    num_layers: int = 1
    dropout: float = 0.1
    lags: tuple[int, ...] = (16, 32, 64)
    """Steps back the model reads and can copy from (16 = one bar of 4/4 in 16th notes)."""
    lag_embedding_dim: int = 16
    """Size of the embedding of each lag-ago token in the LSTM input."""
    bar_steps: int = 16
    """Steps per bar for the bar-position input (counted from the melody's first token)."""
    interval_copy: bool = True
    """Also offer "copy the interval lag steps back" (transposed repeats)."""
    run_lengths: bool = True
    """Tell the LSTM and the gate for how many steps each lag has been repeating (a copy, once begun, goes on)."""
    output_layer: bool = False
    """A linear map (V → V) after the mixture's log-probabilities: the Q-network that dqn/psi/g tune and export."""
    position_bias: int = 0
    """Rows of a learned logit bias per position (see :class:`~notetune.pretrained.model.PositionBias`); 0 = none."""
    phrase_lags: tuple[int, ...] = ()
    """Steps back to the same place in each earlier phrase that the position bias can copy from (a form's)."""
    phrase_start: int = -1
    """Row of the piece's first step (the primer's length) for the copy gate per phrase; -1 = no gate."""

    def __post_init__(self) -> None:
        if not self.lags or min(self.lags) < 1:
            raise ValueError(f"lags must be positive step counts, got {self.lags}")
        object.__setattr__(self, "lags", tuple(int(lag) for lag in self.lags))

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> LookbackConfig:
        vocab, data = config_fields(cls, data)
        data.setdefault("run_lengths", False)  # written before run lengths existed
        return cls(vocab=vocab, **data)


class LookbackLSTM(NoteModel):
    """LSTM + gated pointer over bar lags; the same interface as :class:`NoteRNN`."""

    arch = "lookback_lstm"

    def __init__(self, config: LookbackConfig = LookbackConfig()) -> None:
        super().__init__()
        self.config = config
        self.vocab = config.vocab
        self.num_actions = config.vocab.size
        self.start_token = config.vocab.size  # also marks "nothing there yet" in the history
        self.window = max(config.lags) + 1
        size = config.vocab.size + 1
        self.embedding = nn.Embedding(size, config.embedding_dim)
        self.lag_embeddings = nn.ModuleList(nn.Embedding(size, config.lag_embedding_dim) for _ in config.lags)
        runs = len(config.lags) if config.run_lengths else 0
        inputs = config.embedding_dim + len(config.lags) * (config.lag_embedding_dim + 1) + runs + config.bar_steps
        self.lstm = nn.LSTM(
            inputs,
            config.hidden_size,
            config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, config.vocab.size)
        self.num_copies = len(config.lags) * (2 if config.interval_copy else 1)
        self.gate = nn.Linear(config.hidden_size + runs, 1 + self.num_copies)
        with torch.no_grad():  # start close to the plain LSTM: most weight on its own softmax
            self.gate.bias.zero_()
            self.gate.bias[0] = 2.0
        self.output = nn.Linear(config.vocab.size, config.vocab.size) if config.output_layer else None
        self.position = position_bias(config)

    # --------------------------------------------------------------------------------- state
    def initial_state(self, batch_size: int) -> LookbackState:
        weight = self.head.weight
        shape = (self.config.num_layers, batch_size, self.config.hidden_size)
        history = torch.full((batch_size, self.window), self.start_token, dtype=torch.long, device=weight.device)
        copies = self.position is not None and self.position.copy is not None
        phrases = (self.position.initial_history(batch_size, self.start_token, weight.device),) if copies else ()
        return (
            torch.zeros(shape, dtype=weight.dtype, device=weight.device),
            torch.zeros(shape, dtype=weight.dtype, device=weight.device),
            history,
            history.clone(),
            torch.zeros(batch_size, dtype=torch.long, device=weight.device),
            torch.zeros(batch_size, len(self.config.lags), dtype=torch.long, device=weight.device),
            *phrases,
        )

    # ------------------------------------------------------------------------------- compute
    def _is_pitch(self, tokens: torch.Tensor) -> torch.Tensor:
        return (tokens >= NUM_SPECIAL) & (tokens < self.start_token)

    def logits_and_features(
        self, inputs: torch.Tensor, state: LookbackState | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, LookbackState]:
        batch, length = inputs.shape
        if state is None:
            state = self.initial_state(batch)
        h, c, history, history_pitch, steps, runs, *phrases = state
        window, none = self.window, self.start_token
        tokens = torch.cat([history, inputs], dim=1)  # (B, W + T); column W + i is inputs[:, i]
        # The last sounding pitch at or before each column: carried for the history, running over the inputs.
        values = torch.cat([history_pitch, inputs], dim=1)
        known = torch.cat([torch.ones_like(history, dtype=torch.bool), self._is_pitch(inputs)], dim=1)
        columns = torch.arange(window + length, device=inputs.device).expand(batch, -1)
        last = values.gather(1, torch.where(known, columns, 0).cummax(dim=1).values)
        now = tokens[:, window:]
        last_now = last[:, window:]
        lag_inputs, candidates, intervals, run_lengths = [], [], [], []
        index_t = torch.arange(length, device=inputs.device).expand(batch, -1)
        for index, lag in enumerate(self.config.lags):
            # Input i predicts step i of the melody; the token `lag` steps before that step is column W + i + 1 - lag.
            then = tokens[:, window + 1 - lag : window + 1 - lag + length]
            repeated = (now == tokens[:, window - lag : window - lag + length]) & (now != none)
            lag_inputs += [self.lag_embeddings[index](then), repeated.unsqueeze(-1).to(h.dtype)]
            # Steps this lag has been repeating, ending at each input (0 where it does not repeat), carried over.
            carried = (-1 - runs[:, index : index + 1]).expand(-1, length)
            run_lengths.append(index_t - torch.where(repeated, carried, index_t).cummax(dim=1).values)
            candidates.append(then)
            if self.config.interval_copy:
                last_then = last[:, window - lag : window - lag + length]
                moved = then + (last_now - last_then)
                transposable = self._is_pitch(then) & self._is_pitch(last_now) & self._is_pitch(last_then)
                in_range = self._is_pitch(moved)
                intervals.append(torch.where(transposable, torch.where(in_range, moved, none), then))
        position = (steps.unsqueeze(1) + torch.arange(length, device=inputs.device)) % self.config.bar_steps
        bar = nn.functional.one_hot(position, self.config.bar_steps).to(h.dtype)
        run_lengths_t = torch.stack(run_lengths, dim=-1)  # (B, T, lags)
        repeats = [(run_lengths_t.clamp(max=4 * RUN_SCALE) / RUN_SCALE).to(h.dtype)] if self.config.run_lengths else []
        features = torch.cat([self.embedding(inputs), *lag_inputs, *repeats, bar], dim=-1)
        output, (h, c) = self.lstm(features, (h, c))
        hidden = self.dropout(output)
        copies = torch.stack(candidates + intervals, dim=-1)  # (B, T, C) token ids; `none` = nothing to copy
        gate = self.gate(torch.cat([hidden, *repeats], dim=-1))
        gate = torch.cat([gate[..., :1], gate[..., 1:].masked_fill(copies == none, float("-inf"))], dim=-1)
        log_gate = torch.log_softmax(gate, dim=-1)
        generated = torch.log_softmax(self.head(hidden), dim=-1) + log_gate[..., :1]
        copied = torch.zeros_like(generated).scatter_add_(-1, copies.clamp(max=none - 1), log_gate[..., 1:].exp())
        # log 0 = -inf where nothing is copied, through log 1 so that the gradient there is 0, not NaN.
        nothing = copied == 0
        copied = torch.where(nothing, torch.ones_like(copied), copied).log().masked_fill(nothing, float("-inf"))
        logits = torch.logaddexp(generated, copied)
        if self.output is not None:
            logits = self.output(logits)
        if self.position is not None:
            logits = self.position(logits, steps, inputs, *phrases)
        phrases = [self.position.advance(phrases[0], inputs)] if phrases else []
        new_state = (h, c, tokens[:, -window:], last[:, -window:], steps + length, run_lengths_t[:, -1], *phrases)
        return logits, output, new_state


@torch.no_grad()
def with_output_layer(
    model: LookbackLSTM, weight: torch.Tensor | None = None, bias: torch.Tensor | None = None
) -> LookbackLSTM:
    """A copy of ``model`` whose logits pass through a linear layer (identity unless ``weight``/``bias`` are given):
    how a Q-network tuned from a Lookback LSTM is exported, and saved and loaded like any checkpoint."""
    config = replace(model.config, output_layer=True)
    result = LookbackLSTM(config).to(model.head.weight.device)
    result.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("output.")}, strict=False)
    size = config.vocab.size
    eye = torch.eye(size, device=model.head.weight.device)
    result.output.weight.copy_(weight if weight is not None else eye)
    result.output.bias.copy_(bias if bias is not None else torch.zeros(size))
    return result.train(model.training)
