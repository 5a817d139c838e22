"""Run the real Pulumi program under `pulumi.runtime.set_mocks`, config as the engine gives it."""

from __future__ import annotations

import json
from typing import Any

import pulumi


class RecordingMocks(pulumi.runtime.Mocks):
    """Accepts every resource and remembers what the program asked for."""

    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(args)
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


def engine_config(raw: dict[str, Any]) -> dict[str, str]:
    """The `leanrag:` keys as strings, the way the Pulumi engine passes config to programs."""

    def as_text(value: Any) -> str:
        if isinstance(value, (dict, list)):
            return json.dumps(value)
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    return {f"leanrag:{key}": as_text(value) for key, value in raw.items()}


def start(stack: str, raw: dict[str, Any], secret_keys: tuple[str, ...] = ()) -> RecordingMocks:
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="leanrag", stack=stack, preview=False)
    pulumi.runtime.set_all_config(engine_config(raw), [f"leanrag:{k}" for k in secret_keys])
    return mocks
