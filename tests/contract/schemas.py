"""Upstream schemas: CRDs from ../shared/crds, built-ins through kubernetes-validate."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from tests.contract.crd_sources import BUNDLED, CACHE, schema_dir

# ../shared/crds where it is beside the checkout, else what `make crds` fetched.
CRDS = schema_dir() or CACHE
# Kinds the blueprint emits whose CRD is not published in ../shared/crds. They are checked by
# what the operator documents (see the test) rather than by a schema.
# The OpenShift NFD and KedaController CRDs are in ../shared/crds now: every kind has a schema.
WITHOUT_UPSTREAM_SCHEMA: dict[tuple[str, str], str] = {}
# OpenShift AI publishes samples, not CRDs, for its v2 APIs.
SAMPLES = {
    ("datasciencecluster.opendatahub.io/v2", "DataScienceCluster"):
        CRDS / "openshift-ai" / "datasciencecluster_v2_datasciencecluster.yaml",
    ("dscinitialization.opendatahub.io/v2", "DSCInitialization"):
        CRDS / "openshift-ai" / "dscinitialization_v2_dscinitialization.yaml",
}  # fmt: skip


@cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → the served version's openAPIV3Schema, unknown fields rejected."""
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted([*CRDS.glob("*/*.yaml"), *BUNDLED.glob("*/*.yaml")]):
        # 11 MB of CRDs: the C loader reads them in seconds instead of most of a minute.
        for document in yaml.load_all(path.read_text(), Loader=yaml.CSafeLoader):
            if not document or document.get("kind") != "CustomResourceDefinition":
                continue
            spec = document["spec"]
            for version in spec["versions"]:
                if version.get("served"):
                    key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                    schemas[key] = _closed(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    return schemas


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """Like the API server's pruning made strict: an unknown field is an error."""
    if isinstance(schema, dict):
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        for key in ("properties", "patternProperties", "definitions"):
            for child in schema.get(key, {}).values():
                _closed(child)
        for key in ("items", "additionalProperties", "not"):
            if isinstance(schema.get(key), dict):
                _closed(schema[key])
        for key in ("allOf", "anyOf", "oneOf"):
            for child in schema.get(key, []):
                _closed(child)
    return schema


def custom_resource_errors(obj: dict[str, Any]) -> list[str]:
    schema = crd_schemas()[(obj["apiVersion"], obj["kind"])]
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'.'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in validator.iter_errors(obj)
    ]


def sample_shape_errors(obj: dict[str, Any]) -> list[str]:
    """Every key we set must exist in the upstream sample; states must be valid."""
    sample = yaml.safe_load(Path(SAMPLES[(obj["apiVersion"], obj["kind"])]).read_text())
    errors: list[str] = []

    def walk(ours: Any, theirs: Any, path: str) -> None:
        if isinstance(ours, dict):
            if not isinstance(theirs, dict):
                errors.append(f"{path}: not an object upstream")
                return
            for key, value in ours.items():
                if key not in theirs:
                    errors.append(f"{path}.{key}: not in the upstream sample")
                else:
                    walk(value, theirs[key], f"{path}.{key}")
        elif path.endswith("managementState") and ours not in ("Managed", "Removed", "Unmanaged"):
            errors.append(f"{path}: {ours!r} is not a management state")

    walk(obj["spec"], sample["spec"], "spec")
    return errors


def builtin_errors(obj: dict[str, Any], kubernetes_version: str) -> list[str]:
    try:
        kubernetes_validate.validate(obj, f"{kubernetes_version}.0", strict=True)
    except kubernetes_validate.ValidationError as error:
        return [str(error)]
    return []


def is_builtin(obj: dict[str, Any]) -> bool:
    group = obj["apiVersion"].rpartition("/")[0]
    return group in (
        "",
        "apps",
        "batch",
        "policy",
        "networking.k8s.io",
        "rbac.authorization.k8s.io",
        "autoscaling",
    )
