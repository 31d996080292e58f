"""The ``notetune`` command: thin wrappers that parse a typed config and call the library."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from notetune.pretrained.errors import UserInputError

COMMANDS: dict[str, tuple[str, str]] = {
    # name: (module, help)
    "corpus": ("notetune.scripts.cmd_corpus", "build the training corpus token file"),
    "pretrain": ("notetune.scripts.cmd_pretrain", "train a Note RNN prior on a corpus file"),
    "sample": ("notetune.scripts.cmd_sample", "sample melodies from a model (MIDI, MusicXML, WAV, npz)"),
    "evaluate": ("notetune.scripts.cmd_evaluate", "statistics of a model or of samples"),
    "tune": ("notetune.scripts.cmd_tune", "fine-tune a prior with reinforcement learning"),
    "compare": ("notetune.scripts.cmd_compare", "an HTML report comparing models, samples and corpora"),
    "listen": ("notetune.scripts.cmd_listen", "blind A/B listening tests; simulated listeners"),
    "sweep": ("notetune.scripts.cmd_sweep", "grid or random search over tuning settings on Ray Tune"),
    "studio": ("notetune.scripts.cmd_studio", "compose in the browser: lock notes, regenerate the rest, A/B"),
    "reward": ("notetune.scripts.cmd_reward", "rewards learned from listeners: fit, score, simulate, dpo, judge"),
}


UserError = UserInputError
"""Bad input from the user: printed as one line, exit code 2 (every command's one user-error type)."""


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
    from notetune.rewards.core import RewardError

    try:
        result = runners[args.command](args)
    except (UserInputError, RewardError) as error:  # the user's input (or the user's reward plugin), never a bug
        print(f"notetune {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        if error.filename is None:
            raise
        # A path the user named cannot be read or written (a missing folder, no permission, a full disk).
        print(
            f"notetune {args.command}: error: cannot use {error.filename}: {error.strerror or error}; "
            "check the path and its permissions",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print(f"notetune {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
