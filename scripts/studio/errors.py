"""The one error the studio's functions raise for bad input: it names the request field at fault."""

from __future__ import annotations


class StudioError(ValueError):
    """Bad input from a user or a script; ``field`` names the request field, ``status`` the HTTP status."""

    status = 422

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class NotFoundError(StudioError):
    """A melody id that is not saved in the workspace."""

    status = 404
