"""Errors the compiler reports to a user: always located, always one line first."""

from __future__ import annotations

from operonx.errors import OperonxError

EXIT_INTERNAL = 70  # the CLI's exit code for a bug in operonx itself


class CompileError(OperonxError):
    """A located compiler diagnostic: ``str(err)`` reads ``path:LINE:COL: error: message``.

    ``exit_code`` is what the CLI exits with: 1 for an error in the user's graph
    or code, 2 for a usage error (bad flags, unreadable files).
    """

    def __init__(self, message: str, file: str | None = None, line: int | None = None,
                 col: int | None = None, hint: str | None = None, exit_code: int = 1) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.col = col
        self.hint = hint
        self.exit_code = exit_code
        super().__init__(self.render())

    def render(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.col is not None:
                    where += f":{self.col}"
            where += ": "
        text = f"{where}error: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text
