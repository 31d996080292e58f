"""Bar-level terms for long pieces without a form: the ``notetune_long`` set = ``notetune`` + these.

Untuned, the prior almost never brings a bar back (1.0% of bars of 8-bar samples, transposed; the corpus
16.7%) and ends on a held tonic in 9% of pieces. These terms use the meter's bar (``RewardSetup.meter``; 16
steps in 4/4), unlike RL Tuner's 8-step motif "bar", and are charged at bar ends:

================  =====================================================================================
``bar_return``    1 at the end of a bar of 3 or more notes that repeats an earlier bar of the piece, exactly
                  or transposed (the statistic ``bar_repeated_transposed``); paid for at most a quarter of
                  the bars, so looping one bar does not pay
``bar_cadence``   1 at the end of every 2-bar phrase whose last note lasts a quarter on degree 1, 3 or 5;
                  at the last step, 1 when the piece ends on a tonic lasting a quarter, sounding to the end
================  =====================================================================================
"""

from __future__ import annotations

import numpy as np

from .core import StatefulReward, StepBatch
from .notetune_rules import NOTETUNE_WEIGHTS
from .registry import reward
from .structure import DEFAULT_PHRASE_BARS, ends_with_cadence, relative_to_first_note, repeats_earlier

MIN_RETURNING_NOTES = 3
"""A bar of one or two notes repeats too easily (a held note, a transposed pair) to be paid."""
PAID_RETURN_SHARE = 0.25
"""At most this share of the piece's bars are paid for returning."""


@reward("bar_return")
class BarReturn(StatefulReward):
    """1 when a bar of 3+ notes repeats an earlier bar (transposition allowed), for at most a quarter of the bars."""

    def reset(self, batch_size: int) -> None:
        super().reset(batch_size)
        self.paid = np.zeros(batch_size, dtype=np.int64)

    def step(self, batch: StepBatch) -> np.ndarray:
        bar = batch.meter.steps_per_bar
        if (batch.t + 1) % bar or batch.t + 1 < 2 * bar:
            return batch.zeros()
        bars = batch.tokens.reshape(batch.batch_size, -1, bar)
        returning = repeats_earlier(relative_to_first_note(bars))[:, -1]
        returning &= (bars[:, -1] >= 2).sum(axis=1) >= MIN_RETURNING_NOTES
        returning &= self.paid < max(1, int(PAID_RETURN_SHARE * batch.meter.bars(batch.length)))
        self.paid += returning
        return returning.astype(np.float64)


@reward("bar_cadence")
class BarCadence(StatefulReward):
    """1 at each 2-bar phrase end on a stable degree held a quarter; 1 at the end for a held tonic."""

    def step(self, batch: StepBatch) -> np.ndarray:
        phrase = DEFAULT_PHRASE_BARS * batch.meter.steps_per_bar
        if batch.is_last_step:
            window = batch.tokens[:, (batch.t // phrase) * phrase :]  # the last (possibly short) phrase
            return ends_with_cadence(window, batch.key, batch.vocab, (1,), to_the_end=True).astype(np.float64)
        if (batch.t + 1) % phrase:
            return batch.zeros()
        window = batch.tokens[:, batch.t + 1 - phrase :]
        return ends_with_cadence(window, batch.key, batch.vocab).astype(np.float64)


NOTETUNE_LONG_WEIGHTS = {**NOTETUNE_WEIGHTS, "bar_return": 10.0, "bar_cadence": 5.0}
"""The ``notetune_long`` set: the ``notetune`` rules with bar returns and cadences (the default for long pieces)."""
