"""Errors that the command line turns into one clear message and an exit status."""

from __future__ import annotations


class SepsiscopeError(Exception):
    """A failure the user can act on; the message names the file and the problem.

    ``exit_code`` is the command's exit status: 1 for a processing failure.
    """

    exit_code = 1


class InputError(SepsiscopeError):
    """A bad argument, setting or input file (exit status 2, like a usage error)."""

    exit_code = 2


class PartialFailure(SepsiscopeError):
    """The stage finished, but some inputs failed (exit status 3); the rest were processed."""

    exit_code = 3
