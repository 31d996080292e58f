"""Sampling under a strict form: returning phrases copied through masks that depend on what was generated."""

from __future__ import annotations

import numpy as np
import torch

from .form import FormLayout, check_form_constraints, form_allowed, form_allowed_sequences
from .model import NoteRNN


@torch.no_grad()
def sample_tokens_with_form(
    model: NoteRNN,
    num: int,
    layout: FormLayout,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 4096,
    primer: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
    return_log_probs: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``num`` melodies of ``layout.length`` tokens whose returning phrases copy their first phrase exactly.

    As :func:`~notetune.pretrained.sampling.sample_tokens`, but at each step the model's distribution is
    renormalised over :func:`~notetune.pretrained.form.form_allowed` (the copied token in a returning phrase
    or a variation's first half, ``allowed[t]`` elsewhere). ``return_log_probs`` gives each token's
    log-probability under that renormalised distribution (0 at copied steps).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    length = layout.length
    check_form_constraints(layout, allowed)
    generator = torch.Generator().manual_seed(seed)
    out = np.empty((num, length), dtype=np.int64)
    out_log_probs = np.empty((num, length), dtype=np.float64) if return_log_probs else None
    for begin in range(0, num, batch_size):
        size = min(batch_size, num - begin)
        tokens = out[begin : begin + size]
        log_probs, state = model.start(size)
        if primer is not None and len(primer):
            for token in primer:
                log_probs, state = model.step(torch.full((size,), int(token), dtype=torch.long), state)
        for t in range(length):
            mask = torch.from_numpy(form_allowed(tokens, t, layout, log_probs.shape[-1], allowed))
            masked = log_probs.masked_fill(~mask, float("-inf"))
            action = torch.multinomial(torch.softmax(masked / temperature, dim=-1), 1, generator=generator)[:, 0]
            tokens[:, t] = action.numpy()
            if out_log_probs is not None:
                scores = torch.log_softmax(masked, dim=-1).gather(1, action[:, None])[:, 0]
                out_log_probs[begin : begin + size, t] = scores.numpy()
            if t + 1 < length:
                log_probs, state = model.step(action, state)
    return (out, out_log_probs) if out_log_probs is not None else out


@torch.no_grad()
def log_prior_per_step_with_form(
    model: NoteRNN,
    tokens: np.ndarray,
    layout: FormLayout,
    batch_size: int = 4096,
    allowed: np.ndarray | None = None,
) -> np.ndarray:
    """(N, T) log p_model(token_t | history) renormalised over what the strict form allows (0 at copied steps).

    The whole-sequence counterpart of :func:`sample_tokens_with_form`'s ``return_log_probs``.
    """
    tokens = np.asarray(tokens, dtype=np.int64)
    rows = []
    for begin in range(0, len(tokens), batch_size):
        chunk = torch.from_numpy(tokens[begin : begin + batch_size])
        history = torch.full((len(chunk), 1), model.start_token, dtype=torch.long)
        logits, _ = model(torch.cat([history, chunk[:, :-1]], dim=1))
        mask = torch.from_numpy(form_allowed_sequences(chunk.numpy(), layout, logits.shape[-1], allowed))
        log_probs = torch.log_softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
        rows.append(log_probs.gather(-1, chunk.unsqueeze(-1)).squeeze(-1).numpy())
    return np.concatenate(rows) if rows else np.zeros((0, layout.length))
