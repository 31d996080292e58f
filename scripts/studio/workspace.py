"""The studio's folder: one JSON file per melody with every version it had, and the A/B answers.

::

    WORKSPACE/melodies/<id>.json    {"id", "title", "tokens", "key", "meter", "length", "locked", "model",
                                     "created", "updated", "version", "history": [{"version", "time", "action",
                                     "tokens", "key", "meter", "locked", "title", "model"}, ...]}
    WORKSPACE/preferences.jsonl     one answer a line: {"a", "b", "winner", "key", "length", "listener",
                                     "source", "model_a", "model_b", "time"}

Files are replaced atomically (write, then rename), so a crash leaves the previous version, never half a file.
"""

from __future__ import annotations

import json
import os
import re
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import NotFoundError, StudioError

MELODY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
STATE_FIELDS = ("tokens", "key", "meter", "locked", "title", "model")
PREFERENCE_FIELDS = ("a", "b", "winner", "key", "length", "listener", "source", "model_a", "model_b", "time")


def now() -> str:
    """UTC time stamp, ISO 8601 to the millisecond."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Workspace:
    """Melodies and preferences under one folder; safe to use from several request threads at once."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.melodies = self.root / "melodies"
        self.melodies.mkdir(parents=True, exist_ok=True)
        self.preferences = self.root / "preferences.jsonl"
        self._lock = threading.Lock()

    def path_of(self, melody_id: str) -> Path:
        """The file of a melody id; an id that is not 1-64 letters, digits, - or _ (so never a path) is refused."""
        if not MELODY_ID.fullmatch(melody_id):
            raise StudioError("id", f"{melody_id!r} is not a melody id (1 to 64 letters, digits, '-' or '_'; no paths)")
        path = (self.melodies / f"{melody_id}.json").resolve()
        if path.parent != self.melodies.resolve():
            raise StudioError("id", f"{melody_id!r} leaves the workspace")
        return path

    def load(self, melody_id: str) -> dict[str, Any]:
        path = self.path_of(melody_id)
        if not path.is_file():
            raise NotFoundError("id", f"no saved melody {melody_id!r} in {self.melodies}")
        return _read(path)

    def save(self, melody_id: str, state: dict[str, Any], action: str = "edit") -> dict[str, Any]:
        """Make ``state`` the melody's newest version (a new melody if the id is new); returns the document."""
        path = self.path_of(melody_id)
        state = {name: state[name] for name in STATE_FIELDS}
        with self._lock:
            document = _read(path) if path.is_file() else None
            time = now()
            if document is None:
                document = {"id": melody_id, "created": time, "version": 0, "history": []}
            elif {name: document.get(name) for name in STATE_FIELDS} == state:
                return document  # nothing changed: no new version
            version = document["version"] + 1
            document.update(state, length=len(state["tokens"]), updated=time, version=version)
            document["history"].append({"version": version, "time": time, "action": action, **state})
            _write_atomically(path, json.dumps(document, indent=1) + "\n")
        return document

    def list_melodies(self) -> list[dict[str, Any]]:
        """Every saved melody without its history, the most recently changed first."""
        rows = []
        for path in self.melodies.glob("*.json"):
            try:
                document = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue  # not one of ours; leave it alone
            if isinstance(document, dict) and "history" in document:
                rows.append({k: v for k, v in document.items() if k != "history"})
        return sorted(rows, key=lambda row: row.get("updated", ""), reverse=True)

    def append_preference(self, answer: dict[str, Any]) -> dict[str, Any]:
        """Append one A/B answer (with a time stamp) to ``preferences.jsonl``; returns the line written."""
        record = {name: answer[name] for name in PREFERENCE_FIELDS if name != "time"} | {"time": now()}
        with self._lock, self.preferences.open("a") as f:
            f.write(json.dumps(record, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return record


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise StudioError("id", f"{path} cannot be read ({error}); restore it or choose another id") from None
    if not isinstance(document, dict) or not isinstance(document.get("history"), list):
        raise StudioError("id", f"{path} is not a studio melody (no history); choose another id")
    return document


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
