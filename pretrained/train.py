"""Train a prior (a Note RNN or another architecture) on a corpus token file (``notetune pretrain``)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .architectures import DEFAULT_ARCH, ArchName, build_model
from .checkpoint import CheckpointError, save_checkpoint
from .corpus import load_corpus
from .errors import UserInputError
from .markov import best_markov_baseline
from .model import NoteModel
from .vocab import HOLD, NUM_SPECIAL


@dataclass
class PretrainConfig:
    """Settings of one pretraining run."""

    corpus: str = "pretrained/data/corpus.npz"
    """Corpus token file (from `notetune corpus build`)."""
    out: str = "runs/prior"
    """Checkpoint directory to write (model.safetensors + config.json + tensorboard/)."""
    arch: ArchName = DEFAULT_ARCH
    """Prior architecture: note_rnn (the LSTM) or lookback_lstm (an LSTM that can copy the tokens and
    intervals of 1, 2 and 4 bars back through a learned gate)."""
    device: str = "cpu"
    """Torch device to train on (cpu, cuda, cuda:1, mps); the checkpoint always loads on the CPU."""
    embedding_dim: int = 32
    """Token embedding size."""
    hidden_size: int = 128
    """LSTM units per layer."""
    num_layers: int = 1
    """LSTM layers."""
    dropout: float = 0.1
    """Dropout on the LSTM output."""
    lags: tuple[int, ...] | None = None
    """lookback_lstm: steps back it reads and can copy from (repeat the flag; default 16, 32, 64: 1, 2 and 4 bars
    of 4/4). 128 adds 8 bars back: a strain that repeats, the third A of a 16-bar AABA."""
    learning_rate: float = 3e-3
    """Adam learning rate (decayed by cosine over the time budget)."""
    batch_size: int = 64
    """Melody segments per batch."""
    segment_length: int = 256
    """Long melodies are cut into segments of this many tokens."""
    validation_fraction: float = 0.05
    """Share of melodies held out for validation (split by melody)."""
    max_epochs: int = 50
    """Upper bound on passes over the training melodies."""
    max_minutes: float = 20.0
    """Time budget for training (0 = none: max_epochs and patience bound it); the best validation checkpoint is
    kept."""
    evaluations_per_epoch: int = 2
    """Validation passes per epoch (early stopping counts these)."""
    patience: int = 4
    """Stop after this many validations without improvement."""
    seed: int = 0
    """Seed for the split, initialisation and batch order."""
    threads: int = 2
    """torch CPU threads."""
    markov_baseline: bool = True
    """Also report an order-k Markov baseline on the same split."""
    progress: bool = True
    """Show a progress bar."""

    def check(self) -> None:
        """Refuse settings that cannot train, naming the flag and what it accepts."""
        at_least_one = ("embedding_dim", "hidden_size", "num_layers", "batch_size", "max_epochs")
        at_least_one += ("evaluations_per_epoch", "patience", "threads")
        for name in at_least_one:
            if getattr(self, name) < 1:
                raise UserInputError(f"--{_flag(name)} must be at least 1, got {getattr(self, name)}")
        if self.segment_length < 2:
            raise UserInputError(f"--segment-length must be at least 2 tokens, got {self.segment_length}")
        if not 0 <= self.dropout < 1:
            raise UserInputError(f"--dropout must be in [0, 1), got {self.dropout} (e.g. --dropout 0.1)")
        if not 0 < self.validation_fraction < 1:
            raise UserInputError(
                f"--validation-fraction must be between 0 and 1, got {self.validation_fraction} (e.g. 0.05)"
            )
        if not self.learning_rate > 0:
            raise UserInputError(f"--learning-rate must be positive, got {self.learning_rate} (e.g. 3e-3)")
        if self.max_minutes < 0:
            raise UserInputError(f"--max-minutes must be ≥ 0 (0 = no time limit), got {self.max_minutes}")
        if self.lags is not None and self.arch != "lookback_lstm":
            raise UserInputError(f"--lags is for --arch lookback_lstm (it copies from lags); {self.arch} has none")
        if self.lags is not None and (not self.lags or min(self.lags) < 1 or len(set(self.lags)) < len(self.lags)):
            raise UserInputError(
                f"--lags must be distinct positive step counts, got {list(self.lags)} (e.g. --lags 64)"
            )


def _flag(name: str) -> str:
    return name.replace("_", "-")


def split_melodies(num: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(num)
    n_val = max(1, int(round(num * fraction))) if num > 1 else 0
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def make_segments(melodies: list[np.ndarray], start_token: int, length: int) -> list[np.ndarray]:
    """Input+target arrays: the first segment of a melody starts with the start token (state zero, as in
    sampling); continuation segments start mid-melody and are predicted from their second token."""
    segments = []
    for melody in melodies:
        seq = np.concatenate([[start_token], melody.astype(np.int64)])
        for begin in range(0, len(seq) - 1, length):
            piece = seq[begin : begin + length + 1]
            if len(piece) >= 2:
                segments.append(piece)
    return segments


def batches(segments: list[np.ndarray], batch_size: int, rng: np.random.Generator | None):
    """Padded (inputs, targets, mask) batches of similar-length segments."""
    order = np.argsort([len(s) for s in segments], kind="stable")
    groups = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(groups)
    for group in groups:
        longest = max(len(segments[i]) for i in group)
        data = np.zeros((len(group), longest), dtype=np.int64)
        mask = np.zeros((len(group), longest - 1), dtype=bool)
        for row, i in enumerate(group):
            data[row, : len(segments[i])] = segments[i]
            mask[row, : len(segments[i]) - 1] = True
        data_t = torch.from_numpy(data)
        yield data_t[:, :-1], data_t[:, 1:], torch.from_numpy(mask)


@torch.no_grad()
def evaluate(model: NoteModel, segments: list[np.ndarray], batch_size: int = 128) -> dict[str, float]:
    """Validation NLL (nats/token), token accuracy and accuracy on note-onset targets."""
    model.eval()
    device = model.head.weight.device
    total_nll, total, correct, onset_total, onset_correct = 0.0, 0, 0, 0, 0
    for inputs, targets, mask in batches(segments, batch_size, None):
        inputs, targets, mask = inputs.to(device), targets.to(device), mask.to(device)
        logits, _ = model(inputs)
        nll = nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")
        predicted = logits.argmax(-1)
        total_nll += float(nll[mask].sum())
        total += int(mask.sum())
        correct += int(((predicted == targets) & mask).sum())
        onset = mask & (targets >= NUM_SPECIAL)
        onset_total += int(onset.sum())
        onset_correct += int(((predicted == targets) & onset).sum())
    return {
        "nll_per_token": total_nll / max(total, 1),
        "accuracy": correct / max(total, 1),
        "onset_accuracy": onset_correct / max(onset_total, 1),
        "tokens": total,
    }


class PretrainConfigError(CheckpointError, ValueError):
    """The prior cannot be trained as asked (unknown architecture, unavailable device)."""


def training_device(name: str) -> torch.device:
    """The torch device called ``name``, or one line saying why it cannot be used."""
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise PretrainConfigError(f"unknown device {name!r} ({error}); use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PretrainConfigError(f"device {name!r} asked for but no CUDA GPU is available here; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise PretrainConfigError(f"device {name!r} asked for but MPS is not available here; use --device cpu")
    return device


def learning_rate_at(config: PretrainConfig, elapsed_seconds: float) -> float:
    """Cosine decay from ``learning_rate`` to 5% of it over the time budget; constant without a budget."""
    if config.max_minutes <= 0:
        return config.learning_rate
    progress = min(1.0, elapsed_seconds / (config.max_minutes * 60))
    return config.learning_rate * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def pretrain(config: PretrainConfig) -> dict:
    """Train, keep the best validation state, write the checkpoint; returns the metrics."""
    config.check()
    device = training_device(config.device)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    corpus = load_corpus(config.corpus)
    train_idx, val_idx = split_melodies(len(corpus), config.validation_fraction, config.seed)
    melodies = corpus.melodies()
    train_melodies = [melodies[i] for i in train_idx]
    val_melodies = [melodies[i] for i in val_idx]
    model = build_model(
        config.arch,
        {
            "vocab": corpus.vocab,
            "embedding_dim": config.embedding_dim,
            "hidden_size": config.hidden_size,
            "num_layers": config.num_layers,
            "dropout": config.dropout,
            **({} if config.lags is None else {"lags": tuple(config.lags)}),
        },
    ).to(device)
    train_segments = make_segments(train_melodies, model.start_token, config.segment_length)
    val_segments = make_segments(val_melodies, model.start_token, config.segment_length)
    if not train_segments:
        raise UserInputError(
            f"{config.corpus} leaves no training melodies after holding out {config.validation_fraction:.0%} for "
            "validation; build a larger corpus or lower --validation-fraction"
        )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    writer = _summary_writer(out / "tensorboard")
    rng = np.random.default_rng(config.seed)
    batches_per_epoch = math.ceil(len(train_segments) / config.batch_size)
    eval_every = max(1, batches_per_epoch // max(1, config.evaluations_per_epoch))
    budget = config.max_minutes * 60 if config.max_minutes > 0 else float("inf")
    started = time.monotonic()
    best: dict = {"nll_per_token": float("inf")}
    best_state = None
    stale, step, history = 0, 0, []
    stop = False
    progress = _progress(config.progress, config.max_epochs * batches_per_epoch)
    with progress as bar:
        task = bar.add_task(
            "pretrain", total=config.max_epochs * batches_per_epoch, loss=float("nan"), val=float("nan")
        )
        for epoch in range(config.max_epochs):
            for inputs, targets, mask in batches(train_segments, config.batch_size, rng):
                model.train()
                elapsed = time.monotonic() - started
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate_at(config, elapsed)
                inputs, targets, mask = inputs.to(device), targets.to(device), mask.to(device)
                logits, _ = model(inputs)
                loss = nn.functional.cross_entropy(logits.transpose(1, 2)[..., :], targets, reduction="none")[
                    mask
                ].mean()
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                step += 1
                writer.add_scalar("train/loss", loss.item(), step)
                bar.update(task, advance=1, loss=loss.item())
                out_of_time = time.monotonic() - started > budget
                if step % eval_every == 0 or out_of_time:
                    metrics = evaluate(model, val_segments)
                    metrics.update(epoch=epoch, step=step, minutes=(time.monotonic() - started) / 60)
                    history.append(metrics)
                    for name in ("nll_per_token", "accuracy", "onset_accuracy"):
                        writer.add_scalar(f"validation/{name}", metrics[name], step)
                    bar.update(task, val=metrics["nll_per_token"])
                    if metrics["nll_per_token"] < best["nll_per_token"] - 1e-4:
                        best, stale = metrics, 0
                        best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                    else:
                        stale += 1
                    if stale >= config.patience or out_of_time:
                        stop = True
                        break
            if stop:
                break
    writer.close()
    model = model.cpu()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    always_hold = float(np.mean(np.concatenate(val_melodies) == HOLD)) if val_melodies else 0.0
    metrics = {
        "validation": {k: best[k] for k in ("nll_per_token", "accuracy", "onset_accuracy")},
        "always_hold_accuracy": always_hold,
        "train_melodies": len(train_melodies),
        "validation_melodies": len(val_melodies),
        "train_tokens": int(sum(len(m) for m in train_melodies)),
        "steps": step,
        "minutes": (time.monotonic() - started) / 60,
        "history": history,
    }
    if config.markov_baseline and val_melodies:
        metrics["markov_baseline"] = best_markov_baseline(train_melodies, val_melodies, corpus.vocab.size)
    save_checkpoint(
        model,
        out,
        extra={
            "key": "C major",
            "corpus": {"path": str(config.corpus), "sha256": corpus.sha256, "melodies": len(corpus)},
            "metrics": metrics,
            "pretrain_config": asdict(config),
        },
    )
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _summary_writer(path: Path):
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(path))


def _progress(enabled: bool, total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f} val {task.fields[val]:.3f}"),
        TimeElapsedColumn(),
        disable=not enabled,
    )
