"""Every upstream schema the tests read is recorded (project, path, commit, sha256)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.contract.crd_sources import (
    BUNDLED,
    BUNDLED_SOURCES,
    NO_SCHEMAS,
    record,
    schema_dir,
    sha256,
    sources,
)

SCHEMAS = schema_dir()


def test_each_record_names_a_project_a_path_a_commit_and_a_digest() -> None:
    rows = sources()
    assert len({row["file"] for row in rows}) == len(rows) > 0
    for row in rows:
        assert row["project"].startswith("github.com/") and row["path"]
        assert re.fullmatch(r"[0-9a-f]{40}", row["commit"]), row
        assert re.fullmatch(r"[0-9a-f]{64}", row["sha256"]), row


@pytest.mark.skipif(SCHEMAS is None, reason=NO_SCHEMAS)
def test_the_schemas_the_tests_read_are_exactly_the_recorded_ones() -> None:
    assert SCHEMAS is not None
    on_disk = {str(p.relative_to(SCHEMAS)) for p in SCHEMAS.glob("*/*.yaml")}
    recorded = {row["file"]: row["sha256"] for row in sources()}
    assert on_disk == set(recorded), on_disk ^ set(recorded)
    changed = [name for name, digest in recorded.items() if sha256(SCHEMAS / name) != digest]
    assert not changed, f"differ from the recorded sha256: {changed}"


def test_the_bundled_schemas_are_exactly_the_recorded_ones() -> None:
    """Schemas kept in the repository (not in ../shared/crds) carry the same record."""
    rows = sources(BUNDLED_SOURCES)
    on_disk = {str(p.relative_to(BUNDLED)) for p in BUNDLED.glob("*/*.yaml")}
    assert on_disk == {row["file"] for row in rows} != set()
    for row in rows:
        assert row["project"].startswith("github.com/") and row["path"]
        assert re.fullmatch(r"[0-9a-f]{40}", row["commit"]), row
        assert sha256(BUNDLED / row["file"]) == row["sha256"], row["file"]


def test_recording_reads_the_sources_table(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.yaml").write_text("kind: CustomResourceDefinition\n")
    (tmp_path / "SOURCES.md").write_text(
        "| file | project | path upstream | commit |\n|---|---|---|---|\n"
        f"| a/x.yaml | github.com/o/r | crds/x.yaml | {'a' * 40} |\n"
    )
    (row,) = record(tmp_path)
    assert row == {"file": "a/x.yaml", "project": "github.com/o/r", "path": "crds/x.yaml",
                   "commit": "a" * 40, "sha256": sha256(tmp_path / "a" / "x.yaml")}  # fmt: skip


def test_make_crds_keeps_only_what_matches_the_record(tmp_path: Path, monkeypatch) -> None:
    """`make crds` (fetch) writes a schema only when its bytes match the recorded sha256, and
    fails (exit 1) naming the file otherwise; no network is needed to check that logic."""
    import hashlib
    import io
    import json

    from tests.contract import crd_sources

    good, bad = b"kind: CustomResourceDefinition\n", b"tampered\n"
    rows = [
        {"file": "a/good.yaml", "project": "github.com/o/r", "path": "good.yaml",
         "commit": "a" * 40, "sha256": hashlib.sha256(good).hexdigest()},
        {"file": "a/bad.yaml", "project": "github.com/o/r", "path": "bad.yaml",
         "commit": "a" * 40, "sha256": "0" * 64},
    ]  # fmt: skip
    record = tmp_path / "crd_sources.json"
    record.write_text(json.dumps(rows))
    monkeypatch.setattr(crd_sources, "SOURCES", record)
    served = {"good.yaml": good, "bad.yaml": bad}
    urls: list[str] = []

    def fake_urlopen(url: str, timeout: float) -> io.BytesIO:
        urls.append(url)
        return io.BytesIO(served[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(crd_sources.urllib.request, "urlopen", fake_urlopen)
    assert crd_sources.fetch(tmp_path / "cache") == 1
    assert (tmp_path / "cache" / "a" / "good.yaml").read_bytes() == good
    assert not (tmp_path / "cache" / "a" / "bad.yaml").exists()
    assert urls[0] == f"https://raw.githubusercontent.com/o/r/{'a' * 40}/good.yaml"
