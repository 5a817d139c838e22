"""CrossGuard wiring: each rule of `policies.rules` as a Pulumi policy.

Default enforcement is production's (mandatory); `policies/config/<env>.json` relaxes it per
environment: `pulumi preview --policy-pack policies --policy-pack-config policies/config/dev.json`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ResourceValidationPolicy,
    StackValidationPolicy,
)

from policies.rules import RESOURCE_RULES, STACK_RULES, Obj

# Read-only root filesystems are asked for "where the workload allows": advice, not a gate.
ADVISORY_EVERYWHERE = {"root-filesystem-is-read-only"}


def as_object(resource_type: str, props: dict[str, Any]) -> Obj | None:
    """A Pulumi Kubernetes resource's inputs as the Kubernetes object they describe."""
    provider, _, rest = resource_type.partition(":")
    if provider != "kubernetes" or rest.startswith(("helm.sh/", "yaml/")):
        return None
    group_version, _, kind = rest.partition(":")
    group, _, version = group_version.rpartition("/")
    api_version = version if group == "core" else group_version
    return {**props, "apiVersion": api_version, "kind": kind}


def _resource_policy(name: str, rule: Callable[[Obj], list[str]]) -> ResourceValidationPolicy:
    def validate(args: Any, report_violation: Callable[[str, str | None], None]) -> None:
        obj = as_object(args.resource_type, dict(args.props))
        if obj is not None:
            for message in rule(obj):
                report_violation(message, None)

    return ResourceValidationPolicy(
        name=name,
        description=(rule.__doc__ or name).strip().splitlines()[0],
        validate=validate,
        enforcement_level=_level(name),
    )


def _stack_policy(name: str, rule: Callable[[list[Obj]], list[str]]) -> StackValidationPolicy:
    def validate(args: Any, report_violation: Callable[[str, str | None], None]) -> None:
        objects = [
            obj
            for resource in args.resources
            if (obj := as_object(resource.resource_type, dict(resource.props)))
        ]
        for message in rule(objects):
            report_violation(message, None)

    return StackValidationPolicy(
        name=name,
        description=(rule.__doc__ or name).strip().splitlines()[0],
        validate=validate,
        enforcement_level=_level(name),
    )


def _level(name: str) -> EnforcementLevel:
    return EnforcementLevel.ADVISORY if name in ADVISORY_EVERYWHERE else EnforcementLevel.MANDATORY


def build_policies() -> list[ResourceValidationPolicy | StackValidationPolicy]:
    return [_resource_policy(n, r) for n, r in RESOURCE_RULES.items()] + [
        _stack_policy(n, r) for n, r in STACK_RULES.items()
    ]
