"""The one error type ingestion raises for problems the user can fix."""

from __future__ import annotations


class IngestError(Exception):
    """Bad input or a missing prerequisite; the message names what to change."""
