"""Finding rewards by name: ``@reward("name")``, dotted paths, entry points, and named reward sets.

Lookup order for a name: registered rewards, then reward sets, then ``PREFIX:ARGUMENT`` for a registered reward
prefix (``learned:DIR``), then a dotted path ``package.module:function`` (imported on demand, no registration
needed), then the ``notetune.rewards`` entry-point group of installed packages. Anything else fails with a
did-you-mean message listing what is known.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from .core import (
    BatchedReward,
    RewardSetup,
    SimpleFunctionReward,
    StatefulReward,
    UnknownRewardError,
    is_simple_function,
)

ENTRY_POINT_GROUP = "notetune.rewards"
"""Installed packages expose rewards under this entry-point group: ``name = "package.module:function"``."""

PREFIX_ENTRY_POINT_GROUP = "notetune.reward_prefixes"
"""Installed packages expose reward prefixes under this group: ``learned = "package.module:resolver"``."""

RewardFactory = Callable[[RewardSetup], BatchedReward]
PrefixResolver = Callable[[str], RewardFactory]


@dataclass(frozen=True)
class RewardEntry:
    """A reward known by name, and how to build a callable instance of it for one reward set."""

    name: str
    target: Any
    """A batched function, a simple ``(tokens, t)`` function, a StatefulReward subclass, or a callable."""
    simple: bool = False
    """True when ``target`` takes ``(tokens, t)`` for one melody."""
    factory: bool = False
    """True when ``target`` is a factory ``target(setup) -> reward`` (what a reward prefix resolves to)."""

    def build(self, setup: RewardSetup) -> BatchedReward:
        """A fresh callable for one reward set (stateful rewards get their own instance)."""
        if self.factory:
            return self.target(setup)
        if isinstance(self.target, type):
            if issubclass(self.target, StatefulReward):
                instance = self.target(setup)
            else:
                instance = self.target()
            if not callable(instance):
                raise TypeError(f"reward '{self.name}': {self.target.__name__}() is not callable")
            return instance
        if self.simple:
            return SimpleFunctionReward(self.target)
        return self.target

    @property
    def description(self) -> str:
        """First line of the reward's docstring."""
        doc = (getattr(self.target, "__doc__", None) or "").strip()
        return doc.splitlines()[0] if doc else ""


_REWARDS: dict[str, RewardEntry] = {}
_REWARD_SETS: dict[str, dict[str, float]] = {}
_PREFIXES: dict[str, PrefixResolver] = {}
_PREFIXED: dict[str, RewardEntry] = {}  # "learned:DIR" -> its entry: the same item twice is one reward


def register_reward_prefix(prefix: str, resolver: PrefixResolver) -> None:
    """Let ``PREFIX:ARGUMENT`` name a reward, e.g. ``learned:runs/rm`` for a reward model in a directory.

    ``resolver(argument)`` returns a factory ``factory(setup) -> reward`` that each reward set calls once; the
    term is called ``prefix``. This is how code that rewards/ may not import (torch models) provides rewards;
    installed packages can instead declare the resolver in the ``notetune.reward_prefixes`` entry-point group.
    """
    if not prefix or not prefix.replace("_", "a").isalnum():
        raise ValueError(f"reward prefixes are words in snake_case, got {prefix!r}")
    _PREFIXES[prefix] = resolver
    for name in [n for n in _PREFIXED if n.startswith(prefix + ":")]:
        del _PREFIXED[name]


def _prefix_resolver(prefix: str) -> PrefixResolver | None:
    if prefix in _PREFIXES:
        return _PREFIXES[prefix]
    for entry_point in entry_points(group=PREFIX_ENTRY_POINT_GROUP):
        if entry_point.name == prefix:
            try:
                resolver = entry_point.load()
            except Exception as error:
                raise UnknownRewardError(
                    f"reward prefix '{prefix}' from entry point '{entry_point.value}' "
                    f"could not be loaded: {type(error).__name__}: {error}"
                ) from error
            _PREFIXES[prefix] = resolver
            return resolver
    return None


def _prefixed_entry(name: str) -> RewardEntry | None:
    if name in _PREFIXED:
        return _PREFIXED[name]
    prefix, _, argument = name.partition(":")
    if not prefix.replace("_", "a").isalnum():  # a dotted path such as 'mypkg.rewards:fn'
        return None
    resolver = _prefix_resolver(prefix)
    if resolver is None:
        return None
    if not argument:
        raise UnknownRewardError(f"reward '{name}' needs an argument after '{prefix}:', e.g. '{prefix}:DIR'")
    entry = RewardEntry(name=prefix, target=resolver(argument), factory=True)
    _PREFIXED[name] = entry
    return entry


def entry_for(name: str, target: Any, simple: bool | None = None) -> RewardEntry:
    """A :class:`RewardEntry` for ``target``, detecting the simple ``(tokens, t)`` form by signature."""
    if not callable(target):
        raise TypeError(f"reward '{name}' must be callable, got {type(target).__name__}")
    if simple is None:
        simple = not isinstance(target, type) and is_simple_function(target)
    return RewardEntry(name=name, target=target, simple=simple)


