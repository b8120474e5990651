"""Errors meant for the user: one clear line naming the file or parameter and the fix.

Code that validates user input raises :class:`InputError` (a ``ValueError``); the CLI prints such errors as a
single line and exits with status 2 instead of showing a traceback.
"""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input (file, parameter, layout): the message names what is wrong and how to fix it."""
