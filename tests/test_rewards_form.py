"""The ``form`` and ``notetune_long`` rewards on hand-made melodies; strict form masks; rl_tuner unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from notetune.pretrained.form import Form, FormError, check_form_constraints, form_allowed, form_violations
from notetune.rewards import RewardSet, RewardSetup
from notetune.rewards.structure import segment_agreement
from test_structure import A_PHRASE, A_VARIED, B_PHRASE, C_PHRASE, D_PHRASE, C, D, E, F, G, play


def terms(pieces: np.ndarray, form: str, spec: str = "form", **kwargs) -> dict[str, np.ndarray]:
    """Per-step terms of (N, T) pieces under ``spec`` with ``form``."""
    pieces = np.atleast_2d(pieces)
    return RewardSet.from_spec(spec, length=pieces.shape[1], form=form, **kwargs).evaluate(pieces)


AABA = np.concatenate([A_PHRASE, A_PHRASE, B_PHRASE, A_PHRASE])
ABCD = np.concatenate([A_PHRASE, B_PHRASE, C_PHRASE, D_PHRASE])


def test_an_aaba_piece_scores_and_an_abcd_piece_does_not():
    rewards = RewardSet.from_spec("form", length=128, form="AABA")
    per_step = rewards.evaluate(np.stack([AABA, ABCD]))
    paid = {name: values.sum(axis=1) for name, values in per_step.items()}
    assert paid["form_return"][0] == 60.0  # both returning A phrases agree on all steps (the last A's ending: free)
    assert paid["form_return"][1] < 0.5 * 64
    assert paid["form_contrast"][0] > 16  # B differs from A on most steps
    total = rewards.total({name: values.sum(axis=1) for name, values in per_step.items()})
    assert total[0] > total[1] + 50


def test_phrase_terms_are_paid_step_by_step_and_sum_to_the_phrase_count():
    per_step = terms(AABA, "AABA")
    paid_at = np.flatnonzero(per_step["form_return"][0]).tolist()
    assert paid_at == [*range(32, 64), *range(96, 124)]  # each agreeing step of a returning A, as it is written
    assert set(np.flatnonzero(per_step["form_cadence"][0])) <= {31, 63, 95, 127}  # events: at phrase ends
    pieces = np.random.default_rng(0).integers(0, 38, size=(64, 128))
    per_step = terms(pieces, "AA'BA")
    by_phrase = {name: values.reshape(64, 4, 32).sum(axis=2) for name, values in per_step.items()}
    np.testing.assert_allclose(by_phrase["form_return"][:, 3], segment_agreement(pieces, 0, 96, 28))
    half_kept = segment_agreement(pieces, 0, 32, 16)
    half_changed = 16 - segment_agreement(pieces, 16, 48, 16)
    np.testing.assert_allclose(by_phrase["form_variation"][:, 1], half_kept + half_changed)
    np.testing.assert_allclose(by_phrase["form_contrast"][:, 2], 32 - segment_agreement(pieces, 0, 64, 32))
    assert set(np.unique(per_step["form_return"])) <= {0.0, 1.0}  # a step adds to every transposition's count


def test_a_return_in_another_key_is_paid_in_full():
    a_up = A_PHRASE.copy()
    a_up[a_up >= 2] += 2
    piece = np.concatenate([A_PHRASE, a_up, B_PHRASE, A_PHRASE])
    assert terms(piece, "AABA")["form_return"].sum() == 60.0


def test_a_return_that_cadences_otherwise_has_a_second_ending():
    layout = Form.parse("AABA").layout(128)
    # A1 ends on the dominant (before a return), A2 anywhere stable (before B), B on the dominant, A3 on the tonic
    assert [layout.cadence_degrees(p) for p in range(4)] == [(5,), (1, 3, 5), (5,), (1,)]
    assert [layout.second_ending(p) for p in range(4)] == [False, False, False, True]  # A2 may keep A1's dominant
    assert [layout.copied_steps(p) for p in range(4)] == [0, 32, 0, 28]
    assert (layout.copy_source[124:] == -1).all() and (layout.copy_source[96:124] == np.arange(28)).all()
    # the last A keeps A1 but ends on the tonic: paid for its 28 copied steps and for the tonic cadence
    tonic_end = A_PHRASE.copy()
    tonic_end[-4:] = play((C, 4))  # C held for the last quarter
    piece = np.concatenate([A_PHRASE, A_PHRASE, B_PHRASE, tonic_end])
    paid = terms(piece, "AABA")
    assert paid["form_return"].sum() == 60.0
    assert paid["form_cadence"][0, 127] == 1.0


def test_a_primed_phrase_keeps_its_first_half_and_changes_its_second():
    varied = np.concatenate([A_PHRASE, A_VARIED, B_PHRASE, A_PHRASE])
    copied = np.concatenate([A_PHRASE, A_PHRASE, B_PHRASE, A_PHRASE])
    paid = terms(np.stack([varied, copied]), "AA'BA")["form_variation"].sum(axis=1)
    assert paid[0] == 28.0  # 16 kept + 12 of 16 changed (the high C starts with A's E: 4 steps agree)
    assert paid[1] == 16.0  # a plain copy keeps its first half but changes nothing


def test_cadences_in_four_four():
    opening = play((C, 4), (D, 4), (E, 4), (C, 4))
    ends_on_g = np.concatenate([opening, play((E, 8), (D, 4), (G, 4))])
    ends_on_c = np.concatenate([opening, play((E, 8), (D, 4), (C, 4))])
    ends_on_d = np.concatenate([opening, play((E, 8), (G, 4), (D, 4))])
    # AB: the first phrase ends before new material (1, 3 or 5 will do), the last one on the tonic.
    piece = np.concatenate([ends_on_g, ends_on_c])
    assert terms(piece, "AB")["form_cadence"].sum() == 2.0
    assert terms(np.concatenate([ends_on_d, ends_on_g]), "AB")["form_cadence"].sum() == 0.0
    # AA: the first phrase comes before a return, so it should close on the dominant (a half cadence).
    assert terms(np.concatenate([ends_on_g, ends_on_c]), "AA")["form_cadence"][0, 31] == 1.0
    assert terms(np.concatenate([ends_on_c, ends_on_c]), "AA")["form_cadence"][0, 31] == 0.0


def test_cadences_in_six_eight():
    first = play((E, 6), (D, 3), (C, 3), (D, 6), (G, 6))  # two 6/8 bars, ending on a dotted quarter G
    last = play((E, 6), (D, 3), (E, 3), (D, 6), (C, 6))
    form = Form.parse("AA", phrase_bars=2)
    paid = terms(np.concatenate([first, last]), form, meter="6/8")["form_cadence"][0]
    assert np.flatnonzero(paid).tolist() == [23, 47]
    with pytest.raises(FormError, match="spans 48 steps, but the piece has 64"):
        RewardSet.from_spec("form", length=64, form=form, meter="6/8")


def test_climax_in_the_second_half():
    late, early = np.concatenate([A_PHRASE, D_PHRASE]), np.concatenate([D_PHRASE, A_PHRASE])
    paid = terms(np.stack([late, early]), "AB")["form_climax"]
    assert paid[:, -1].tolist() == [1.0, 0.0] and paid[:, :-1].sum() == 0


def test_form_rewards_need_a_form_that_fits():
    with pytest.raises(FormError, match="needs a form"):
        RewardSet.from_spec("notetune,form", length=128)
    with pytest.raises(FormError, match="does not divide into the 3 equal phrases"):
        RewardSet.from_spec("notetune,form", length=128, form="ABA")


def test_rl_tuner_is_unchanged_at_128_steps_whatever_the_meter():
    rng = np.random.default_rng(0)
    pieces = rng.integers(0, 38, size=(16, 128))
    pieces[:, 8:16] = pieces[:, :8]  # a repeated 8-step motif: RL Tuner's "bar" is 8 steps at any length
    plain = RewardSet.from_spec("rl_tuner", length=128).evaluate(pieces)
    with_meter = RewardSet.from_spec("rl_tuner", length=128, meter="3/4", form="AABA").evaluate(pieces)
    assert plain.keys() == with_meter.keys()
    for name in plain:
        assert np.array_equal(plain[name], with_meter[name]), name
    assert (plain["repeated_motif"][:, 15] > 0).sum() >= 8  # most pieces: the motif at step 15 repeats
    assert RewardSetup().meter.steps_per_bar == 16 and RewardSetup().form is None


def test_notetune_long_pays_returning_bars_of_the_meter_up_to_a_quarter_of_them():
    bar = play((C, 4), (D, 4), (E, 4), (G, 4))
    other = play((G, 2), (E, 2), (D, 4), (C, 8))
    looping = np.tile(bar, 8)
    varied = np.concatenate([bar, other, bar, other, other, bar, other, play((C, 16))])
    paid = RewardSet.from_spec("notetune_long", length=128).evaluate(np.stack([looping, varied]))["bar_return"]
    assert paid.sum(axis=1).tolist() == [2.0, 2.0]  # 8 bars: at most 2 returns are paid
    assert np.flatnonzero(paid[0]).tolist() == [31, 47]
    waltz = np.tile(play((C, 4), (E, 4), (G, 4)), 8)  # 3/4 bars of 12 steps
    in_three = RewardSet.from_spec("notetune_long", length=96, meter="3/4").evaluate(waltz[None])["bar_return"]
    assert np.flatnonzero(in_three[0]).tolist() == [23, 35]


def test_notetune_long_pays_cadences_every_two_bars_and_a_tonic_ending():
    phrase = np.concatenate([play((C, 4), (D, 4), (E, 4), (F, 4)), play((E, 8), (D, 4), (G, 4))])
    ending = np.concatenate([play((C, 4), (D, 4), (E, 4), (F, 4)), play((E, 8), (D, 4), (C, 4))])
    piece = np.concatenate([phrase, phrase, phrase, ending])
    paid = RewardSet.from_spec("notetune_long", length=128).evaluate(piece[None])["bar_cadence"][0]
    assert np.flatnonzero(paid).tolist() == [31, 63, 95, 127]


def test_strict_form_masks_copy_what_was_generated():
    layout = Form.parse("AA'BA").layout(16)
    tokens = np.zeros((2, 16), dtype=np.int64)
    tokens[:, :4] = [[5, 1, 7, 0], [9, 9, 1, 1]]
    mask = form_allowed(tokens, 5, layout, 38)
    assert mask.sum(axis=1).tolist() == [1, 1] and mask[0, 1] and mask[1, 9]  # A' copies A's step 1
    assert form_allowed(tokens, 7, layout, 38).all()  # A''s second half is free
    tokens[:, 4:] = np.tile(tokens[:, :4], 3)
    assert form_violations(tokens, layout).tolist() == [0, 0]
    tokens[0, 13] = 3
    assert form_violations(tokens, layout).tolist() == [1, 0]
    allowed = np.ones((16, 38), dtype=bool)
    allowed[13, 5] = False
    with pytest.raises(FormError, match="copies step 1 to step 13"):
        check_form_constraints(layout, allowed)


@pytest.mark.parametrize("text", ["AABA", "AA'BA"])
def test_strict_form_holds_in_every_one_of_1000_prior_samples(text):
    from notetune.pretrained.checkpoint import load_checkpoint
    from notetune.pretrained.form_sampling import sample_tokens_with_form
    from notetune.rewards.structure import detect_forms

    model, _ = load_checkpoint(None)
    layout = Form.parse(text).layout(128)
    samples = sample_tokens_with_form(model, 1000, layout, seed=1)
    assert (form_violations(samples, layout) == 0).all()
    assert len({row.tobytes() for row in samples}) > 990  # copying phrases, not whole melodies
    assert (detect_forms(samples, layout.phrase_steps) == text).mean() > 0.9


def test_strict_form_log_probs_stepwise_equal_whole_sequence(tiny_prior):
    from notetune.pretrained.form_sampling import log_prior_per_step_with_form, sample_tokens_with_form

    layout = Form.parse("AA'BA").layout(64)
    samples, stepwise = sample_tokens_with_form(tiny_prior, 20, layout, seed=3, return_log_probs=True)
    whole = log_prior_per_step_with_form(tiny_prior, samples, layout)
    assert np.allclose(stepwise, whole, atol=1e-5)
    copied = layout.copy_source >= 0
    assert np.all(whole[:, copied] == 0.0) and np.all(whole[:, ~copied] < 0.0)
