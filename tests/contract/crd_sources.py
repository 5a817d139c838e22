"""Where every upstream schema the contract tests read comes from, and `make crds`.

`crd_sources.json` records, per file, the project, its path there, the commit and the file's
sha256. The tests read the schemas from `../shared/crds` where that exists, else from the
cache `make crds` fills (`.cache/crds`, fetched from each project at the recorded commit and
checked against the recorded sha256).

    python -m tests.contract.crd_sources --fetch .cache/crds    # make crds
    python -m tests.contract.crd_sources --record ../shared/crds  # after adding a schema
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = Path(__file__).with_name("crd_sources.json")
CACHE = ROOT / ".cache" / "crds"
SHARED_CRDS = ROOT.parent / "shared" / "crds"
# Schemas ../shared/crds does not carry, kept in the repository (same record format): the llm-d
# router's InferenceObjective (v0.9.0, the endpoint picker the stacks run).
BUNDLED = Path(__file__).with_name("crds")
BUNDLED_SOURCES = BUNDLED / "sources.json"
NO_SCHEMAS = "no upstream schemas: neither ../shared/crds nor .cache/crds (run `make crds`)"


def schema_dir() -> Path | None:
    """The folder of upstream schemas the tests use, or None when there is none."""
    for folder in (SHARED_CRDS, CACHE):
        if folder.is_dir() and any(folder.glob("*/*.yaml")):
            return folder
    return None


def sources(path: Path | None = None) -> list[dict[str, str]]:
    return json.loads((path or SOURCES).read_text())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record(folder: Path) -> list[dict[str, str]]:
    """The record of a folder, from its SOURCES.md table (file | project | path | commit)."""
    rows = []
    for line in (folder / "SOURCES.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not re.fullmatch(r"[0-9a-f]{40}", cells[3]):
            continue
        name = cells[0].split(" ")[0]
        rows.append({
            "file": name, "project": cells[1], "path": cells[2], "commit": cells[3],
            "sha256": sha256(folder / name),
        })  # fmt: skip
    return sorted(rows, key=lambda row: row["file"])


def fetch(destination: Path) -> int:
    """Download every recorded schema at its commit; refuse any whose sha256 differs."""
    failures = 0
    for row in sources():
        target = destination / row["file"]
        if target.exists() and sha256(target) == row["sha256"]:
            continue
        owner_repo = row["project"].removeprefix("github.com/")
        url = f"https://raw.githubusercontent.com/{owner_repo}/{row['commit']}/{row['path']}"
        try:
            with urllib.request.urlopen(url, timeout=30) as reply:
                data = reply.read()
        except OSError as error:
            print(f"{row['file']}: cannot fetch {url}: {error}", file=sys.stderr)
            failures += 1
            continue
        if hashlib.sha256(data).hexdigest() != row["sha256"]:
            print(f"{row['file']}: {url} does not match the recorded sha256", file=sys.stderr)
            failures += 1
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    print(f"{len(sources()) - failures} of {len(sources())} schemas in {destination}")
    return 1 if failures else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--fetch", type=Path, help="download the recorded schemas here")
    group.add_argument("--record", type=Path, help="write crd_sources.json from this folder")
    args = parser.parse_args(argv)
    if args.fetch:
        return fetch(args.fetch)
    SOURCES.write_text(json.dumps(record(args.record), indent=2) + "\n")
    print(f"recorded {len(sources())} schemas in {SOURCES}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
