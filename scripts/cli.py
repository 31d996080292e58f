"""The ``notetune`` command: thin wrappers that parse a typed config and call the library."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from .config import ConfigError

COMMANDS: dict[str, tuple[str, str]] = {
    # name: (module, help)
    "corpus": ("notetune.scripts.cmd_corpus", "build the training corpus token file"),
    "pretrain": ("notetune.scripts.cmd_pretrain", "train a Note RNN prior on a corpus file"),
    "sample": ("notetune.scripts.cmd_sample", "sample melodies from a model (MIDI, MusicXML, WAV, npz)"),
    "evaluate": ("notetune.scripts.cmd_evaluate", "statistics of a model or of samples"),
    "tune": ("notetune.scripts.cmd_tune", "fine-tune a prior with reinforcement learning"),
    "compare": ("notetune.scripts.cmd_compare", "an HTML report comparing models, samples and corpora"),
    "listen": ("notetune.scripts.cmd_listen", "blind A/B listening tests"),
    "sweep": ("notetune.scripts.cmd_sweep", "grid or random search over tuning settings on Ray Tune"),
    "reward": ("notetune.scripts.cmd_reward", "rewards learned from listeners: fit, score, simulate, dpo, judge"),
}


class UserError(RuntimeError):
    """Bad input from the user: printed as one line, exit code 2."""


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Callable]]:
    import importlib

    parser = argparse.ArgumentParser(prog="notetune", description="Fine-tune note-sequence models with RL.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    runners: dict[str, Callable] = {}
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                continue  # a command not built yet
            raise
        command = sub.add_parser(name, help=help_text, description=help_text)
        runners[name] = module.register(command)
    return parser, runners


def main(argv: list[str] | None = None) -> int:
    parser, runners = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    from notetune.pretrained.checkpoint import CheckpointError
    from notetune.pretrained.corpus import CorpusError
    from notetune.rewards.core import RewardError, UnknownRewardError

    user_errors: tuple[type[BaseException], ...] = (
        ConfigError,
        CorpusError,
        CheckpointError,
        UserError,
        FileNotFoundError,
        RewardError,
        UnknownRewardError,
    )
    try:
        from notetune.agents.run import TuneError

        user_errors += (TuneError,)
    except ImportError:
        pass
    try:
        result = runners[args.command](args)
    except user_errors as error:
        print(f"notetune {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"notetune {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
