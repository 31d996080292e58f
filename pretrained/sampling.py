"""Batched sampling and scoring with a Note RNN (or any model with the same step interface).

The three pieces every conditioned use of a model shares live here once: the history read before the first
action (:func:`history_prefix`: start token, then the primer), the state after it (:func:`warm_start`), and the
model's distribution renormalised over the allowed tokens (:func:`mask_log_probs`). Sampling, scoring, the
environment's prior and the policy all call them.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import UserInputError
from .form import FormError, FormLayout, check_form_constraints, form_allowed, form_allowed_sequences
from .model import NoteModel


def draw(probabilities: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One category per row of (B, V) probabilities, by inverting the cumulative distribution with one
    uniform draw per row: exact, and a tenth of ``torch.multinomial``'s time (which cost sampling 15% of the
    model's step rate). A category of probability 0 is never drawn."""
    cumulative = probabilities.cumsum(dim=-1)
    total = cumulative[:, -1:]
    uniform = torch.rand(len(probabilities), 1, generator=generator, dtype=cumulative.dtype) * total
    uniform = torch.minimum(uniform, torch.nextafter(total, torch.zeros_like(total)))  # strictly below the total
    return (cumulative <= uniform).sum(dim=-1)


def history_prefix(
    model: NoteModel, batch_size: int, primer: np.ndarray | None = None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """(B, 1 + P) ids read before the first action: the start token, then the primer's tokens."""
    prefix = [model.start_token, *(int(t) for t in (primer if primer is not None else ()))]
    return torch.tensor(prefix, dtype=torch.long, device=device).expand(batch_size, -1)


def warm_start(model: NoteModel, batch_size: int, primer: np.ndarray | None = None) -> tuple[torch.Tensor, object]:
    """Log-probabilities (B, V) of the first action and the state after the start token and the primer."""
    log_probs, state = model.start(batch_size)
    device = log_probs.device
    for token in primer if primer is not None else ():
        log_probs, state = model.step(torch.full((batch_size,), int(token), dtype=torch.long, device=device), state)
    return log_probs, state


def mask_log_probs(log_probs: torch.Tensor, allowed: torch.Tensor | None) -> torch.Tensor:
    """``log_probs`` (..., V) renormalised over the ``allowed`` (..., V) tokens (−inf elsewhere); as is without."""
    if allowed is None:
        return log_probs
    return torch.log_softmax(log_probs.masked_fill(~allowed.to(log_probs.device), float("-inf")), dim=-1)


def _check_allowed(allowed: np.ndarray | None) -> torch.Tensor | None:
    if allowed is None:
        return None
    if not allowed.any(axis=-1).all():
        bad = int(np.flatnonzero(~allowed.any(axis=-1))[0])
        raise UserInputError(f"constraints leave no allowed token at step {bad}; loosen the --constraint at that step")
    return torch.from_numpy(np.asarray(allowed, dtype=bool))


@torch.no_grad()
def sample_tokens(
    model: NoteModel,
    num: int,
    length: int = 32,
    temperature: float = 1.0,
    seed: int = 0,
    batch_size: int = 4096,
    primer: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
    return_log_probs: bool = False,
    form: FormLayout | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``num`` melodies of ``length`` tokens (int64 array). Same seed → same melodies.

    With ``return_log_probs`` also returns (num, length) log-probabilities of each sampled token under
    the model at temperature 1 (after masking), e.g. for a KL estimate against a prior.

    ``primer`` (P,) tokens warm the state and are not returned. ``allowed`` (length, V) bool masks the
    actions at each step (renormalising the model's distribution over what is allowed). ``form`` (a strict
    form's layout) also masks each step by what was generated: a returning phrase copies its first phrase
    (:func:`~notetune.pretrained.form.form_allowed`; log-probability 0 at copied steps).
    """
    if temperature <= 0:
        raise UserInputError(f"temperature must be positive, got {temperature} (e.g. --temperature 1.0)")
    mask = _check_allowed(allowed)
    if form is not None:
        _check_form(form, length, allowed)
    generator = torch.Generator().manual_seed(seed)
    out = np.empty((num, length), dtype=np.int64)
    out_log_probs = np.empty((num, length), dtype=np.float64) if return_log_probs else None
    for begin in range(0, num, batch_size):
        size = min(batch_size, num - begin)
        log_probs, state = warm_start(model, size, primer)
        for t in range(length):
            if form is not None:
                step_mask = torch.from_numpy(
                    form_allowed(out[begin : begin + size], t, form, log_probs.shape[-1], allowed)
                )
            else:
                step_mask = None if mask is None else mask[t]
            log_probs = mask_log_probs(log_probs, step_mask)
            probs = torch.softmax(log_probs / temperature, dim=-1).cpu()
            action = draw(probs, generator)
            out[begin : begin + size, t] = action.numpy()
            if out_log_probs is not None:
                chosen = log_probs.gather(1, action[:, None].to(log_probs.device))[:, 0]
                out_log_probs[begin : begin + size, t] = chosen.double().cpu().numpy()
            if t + 1 < length:
                log_probs, state = model.step(action.to(log_probs.device), state)
    return (out, out_log_probs) if out_log_probs is not None else out


@torch.no_grad()
def token_log_probs(
    model: NoteModel,
    tokens: np.ndarray,
    *,
    primer: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
    temperature: float = 1.0,
    batch_size: int = 8192,
    form: FormLayout | None = None,
) -> np.ndarray:
    """(N, T) log p_model(token_t | history) of melodies, conditioned and masked exactly as :func:`sample_tokens`
    samples them: the history starts with the primer, ``allowed`` (T, V) renormalises each step's distribution,
    and ``temperature`` divides the logits (the sampler's own distribution at that temperature). ``form``
    masks each step by the melody's own earlier tokens, as sampling under that strict form does."""
    mask = None if allowed is None else torch.from_numpy(np.asarray(allowed, dtype=bool))
    if form is not None:
        _check_form(form, np.shape(tokens)[1], allowed)
    device = _device_of(model)
    rows = []
    for begin in range(0, len(tokens), batch_size):
        chunk = torch.from_numpy(np.asarray(tokens[begin : begin + batch_size], dtype=np.int64)).to(device)
        prefix = history_prefix(model, len(chunk), primer, device)
        logits, _ = model(torch.cat([prefix, chunk[:, :-1]], dim=1))
        log_probs = torch.log_softmax(logits[:, prefix.shape[1] - 1 :] / temperature, dim=-1)
        if form is not None:
            sequence_mask = form_allowed_sequences(chunk.cpu().numpy(), form, log_probs.shape[-1], allowed)
            log_probs = mask_log_probs(log_probs, torch.from_numpy(sequence_mask))
        else:
            log_probs = mask_log_probs(log_probs, None if mask is None else mask[: chunk.shape[1]])
        rows.append(log_probs.gather(-1, chunk.unsqueeze(-1)).squeeze(-1).double().cpu().numpy())
    return np.concatenate(rows) if rows else np.zeros((0, np.shape(tokens)[1]))


def _device_of(model) -> torch.device:
    """The device of the model's weights (the CPU for a model without any)."""
    parameter = next(iter(getattr(model, "parameters", lambda: iter(()))()), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def _check_form(form: FormLayout, length: int, allowed: np.ndarray | None) -> None:
    if form.length != length:
        raise FormError(
            f"the strict form {form.form} is laid out on {form.length} steps, but the melodies have {length}; "
            f"lay it out on --length {length}"
        )
    check_form_constraints(form, allowed)
