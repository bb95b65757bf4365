"""Exceptions raised by pycodec."""

from __future__ import annotations


class PycodecError(Exception):
    """Base class of pycodec's own errors."""


class InputError(PycodecError):
    """The input cannot be read; the message is one line "<path>: <what is wrong>; <what to do>"."""
