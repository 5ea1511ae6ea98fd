"""The result of an invariant check: pass/fail, the measured statistic, its tolerance, what was compared."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["CheckResult"]


@dataclass(frozen=True)
class CheckResult:
    """Outcome of a check, usable in any test framework.

    ``bool(result)`` is ``result.passed``, so ``assert check_marginals(sde)`` works and prints the
    report on failure; :meth:`raise_if_failed` raises an ``AssertionError`` carrying the report.

    Attributes:
        name: what was checked, e.g. ``"marginals: moment ODEs"``.
        passed: ``statistic <= tolerance`` (for this check and all its parts).
        statistic: the measured quantity (a relative residual, a z-score, an energy distance, ...).
        tolerance: the largest value of ``statistic`` that passes.
        compared: a sentence saying what was compared with what.
        parts: sub-checks whose conjunction this result is.
    """

    name: str
    passed: bool
    statistic: float
    tolerance: float
    compared: str
    parts: tuple[CheckResult, ...] = field(default=())

    @classmethod
    def from_statistic(cls, name: str, statistic: float, tolerance: float, compared: str) -> CheckResult:
        """A leaf result that passes iff ``statistic <= tolerance`` (NaN fails)."""
        return cls(name, bool(statistic <= tolerance), float(statistic), float(tolerance), compared)

    @classmethod
    def all_of(cls, name: str, parts: list[CheckResult] | tuple[CheckResult, ...]) -> CheckResult:
        """A result that passes iff every part passes; its statistic is the worst part's ratio
        statistic / tolerance, against a tolerance of 1."""
        if not parts:
            raise ValueError("all_of needs at least one part")
        ratio = max(p.statistic / p.tolerance if p.tolerance > 0 else float("inf") for p in parts)
        return cls(
            name,
            all(p.passed for p in parts),
            ratio,
            1.0,
            "worst statistic / tolerance over the parts",
            tuple(parts),
        )

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        lines = [self._line(0)]
        stack = [(p, 1) for p in reversed(self.parts)]
        while stack:
            part, depth = stack.pop()
            lines.append(part._line(depth))
            stack.extend((p, depth + 1) for p in reversed(part.parts))
        return "\n".join(lines)

    def _line(self, depth: int) -> str:
        mark = "PASS" if self.passed else "FAIL"
        return (
            f"{'  ' * depth}[{mark}] {self.name}: statistic {self.statistic:.4g} "
            f"(tolerance {self.tolerance:.4g}); {self.compared}"
        )

    def raise_if_failed(self) -> CheckResult:
        """Raise ``AssertionError`` with the full report unless the check passed; return self."""
        if not self.passed:
            raise AssertionError("\n" + str(self))
        return self
