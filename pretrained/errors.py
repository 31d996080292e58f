"""The one error type for bad input from the user (a flag, a file, a spec, a request).

Every command catches it once and prints its message as one line (exit code 2); its message names the cause and
the fix. Errors that are not the user's (bugs) are not of this type and keep their traceback.
"""

from __future__ import annotations


class UserInputError(ValueError):
    """Bad input from the user: the message names the cause and the fix."""
