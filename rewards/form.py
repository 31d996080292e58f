"""The ``form`` rewards: phrases that return, vary and contrast as a form says, cadences, a late climax.

Add them to any spec with a form: ``RewardSet.from_spec("notetune,form", length=128, form="AABA")``. Each term
is charged when what it judges is complete — at the last step of a phrase, or of the piece — so the reward of
every step is well defined. Phrase terms count steps (see :func:`~notetune.rewards.structure.agreement`:
transposition allowed, rhythm and held notes counted), so they scale with the phrase length:

==================  ====================================================================================
``form_return``     a returning phrase (``A`` again): the steps that agree with the first phrase of its letter
``form_variation``  a primed phrase (``A'``): first-half steps that agree with its letter's first phrase,
                    plus second-half steps that differ from it
``form_contrast``   a new letter (``B``): the steps that differ from the most similar earlier letter
``form_cadence``    1 at each phrase end with a cadence: the last phrase ends on the tonic (sounding to the
                    end), a phrase before a return on the dominant (a half cadence), any other on 1, 3 or 5
``form_climax``     1 at the last step when the piece has a single highest note, in its second half
==================  ====================================================================================
"""

from __future__ import annotations

import numpy as np
from notetune.pretrained.form import NEW, RETURN, VARIATION, Form, FormError, FormLayout

from .core import RewardSetup, StatefulReward, StepBatch
from .registry import reward
from .structure import STABLE_DEGREES, climax, ends_with_cadence, segment_agreement

FORM_WEIGHTS = {
    "form_return": 2.0,
    "form_variation": 2.0,
    "form_contrast": 0.5,
    "form_cadence": 10.0,
    "form_climax": 5.0,
}
"""The ``form`` set: phrase terms per step (2 per agreeing step), event terms per event."""

DOMINANT, TONIC = (5,), (1,)

__all__ = ["FORM_WEIGHTS", "Form", "FormError", "FormLayout", "cadence_degrees"]


class PhraseReward(StatefulReward):
    """A reward paid at phrase ends of the setup's form; subclasses implement :meth:`phrase_end`."""

    def __init__(self, setup: RewardSetup | None = None) -> None:
        super().__init__(setup)
        layout = self.setup.form_layout
        if layout is None:
            raise FormError(f"reward '{self.name}' needs a form: RewardSet.from_spec(..., form='AABA') or --form AABA")
        self.layout: FormLayout = layout
        self.form = layout.form

    def step(self, batch: StepBatch) -> np.ndarray:
        steps = self.layout.phrase_steps
        if (batch.t + 1) % steps:
            return batch.zeros()
        return self.phrase_end(batch, batch.t // steps)

    def phrase_end(self, batch: StepBatch, phrase: int) -> np.ndarray:
        raise NotImplementedError


@reward("form_return")
class FormReturn(PhraseReward):
    """A returning phrase: its steps that agree with the first phrase of its letter (transposition allowed)."""

    def phrase_end(self, batch: StepBatch, phrase: int) -> np.ndarray:
        if self.form.roles[phrase] != RETURN:
            return batch.zeros()
        layout = self.layout
        source = layout.start(self.form.sources[phrase])
        return segment_agreement(batch.tokens, source, layout.start(phrase), layout.phrase_steps, batch.vocab) * 1.0


@reward("form_variation")
class FormVariation(PhraseReward):
    """A primed phrase: first-half steps agreeing with its letter's first phrase + second-half steps differing."""

    def phrase_end(self, batch: StepBatch, phrase: int) -> np.ndarray:
        if self.form.roles[phrase] != VARIATION:
            return batch.zeros()
        layout = self.layout
        half, rest = layout.half_steps, layout.phrase_steps - layout.half_steps
        source, start = layout.start(self.form.sources[phrase]), layout.start(phrase)
        kept = segment_agreement(batch.tokens, source, start, half, batch.vocab)
        changed = rest - segment_agreement(batch.tokens, source + half, start + half, rest, batch.vocab)
        return (kept + changed) * 1.0


@reward("form_contrast")
class FormContrast(PhraseReward):
    """A new letter after the first: its steps that differ from the most similar earlier letter's first phrase."""

    def phrase_end(self, batch: StepBatch, phrase: int) -> np.ndarray:
        if phrase == 0 or self.form.roles[phrase] != NEW:
            return batch.zeros()
        layout = self.layout
        earlier = [p for p in range(phrase) if self.form.roles[p] == NEW]
        closest = np.max(
            [
                segment_agreement(batch.tokens, layout.start(p), layout.start(phrase), layout.phrase_steps, batch.vocab)
                for p in earlier
            ],
            axis=0,
        )
        return (layout.phrase_steps - closest) * 1.0


def cadence_degrees(layout: FormLayout, phrase: int) -> tuple[int, ...]:
    """The degrees phrase ``phrase`` should cadence on: tonic last, dominant before a return, else 1, 3, 5."""
    roles = layout.form.roles
    if phrase == len(roles) - 1:
        return TONIC
    if roles[phrase + 1] in (RETURN, VARIATION):
        return DOMINANT
    return STABLE_DEGREES


@reward("form_cadence")
class FormCadence(PhraseReward):
    """1 at a phrase end on the right cadence: tonic last, dominant before a return, else degree 1, 3 or 5."""

    def phrase_end(self, batch: StepBatch, phrase: int) -> np.ndarray:
        layout = self.layout
        window = batch.tokens[:, layout.start(phrase) : layout.end(phrase) + 1]
        last = phrase == self.form.num_phrases - 1
        degrees = cadence_degrees(layout, phrase)
        return ends_with_cadence(window, batch.key, batch.vocab, degrees, to_the_end=last).astype(np.float64)


@reward("form_climax")
class FormClimax(PhraseReward):
    """1 at the last step when the piece's highest note occurs once and starts in the second half."""

    def phrase_end(self, batch: StepBatch, phrase: int) -> np.ndarray:
        if not batch.is_last_step:
            return batch.zeros()
        unique, step = climax(batch.tokens)
        return (unique & (step >= batch.length // 2)).astype(np.float64)
