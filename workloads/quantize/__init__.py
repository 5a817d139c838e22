"""LLM Compressor job: FP8 dynamic, INT8 W8A8 (SmoothQuant + GPTQ) or W4A16 (GPTQ)."""

from workloads.quantize.core import (
    SCHEMES,
    QuantizeError,
    QuantizeRequest,
    QuantizeResult,
    quantize,
    recipe_for,
)

__all__ = [
    "SCHEMES",
    "QuantizeError",
    "QuantizeRequest",
    "QuantizeResult",
    "quantize",
    "recipe_for",
]
