"""Sampling under a strict form: returning phrases copied through masks that depend on what was generated.

Thin names for :func:`~notetune.pretrained.sampling.sample_tokens` and
:func:`~notetune.pretrained.sampling.token_log_probs` with a ``form`` layout (they do the work).
"""

from __future__ import annotations

import numpy as np

from .form import FormLayout
from .model import NoteRNN
from .sampling import sample_tokens, token_log_probs


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

    At each step the model's distribution is renormalised over
    :func:`~notetune.pretrained.form.form_allowed` (the copied token in a returning phrase or a variation's
    first half, ``allowed[t]`` elsewhere). ``return_log_probs`` gives each token's log-probability under that
    renormalised distribution (0 at copied steps).
    """
    return sample_tokens(
        model,
        num,
        layout.length,
        temperature,
        seed,
        batch_size,
        primer=primer,
        allowed=allowed,
        return_log_probs=return_log_probs,
        form=layout,
    )


def log_prior_per_step_with_form(
    model: NoteRNN,
    tokens: np.ndarray,
    layout: FormLayout,
    batch_size: int = 4096,
    allowed: np.ndarray | None = None,
    primer: np.ndarray | None = None,
) -> np.ndarray:
    """(N, T) log p_model(token_t | history) renormalised over what the strict form allows (0 at copied steps).

    The whole-sequence counterpart of :func:`sample_tokens_with_form`'s ``return_log_probs``.
    """
    return token_log_probs(model, tokens, primer=primer, allowed=allowed, batch_size=batch_size, form=layout)
