"""Publish the gate result as a ConfigMap through the Kubernetes API (in-cluster identity)."""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class PublishError(Exception):
    """The API server refused or could not be reached."""


def in_cluster() -> tuple[str, str, str, ssl.SSLContext]:
    """API URL, namespace, token and TLS context of the pod's service account."""
    host, port = os.environ["KUBERNETES_SERVICE_HOST"], os.environ["KUBERNETES_SERVICE_PORT"]
    context = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt"))
    return (
        f"https://{host}:{port}",
        (SERVICE_ACCOUNT / "namespace").read_text().strip(),
        (SERVICE_ACCOUNT / "token").read_text().strip(),
        context,
    )


def publish_configmap(
    name: str,
    document: dict[str, Any],
    api_url: str,
    namespace: str,
    token: str,
    context: ssl.SSLContext | None = None,
) -> None:
    """Create or replace ConfigMap `name` holding gate.json and the verdict."""
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "leanrag", "leanrag.io/role": "benchmark-gate"},
        },
        "data": {
            "gate.json": json.dumps(document, indent=2, sort_keys=True),
            "verdict": document["verdict"],
        },
    }
    collection = f"{api_url}/api/v1/namespaces/{namespace}/configmaps"
    try:
        _send("PUT", f"{collection}/{name}", body, token, context)
    except urllib.error.HTTPError as error:
        if error.code != 404:
            raise PublishError(f"replacing ConfigMap {name}: HTTP {error.code}") from None
        try:
            _send("POST", collection, body, token, context)
        except urllib.error.HTTPError as second:
            raise PublishError(f"creating ConfigMap {name}: HTTP {second.code}") from None
    except urllib.error.URLError as error:
        raise PublishError(f"Kubernetes API unreachable: {error.reason}") from None


def _send(
    method: str, url: str, body: dict[str, Any], token: str, context: ssl.SSLContext | None
) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30, context=context):
        pass
