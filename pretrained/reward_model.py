"""A Bradley–Terry reward model over melodies: an ensemble whose score says how much a listener likes one.

Two architectures, both scalar-per-melody and trained so that ``P(a ≻ b) = σ(r(a) − r(b))``:

* ``prior_head`` — a small MLP on the frozen prior's features (its LSTM outputs, mean-pooled, and its last
  state); the prior's weights are saved inside the reward model so the directory stands alone;
* ``sequence`` — a small LSTM of its own over the tokens, pooled the same way.

An ensemble of ``members`` copies (own seeds, bootstrap resamples of the pairs) gives a mean and a spread.
Each member's score is standardised on the melodies it was fitted on, so scores read as "standard deviations
above the typical training melody", and the spread (standard deviation across members) in the same unit.
Melodies are read in C major: pairs in other keys are transposed there, and so are the melodies scored.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from .checkpoint import CONFIG, WEIGHTS, CheckpointError, load_weights_into, write_weights_and_config
from .checkpoint import FORMAT as NOTE_RNN_FORMAT
from .model import NoteRNN, NoteRNNConfig
from .transpose import KeyLike, key_transposition, source_tokens
from .vocab import DEFAULT_VOCABULARY, NOTE_OFF, NUM_SPECIAL, Vocabulary

FORMAT = "notetune.reward_model"
FORMAT_VERSION = 1
ARCHITECTURES = ("prior_head", "sequence")


@dataclass(frozen=True)
class RewardModelConfig:
    """Architecture of a reward-model ensemble; saved in its config.json."""

    vocab: Vocabulary = field(default_factory=lambda: DEFAULT_VOCABULARY)
    architecture: str = "prior_head"
    """prior_head (an MLP on the frozen prior's features) or sequence (an LSTM of its own)."""
    members: int = 5
    """Ensemble size."""
    hidden_size: int = 32
    """prior_head: the MLP's hidden units; sequence: the LSTM's units."""
    embedding_dim: int = 16
    """sequence: token embedding size."""
    prior: NoteRNNConfig | None = None
    """prior_head: the frozen prior's architecture (its weights are in the safetensors file)."""
    spread_penalty: float = 1.0
    """As a reward: mean − spread_penalty × spread (1 = conservative, 0 = the plain ensemble mean)."""

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown reward-model architecture {self.architecture!r}; choose from {ARCHITECTURES}")
        if self.members < 1:
            raise ValueError(f"an ensemble needs at least one member, got {self.members}")
        if self.architecture == "prior_head" and self.prior is None:
            raise ValueError("a prior_head reward model needs the prior's architecture")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["vocab"] = self.vocab.to_dict()
        data["prior"] = self.prior.to_dict() if self.prior is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RewardModelConfig:
        data = dict(data)
        vocab = Vocabulary.from_dict(data.pop("vocab"))
        prior = data.pop("prior", None)
        return cls(vocab=vocab, prior=NoteRNNConfig.from_dict(prior) if prior else None, **data)


def pooled(outputs: torch.Tensor) -> torch.Tensor:
    """(B, T, H) sequence outputs → (B, 2H): the mean over steps and the last step."""
    return torch.cat([outputs.mean(dim=1), outputs[:, -1]], dim=-1)


class PriorFeatures(nn.Module):
    """The frozen prior read over ``start, tokens``: pooled LSTM outputs, (B, 2H)."""

    def __init__(self, prior: NoteRNN) -> None:
        super().__init__()
        self.prior = copy.deepcopy(prior).eval()
        for parameter in self.prior.parameters():
            parameter.requires_grad_(False)
        self.size = 2 * prior.config.hidden_size

    def train(self, mode: bool = True) -> PriorFeatures:
        super().train(mode)
        self.prior.eval()  # frozen: its dropout never applies
        return self

    @torch.no_grad()
    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        start = torch.full((tokens.shape[0], 1), self.prior.start_token, dtype=torch.long, device=tokens.device)
        outputs, _ = self.prior.features(torch.cat([start, tokens], dim=1))
        return pooled(outputs[:, 1:])


class HeadMember(nn.Module):
    """One member of a prior_head ensemble: features (B, F) → score (B,)."""

    def __init__(self, feature_size: int, hidden_size: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(feature_size, hidden_size), nn.Tanh(), nn.Linear(hidden_size, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features).squeeze(-1)


class SequenceMember(nn.Module):
    """One member of a sequence ensemble: tokens (B, T) → score (B,).

    Each step reads the token's embedding and five numbers a melody's shape is made of: the relative position
    t / T, the pitch height (semitones from C4, in octaves; 0 for holds and rests), the interval from the
    previous note (octaves; 0 where no note is struck), and whether the step strikes a note or rests — so
    contour and rhythm need not be learned from the few pairs a listener gives.
    """

    def __init__(self, vocab: Vocabulary, embedding_dim: int, hidden_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab.size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim + 5, hidden_size, batch_first=True)
        self.out = nn.Sequential(nn.Linear(2 * hidden_size, hidden_size), nn.Tanh(), nn.Linear(hidden_size, 1))
        height = torch.zeros(vocab.size)
        pitches = torch.arange(NUM_SPECIAL, vocab.size)
        height[NUM_SPECIAL:] = (vocab.token_to_pitch(pitches) - 60) / 12.0
        self.register_buffer("height", height, persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        length = tokens.shape[1]
        position = (torch.arange(length, dtype=torch.float32, device=tokens.device) + 0.5) / length
        height = self.height[tokens]
        numbers = torch.stack(
            [
                position.expand(tokens.shape),
                height,
                _interval_from_previous_note(height, tokens >= NUM_SPECIAL),
                (tokens >= NUM_SPECIAL).float(),
                (tokens == NOTE_OFF).float(),
            ],
            dim=-1,
        )
        outputs, _ = self.lstm(torch.cat([self.embedding(tokens), numbers], dim=-1))
        return self.out(pooled(outputs)).squeeze(-1)


def _interval_from_previous_note(height: torch.Tensor, struck: torch.Tensor) -> torch.Tensor:
    """(B, T) signed interval (octaves) of each struck note from the previous struck note; 0 elsewhere."""
    steps = torch.arange(height.shape[1], device=height.device).expand(height.shape)
    last_struck = torch.cummax(torch.where(struck, steps, -1), dim=1).values  # latest onset at or before t
    previous = torch.cat([torch.full_like(last_struck[:, :1], -1), last_struck[:, :-1]], dim=1)
    previous_height = height.gather(1, previous.clamp_min(0))
    return torch.where(struck & (previous >= 0), height - previous_height, 0.0)


class RewardEnsemble(nn.Module):
    """``members`` Bradley–Terry scorers; :meth:`score` gives each melody's standardised mean and spread."""

    def __init__(self, config: RewardModelConfig, prior: NoteRNN | None = None) -> None:
        super().__init__()
        self.config = config
        self.vocab = config.vocab
        if config.architecture == "prior_head":
            if prior is None:
                prior = NoteRNN(config.prior)  # weights follow from the checkpoint
            if prior.config != config.prior:
                raise ValueError("the prior does not match the reward model's prior architecture")
            self.features: PriorFeatures | None = PriorFeatures(prior)
            self.members = nn.ModuleList(
                HeadMember(self.features.size, config.hidden_size) for _ in range(config.members)
            )
        else:
            self.features = None
            self.members = nn.ModuleList(
                SequenceMember(config.vocab, config.embedding_dim, config.hidden_size) for _ in range(config.members)
            )
        # Per-member standardisation, set after fitting: score = (raw − offset) / scale.
        self.register_buffer("offset", torch.zeros(config.members))
        self.register_buffer("scale", torch.ones(config.members))

    def inputs(self, tokens: torch.Tensor) -> torch.Tensor:
        """What the members read: the prior's features (prior_head) or the tokens (sequence)."""
        return self.features(tokens) if self.features is not None else tokens

    def raw_scores(self, tokens: torch.Tensor) -> torch.Tensor:
        """(k, B) unstandardised scores: differences are Bradley–Terry logits."""
        inputs = self.inputs(tokens)
        return torch.stack([member(inputs) for member in self.members])

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(k, B) standardised scores."""
        return (self.raw_scores(tokens) - self.offset[:, None]) / self.scale[:, None]

    @torch.no_grad()
    def score(
        self, tokens: np.ndarray, key: KeyLike | None = None, batch_size: int = 4096
    ) -> tuple[np.ndarray, np.ndarray]:
        """(mean, spread) per melody of (N, T) tokens written in ``key`` (default C major)."""
        tokens = np.asarray(tokens, dtype=np.int64)
        check_tokens(tokens, self.vocab)
        tokens = to_reading_key(tokens, self.vocab, key)
        self.eval()
        rows = [self(torch.from_numpy(tokens[i : i + batch_size])) for i in range(0, len(tokens), batch_size)]
        scores = torch.cat(rows, dim=1).double().numpy() if rows else np.zeros((len(self.members), 0))
        spread = scores.std(axis=0) if len(self.members) > 1 else np.zeros(scores.shape[1])
        return scores.mean(axis=0), spread

    @torch.no_grad()
    def preference_probability(self, tokens_a: np.ndarray, tokens_b: np.ndarray, key: KeyLike | None = None):
        """(N,) P(a ≻ b): the members' Bradley–Terry probabilities, averaged."""
        self.eval()
        a = torch.from_numpy(to_reading_key(np.asarray(tokens_a, dtype=np.int64), self.vocab, key))
        b = torch.from_numpy(to_reading_key(np.asarray(tokens_b, dtype=np.int64), self.vocab, key))
        return torch.sigmoid(self.raw_scores(a) - self.raw_scores(b)).mean(dim=0).double().numpy()


def check_tokens(tokens: np.ndarray, vocab: Vocabulary) -> None:
    if tokens.ndim != 2:
        raise ValueError(f"melodies must be a (N, T) token array, got shape {tokens.shape}")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab.size):
        raise ValueError(f"tokens must be classes 0..{vocab.size - 1}; got {tokens.min()}..{tokens.max()}")


@dataclass(frozen=True)
class _ReadingKey:
    tonic: int = 0
    mode: str = "major"


READING_KEY = _ReadingKey()
"""C major (= PRIOR_KEY, the key of the prior's corpus): reward models read every melody in it."""


def to_reading_key(tokens: np.ndarray, vocab: Vocabulary, key: KeyLike | None) -> np.ndarray:
    """Melodies written in ``key`` moved to C major / A minor (None: already there)."""
    if key is None:
        return tokens
    semitones = key_transposition(key, READING_KEY)
    if semitones == 0:
        return tokens
    # source_tokens(v, -s)[j] is token j moved up by s semitones (folded into the range by octaves).
    table, _in_range = source_tokens(vocab, -semitones)
    return table.numpy()[tokens]


# ------------------------------------------------------------------------------------ save / load
def save_reward_model(model: RewardEnsemble, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``model.safetensors`` + ``config.json`` atomically into ``directory``."""
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "model": model.config.to_dict(), **(extra or {})}
    return write_weights_and_config(directory, model, config)


def read_reward_config(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    path = directory / CONFIG
    if not directory.is_dir() or not path.is_file():
        raise CheckpointError(
            f"{directory} is not a reward model: {CONFIG} not found (fit one with `notetune reward fit`)"
        )
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from error
    if config.get("format") == NOTE_RNN_FORMAT:
        raise CheckpointError(
            f"{directory} is a Note RNN checkpoint, not a reward model; fit one with `notetune reward fit`"
        )
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a notetune reward model (format {config.get('format')!r})")
    return config


def load_reward_model(
    directory: str | Path, expected_vocab: Vocabulary | None = None
) -> tuple[RewardEnsemble, dict[str, Any]]:
    """The ensemble (eval mode, CPU) and its config; refuses a model fitted for another vocabulary."""
    directory = Path(directory)
    config = read_reward_config(directory)
    try:
        model_config = RewardModelConfig.from_dict(config["model"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{directory / CONFIG} has an invalid model section: {error}") from error
    if expected_vocab is not None and model_config.vocab != expected_vocab:
        raise CheckpointError(
            f"reward model {directory} was fitted for vocabulary {model_config.vocab} "
            f"({model_config.vocab.size} tokens) but {expected_vocab} ({expected_vocab.size} tokens) is required; "
            "fit a reward model on preferences in this vocabulary"
        )
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{directory} has no {WEIGHTS}")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{weights} is corrupt or truncated ({error}); fit the reward model again") from error
    model = RewardEnsemble(model_config)
    load_weights_into(model, tensors, weights)
    return model, config
