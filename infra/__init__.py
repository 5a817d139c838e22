"""Lean RAG Accelerator: stack config, sizing, deployment plan and the Pulumi components."""
