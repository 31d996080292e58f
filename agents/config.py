"""The one dataclass that holds every setting of a tuning run (saved beside the run as config.json).

Every value that shapes a run is a field here, with its one default; the CLI flags and TOML keys are the field
names (flat, ``--kl-coef`` for ``kl_coef``). The fields come in sections: what to tune and for how long; rewards;
control (key, primer, constraints); KL control; the algorithms; evaluation and selection; collapse and alarms;
the machine; DPO (``algo="dpo"``, tuning from preference pairs without RL).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from notetune.pretrained.piece import PieceFields

ALGORITHMS = ("ppo", "a2c", "dqn", "psi", "g", "grpo", "rloo", "dpo")


@dataclass
class TuneConfig(PieceFields):
    """Settings of `notetune tune` (the piece: ``length`` or ``bars`` of ``meter``, ``form``, ``phrase_bars``,
    ``form_strict``, from :class:`~notetune.pretrained.piece.PieceFields`; --form adds the 'form' rewards,
    --form-strict needs ppo or a2c)."""

    # --- what to tune, for how long
    algo: Literal["ppo", "a2c", "dqn", "psi", "g", "grpo", "rloo", "dpo"] = "ppo"
    """Algorithm: ppo or a2c (batched recurrent fast path), dqn, psi or g (RL Tuner's Q, Ψ and G-learning), grpo
    or rloo (critic-free, advantages relative to a group of compositions; on the fast path), or dpo (no RL: learns
    from --preferences pairs; reads the dpo_* fields, prior, out, learning_rate, length, seed, threads, max_kl,
    min_distinct_melodies and confirm_size, not the reward, budget or algorithm fields)."""
    steps: int = 4_000_000
    """The budget: total environment steps (one step = one 16th-note token of one composition). Budgets are
    steps, so the same command and seed give the same model on any machine."""
    max_minutes: float = 0.0
    """Optional wall-clock cap (0 = none); run.json says when it cut the run short."""
    seed: int = 0
    """Seed for the policy's sampling, updates and evaluation batches."""
    # --- rewards
    reward: list[str] = field(default_factory=list)
    """Reward sets, reward names or dotted paths (module:function), each optionally NAME=WEIGHT. Empty (the
    default): 'notetune', or 'notetune_long' (bar returns and cadences) for pieces longer than 32 steps; with
    --form, 'form' alone (and form_target). With --form, the 'form' set is added to a given spec."""
    weights: dict[str, float] = field(default_factory=dict)
    """Weight overrides, name → weight (applied after --reward)."""
    # --- targets (constraints on evaluation figures; see agents/target_run.py)
    target: list[str] = field(default_factory=list)
    """Targets the run is tuned to meet, e.g. 'starts_with_tonic>=0.97', 'rest_share>=0.8x' (x: times the untuned
    model's figure), 'log_prior_per_token>=untuned-0.2'. With targets and no keep_reward, the objective is
    "closest to the prior (least KL) subject to the targets": the --reward set is dropped."""
    targets: dict[str, str] = field(default_factory=dict)
    """TOML's [targets] table, statistic → bound, e.g. starts_with_tonic = ">=0.97" (added to target)."""
    novelty_target: list[str] = field(default_factory=lambda: ["copy_rate_8gram<=1.0x", "plagiarism_rate<=1.0x"])
    """Targets every run meets besides its own (through the Lagrangian, music reward kept): copy the corpus no
    more than the untuned model does, so tuning moves away from imitation. 'none' drops them; skipped with
    --corpus none."""
    form_target: list[str] = field(default_factory=lambda: list(FORM_TARGETS))
    """Targets a run with a soft --form meets besides its own (through the Lagrangian, music reward kept): the
    phrases return and contrast as the form says, the piece ends on a held tonic, stays in key, keeps its held
    notes, rests and variety (distinct 4-grams against the untuned model written in the form). 'none' drops
    them; a --target on the same side of a statistic replaces its default."""
    solver: Literal["lagrangian", "distributional"] = "lagrangian"
    """How the targets' multipliers are found: lagrangian (PID dual ascent on rollout estimates) or distributional
    (fitted on the prior's samples at the start, re-fitted every refit_every steps; trains with β fixed at 1
    toward p_prior·exp(λ·g))."""
    refit_every: int = 524_288
    """Distributional: environment steps between re-fits of λ on the policy's own compositions, importance-
    weighted by p_prior/π (the prior's samples rarely reach a far target, so a fit on them alone is poor);
    0 = fit once, on the prior's."""
    keep_reward: bool = False
    """With --target: also maximise the --reward set's music reward (default: only least KL subject to targets)."""
    target_kp: float = 2.0
    """Lagrangian: proportional gain of the multipliers' PID update (on the smoothed violation)."""
    target_ki: float = 2.0
    """Lagrangian: integral gain (the accumulated violation; what holds a multiplier where the target is met)."""
    target_kd: float = 0.0
    """Lagrangian: derivative gain (on the rise of the smoothed violation; damps overshoot)."""
    max_multiplier: float = 1e3
    """Cap on every multiplier λ; a target whose λ reaches it is reported infeasible."""
    # --- the compositions
    key: str = "C major"
    """Key and mode the rules judge against, e.g. 'D minor'."""
    prior: str = "auto"
    """Prior checkpoint directory, 'default' (the shipped Note RNN), 'lookback' (the shipped Lookback LSTM),
    'lookback128' (the Lookback LSTM that also reads 8 bars back) or 'auto': the Note RNN for pieces of up to 32
    steps (RL Tuner's two bars), the Lookback LSTM up to 128 (it remembers what it wrote: its bars return),
    lookback128 for longer ones."""
    corpus: str = "default"
    """Corpus token file for corpus-based rewards ('default' = the shipped corpus)."""
    out: str = "runs/tune"
    """Run directory (config, checkpoints, TensorBoard logs, run.json, exported model/)."""
    # --- KL control
    kl_mode: Literal["full", "rl_tuner"] = "full"
    """full: reward − β·(log π − log p_prior); rl_tuner: RL Tuner's literal log p_prior + r_MT/c."""
    kl_coef: float = 15.0
    """β, the KL coefficient (initial value when adaptive)."""
    kl_target: float | None = None
    """Adaptive β holds this KL(π‖prior) per composition in nats; 0 keeps β fixed. Default: 4 nats per 32 steps
    (4 for two bars, 16 for 128 steps: a KL sums over the steps of a composition)."""
    kl_horizon: float | None = None
    """Compositions over which adaptive β moves by its clipped proportional error. Default: 16,384 steps' worth
    (512 compositions of 32 steps, 128 of 128 steps), so β moves at the same rate per step at every length."""
    kl_min_beta: float = 1e-3
    """Smallest β the adaptive controller may reach."""
    kl_max_beta: float = 1e3
    """Largest β the adaptive controller may reach."""
    # --- the algorithms (ppo/a2c, then dqn/psi/g)
    num_envs: int = 256
    """Compositions written in parallel (ppo/a2c) or environments (dqn family: 1 is RL Tuner's)."""
    learning_rate: float = 1e-4
    """Adam learning rate."""
    n_epochs: int = 4
    """PPO epochs per rollout."""
    batch_size: int | None = None
    """PPO minibatch size in compositions (dqn family: transitions). Default: ppo, a2c, grpo and rloo 2,048
    steps' worth (64 compositions of 32 steps, 16 of 128 steps), so a run makes as many updates per step at
    every length; the dqn family 64 transitions."""
    clip_range: float = 0.2
    """PPO ratio clip."""
    gamma: float = 1.0
    """Discount (RL Tuner used 0.5 for its Q-learning)."""
    gae_lambda: float = 0.95
    """GAE λ."""
    ent_coef: float | None = None
    """Entropy bonus. Default: 0 (the KL term keeps the policy stochastic), but ``FORM_ENT_COEF`` under a soft
    form, whose targets outgrow a KL budget that leaves β low, while the position bias narrows every piece the
    same way."""
    vf_coef: float = 0.5
    """Value-loss weight."""
    max_grad_norm: float = 1.0
    """Gradient clipping."""
    normalize_advantage: bool = True
    """ppo/a2c: normalise advantages within each minibatch."""
    target_kl: float = 0.0
    """ppo: stop a rollout's epochs once the approximate KL between old and new policy exceeds 1.5× this (0 = never)."""
    value_hidden: int = 64
    """ppo/a2c: units of the value head (on the actor's detached features plus a step embedding)."""
    position_bias: bool | None = None
    """ppo, a2c, grpo, rloo: give the policy a learned logit bias per position of the piece (zero at first, so
    KL = 0 at step 0; the exported model keeps it). A recurrent prior does not know where in the piece it is;
    with this the policy learns where it ends (a held tonic) and where each phrase cadences. Default: on for
    pieces longer than 32 steps (off for RL Tuner's two bars, whose runs are unchanged)."""
    phrase_copy: bool = True
    """With the position bias and a soft --form: the bias can also raise or lower, at each step, the token at the
    same place in each earlier phrase (one learned scalar per step and phrase, zero at first), so a returning A
    can copy the first A while B steers away from it. Off: the recurrent state must count to the phrase."""
    phrase_gate: bool | None = None
    """With the phrase copies: one more copy weight per phrase and lag, shared by all its steps (zero at first),
    so a returning phrase learns to copy from the signal of all its steps at once. Default: on for pieces over
    8 bars (128 steps), where it sped the 16-bar returns up; off below, where it made no measured difference."""
    group_size: int = 8
    """grpo/rloo: compositions per group (num_envs must be a multiple); each is judged against its group."""
    kl_estimator: Literal["penalty", "k3"] = "penalty"
    """grpo/rloo: KL to the prior as a per-step reward penalty (as ppo), or as a k3 loss term (as DeepSeek's GRPO)."""
    buffer_size: int = 100_000
    """dqn/psi/g: replay buffer size."""
    learning_starts: int = 1_000
    """dqn/psi/g: steps before the first update."""
    train_freq: int = 4
    """dqn/psi/g: environment steps between updates."""
    tau: float = 0.01
    """dqn/psi/g: soft target update rate (RL Tuner's η)."""
    gradient_steps: int = 1
    """dqn/psi/g: gradient steps per update."""
    exploration_initial_eps: float = 1.0
    """dqn: initial ε of ε-greedy exploration."""
    target_update_interval: int = 0
    """dqn/psi/g: environment steps between soft target updates (0 = max(train_freq, num_envs))."""
    exploration_fraction: float = 0.2
    """dqn: share of the run over which ε anneals from 1 to its final value."""
    exploration_final_eps: float = 0.1
    """dqn: final ε."""
    # --- evaluation, checkpoints and selection
    eval_every: int = 131_072
    """Environment steps between held-out evaluations."""
    eval_size: int = 2048
    """Compositions per evaluation."""
    eval_seed: int = 12345
    """Offset of every evaluation's sampling seed from the run's seed: the same batch each time, so checkpoints
    compare."""
    confirm_seed: int = 54321
    """Offset of the confirmation batch's seed: independent of the batch that nominated the checkpoint."""
    eval_resamples: int = 200
    """Bootstrap resamples of each evaluation's 95% intervals (0 = figures only)."""
    judge: str = ""
    """A simulated listener, module:function (tokens (N, T) → scores (N,), e.g.
    notetune.rewards.listener:contour_arch): every evaluation also reports judge_share, the share of blind
    pairs it prefers over as many of the untuned prior's compositions (ties half). With a learned reward this
    draws the overoptimisation curve: the learned reward and the judge's true preference over training. It
    only watches; selection does not read it."""
    confirm_size: int | None = None
    """Compositions in the confirmation of an evaluation that would become the best: a fresh batch on which it
    is judged again, so a lucky batch cannot pick the exported model; the untuned model's figures (the
    baseline of the relative bounds) come from such a batch too. Default: 10,000 up to 32 steps, as the tuning
    targets are measured (the share of distinct melodies falls as the batch grows); 320,000 steps' worth
    beyond, at least 2,000 compositions, as the whole-tunes targets are (2,500 of 128 steps) (0 = no
    confirmation)."""
    checkpoint_every: int = 131_072
    """Environment steps between training checkpoints (for --resume)."""
    patience: int = 10
    """Stop when this many evaluations after the best tuned one bring no better one (0 = never). The clock starts
    at the first tuned checkpoint chosen: while none beats the untuned model (e.g. a target missed while its
    multiplier is still rising), the run goes on, up to --steps."""
    max_kl: float | None = None
    """Selection bound: largest KL per composition of an eligible checkpoint. Default: 8 nats per 32 steps."""
    min_distinct_melodies: float = 0.992
    """Selection bound: smallest share of distinct compositions (the target is 99%; the margin absorbs the
    noise of one 10,000-composition measurement)."""
    min_distinct_4gram_ratio: float = 0.8
    """Selection bound: smallest distinct-4gram share relative to the untuned model."""
    min_hold_ratio: float = 0.75
    """Selection bound: smallest hold share relative to the untuned model."""
    min_rest_ratio: float = 0.55
    """Selection bound: smallest rest share relative to the untuned model (the target is 0.5×; rests are rare,
    about 900 in 10,000 tuned compositions, so the margin absorbs the noise of one measurement)."""
    max_log_prior_drop: float = 0.5
    """Selection bound: largest drop of mean log p_prior per token below the untuned model (nats)."""
    min_stats: dict[str, float] = field(default_factory=dict)
    """Selection targets: smallest value of evaluation figures, e.g. starts_with_tonic=0.288 (names as in run.json's
    evaluations: Table 1 statistics, the metrics of `notetune evaluate`, music_reward, reward_<name>)."""
    max_stats: dict[str, float] = field(default_factory=dict)
    """Selection targets: largest value of evaluation statistics, e.g. not_in_key=0.01."""
    # --- collapse and reward-hacking alarms
    stop_on_collapse: bool = True
    """Stop the run when the evaluation batch collapses (see collapse_distinct_melodies and
    collapse_distinct_4gram_ratio)."""
    collapse_distinct_melodies: float = 0.5
    """Collapse: under this share of distinct compositions."""
    collapse_distinct_4gram_ratio: float = 0.5
    """Collapse: distinct-4gram share under this fraction of the untuned model's."""
    stop_on_alarm: bool = False
    """Stop the run when a reward-hacking alarm fires."""
    alarm_kl: float | None = None
    """Alarm: KL(π‖prior) per composition above this (nats). Default: 8 nats per 32 steps."""
    alarm_log_prior_drop: float = 0.5
    """Alarm: mean log p_prior per token this far below the untuned model (nats)."""
    alarm_distinct_4gram_ratio: float = 0.8
    """Alarm: distinct-4gram share below this fraction of the untuned model's."""
    alarm_hold_ratio: float = 0.6
    """Alarm: hold share below this fraction of the corpus's."""
    alarm_rest_ratio: float = 0.3
    """Alarm: rest share below this fraction of the corpus's."""
    alarm_reward_share: float = 0.6
    """Alarm: one reward pays more than this share of the absolute weighted reward."""
    # --- the machine
    threads: int = 2
    """torch CPU threads."""
    progress: bool = True
    """Show a progress bar."""
    # --- control: primer and constraints
    primer: str = ""
    """Melody every composition continues (policy and prior read it first; it is not scored): a MIDI file or
    one item per 16th note, e.g. '60 _ 62 _ 64 _ _ _' (_ holds, r rests). ppo, a2c, grpo and rloo only."""
    constraint: list[str] = field(default_factory=list)
    """Action masks on policy and prior, e.g. 'step:0=C4', 'pitches=C,D,E,G,A', 'rhythm=x...x...'.
    ppo, a2c, grpo and rloo only."""
    # --- dpo: tuning from preference pairs
    preferences: str = ""
    """dpo: preferences.jsonl with the pairs to learn from (the studio's, `listen score --export-preferences`,
    `listen simulate`)."""
    dpo_beta: float = 0.1
    """dpo: β, how far from the prior (the frozen reference) the preferences may pull the policy (smaller =
    further)."""
    dpo_loss: Literal["sigmoid", "ipo"] = "sigmoid"
    """dpo: sigmoid (DPO's logistic loss) or ipo (IPO's squared loss)."""
    dpo_epochs: int = 32
    """dpo: passes over the training pairs (each is evaluated; the exported one has the lowest held-out loss)."""


FORM_TARGETS = (
    "returns_agree>=0.92",
    "contrasts_differ>=0.92",
    "ends_on_tonic>=0.92",
    "not_in_key<=0.004",
    "hold_share>=0.8x",
    "rest_share>=0.55x",
    "distinct_4gram>=0.85x",
)
"""The default ``form_target``: the whole-tunes issue's figures for a form (90% of pieces return, contrast and
end on a tonic; not in key ≤ 0.5%; holds and rests ≥ 0.75× and 0.5× untuned), each with a margin, since a
multiplier holds its figure *at* the bound on average (rests: the selection bound's 0.55×)."""
FORM_KL_FACTOR = 2.0
"""A soft form's KL settings are this many times a free piece's: at the free 16 nats of a 128-step AABA, the
returns and the tonic ending traded against each other and no evaluation had both at 90% (README)."""
FORM_ENT_COEF = 0.01
"""The entropy bonus of a soft form's run (SB3's usual 0.01; see the README's whole-tunes section)."""
LONG_PIECE = 32
"""Pieces longer than this many steps default to the ``notetune_long`` reward set."""
EIGHT_BARS = 128
"""Pieces longer than this many steps default to the prior that reads 128 steps back (``lookback128``)."""


KL_PER_32_STEPS = {"kl_target": 4.0, "max_kl": 8.0, "alarm_kl": 8.0}
"""Defaults of the per-composition KL settings (nats) for 32 steps; a piece of ``length`` steps gets
``length / 32`` times these (KL(π‖prior) is a sum over the steps of a composition)."""
MINIBATCH_STEPS = 2048
"""Default PPO-family minibatch in steps (64 compositions of 32 steps)."""
KL_HORIZON_STEPS = 16_384
"""Default adaptive-β horizon in steps (512 compositions of 32 steps)."""
CONFIRM_STEPS = 320_000
"""Default confirmation batch in steps (10,000 compositions of 32 steps) ..."""
MIN_CONFIRM_SIZE = 2_000
"""... but at least this many compositions (how the whole-tunes targets are measured)."""
TRANSITION_BATCH = 64
"""Default minibatch of the dqn family, in transitions."""
FAST_PATH = ("ppo", "a2c", "grpo", "rloo")
"""Algorithms on the batched fast path: their policy reads a primer and masks its actions (constraints, strict
forms), and may carry a position bias."""


def shipped_prior(prior: str, length: int) -> str:
    """The prior ``prior`` names for pieces of ``length`` steps: 'auto' is 'default' (the Note RNN) up to 32
    steps, 'lookback' (the Lookback LSTM, copying from 1, 2 and 4 bars back) up to 128 and 'lookback128' (the
    same reading 8 bars back too) beyond; any other name or path is itself."""
    if prior != "auto":
        return prior
    if length > EIGHT_BARS:
        return "lookback128"
    return "lookback" if length > LONG_PIECE else "default"


def with_length_defaults(config: TuneConfig, length: int) -> TuneConfig:
    """``config`` with its length-scaled defaults filled in for pieces of ``length`` steps (fields left None):
    the KL target and bounds per composition grow with the length (twice as fast under a soft form, which also
    gets an entropy bonus), the minibatch and β's horizon are fixed in steps, and so is the confirmation batch
    (at least 2,000 compositions). At 32 steps they are 4, 8, 8 nats, 64, 512 and 10,000 compositions, as RL
    Tuner-length runs always had; the 'auto' prior is named (:func:`shipped_prior`) and longer pieces get a
    position bias. The run saves the filled config, so a resumed or repeated run reads the same numbers."""
    soft_form = bool(config.form) and not config.form_strict
    scale = length / LONG_PIECE * (FORM_KL_FACTOR if soft_form else 1.0)
    changes: dict[str, float | int | str | bool] = {"prior": shipped_prior(config.prior, length)}
    if config.ent_coef is None:
        changes["ent_coef"] = FORM_ENT_COEF if soft_form else 0.0
    changes |= {name: per_32 * scale for name, per_32 in KL_PER_32_STEPS.items() if getattr(config, name) is None}
    if config.position_bias is None:
        changes["position_bias"] = length > LONG_PIECE and config.algo in FAST_PATH
    if config.phrase_gate is None:
        changes["phrase_gate"] = length > EIGHT_BARS
    if config.kl_horizon is None:
        changes["kl_horizon"] = KL_HORIZON_STEPS / length
    if config.confirm_size is None:
        changes["confirm_size"] = max(MIN_CONFIRM_SIZE, round(CONFIRM_STEPS / length))
    if config.batch_size is None:
        per_steps = max(1, round(MINIBATCH_STEPS / length))
        changes["batch_size"] = per_steps if config.algo in FAST_PATH else TRANSITION_BATCH
    return replace(config, **changes)


def reward_spec(config: TuneConfig, length: int) -> list[str]:
    """The reward spec a run trains with: ``config.reward``, or the default for ``length`` ('form' alone under a
    form); plus ``form`` when the config has a form (unless the spec names it already)."""
    spec = list(config.reward)
    if not spec and config.form:
        return ["form"]  # the notetune rules pay per note: under a form they buy notes instead of phrases
    if not spec:
        spec = ["notetune_long" if length > LONG_PIECE else "notetune"]
    if config.form and not any(item.split("=")[0].strip() == "form" for text in spec for item in text.split(",")):
        spec.append("form")
    return spec
