"""Measure priors' long-range behaviour: validation NLL by bar position and 8-bar repetition of samples.

    .venv/bin/python tools/measure_prior.py default runs/lookback --num 2000 --length 128 --out out/prior.json

For each checkpoint: the validation NLL (nats/token) on the 5% split by melody that ``notetune pretrain``
holds out (same seed, same 256-step segments as its ``evaluate``, so "overall" is the figure pretrain
reports), broken down by the target's position in a 16-step bar (counted from the melody's first bar line
when the corpus records pickups, else from its first note); then ``--num`` samples of ``--length`` steps
(seed 1) and the share of bars (after the first) that repeat an earlier bar of the same piece exactly or
transposed. The corpus's own figures use the first ``--length`` steps of every melody at least that long.
With ``--form AABA``, also each phrase's mean log p per token when the strict form's masks copy the returning
phrases, and when nothing is copied: what copying costs under the prior.

The repetition count here is a quick numpy stand-in (bars with at least one onset; "transposed" = the same
tokens with every pitch moved by one interval); the official figures live in notetune.rewards.structure.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from notetune.pretrained.checkpoint import load_checkpoint
from notetune.pretrained.corpus import DEFAULT_CORPUS, load_corpus
from notetune.pretrained.encoding import canonicalize
from notetune.pretrained.form import Form
from notetune.pretrained.sampling import sample_tokens
from notetune.pretrained.train import split_melodies
from notetune.pretrained.vocab import NUM_SPECIAL

BAR = 16


def bar_repetition(tokens: np.ndarray, bar: int = BAR) -> dict[str, float]:
    """Shares of bars 2..n (with an onset) equal to an earlier bar of the same piece: exactly / up to transposition."""
    tokens = np.asarray(tokens)
    count, length = tokens.shape
    bars = tokens[:, : length // bar * bar].reshape(count, -1, bar)
    onset = bars >= NUM_SPECIAL
    # Transposition-free spelling: specials kept, pitches relative to the bar's first pitch.
    first_pitch = np.where(onset.any(-1), np.take_along_axis(bars, onset.argmax(-1)[..., None], -1)[..., 0], 0)
    relative = np.where(onset, bars - first_pitch[..., None] + 1000, bars)
    exact = transposed = candidates = 0
    for b in range(1, bars.shape[1]):
        has_onset = onset[:, b].any(-1)
        same = (bars[:, :b] == bars[:, b : b + 1]).all(-1).any(-1)
        moved = (relative[:, :b] == relative[:, b : b + 1]).all(-1).any(-1)
        candidates += int(has_onset.sum())
        exact += int((same & has_onset).sum())
        transposed += int((moved & has_onset).sum())
    return {"bar_repeat_exact": exact / max(candidates, 1), "bar_repeat_transposed": transposed / max(candidates, 1)}


@torch.no_grad()
def nll_by_position(model, corpus, validation: np.ndarray, segment_length: int = 256, batch_size: int = 64) -> dict:
    """Validation NLL overall and per position in the bar, on pretrain's segments (fresh state per segment)."""
    rows = []  # (segment inputs+targets, bar position of each target)
    for i in validation:
        melody = corpus.melody(int(i)).astype(np.int64)
        seq = np.concatenate([[model.start_token], melody])
        position = (np.arange(len(melody)) - int(corpus.pickup[int(i)])) % BAR
        for begin in range(0, len(seq) - 1, segment_length):
            piece = seq[begin : begin + segment_length + 1]
            if len(piece) >= 2:
                rows.append((piece, position[begin : begin + len(piece) - 1]))
    rows.sort(key=lambda row: len(row[0]))
    total = np.zeros(BAR)
    counts = np.zeros(BAR)
    for start in range(0, len(rows), batch_size):
        group = rows[start : start + batch_size]
        longest = max(len(piece) for piece, _ in group)
        data = np.zeros((len(group), longest), dtype=np.int64)
        positions = np.full((len(group), longest - 1), -1)
        for r, (piece, pos) in enumerate(group):
            data[r, : len(piece)] = piece
            positions[r, : len(pos)] = pos
        inputs = torch.from_numpy(data[:, :-1])
        targets = torch.from_numpy(data[:, 1:])
        logits, _ = model(inputs)
        nll = -torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1).numpy()
        valid = positions >= 0
        np.add.at(total, positions[valid], nll[valid])
        np.add.at(counts, positions[valid], 1)
    return {
        "nll_per_token": float(total.sum() / counts.sum()),
        "nll_by_bar_position": [round(float(x), 4) for x in total / np.maximum(counts, 1)],
        "tokens": int(counts.sum()),
    }


@torch.no_grad()
def copy_cost(model, form: str, free: np.ndarray, seed: int) -> dict:
    """Mean log p per token of each phrase under ``model``: of as many pieces as ``free`` (N, length) whose
    returning phrases the strict ``form``'s masks copied (what a tuned policy writing the form would be charged
    in KL, once it copies), and of the ``free`` ones."""
    num, length = free.shape
    layout = Form.parse(form).layout(length)
    copied = sample_tokens(model, num, length, seed=seed, form=layout)
    figures = {}
    for name, tokens in (("copied", copied), ("free", free)):
        log_probs = model.sequence_log_probs(torch.as_tensor(tokens)).numpy()
        phrases = log_probs[:, : layout.phrase_steps * layout.form.num_phrases].reshape(num, -1, layout.phrase_steps)
        figures[f"log_p_per_phrase_{name}"] = [round(float(x), 3) for x in phrases.mean(axis=(0, 2))]
    return figures


def corpus_windows(corpus, length: int, bar_aligned: bool) -> np.ndarray:
    return corpus.windows(length, from_start_only=True, bar_aligned=bar_aligned)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="checkpoint directories ('default' = the shipped prior)")
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    parser.add_argument("--num", type=int, default=2000)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--split-seed", type=int, default=0, help="pretrain's --seed (the split)")
    parser.add_argument("--validation-fraction", type=float, default=0.05)
    parser.add_argument("--out", help="write the figures as JSON here")
    parser.add_argument(
        "--form", help="also: each phrase's log p per token, copied by this strict form's masks and free (e.g. AABA)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    corpus = load_corpus(args.corpus)
    _, validation = split_melodies(len(corpus), args.validation_fraction, args.split_seed)
    results: dict = {"corpus": {}}
    for aligned in (False, True):
        windows = corpus_windows(corpus, args.length, aligned)
        key = "first_bars_bar_aligned" if aligned else "first_bars"
        results["corpus"][key] = {"melodies": len(windows), **bar_repetition(windows)}
    for name in args.models:
        model, config = load_checkpoint(name)
        started = time.monotonic()
        figures = {"arch": config.get("arch", "note_rnn"), **nll_by_position(model, corpus, validation)}
        drawn = sample_tokens(model, args.num, args.length, seed=args.seed)
        figures.update(bar_repetition(canonicalize(drawn)), samples=args.num, length=args.length)
        if args.form:
            figures.update(copy_cost(model, args.form, drawn, args.seed), form=args.form)
        figures["seconds"] = round(time.monotonic() - started, 1)
        results[name] = figures
        print(json.dumps({name: figures}), flush=True)
    print(json.dumps(results["corpus"]))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
