"""The project's error type: every bad-input failure names where the problem is."""

from __future__ import annotations


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
