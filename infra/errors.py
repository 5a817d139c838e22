"""The project's one exception type for bad stack configuration."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigProblem:
    """One bad key: where it is, what it holds, and how to fix it."""

    key: str
    value: object
    fix: str

    def render(self) -> str:
        shown = "(missing)" if self.value is MISSING else repr(self.value)
        return f"{self.key} = {shown} — {self.fix}"


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


MISSING = _Missing()


class ConfigError(Exception):
    """A stack configuration that must not be applied; names the file, keys, values and fixes."""

    def __init__(self, source: str, problems: list[ConfigProblem]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if len(self.problems) == 1:
            return f"{self.source}: {self.problems[0].render()}"
        lines = [f"{self.source}: {len(self.problems)} problems"]
        lines += [f"  - {problem.render()}" for problem in self.problems]
        return "\n".join(lines)
