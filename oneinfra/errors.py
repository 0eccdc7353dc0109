"""Errors a person can act on."""

from __future__ import annotations


class DomainError(Exception):
    """A command refused by the rules of the fleet; the message says what to fix.

    A refused command appends nothing.
    """
