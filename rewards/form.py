"""The ``form`` rewards: phrases that return, vary and contrast as a form says, cadences, a late climax.

Add them to any spec with a form: ``RewardSet.from_spec("notetune,form", length=128, form="AABA")``. Phrase
terms count steps (see :func:`~notetune.rewards.structure.agreement`: transposition allowed, rhythm and held
notes counted), so they scale with the phrase length. They are paid as the phrase is written: at each step,
the rise of the phrase's count over the steps written so far (0 or 1: a new step can only add to the count
of every transposition), so a phrase's payments sum to its count at its end. A policy is told at once which
step agreed, instead of once per phrase for all of them together. The event terms (cadence, climax) are paid
when what they judge is complete:

==================  ====================================================================================
``form_return``     a returning phrase (``A`` again): the steps that agree with the first phrase of its letter
                    (but for a second ending: the last quarter of a return that cadences otherwise)
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
from .structure import climax, ends_with_cadence, segment_agreement

FORM_WEIGHTS = {
    "form_return": 2.0,
    "form_variation": 2.0,
    "form_contrast": 0.5,
    "form_cadence": 10.0,
    "form_climax": 5.0,
}
"""The ``form`` set: phrase terms per step (2 per agreeing step), event terms per event."""

__all__ = ["FORM_WEIGHTS", "Form", "FormError", "FormLayout"]


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


class PhraseCount(PhraseReward):
    """A count over a phrase's steps, paid step by step as its rise; subclasses implement :meth:`count`."""

    role: str = ""
    """The phrases this term judges (their role in the form)."""

    def reset(self, batch_size: int) -> None:
        super().reset(batch_size)
        self.paid = np.zeros(batch_size)

    def step(self, batch: StepBatch) -> np.ndarray:
        steps = self.layout.phrase_steps
        phrase, written = batch.t // steps, batch.t % steps + 1
        if phrase >= self.form.num_phrases or not self.judges(phrase):
            return batch.zeros()
        if written == 1:
            self.paid = np.zeros(batch.batch_size)
        count = self.count(batch, phrase, written)
        rise, self.paid = count - self.paid, count
        return rise

    def judges(self, phrase: int) -> bool:
        return self.form.roles[phrase] == self.role

    def count(self, batch: StepBatch, phrase: int, written: int) -> np.ndarray:
        """(N,) the count over the first ``written`` steps of ``phrase``."""
        raise NotImplementedError


@reward("form_return")
class FormReturn(PhraseCount):
    """A returning phrase: its steps that agree with the first phrase of its letter (transposition allowed), but
    for a second ending (:meth:`~notetune.pretrained.form.FormLayout.second_ending`): a return that cadences
    otherwise than its source is not paid for copying its cadence."""

    role = RETURN

    def count(self, batch: StepBatch, phrase: int, written: int) -> np.ndarray:
        source, start = self.layout.start(self.form.sources[phrase]), self.layout.start(phrase)
        judged = min(written, self.layout.copied_steps(phrase))
        return segment_agreement(batch.tokens, source, start, judged, batch.vocab) * 1.0


@reward("form_variation")
class FormVariation(PhraseCount):
    """A primed phrase: first-half steps agreeing with its letter's first phrase + second-half steps differing."""

    role = VARIATION

    def count(self, batch: StepBatch, phrase: int, written: int) -> np.ndarray:
        half = self.layout.half_steps
        source, start = self.layout.start(self.form.sources[phrase]), self.layout.start(phrase)
        kept = segment_agreement(batch.tokens, source, start, min(written, half), batch.vocab) * 1.0
        if written <= half:
            return kept
        rest = written - half
        return kept + rest - segment_agreement(batch.tokens, source + half, start + half, rest, batch.vocab)


@reward("form_contrast")
class FormContrast(PhraseCount):
    """A new letter after the first: its steps that differ from the most similar earlier letter's first phrase."""

    role = NEW

    def judges(self, phrase: int) -> bool:
        return phrase > 0 and super().judges(phrase)

    def count(self, batch: StepBatch, phrase: int, written: int) -> np.ndarray:
        layout = self.layout
        earlier = [p for p in range(phrase) if self.form.roles[p] == NEW]
        closest = np.max(
            [
                segment_agreement(batch.tokens, layout.start(p), layout.start(phrase), written, batch.vocab)
                for p in earlier
            ],
            axis=0,
        )
        return written - closest * 1.0


@reward("form_cadence")
class FormCadence(PhraseReward):
    """1 at a phrase end on the right cadence: tonic last, dominant before a return, else degree 1, 3 or 5."""

    def phrase_end(self, batch: StepBatch, phrase: int) -> np.ndarray:
        layout = self.layout
        window = batch.tokens[:, layout.start(phrase) : layout.end(phrase) + 1]
        last = phrase == self.form.num_phrases - 1
        degrees = layout.cadence_degrees(phrase)
        return ends_with_cadence(window, batch.key, batch.vocab, degrees, to_the_end=last).astype(np.float64)


@reward("form_climax")
class FormClimax(PhraseReward):
    """1 at the last step when the piece's highest note occurs once and starts in the second half."""

    def phrase_end(self, batch: StepBatch, phrase: int) -> np.ndarray:
        if not batch.is_last_step:
            return batch.zeros()
        unique, step = climax(batch.tokens)
        return (unique & (step >= batch.length // 2)).astype(np.float64)
