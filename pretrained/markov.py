"""An order-k Markov baseline (interpolated Witten-Bell) on the same melody split as the Note RNN."""

from __future__ import annotations

import numpy as np


def _context_codes(sequences: list[np.ndarray], order: int, base: int) -> tuple[np.ndarray, np.ndarray]:
    """(context code, next token) for every position; the context is padded with the start id."""
    start = base - 1
    codes, targets = [], []
    for seq in sequences:
        padded = np.concatenate([np.full(order, start, dtype=np.int64), seq.astype(np.int64)])
        code = np.zeros(len(seq), dtype=np.int64)
        for j in range(order):
            code = code * base + padded[j : j + len(seq)]
        codes.append(code)
        targets.append(seq.astype(np.int64))
    return np.concatenate(codes), np.concatenate(targets)


def markov_nll(train: list[np.ndarray], validation: list[np.ndarray], order: int, vocab_size: int) -> float:
    """Validation negative log-likelihood (nats/token) of an interpolated Witten-Bell order-``order`` model."""
    base = vocab_size + 1
    _, val_targets = _context_codes(validation, 0, base)
    # Order 0: unigram with add-one smoothing.
    _, train_targets = _context_codes(train, 0, base)
    unigram = (np.bincount(train_targets, minlength=vocab_size) + 1.0) / (len(train_targets) + vocab_size)
    prob = unigram[val_targets]
    for k in range(1, order + 1):
        train_ctx, train_tgt = _context_codes(train, k, base)
        val_ctx, _ = _context_codes(validation, k, base)
        pair_codes, pair_counts = np.unique(train_ctx * vocab_size + train_tgt, return_counts=True)
        ctx_codes, ctx_counts = np.unique(train_ctx, return_counts=True)
        ctx_types = np.bincount(np.searchsorted(ctx_codes, pair_codes // vocab_size), minlength=len(ctx_codes))
        # Look up counts for each validation position.
        ci = np.searchsorted(ctx_codes, val_ctx)
        ci = np.clip(ci, 0, len(ctx_codes) - 1)
        seen_ctx = ctx_codes[ci] == val_ctx
        n_ctx = np.where(seen_ctx, ctx_counts[ci], 0)
        t_ctx = np.where(seen_ctx, ctx_types[ci], 0)
        pi = np.clip(np.searchsorted(pair_codes, val_ctx * vocab_size + val_targets), 0, len(pair_codes) - 1)
        n_pair = np.where(pair_codes[pi] == val_ctx * vocab_size + val_targets, pair_counts[pi], 0)
        denom = n_ctx + t_ctx
        prob = np.where(denom > 0, (n_pair + t_ctx * prob) / np.maximum(denom, 1), prob)
    return float(-np.mean(np.log(prob)))


def best_markov_baseline(
    train: list[np.ndarray],
    validation: list[np.ndarray],
    vocab_size: int,
    orders: tuple[int, ...] = (1, 2, 3, 4, 6, 8),
) -> dict[str, float]:
    """NLL per order and the best one."""
    results = {f"order_{k}": markov_nll(train, validation, k, vocab_size) for k in orders}
    best = min(results, key=results.get)
    return {**results, "best_order": int(best.split("_")[1]), "best_nll": results[best]}
