"""Errors of the sharing package. Each message is a sentence a person understands; the web maps them to
HTTP status codes (NotFound 404, NotAllowed 403, InvalidRequest 400)."""

from __future__ import annotations


class SharingError(Exception):
    """Base of the sharing errors."""

    status_code = 400


class NotFound(SharingError):
    """The thing does not exist, or belongs to someone else (both look the same, on purpose)."""

    status_code = 404


class NotAllowed(SharingError):
    """The observer may not do this."""

    status_code = 403


class InvalidRequest(SharingError):
    """The request cannot be carried out as asked (bad value, duplicate, wrong state)."""

    status_code = 400
