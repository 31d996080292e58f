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
from pathlib import Path
from typing import Any

import torch
from notetune.pretrained.corpus import file_sha256
from safetensors.torch import load_file, save_file

logger = logging.getLogger(__name__)
FILES = ("policy.safetensors", "optimizer.safetensors", "state.json")
"""Files every checkpoint has."""
BUFFERS = "buffers.safetensors"
"""Optional: algorithm tensors outside the policy (a replay buffer)."""


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
    state: dict[str, Any],
    keep: int = 3,
    buffers: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``directory/step_<step>`` atomically and keep the newest ``keep`` checkpoints."""
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
    (tmp / "state.json").write_text(json.dumps({**state, "step": step, "optimizer": opt_scalars}) + "\n")
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
) -> dict[str, Any] | None:
    """Restore the newest valid checkpoint into ``policy`` and ``optimizer``; returns its state (or None),
    with the checkpoint's extra tensors under ``"buffers"`` (empty if it has none)."""
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
        state["path"] = str(path)
        state["buffers"] = load_file(str(path / BUFFERS)) if (path / BUFFERS).is_file() else {}
        return state
    return None
