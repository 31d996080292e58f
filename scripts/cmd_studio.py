"""``notetune studio``: compose with a model in the browser — lock notes, regenerate the rest, listen, compare."""

from __future__ import annotations

import argparse
import socket
import sys
from dataclasses import dataclass, field

from . import config

LOOPBACK_HOSTS = ("127.0.0.1", "localhost")


@dataclass
class StudioConfig:
    """Settings of `notetune studio`."""

    model: list[str] = field(default_factory=list)
    """Models to offer besides the shipped prior: a checkpoint, a tuning run or a sweep directory (all its
    trials); NAME=DIR names one."""
    workspace: str = "out/studio"
    """Folder for the saved melodies (melodies/<id>.json, with every version) and A/B answers (preferences.jsonl)."""
    port: int = 8765
    """TCP port (0 picks a free one)."""
    host: str = "127.0.0.1"
    """Address to listen on; anything but 127.0.0.1/localhost lets other machines in (the studio has no login)."""


def register(parser: argparse.ArgumentParser):
    parser.add_argument("--config", help="TOML file with StudioConfig fields")
    config.add_arguments(parser, StudioConfig)
    return run


def bind(host: str, port: int) -> socket.socket:
    if not 0 <= port <= 65535:
        raise config.ConfigError(f"--port {port} is not a TCP port; give 0..65535 (0 picks a free one)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        reason = error.strerror or str(error)
        raise config.ConfigError(f"cannot listen on {host}:{port} ({reason}); check --host and --port") from None
    sock.listen(128)
    return sock


def run(args: argparse.Namespace) -> int:
    cfg = config.from_args(StudioConfig, args, args.config)
    import torch
    import uvicorn

    from .studio.app import create_app
    from .studio.models import ModelLibrary

    torch.set_num_threads(1)  # one request, one core: 20 at once on 2 cores stay fast
    sock = bind(cfg.host, cfg.port)  # a busy port fails before any model loads
    port = sock.getsockname()[1]
    try:
        library = ModelLibrary.load(cfg.model)
    except BaseException:
        sock.close()
        raise
    loopback = cfg.host in LOOPBACK_HOSTS
    app = create_app(library, cfg.workspace, allowed_hosts=[*LOOPBACK_HOSTS, "::1"] if loopback else None)
    if not loopback and cfg.host not in ("::1",):
        print(
            f"notetune studio: warning: listening on {cfg.host}, so other machines can reach the studio, "
            "which has no login; use --host 127.0.0.1 to keep it to this machine",
            file=sys.stderr,
        )
    shown = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    print(
        f"notetune studio: http://{shown}:{port}/  (models: {', '.join(library.names)}; workspace: {cfg.workspace}; "
        "Ctrl+C stops it)",
        flush=True,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
    return 0
