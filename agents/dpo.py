"""Direct preference optimisation: tune the policy straight from preference pairs, no reward model, no RL.

The policy starts as a copy of the prior, which also serves as the frozen reference. With
``h = [log π(a) − log p_ref(a)] − [log π(b) − log p_ref(b)]`` (log-probabilities summed over the melody):

* ``sigmoid`` (DPO, Rafailov et al. 2023): ``BCE(σ(β h), target)`` — ``−log σ(β h)`` when a won;
* ``ipo`` (IPO, Azar et al. 2023): ``(h − (2·target − 1) / (2β))²`` — it regresses h to a finite margin
  instead of pushing it to infinity, so it overfits few pairs less.

Ties have target 0.5 (sigmoid: no push either way at h = 0; IPO: h pulled to 0). The result is exported
like any tuned model: ``OUT/model`` is a Note RNN checkpoint that ``sample`` and ``evaluate`` accept.
``notetune reward dpo`` runs :func:`train_dpo` on a :class:`DPOConfig`; ``notetune tune --algo dpo`` runs
:func:`tune_dpo` on a :class:`~notetune.agents.config.TuneConfig`, which maps onto it.
"""

from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from notetune.pretrained.checkpoint import find_checkpoint, load_checkpoint, read_config, save_checkpoint
from notetune.pretrained.errors import UserInputError
from notetune.pretrained.model import NoteRNN
from notetune.pretrained.piece import piece_from_config
from notetune.pretrained.sampling import sample_tokens
from notetune.pretrained.transpose import PRIOR_KEY
from notetune.rewards.keys import Key
from notetune.rewards.listener import Judge, judge_preference_share, load_judge
from notetune.rewards.preferences import PreferenceError, parse_preferences

from .config import TuneConfig, with_length_defaults
from .evaluation import evaluate_policy
from .reward_fit import MIN_PAIRS, reading_arrays, split_pairs


@dataclass
class DPOConfig:
    """Settings of `notetune reward dpo` (DPO/IPO tuning from preference pairs)."""

    preferences: str = ""
    """preferences.jsonl with the pairs to learn from."""
    prior: str = "default"
    """Prior checkpoint: the policy's starting point and the frozen reference model."""
    out: str = "runs/dpo"
    """Run directory: config.json, run.json and the exported model/."""
    loss: Literal["sigmoid", "ipo"] = "sigmoid"
    """sigmoid (DPO's logistic loss) or ipo (IPO's squared loss)."""
    beta: float = 0.1
    """β: how far from the reference the preferences may pull the policy (smaller = further)."""
    epochs: int = 32
    """Passes over the training pairs (each is evaluated; the exported epoch has the lowest held-out loss within
    the bounds: on 900 pairs of contour_arch that was epoch 25 of 40)."""
    batch_size: int = 32
    """Pairs per Adam step."""
    learning_rate: float = 1e-4
    """Adam learning rate."""
    held_out: float = 0.1
    """Share of pairs held out to choose the epoch that is exported (the lowest held-out loss)."""
    eval_size: int = 10_000
    """Compositions sampled after each epoch for KL(π‖prior), log p_prior per token and distinct melodies
    (10,000, as the targets are measured: the share of distinct melodies falls as the batch grows)."""
    length: int = 32
    """Steps per sampled composition (the pairs' own length is used for training)."""
    max_kl: float = 8.0
    """Selection bound: epochs whose KL(π‖prior) per composition exceeds this are not exported."""
    min_distinct_melodies: float = 0.992
    """Selection bound: epochs with a smaller share of distinct compositions are not exported."""
    seed: int = 0
    """Seed of the split, the batch order and the evaluation samples."""
    threads: int = 1
    """torch CPU threads."""
    judge: str = ""
    """A simulated listener, module:function: every epoch's evaluation also reports judge_share, the share of
    blind pairs it prefers over the prior's compositions. It only watches; the chosen epoch does not read it."""

    def __post_init__(self) -> None:
        if self.beta <= 0:
            raise UserInputError(f"--beta must be positive, got {self.beta}")
        if not 0 < self.held_out < 1:
            raise UserInputError("--held-out is a share of the pairs between 0 and 1")
        if self.epochs < 0 or self.batch_size < 1 or self.eval_size < 1 or self.length < 1:
            raise UserInputError("--epochs must be 0 or more, --batch-size, --eval-size and --length at least 1")


def dpo_loss(
    policy_a: torch.Tensor,
    policy_b: torch.Tensor,
    reference_a: torch.Tensor,
    reference_b: torch.Tensor,
    target: torch.Tensor,
    beta: float,
    loss: str = "sigmoid",
) -> torch.Tensor:
    """Mean DPO or IPO loss of a batch; every argument but ``beta``/``loss`` is (B,) (log-probabilities
    summed over each melody; ``target`` = P(a preferred))."""
    h = (policy_a - reference_a) - (policy_b - reference_b)
    if loss == "sigmoid":
        return torch.nn.functional.binary_cross_entropy_with_logits(beta * h, target)
    if loss == "ipo":
        return ((h - (2 * target - 1) / (2 * beta)) ** 2).mean()
    raise ValueError(f"unknown DPO loss {loss!r}; choose 'sigmoid' or 'ipo'")


