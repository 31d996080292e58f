"""Training checkpoints that survive SIGKILL: written into a temporary directory and renamed into place.

A checkpoint is ``checkpoints/step_<N>/`` with ``policy.safetensors`` (policy weights),
``optimizer.safetensors`` (optimizer tensors), ``state.json`` (everything else: step count, KL
controller, watcher, RNG states, optimizer scalars), for value-based runs ``buffers.safetensors`` (the replay
buffer), and ``manifest.json`` (size and SHA-256 of each file). Loading verifies the manifest, so a truncated
file sends us to the previous checkpoint. Nothing is pickled.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from notetune.pretrained.corpus import file_sha256
from safetensors.torch import load_file, save_file

logger = logging.getLogger(__name__)
FILES = ("policy.safetensors", "optimizer.safetensors", "state.json")
"""Files every checkpoint has."""
BUFFERS = "buffers.safetensors"
"""Optional: algorithm tensors outside the policy (a replay buffer)."""


class Resumable(Protocol):
    """What every tuning algorithm offers so a checkpoint can restore it (MelodyPPO and the dqn family)."""

    num_timesteps: int
    generator: torch.Generator

    def get_state(self) -> dict[str, Any]: ...

    def set_state(self, state: dict[str, Any]) -> None: ...

    def get_buffers(self) -> dict[str, torch.Tensor]: ...

    def set_buffers(self, tensors: dict[str, torch.Tensor]) -> None: ...


@dataclass
class TrainingState:
    """What a training checkpoint restores besides the policy's weights and the optimizer."""

    algorithm: dict[str, Any]
    """The algorithm's own counters and controllers (``Resumable.get_state``)."""
    watcher: dict[str, Any]
    """Evaluation history, untuned baseline, best so far, patience count."""
    elapsed_seconds: float
    """Wall time of the run so far (over every session)."""
    alarms: list[dict[str, Any]]
    """Alarms fired so far."""
    generator: list[int]
    """The algorithm's torch RNG state (bytes)."""
    buffers: dict[str, torch.Tensor] = field(default_factory=dict)
    """Tensors outside the policy (a replay buffer)."""
    targets: dict[str, Any] = field(default_factory=dict)
    """The target solver's multipliers and their history (empty without targets, and in older checkpoints)."""
    path: str = ""
    """The checkpoint it was read from."""

    def to_json(self) -> dict[str, Any]:
        """The JSON part (state.json); buffers travel as safetensors."""
        return {k: v for k, v in asdict(self).items() if k not in ("buffers", "path")}


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {"param_groups": state["param_groups"], "state": {}}
    for index, entry in state["state"].items():
        scalars["state"][str(index)] = {}
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars["state"][str(index)][name] = value
    return tensors, scalars


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], scalars: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in scalars["state"].items()}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": scalars["param_groups"]}


def save_training_checkpoint(
    directory: str | Path,
    step: int,
    policy: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainingState,
    keep: int = 3,
) -> Path:
    """Write ``directory/step_<step>`` atomically and keep the newest ``keep`` checkpoints."""
    buffers = state.buffers
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step_{step:012d}"
    tmp = directory / f".tmp_step_{step:012d}_{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_file(
        {k: v.detach().cpu().contiguous() for k, v in policy.state_dict().items()},
        str(tmp / "policy.safetensors"),
    )
    opt_tensors, opt_scalars = _flatten_optimizer(optimizer)
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "state.json").write_text(json.dumps({**state.to_json(), "step": step, "optimizer": opt_scalars}) + "\n")
    files = FILES
    if buffers:
        save_file({k: v.detach().cpu().contiguous() for k, v in buffers.items()}, str(tmp / BUFFERS))
        files = (*FILES, BUFFERS)
    manifest = {name: {"bytes": (tmp / name).stat().st_size, "sha256": file_sha256(tmp / name)} for name in files}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(directory)
    for old in list_checkpoints(directory)[:-keep] if keep else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Complete checkpoint directories, oldest first (temporary ones are ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob("step_*") if p.is_dir())


def verify_checkpoint(path: Path) -> str | None:
    """None if every file matches the manifest, else what is wrong."""
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        return "manifest.json missing"
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError:
        return "manifest.json is corrupt"
    for name in dict.fromkeys((*FILES, *manifest)):
        if name not in manifest:
            return f"manifest.json does not list {name}"
        file = path / name
        if not file.is_file():
            return f"{name} missing"
        if file.stat().st_size != manifest[name]["bytes"]:
            return f"{name} is {file.stat().st_size} bytes, manifest says {manifest[name]['bytes']} (truncated)"
        if file_sha256(file) != manifest[name]["sha256"]:
            return f"{name} does not match its SHA-256 (corrupt)"
    return None


def load_latest_checkpoint(
    directory: str | Path, policy: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> TrainingState | None:
    """Restore the newest valid checkpoint into ``policy`` and ``optimizer``; returns the rest of its state
    (None without a usable checkpoint)."""
    for path in reversed(list_checkpoints(directory)):
        problem = verify_checkpoint(path)
        if problem:
            logger.warning("checkpoint %s is unusable (%s); trying the previous one", path.name, problem)
            continue
        policy.load_state_dict(load_file(str(path / "policy.safetensors")))
        state = json.loads((path / "state.json").read_text())
        optimizer.load_state_dict(
            _unflatten_optimizer(load_file(str(path / "optimizer.safetensors")), state.pop("optimizer"))
        )
        buffers = load_file(str(path / BUFFERS)) if (path / BUFFERS).is_file() else {}
        return TrainingState(
            algorithm=state["algorithm"],
            watcher=state["watcher"],
            elapsed_seconds=float(state.get("elapsed_seconds", 0.0)),
            alarms=list(state.get("alarms") or []),
            generator=list(state.get("generator") or []),
            buffers=buffers,
            targets=dict(state.get("targets") or {}),
            path=str(path),
        )
    return None
