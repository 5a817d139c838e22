"""Write the vLLM plugin folder: `python -m workloads.vllm_plugin DEST`, then put DEST on the
vLLM server's PYTHONPATH (what the stack's ConfigMap mount does in a cluster)."""

from __future__ import annotations

import argparse
from pathlib import Path

from workloads.vllm_plugin import write_plugin_folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("dest", type=Path, help="folder to write (created)")
    args = parser.parse_args(argv)
    print(write_plugin_folder(args.dest))


if __name__ == "__main__":
    main()
