"""Where a corpus build spends its time: parse a sample of each music21 collection in one process.

    .venv/bin/python tools/profile_corpus.py                 # ms per tune and estimated minutes, per collection
    .venv/bin/python tools/profile_corpus.py --profile 150   # cProfile of 150 random tunes, by cumulative time

The estimate is single-core CPU time (divide by the workers for the wall time of `notetune corpus build`
on an idle machine). MusicXML files are parsed without music21's pickle cache, as on a fresh machine.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import time
from collections import defaultdict

from notetune.pretrained.corpus import music21_jobs, parse_job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-collection", type=int, default=40)
    parser.add_argument("--profile", type=int, default=0, help="cProfile this many random tunes instead")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    jobs = list(music21_jobs())
    rng = random.Random(args.seed)
    parse_job(jobs[0])  # imports
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for job in rng.sample(jobs, args.profile):
            parse_job(job)
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
        return
    by_collection = defaultdict(list)
    for job in jobs:
        by_collection[job.collection].append(job)
    total = 0.0
    for collection, members in by_collection.items():
        sample = rng.sample(members, min(args.per_collection, len(members)))
        started = time.perf_counter()
        for job in sample:
            parse_job(job)
        per_job = (time.perf_counter() - started) / len(sample)
        total += per_job * len(members)
        minutes = per_job * len(members) / 60
        print(f"{collection:14s} {len(members):5d} tunes  {per_job * 1000:6.1f} ms/tune  {minutes:5.2f} min")
    print(f"all: {len(jobs)} tunes, {total / 60:.1f} CPU-minutes (single core)")


if __name__ == "__main__":
    main()
