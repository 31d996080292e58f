"""Save and load Note RNN checkpoints: ``model.safetensors`` + ``config.json`` in one directory.

Weights are read only from safetensors — never from pickles — and always onto the CPU, wherever they were
trained. config.json records ``arch`` (the network: ``note_rnn``, ``lookback_lstm``; see
:mod:`notetune.pretrained.architectures`) and ``architecture`` (``prior_product`` for a G-learning model
that wraps two of them); a checkpoint written before ``arch`` existed is an LSTM (``note_rnn``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .architectures import DEFAULT_ARCH, architecture
from .errors import UserInputError
from .model import NoteModel, PriorProduct
from .vocab import Vocabulary

FORMAT = "notetune.note_rnn"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
DEFAULT_CHECKPOINT = Path(__file__).parent / "default"
LOOKBACK_CHECKPOINT = Path(__file__).parent / "lookback"
"""The shipped Lookback LSTM prior (``lookback_lstm``, a prior that remembers), by name ``lookback``."""
LOOKBACK128_CHECKPOINT = Path(__file__).parent / "lookback128"
"""The same architecture reading 128 steps (8 bars of 4/4) back as well, by name ``lookback128``: the prior of
pieces longer than 8 bars, whose strains and returning phrases lie that far back."""
SHIPPED_MODELS = {"default": DEFAULT_CHECKPOINT, "lookback": LOOKBACK_CHECKPOINT, "lookback128": LOOKBACK128_CHECKPOINT}
"""The shipped priors every command accepts by name as a model ('default' always; the others unless a folder of
that name is here)."""
SHIPPED_NAMES = ", ".join(f"'{name}'" for name in SHIPPED_MODELS)
"""The names, for messages."""


def model_exists(spec: str | Path) -> bool:
    """True for a shipped prior's name or a path that exists (what commands check before any work)."""
    return str(spec) in SHIPPED_MODELS or Path(spec).exists()


class CheckpointError(UserInputError):
    """A checkpoint is missing, corrupt, pickled, or does not fit what it is used for."""


def write_weights_and_config(directory: str | Path, module: torch.nn.Module, config: dict[str, Any]) -> Path:
    """Write ``module``'s weights (``model.safetensors``) and ``config`` (``config.json``) into ``directory``,
    each atomically (a temp file, then a rename): what every notetune checkpoint directory holds."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: t.detach().cpu().contiguous() for name, t in module.state_dict().items()}
    tmp = directory / (WEIGHTS + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, directory / WEIGHTS)
    tmp = directory / (CONFIG + ".tmp")
    tmp.write_text(json.dumps(config, indent=2) + "\n")
    os.replace(tmp, directory / CONFIG)
    return directory


def save_checkpoint(
    model: NoteModel | PriorProduct, directory: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Write a model's weights and config (architecture, vocabulary, ``extra``) into ``directory``."""
    arch = getattr(model, "arch", DEFAULT_ARCH)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "arch": arch,
        "architecture": getattr(model, "architecture", arch),
        "model": model.config.to_dict(),
        **(extra or {}),
    }
    return write_weights_and_config(directory, model, config)


def read_config(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    if directory.is_file():
        if directory.suffix in (".pt", ".pth", ".pkl", ".bin", ".ckpt"):
            raise CheckpointError(
                f"{directory} is a pickled torch file; notetune loads weights only from safetensors. "
                "Convert it with safetensors.torch.save_file(torch.load(path, weights_only=True), "
                "'model.safetensors') and add a config.json"
            )
        raise CheckpointError(f"{directory} is a file; pass the checkpoint directory (with {WEIGHTS} and {CONFIG})")
    path = directory / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{directory} is not a checkpoint: {CONFIG} not found")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from error
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a notetune Note RNN checkpoint (format {config.get('format')!r})")
    return config


def _is_checkpoint(directory: Path) -> bool:
    try:
        return json.loads((directory / CONFIG).read_text()).get("format") == FORMAT
    except (OSError, json.JSONDecodeError, AttributeError):
        return False


def find_checkpoint(path: str | Path | None) -> Path:
    """The checkpoint directory meant by ``path``: ``None``/``"default"`` is the shipped Note RNN prior,
    ``"lookback"`` / ``"lookback128"`` the shipped Lookback LSTMs (unless a folder of that name exists here), a
    tuning run directory means its exported model (``RUN/model``)."""
    if path is None or str(path) == "default":
        return DEFAULT_CHECKPOINT
    if str(path) in SHIPPED_MODELS and not Path(path).exists():
        return SHIPPED_MODELS[str(path)]
    path = Path(path)
    if path.is_dir() and (path / "model" / CONFIG).is_file() and not _is_checkpoint(path):
        return path / "model"
    if not path.exists():
        raise CheckpointError(f"model {path} not found (give a checkpoint or run directory, or {SHIPPED_NAMES})")
    return path


def load_checkpoint(
    directory: str | Path | None = None,
    expected_vocab: Vocabulary | None = None,
) -> tuple[NoteModel | PriorProduct, dict[str, Any]]:
    """The model (eval mode, CPU) and its config. ``None`` loads the shipped default prior."""
    directory = find_checkpoint(directory)
    config = read_config(directory)
    arch = config.get("arch", DEFAULT_ARCH)
    try:
        model_class, config_class = architecture(arch)
    except ValueError as error:
        raise CheckpointError(f"{directory / CONFIG}: {error}") from error
    try:
        model_config = config_class.from_dict(config["model"])
    except (KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"{directory / CONFIG} has an invalid model section: {error}") from error
    if expected_vocab is not None and model_config.vocab != expected_vocab:
        raise CheckpointError(
            f"checkpoint {directory} was trained for vocabulary {model_config.vocab} "
            f"({model_config.vocab.size} tokens) but {expected_vocab} ({expected_vocab.size} tokens) is required"
        )
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{directory} has no {WEIGHTS}")
    try:
        tensors = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{weights} is corrupt or truncated ({error}); restore it or retrain") from error
    wrapper = config.get("architecture", arch)
    if wrapper == "prior_product":
        model: NoteModel | PriorProduct = PriorProduct(model_class(model_config), model_class(model_config))
    elif wrapper in (arch, "note_rnn"):
        model = model_class(model_config)
    else:
        raise CheckpointError(f"{directory / CONFIG}: unknown architecture {wrapper!r}")
    load_weights_into(model, tensors, weights)
    return model, config


def load_weights_into(model: torch.nn.Module, tensors: dict[str, torch.Tensor], weights: Path) -> None:
    """Load ``tensors`` (read from ``weights``) into ``model`` in eval mode, or name every tensor whose shape the
    config does not predict."""
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in tensors.items()}
    if expected != found:
        diff = sorted(n for n in set(expected) | set(found) if expected.get(n) != found.get(n))
        details = ", ".join(f"{n}: config says {expected.get(n)}, file has {found.get(n)}" for n in diff[:4])
        raise CheckpointError(f"{weights} does not match {CONFIG}: {details}")
    model.load_state_dict(tensors)
    model.eval()


def checkpoint_sha256(directory: str | Path) -> str:
    from .corpus import file_sha256

    return file_sha256(Path(directory) / WEIGHTS)
