"""The one error type ingestion raises for problems the user can fix."""

from __future__ import annotations


class IngestError(Exception):
    """Bad input or a missing prerequisite; the message names what to change."""


class DocumentRejected(IngestError):
    """One document cannot be ingested (empty, not what its name says, damaged, too big); the
    run goes on with the others and lists it, with this reason, in its summary."""
