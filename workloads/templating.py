"""Templates the workloads render themselves (LLM Compressor recipes, the gate's report).

They live in the project's `templates/` folder beside the cluster templates; an image copies
the ones its workload needs and points `LEANRAG_TEMPLATES` at them.
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES_ENV = "LEANRAG_TEMPLATES"


def templates_dir() -> Path:
    configured = os.environ.get(TEMPLATES_ENV)
    return Path(configured) if configured else Path(__file__).resolve().parents[1] / "templates"


@cache
def _environment(folder: Path) -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    environment.filters["tojson"] = lambda value: json.dumps(value, sort_keys=True)
    return environment


def render_text(template: str, **context: Any) -> str:
    return _environment(templates_dir()).get_template(template).render(**context)
