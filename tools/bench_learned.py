"""The learned-rewards targets end to end (~20 min on 2 busy cores): a simulated listener answers 1,000 pairs of
untuned samples, `reward fit` learns them, `tune --reward learned:DIR` and `reward dpo` tune the prior, and the
judge compares each with the untuned prior on 10,000 blind pairs. While the tune run trains, every training
checkpoint is copied aside, so the overoptimisation curve (learned reward and the judge's preference over
training) can be drawn afterwards.

    python tools/bench_learned.py --out bench-results/learned [--tune-args "--min-distinct-4gram-ratio 0.5"]
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import torch
from notetune.pretrained.checkpoint import load_checkpoint
from notetune.pretrained.model import NoteRNN
from notetune.pretrained.reward_model import load_reward_model
from notetune.pretrained.sampling import sample_tokens, token_log_probs
from notetune.rewards.listener import judge_preference_share, load_judge
from safetensors.torch import load_file

NOTETUNE = [sys.executable, "-m", "notetune.scripts.cli"]


def notetune(*args: str) -> None:
    command = [*NOTETUNE, *args]
    print("$ notetune " + shlex.join(args), flush=True)
    subprocess.run(["nice", "-n", "10", *command], check=True)


def copy_checkpoints(run: Path, dest: Path, done: threading.Event) -> None:
    """Keep a copy of each training checkpoint's policy weights (the run keeps only its newest three)."""
    dest.mkdir(parents=True, exist_ok=True)
    while True:
        for step in sorted(run.glob("checkpoints/step_*")):
            target = dest / f"{step.name}.safetensors"
            if (step / "manifest.json").is_file() and not target.exists():
                shutil.copy(step / "policy.safetensors", target)
        if done.is_set():
            return
        done.wait(2.0)


def figures(model, prior, reward_model, judge, baseline, size: int) -> dict[str, float]:
    tokens = sample_tokens(model, size, 32, seed=1234)
    mean, spread = reward_model.score(tokens)
    return {
        "judge_share": judge_preference_share(judge, tokens, baseline[:size]),
        "learned_mean": float(mean.mean()),
        "learned_spread": float(spread.mean()),
        "log_prior_per_token": float(token_log_probs(prior, tokens).mean()),
        "distinct_melodies": len({row.tobytes() for row in tokens}) / len(tokens),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-results/learned")
    parser.add_argument("--judge", default="notetune.rewards.listener:contour_arch")
    parser.add_argument("--noise", default="0.1")
    parser.add_argument("--weight", default="20", help="weight of the learned reward in the tune run")
    parser.add_argument("--tune-args", default="", help="extra `notetune tune` flags")
    parser.add_argument("--size", type=int, default=10_000, help="blind pairs per judgement")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    prefs, rm, tune, dpo = out / "prefs.jsonl", out / "rm", out / "tune", out / "dpo"
    if not prefs.exists():
        notetune("reward", "simulate", "--judge", args.judge, "--pairs", "1000", "--noise", args.noise,
                 "--seed", "10", "--out", str(prefs))  # fmt: skip
    if not (rm / "config.json").exists():  # each stage is skipped when its output exists: rerun to resume
        notetune("reward", "fit", "--preferences", str(prefs), "--out", str(rm))
    if not (tune / "run.json").exists():
        done = threading.Event()
        copier = threading.Thread(target=copy_checkpoints, args=(tune, out / "curve", done), daemon=True)
        copier.start()
        notetune("tune", "--reward", f"learned:{rm}={args.weight}", "--threads", "1", "--out", str(tune),
                 *shlex.split(args.tune_args))  # fmt: skip
        done.set()
        copier.join()
    if not (dpo / "run.json").exists():
        notetune("reward", "dpo", "--preferences", str(prefs), "--out", str(dpo))

    judge = load_judge(args.judge)
    prior, _ = load_checkpoint(None)
    reward_model, rm_config = load_reward_model(rm)
    baseline = sample_tokens(prior, args.size, 32, seed=1235)
    results = {
        "reward_fit": rm_config["metrics"],
        "untuned": figures(prior, prior, reward_model, judge, baseline, args.size),
        "tune": figures(load_checkpoint(tune / "model")[0], prior, reward_model, judge, baseline, args.size),
        "dpo": figures(load_checkpoint(dpo / "model")[0], prior, reward_model, judge, baseline, args.size),
        "tune_chosen_step": json.loads((tune / "run.json").read_text())["chosen"]["step"],
        "curve": {},
    }
    for path in sorted((out / "curve").glob("step_*.safetensors")):
        actor = NoteRNN(prior.config)
        actor.load_state_dict({k[6:]: v for k, v in load_file(str(path)).items() if k.startswith("actor.")})
        results["curve"][path.stem] = figures(actor.eval(), prior, reward_model, judge, baseline, args.size // 4)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "reward_fit"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
