"""The project's error type: every bad-input failure names where the problem is."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator


class InputError(ValueError):
    """Bad user input. The message names the file, the row or entry, the field, and what was expected."""

    def __init__(self, source: str, problem: str, *, row: int | str | None = None, field: str | None = None):
        where = [f"{source}"]
        if row is not None:
            where.append(f"row {row}" if isinstance(row, int) else str(row))
        if field is not None:
            where.append(f"field {field!r}")
        self.source, self.row, self.field, self.problem = source, row, field, problem
        super().__init__(f"{', '.join(where)}: {problem}")

    def about(self, subject: str) -> "InputError":
        """The same error with `subject` (e.g. "culture 'arabic'") named in the problem, unless it already is."""
        if subject in str(self):
            return self
        return InputError(self.source, f"{subject}: {self.problem}", row=self.row, field=self.field)


@contextmanager
def naming(subject: str) -> Iterator[None]:
    """Re-raise an InputError from the block with `subject` (what was being built, e.g. a culture) named in it."""
    try:
        yield
    except InputError as exc:
        named = exc.about(subject)
        if named is exc:
            raise
        raise named from exc
