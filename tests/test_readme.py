"""The README is code: every ```python block runs, every `notetune ...` line of its shell blocks parses, every
repository path it names exists, and the docstring examples (>>>) of the public API pass.

Python blocks run one by one, each in a fresh namespace with a temporary working directory, on the shipped prior
(`default`) and the shipped corpus; they are kept small in the README itself (e.g. `load_source("default",
num=500)`), so nothing is substituted. The one fixture: a dotted-path reward `mypkg.rewards:resolves_to_tonic`,
which the README names as "a function of yours", is written by this test into the temporary directory.
"""

from __future__ import annotations

import doctest
import importlib
import re
import shlex
import sys
from pathlib import Path

import pytest
from notetune.rewards import registry
from notetune.scripts.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SHELL_LANGUAGES = ("", "bash", "sh", "console", "shell")
LIBRARY_FOLDERS = ("pretrained", "rewards", "agents")

MYPKG_REWARDS = '''"""A user's reward module, as the README's dotted-path example assumes it."""


def resolves_to_tonic(tokens, t):
    """+1 on a note that is the tonic C4 (token 14)."""
    return 1.0 if tokens[t] == 14 else 0.0
'''


def fenced_blocks(text: str) -> list[tuple[str, int, str]]:
    """(language, first line number, body) of every ``` block."""
    blocks = []
    language, start, body = None, 0, []
    for number, line in enumerate(text.splitlines(), 1):
        fence = re.match(r"^\s*```\s*([\w+-]*)\s*$", line)
        if fence and language is None:
            language, start, body = fence.group(1).lower(), number + 1, []
        elif fence and not fence.group(1):
            blocks.append((language, start, "\n".join(body) + "\n"))
            language = None
        elif language is not None:
            body.append(line)
    assert language is None, f"README.md: the ``` block opened at line {start - 1} is never closed"
    return blocks


def strip_comment(line: str) -> str:
    """A shell line without its trailing `# comment` (a # inside a word or quotes, as in F#, stays)."""
    quote = None
    for index, char in enumerate(line):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index]
    return line


def command_lines(body: str) -> list[tuple[int, str]]:
    """(line offset, logical line) of a shell block: backslash continuations joined, comments dropped."""
    lines, pending, first = [], "", 0
    for offset, raw in enumerate(body.splitlines()):
        line = strip_comment(raw).strip()
        line = line[2:] if line.startswith("$ ") and not pending else line  # a console prompt
        first = first if pending else offset
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        if pending + line:
            lines.append((first, pending + line))
        pending = ""
    return lines


BLOCKS = fenced_blocks(README.read_text(encoding="utf-8"))
PYTHON_BLOCKS = [(start, body) for language, start, body in BLOCKS if language == "python"]
NOTETUNE_LINES = [
    (start + offset, line)
    for language, start, body in BLOCKS
    if language in SHELL_LANGUAGES
    for offset, line in command_lines(body)
    if line.startswith("notetune ")
]


def test_the_readme_has_the_examples_it_promises():
    sources = "".join(body for _, body in PYTHON_BLOCKS)
    assert len(PYTHON_BLOCKS) >= 4 and len(NOTETUNE_LINES) >= 20
    for needle in ("evaluate_source(", "evaluate_tokens(", "@reward(", "table1_statistics("):
        assert needle in sources, f"README.md has no python block calling {needle}"


@pytest.mark.parametrize(("start", "body"), PYTHON_BLOCKS, ids=[f"line{start}" for start, _ in PYTHON_BLOCKS])
def test_python_block_runs(start, body, tmp_path, monkeypatch):
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "rewards.py").write_text(MYPKG_REWARDS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    registered = dict(registry._REWARDS)  # a block may register a reward: keep it out of the other tests
    try:
        code = compile("\n" * (start - 1) + body, str(README), "exec")  # tracebacks point at README lines
        exec(code, {"__name__": "readme_example"})
    finally:
        registry._REWARDS.clear()
        registry._REWARDS.update(registered)
        for name in [name for name in sys.modules if name == "mypkg" or name.startswith("mypkg.")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def parser():
    return build_parser()[0]


@pytest.mark.parametrize(("start", "line"), NOTETUNE_LINES, ids=[f"line{start}" for start, _ in NOTETUNE_LINES])
def test_command_line_parses(start, line, parser, capsys):
    argv = shlex.split(line)[1:]
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"README.md line {start}: `{line}` does not parse: {capsys.readouterr().err.strip()}")
    assert args.command == argv[0]


def test_a_wrong_flag_in_a_readme_line_would_be_caught(parser, capsys):
    # The check above is only worth something if the parser refuses what the README could get wrong.
    for argv in (["tune", "--max-minuets", "5"], ["tune", "--steps", "1.5M"], ["sample", "--num", "many"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
    assert command_lines('notetune a --b "c # d" F#  # comment\n\n$ notetune x \\\n  --y 1\n') == [
        (0, 'notetune a --b "c # d" F#'),
        (2, "notetune x --y 1"),
    ]


def test_every_repository_path_the_readme_names_exists():
    text = README.read_text(encoding="utf-8")
    folders = "pretrained|rewards|envs|agents|scripts|tools|tests"
    paths = set(re.findall(rf"(?<![\w/.])((?:{folders})/[\w./-]+\.(?:py|toml|json|npz))", text))
    assert paths, "the README names no repository file"
    missing = sorted(path for path in paths if not (ROOT / path).exists())
    assert not missing, f"README.md names files that do not exist: {missing}"


def public_modules_with_examples() -> list[str]:
    names = []
    for folder in LIBRARY_FOLDERS:
        for path in sorted((ROOT / folder).glob("*.py")):
            if ">>>" in path.read_text(encoding="utf-8"):
                names.append(f"notetune.{folder}.{path.stem}")
    return names


DOCTEST_MODULES = public_modules_with_examples()


def test_the_evaluation_pipeline_has_a_docstring_example():
    assert "notetune.rewards.evaluation" in DOCTEST_MODULES


@pytest.mark.parametrize("module_name", DOCTEST_MODULES)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{module_name} has '>>>' but doctest found no example"
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples of {module_name} failed"


PACKAGE_ORDER = ("pretrained", "rewards", "envs", "agents", "scripts")


def test_imports_point_one_way_as_the_readme_says():
    # README "Where things live": a package folder imports only the folders to its left.
    wrong = []
    for position, folder in enumerate(PACKAGE_ORDER):
        allowed = set(PACKAGE_ORDER[: position + 1])
        for path in sorted((ROOT / folder).glob("*.py")):
            text = path.read_text(encoding="utf-8")
            imported = set(re.findall(r"^\s*(?:from|import) notetune\.(\w+)", text, flags=re.MULTILINE))
            imported |= set(re.findall(r"^\s*from \.\.(\w+)", text, flags=re.MULTILINE))
            wrong += [f"{folder}/{path.name} imports notetune.{name}" for name in sorted(imported - allowed)]
    assert not wrong, wrong
