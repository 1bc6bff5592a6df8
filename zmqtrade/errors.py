"""Errors shared by modules that do not otherwise import each other."""
from __future__ import annotations


class ResourceError(RuntimeError):
    """A resource a process must not run on (a book, a journal); the message says why and what
    to do. The process runner reports it in one line and exits 1, without a traceback."""