def melody_log_probs(model: NoteRNN, tokens: torch.Tensor) -> torch.Tensor:
    """(B,) log p(melody) = Σ_t log p(token_t | history)."""
    return model.sequence_log_probs(tokens).sum(dim=1)


def kl_and_log_prior(
    policy: NoteRNN,
    prior: NoteRNN,
    size: int,
    length: int,
    seed: int,
    judge: tuple[Judge, np.ndarray] | None = None,
) -> dict[str, float]:
    """KL(π‖prior) per composition, mean log p_prior per token and distinct melodies of ``size`` compositions
    sampled from π — the evaluation pipeline's own figures — and with ``judge`` = (a judge, as many of the
    prior's compositions) the judge's ``judge_share`` against them, as a tuning run's evaluations report it."""
    evaluation = evaluate_policy(policy, prior, num=size, length=length, seed=seed, resamples=0)
    figures = evaluation.figures()
    kept = {name: figures[name] for name in ("kl_per_composition", "log_prior_per_token", "distinct_melodies")}
    if judge is not None:
        kept["judge_share"] = judge_preference_share(judge[0], evaluation.tokens, judge[1])
    return kept


def train_dpo(
    config: DPOConfig, lines: list[str] | None = None, saved_config: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Train, export ``OUT/model`` (the epoch with the lowest held-out loss within the bounds), write
    ``OUT/run.json``; returns that record. ``OUT/config.json`` holds ``saved_config`` (default:
    ``{"dpo": DPOConfig fields}``)."""
    torch.set_num_threads(config.threads)
    prior_dir = find_checkpoint(config.prior)
    prior, prior_config = load_checkpoint(prior_dir)
    if not isinstance(prior, NoteRNN):
        raise PreferenceError(f"--prior {config.prior} is a tuned G model; give a Note RNN prior (e.g. 'default')")
    if lines is None:
        if not config.preferences:
            raise PreferenceError("give the preferences file: --preferences FILE (one JSON pair a line)")
        path = Path(config.preferences)
        if not path.is_file():
            raise PreferenceError(f"preferences file {path} not found; give --preferences FILE")
        lines = path.read_text().splitlines()
    data = parse_preferences(lines, prior.vocab)
    if len(data) < MIN_PAIRS:
        raise PreferenceError(f"DPO needs at least {MIN_PAIRS} usable pairs; {data.summary()}")
    # The judge's baseline: the prior's compositions of another seed, drawn once for every epoch.
    judge = (
        (load_judge(config.judge), sample_tokens(prior, config.eval_size, config.length, seed=config.seed + 8))
        if config.judge
        else None
    )
    train_index, held_index, split_by = split_pairs(data, config.held_out, config.seed)
    train = [torch.from_numpy(x) for x in reading_arrays(data, train_index, prior.vocab)]
    held = [torch.from_numpy(x) for x in reading_arrays(data, held_index, prior.vocab)]
    train[2], held[2] = train[2].float(), held[2].float()

    policy = copy.deepcopy(prior)
    policy.dropout.p = 0.0  # the loss must see the distribution that is sampled
    for parameter in policy.parameters():
        parameter.requires_grad_(True)
    prior.eval()
    with torch.no_grad():
        reference_train = (melody_log_probs(prior, train[0]), melody_log_probs(prior, train[1]))
        reference_held = (melody_log_probs(prior, held[0]), melody_log_probs(prior, held[1]))
    optimizer = torch.optim.Adam(policy.parameters(), lr=config.learning_rate)
    generator = torch.Generator().manual_seed(config.seed)
    started = time.monotonic()

    def evaluate(epoch: int) -> dict[str, Any]:
        policy.eval()
        with torch.no_grad():
            policy_a, policy_b = melody_log_probs(policy, held[0]), melody_log_probs(policy, held[1])
            loss = dpo_loss(policy_a, policy_b, *reference_held, held[2], config.beta, config.loss)
            h = (policy_a - reference_held[0]) - (policy_b - reference_held[1])
        decided = held[2] != 0.5
        accuracy = ((h > 0) == (held[2] > 0.5))[decided].float().mean() if decided.any() else torch.tensor(math.nan)
        figures = kl_and_log_prior(policy, prior, config.eval_size, config.length, config.seed + 7, judge)
        return {"epoch": epoch, "held_out_loss": float(loss), "held_out_accuracy": float(accuracy), **figures}

    history = [evaluate(0)]
    best = {"epoch": 0, "state": copy.deepcopy(policy.state_dict()), "loss": history[0]["held_out_loss"]}
    count = len(train[0])
    for epoch in range(1, config.epochs + 1):
        policy.train()
        order = torch.randperm(count, generator=generator)
        for begin in range(0, count, config.batch_size):
            batch = order[begin : begin + config.batch_size]
            loss = dpo_loss(
                melody_log_probs(policy, train[0][batch]),
                melody_log_probs(policy, train[1][batch]),
                reference_train[0][batch],
                reference_train[1][batch],
                train[2][batch],
                config.beta,
                config.loss,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
            optimizer.step()
        history.append(evaluate(epoch))
        latest = history[-1]
        eligible = (
            latest["kl_per_composition"] <= config.max_kl
            and latest["distinct_melodies"] >= config.min_distinct_melodies
        )
        if eligible and latest["held_out_loss"] < best["loss"]:
            best = {"epoch": epoch, "state": copy.deepcopy(policy.state_dict()), "loss": history[-1]["held_out_loss"]}
    policy.load_state_dict(best["state"])
    policy.eval()
    chosen = history[best["epoch"]]
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = saved_config if saved_config is not None else {"dpo": asdict(config)}
    (out / "config.json").write_text(json.dumps(saved, indent=2) + "\n")
    save_checkpoint(
        policy,
        out / "model",
        extra={
            "key": prior_config.get("key") or PRIOR_KEY,
            "tuned": {
                "algo": "dpo",
                "loss": config.loss,
                "beta": config.beta,
                "epoch": best["epoch"],
                "preferences": config.preferences,
                "from_prior": str(prior_dir),
            },
            "metrics": {k: v for k, v in chosen.items() if isinstance(v, int | float)},
        },
    )
    record = {
        "config": asdict(config),
        "prior": str(prior_dir),
        "data": data.summary(),
        "split": {"by": split_by, "train_pairs": int(count), "held_out_pairs": int(len(held[0]))},
        "chosen": {
            "epoch": best["epoch"],
            "path": str(out / "model"),
            "why": "lowest held-out loss within max_kl and min_distinct_melodies",
        },
        "seconds": round(time.monotonic() - started, 1),
        "final_metrics": chosen,
        "history": history,
    }
    (out / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def dpo_config(config: TuneConfig) -> DPOConfig:
    """The DPO settings a TuneConfig with ``algo="dpo"`` stands for (the dpo_* fields, the prior, the run
    directory, the selection bounds; evaluations of ``confirm_size`` compositions, as the targets are measured)."""
    if not config.preferences:
        raise PreferenceError("--algo dpo learns from preference pairs: give --preferences FILE (preferences.jsonl)")
    if config.dpo_beta <= 0 or config.dpo_epochs < 0:
        raise PreferenceError(
            f"--dpo-beta must be positive and --dpo-epochs 0 or more (got {config.dpo_beta} and {config.dpo_epochs})"
        )
    length = piece_from_config(config).length  # --bars and --meter as well as --length
    config = with_length_defaults(config, length)
    try:
        return DPOConfig(
            preferences=config.preferences,
            prior=config.prior,
            out=config.out,
            loss=config.dpo_loss,
            beta=config.dpo_beta,
            epochs=config.dpo_epochs,
            learning_rate=config.learning_rate,
            eval_size=config.confirm_size or config.eval_size,
            length=length,
            max_kl=config.max_kl,
            min_distinct_melodies=config.min_distinct_melodies,
            seed=config.seed,
            threads=config.threads,
            judge=config.judge,
        )
    except ValueError as error:
        raise PreferenceError(str(error)) from None


def tune_dpo(config: TuneConfig, lines: list[str] | None = None) -> dict[str, Any]:
    """``notetune tune --algo dpo``: train with :func:`train_dpo` into a run directory like any run's
    (``config.json`` holds the TuneConfig, ``run.json`` the record, ``model/`` the exported policy)."""
    # config.json records the numbers the run used
    config = with_length_defaults(config, piece_from_config(config).length)
    dpo = dpo_config(config)
    if config.primer or config.constraint:
        raise PreferenceError("--primer and --constraint need --algo ppo or a2c; --algo dpo learns whole melodies")
    prior_key = Key.parse(read_config(find_checkpoint(config.prior)).get("key") or PRIOR_KEY)
    if Key.parse(config.key) != prior_key:
        raise PreferenceError(
            f"--algo dpo tunes in the prior's key ({prior_key}); leave out --key {config.key} and write in it "
            f"with `notetune sample --key '{config.key}'`"
        )
    if (Path(config.out) / "config.json").exists():
        raise PreferenceError(f"{config.out} already holds a run; choose another --out")
    return train_dpo(dpo, lines, saved_config=asdict(config))