def reward(name: str, *, simple: bool | None = None) -> Callable[[Any], Any]:
    """Register a reward under ``name``.

    Decorates a batched function ``fn(batch) -> (B,) array``, a simple one-melody function
    ``fn(tokens, t) -> float`` (recognised by its two positional parameters, or forced with ``simple=True``),
    or a :class:`StatefulReward` subclass. Returns the target unchanged.
    """
    if not name or not name.replace("_", "a").isalnum():
        raise ValueError(f"reward names are words in snake_case, got {name!r}")

    def register(target: Any) -> Any:
        previous = _REWARDS.get(name)
        if previous is not None and _qualified_name(previous.target) != _qualified_name(target):
            raise ValueError(
                f"reward '{name}' is already registered by {_qualified_name(previous.target)}; "
                f"choose another name for {_qualified_name(target)}"
            )
        if name in _REWARD_SETS:
            raise ValueError(f"'{name}' already names a reward set")
        _REWARDS[name] = entry_for(name, target, simple)
        try:
            target.reward_name = name  # lets a dotted path to a registered reward find its registered name
        except AttributeError:
            pass
        if isinstance(target, type) and issubclass(target, StatefulReward) and not target.__dict__.get("name"):
            target.name = name
        return target

    return register


def register_reward_set(name: str, weights: Mapping[str, float]) -> None:
    """Register a named reward set: the rewards it holds and their default weights."""
    if name in _REWARDS:
        raise ValueError(f"'{name}' already names a reward")
    _REWARD_SETS[name] = {str(k): float(v) for k, v in weights.items()}


def reward_set_weights(name: str) -> dict[str, float]:
    """The rewards of a registered set and their default weights."""
    if name not in _REWARD_SETS:
        raise UnknownRewardError(_unknown_message(name, "reward set", list(_REWARD_SETS)))
    return dict(_REWARD_SETS[name])


def is_reward_set(name: str) -> bool:
    return name in _REWARD_SETS


def registered_rewards() -> dict[str, RewardEntry]:
    """Registered rewards in registration order (entry points are not loaded)."""
    return dict(_REWARDS)


def registered_reward_sets() -> dict[str, dict[str, float]]:
    return {name: dict(weights) for name, weights in _REWARD_SETS.items()}


def get_reward(name: str) -> RewardEntry:
    """The reward called ``name``: registered, a dotted path ``module:function``, or an entry point."""
    if name in _REWARDS:
        return _REWARDS[name]
    if ":" in name:
        prefixed = _prefixed_entry(name)
        return prefixed if prefixed is not None else _load_dotted_path(name)
    for entry_point in _entry_points():
        if entry_point.name == name:
            try:
                target = entry_point.load()
            except Exception as error:
                raise UnknownRewardError(
                    f"reward '{name}' from entry point '{entry_point.value}' "
                    f"could not be loaded: {type(error).__name__}: {error}"
                ) from error
            return entry_for(name, target)
    known = list(_REWARDS) + [ep.name for ep in _entry_points() if ep.name not in _REWARDS]
    raise UnknownRewardError(_unknown_message(name, "reward", known, sets=list(_REWARD_SETS)))


def _load_dotted_path(path: str) -> RewardEntry:
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise UnknownRewardError(f"reward path '{path}' must look like 'package.module:function'")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise UnknownRewardError(f"cannot import module '{module_name}' for reward '{path}': {error}") from error
    for part in attribute.split("."):
        if not hasattr(target, part):
            candidates = [n for n in dir(target) if not n.startswith("_")]
            close = difflib.get_close_matches(part, candidates, n=1)
            hint = f"; did you mean '{module_name}:{close[0]}'?" if close else ""
            raise UnknownRewardError(f"module '{module_name}' has no '{attribute}' for reward '{path}'{hint}")
        target = getattr(target, part)
    name = getattr(target, "reward_name", None) or getattr(target, "__name__", None) or attribute.rsplit(".")[-1]
    registered = _REWARDS.get(name)
    if registered is not None and registered.target is target:
        return registered
    return entry_for(name, target)


def _entry_points() -> list[Any]:
    return list(entry_points(group=ENTRY_POINT_GROUP))


def _unknown_message(name: str, kind: str, known: list[str], sets: list[str] | None = None) -> str:
    candidates = known + (sets or [])
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    message = f"unknown {kind} '{name}'"
    if close:
        message += f"; did you mean '{close[0]}'?"
    message += f" known: {', '.join(known) if known else '(none)'}"
    if sets:
        message += f"; reward sets: {', '.join(sets)}"
    if kind == "reward":
        message += "; or give a dotted path 'package.module:function'"
    return message


def _qualified_name(target: Any) -> str:
    module = getattr(target, "__module__", None) or "?"
    return f"{module}:{getattr(target, '__qualname__', type(target).__name__)}"
