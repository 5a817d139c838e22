"""The vLLM plugin the serving pods load, and the files that install it without an image build.

`leanrag_vllm_plugin.py` runs inside the vLLM container (see its docstring). `plugin_files()`
is the module plus the package metadata that declares its `vllm.general_plugins` entry point:
put those files in a folder on PYTHONPATH and vLLM loads the plugin in every process. The
stack ships them as a ConfigMap; the local stack writes them to a folder.
"""

from __future__ import annotations

from pathlib import Path

from workloads.vllm_plugin.leanrag_vllm_plugin import ENV_PRIME_TOKENS

__all__ = ["ENV_PRIME_TOKENS", "plugin_files", "write_plugin_folder"]

MODULE = Path(__file__).with_name("leanrag_vllm_plugin.py")
DISTRIBUTION = "leanrag_vllm_plugin"
VERSION = "1.0.0"
ENTRY_POINT_GROUP = "vllm.general_plugins"
ENTRY_POINT = "leanrag_detokenizer"


def plugin_files() -> dict[str, str]:
    """Relative path → text of every file the plugin folder holds."""
    dist_info = f"{DISTRIBUTION}-{VERSION}.dist-info"
    return {
        MODULE.name: MODULE.read_text(),
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: {DISTRIBUTION}\nVersion: {VERSION}\n"
            "Summary: Lean RAG's vLLM plugin (detokenizer primed with the prompt's tail)\n"
        ),
        f"{dist_info}/entry_points.txt": (
            f"[{ENTRY_POINT_GROUP}]\n{ENTRY_POINT} = {MODULE.stem}:register\n"
        ),
        f"{dist_info}/top_level.txt": f"{MODULE.stem}\n",
    }


def write_plugin_folder(folder: Path) -> Path:
    """Write `plugin_files()` under `folder` (created); returns it, ready for PYTHONPATH."""
    for relative, text in plugin_files().items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder
