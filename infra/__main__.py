"""Pulumi entry point (Pulumi.yaml `main: infra/`): see infra/program.py."""

from infra.program import main

main()
