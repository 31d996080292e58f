"""The studio's HTTP API and page (FastAPI). Every bad input is a 4xx naming the field; nothing leaks a traceback."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from notetune.rewards.keys import ALL_KEYS, Key
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from . import generation as gen
from .errors import StudioError
from .figures import melody_figures
from .files import MEDIA_TYPES, SUFFIXES, midi_bytes, musicxml_bytes, read_midi_melody, wav_bytes
from .models import ModelLibrary
from .schemas import ControlIn, ExportIn, GenerateIn, MelodyIn, PreferenceIn, ScoreIn
from .workspace import Workspace

STATIC = Path(__file__).parent / "static"
MAX_BODY_BYTES = 1 << 20
"""Largest request body (JSON or an imported MIDI file): 1 MiB."""

log = logging.getLogger(__name__)


class BodySizeLimit:
    """Refuse a request body over ``max_bytes`` with 413 before the app sees it (declared or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
        body: bytes | None = b"".join(chunks)

        async def replay() -> Message:
            nonlocal body
            if body is None:  # the body was delivered: what follows is the client's disconnect
                return await receive()
            message, body = {"type": "http.request", "body": body, "more_body": False}, None
            return message

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = f"{self.max_bytes // 1024} KiB"
        response = JSONResponse({"error": f"body: request larger than {limit}", "field": "body"}, status_code=413)
        await response(scope, receive, send)


def _field_name(location: Sequence[str | int]) -> str:
    parts = [p for p in location if p not in ("body", "query", "path")]
    name = ""
    for part in parts:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


def _validation_response(error: RequestValidationError) -> JSONResponse:
    first = error.errors()[0]
    field = _field_name(first.get("loc", ()))
    kind = first.get("type", "")
    if kind == "json_invalid":
        detail = first.get("ctx", {}).get("error", "")
        return JSONResponse({"error": f"body: malformed JSON ({detail})", "field": "body"}, status_code=400)
    message = {"missing": "is required", "extra_forbidden": "is not a field of this request"}.get(
        kind, first.get("msg", "is invalid")
    )
    return JSONResponse({"error": f"{field}: {message}", "field": field}, status_code=422)


def create_app(
    library: ModelLibrary,
    workspace: str | Path,
    max_body_bytes: int = MAX_BODY_BYTES,
    allowed_hosts: Sequence[str] | None = None,
) -> ASGIApp:
    """The studio as an ASGI app; ``allowed_hosts`` (e.g. 127.0.0.1, localhost) refuses other Host headers."""
    store = Workspace(workspace)
    vocab = library.vocab
    app = FastAPI(title="notetune studio", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(StudioError)
    async def studio_error(request: Request, error: StudioError) -> JSONResponse:
        return JSONResponse({"error": str(error), "field": error.field}, status_code=error.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        return _validation_response(error)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail), "field": None}, status_code=error.status_code)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception) -> JSONResponse:
        log.exception("studio: %s %s failed", request.method, request.url.path)
        return JSONResponse({"error": "internal error; the server log has the details", "field": None}, 500)

    def controls(body: ControlIn, length: int) -> tuple[Key, np.ndarray | None, np.ndarray | None]:
        """(key, allowed mask, primer tokens) of a request's key, meter, locks, constraints and primer."""
        key = gen.parse_key(body.key)
        gen.check_length(length, gen.parse_meter(body.meter))
        locks = [gen.Lock(lock.step, lock.token) for lock in body.locked]
        allowed = gen.constraint_mask(locks, body.constraints, length, vocab)
        return key, allowed, gen.parse_primer_field(body.primer, vocab)

    @app.get("/")
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/models")
    def models() -> dict:
        return {
            "models": [m.describe() for m in library.models.values()],
            "prior": library.prior.name,
            "vocabulary": vocab.to_dict() | {"size": vocab.size},
            "meters": {name: gen.describe_meter(meter) for name, meter in gen.METERS.items()},
            "max_bars": gen.MAX_BARS,
            "max_count": gen.MAX_COUNT,
            "keys": [str(key) for key in ALL_KEYS],
        }

    @app.post("/api/generate")
    def generate(body: GenerateIn) -> dict:
        studio_model = library.get(body.model)
        key, allowed, primer = controls(body, body.length)
        started = time.perf_counter()
        result = gen.generate(
            studio_model.in_key(key),
            library.prior.in_key(key),
            body.length,
            allowed,
            primer,
            body.seed,
            body.temperature,
            body.count,
        )
        return {
            "melodies": result.melodies.tolist(),
            "log_prior": [round(float(v), 4) for v in result.log_prior],
            "model": studio_model.name,
            "key": str(key),
            "meter": body.meter,
            "length": body.length,
            "seed": body.seed,
            "seconds": round(time.perf_counter() - started, 4),
        }

    @app.post("/api/score")
    def score(body: ScoreIn) -> dict:
        tokens = gen.check_tokens(body.tokens, vocab)
        key, allowed, primer = controls(body, len(tokens))
        return melody_figures(tokens, key, vocab, library.prior.in_key(key), allowed, primer)

    @app.post("/api/export")
    def export(body: ExportIn) -> Response:
        tokens = gen.check_tokens(body.tokens, vocab)
        key, meter = gen.parse_key(body.key), gen.parse_meter(body.meter)
        gen.check_length(len(tokens), meter, "tokens")
        headers = {"Content-Disposition": f'attachment; filename="melody{SUFFIXES[body.format]}"'}
        if body.format == "midi":
            data = midi_bytes(tokens, vocab, key, meter, body.tempo)
        elif body.format == "musicxml":
            data = musicxml_bytes(tokens, vocab, key, meter, body.title)
        else:
            data, renderer = wav_bytes(tokens, vocab, meter, body.tempo, body.metronome)
            headers["X-Audio-Renderer"] = renderer
        return Response(data, media_type=MEDIA_TYPES[body.format], headers=headers)

    @app.post("/api/import")
    async def import_midi(request: Request, meter: str | None = None) -> dict:
        default_meter = gen.parse_meter(meter) if meter else None
        data = await request.body()
        if not data:
            raise StudioError("file", "the request body is empty; send the bytes of a MIDI file")
        melody = read_midi_melody(data, vocab, default_meter)
        return {
            "tokens": melody.tokens.tolist(),
            "meter": melody.meter.name,
            "length": len(melody.tokens),
            "key": str(melody.key) if melody.key else None,
            "octaves": melody.octaves,
            "cut_bars": melody.cut_bars,
        }

    @app.get("/api/melodies")
    def list_melodies() -> dict:
        return {"melodies": store.list_melodies()}

    @app.get("/api/melodies/{melody_id:path}")
    def get_melody(melody_id: str) -> dict:
        return store.load(melody_id)

    @app.put("/api/melodies/{melody_id:path}")
    def put_melody(melody_id: str, body: MelodyIn) -> dict:
        store.path_of(melody_id)  # a bad id is named before the body's fields
        tokens = gen.check_tokens(body.tokens, vocab)
        key, meter = gen.parse_key(body.key), gen.parse_meter(body.meter)
        gen.check_length(len(tokens), meter, "tokens")
        for i, step in enumerate(body.locked):
            if not 0 <= step < len(tokens):
                raise StudioError(f"locked[{i}]", f"step {step} is outside the melody (steps 0..{len(tokens) - 1})")
        state = {
            "tokens": tokens.tolist(),
            "key": str(key),
            "meter": meter.name,
            "locked": sorted(set(body.locked)),
            "title": body.title,
            "model": body.model,
        }
        document = store.save(melody_id, state, body.action)
        return {k: v for k, v in document.items() if k != "history"}

    @app.post("/api/preferences")
    def preferences(body: PreferenceIn) -> dict:
        longest = gen.MAX_BARS * max(m.steps_per_bar for m in gen.METERS.values())
        if not 8 <= body.length <= longest:
            raise StudioError("length", f"{body.length} steps is outside the melody lengths 8..{longest}")
        a, b = gen.check_tokens(body.a, vocab, "a"), gen.check_tokens(body.b, vocab, "b")
        for name, tokens in (("a", a), ("b", b)):
            if len(tokens) != body.length:
                raise StudioError(name, f"{len(tokens)} tokens, but length says {body.length}")
        answer = body.model_dump() | {"a": a.tolist(), "b": b.tolist(), "key": str(gen.parse_key(body.key))}
        return {"saved": store.append_preference(answer), "file": str(store.preferences)}

    served: ASGIApp = app
    if allowed_hosts:
        served = TrustedHostMiddleware(served, allowed_hosts=list(allowed_hosts))
    return BodySizeLimit(served, max_body_bytes)
