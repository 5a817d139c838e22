"""Pulumi CrossGuard policy pack that keeps every Lean RAG stack safe and lean."""
