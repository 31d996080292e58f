"""``make demo``: a short tuning run from the shipped prior, samples from the tuned and untuned models,
their statistics side by side, and the comparison report."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from notetune.scripts.cli import main as notetune


def step(title: str, argv: list[str]) -> None:
    print(f"\n$ notetune {' '.join(argv)}", flush=True)
    code = notetune(argv)
    if code:
        sys.exit(f"demo stopped: `notetune {argv[0]}` failed ({title})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="out/demo", help="folder for the run, samples and report")
    parser.add_argument("--steps", type=int, default=None, help="tuning budget in steps (default: tune's own)")
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    run_dir = out / "run"
    step("tuning", ["tune", "--out", str(run_dir), *(["--steps", str(args.steps)] if args.steps else [])])
    step(
        "samples of the untuned prior",
        [
            "sample",
            "--model",
            "default",
            "--num",
            "16",
            "--out",
            str(out / "samples_untuned"),
            "--format",
            "midi",
        ],
    )
    step(
        "samples of the tuned model",
        [
            "sample",
            "--model",
            str(run_dir),
            "--num",
            "16",
            "--out",
            str(out / "samples_tuned"),
            "--format",
            "midi",
        ],
    )
    step(
        "comparison report",
        [
            "compare",
            "default",
            str(run_dir),
            "--labels",
            "untuned prior",
            "--labels",
            "tuned",
            "--out",
            str(out / "report"),
            "--num",
            "2000",
        ],
    )
    record = json.loads((run_dir / "run.json").read_text())
    untuned, tuned = record["untuned"], record["final_metrics"]
    rows = (
        "music_reward",
        "starts_with_tonic",
        "leaps_resolved",
        "not_in_key",
        "excessively_repeated",
        "repeated_onsets",
        "in_motif",
        "unique_max",
        "unique_min",
        "hold_share",
        "rest_share",
        "distinct_melodies",
        "distinct_4gram",
        "log_prior_per_token",
        "kl_per_composition",
    )
    config = record["config"]
    size = config["confirm_size"] or config["eval_size"]  # the chosen figures come from the confirmation batch
    print(f"\n{f'statistic ({size:,} compositions)':34} {'untuned':>10} {'tuned':>10}")
    for name in rows:
        print(f"{name:34} {untuned[name]:>10.4f} {tuned[name]:>10.4f}")
    print(f"\nchosen checkpoint: step {record['chosen']['step']:,} — {record['chosen']['why']}")
    print(f"tuned model: {run_dir / 'model'}   samples: {out / 'samples_untuned'}, {out / 'samples_tuned'}")
    print(f"report: {(out / 'report' / 'index.html').resolve()}")


if __name__ == "__main__":
    main()
