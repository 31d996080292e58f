"""``make bench``: run every benchmark script and collect their numbers in one folder."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCHES = ("bench_tuning", "bench_rewards", "bench_evaluation", "bench_studio")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="bench-results")
    args = parser.parse_args()
    here = Path(__file__).parent
    failed = []
    for name in BENCHES:
        script = here / f"{name}.py"
        if not script.is_file():
            continue
        out = Path(args.out) / f"{name.removeprefix('bench_')}.json"
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, str(script), "--out", str(out)]).returncode:
            failed.append(name)
    print(f"results in {args.out}/" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
