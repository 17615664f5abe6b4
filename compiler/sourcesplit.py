"""Work through a big Python source a batch of whole top-level statements at a time.

Parsing or compiling a file of tens of thousands of lines in one go builds one tree
(or one compiler state) for all of it: hundreds of megabytes. What the compiler needs
of such a file is per top-level statement, so it takes the file in batches of about
``batch_lines`` lines, each cut just before a line that may start a statement: code at
column 0 that is not a clause (``else:``, ``except``...) nor a closing bracket. A cut
can still fall inside a statement (a string or brackets spanning it, a decorator above
it); then the batch fails to parse and is doubled. A batch that parses ends where a
statement ends: the only code that can follow a complete statement at column 0 and
still belong to it is a clause, and those never start a batch.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")

# A line at column 0 that continues the statement above rather than starting one.
_NOT_A_START = re.compile(r"(else|elif|except|finally)\b|[ \t\f#\n\r)\]}]|$")


def lines_of(source: str) -> list[str]:
    """``source``'s lines, ends kept, split where the tokenizer splits them: at ``\\n``
    (text read with universal newlines has no other line end; a form feed is not one)."""
    lines = [line + "\n" for line in source.split("\n")]
    lines[-1] = lines[-1][:-1]
    if not lines[-1]:
        lines.pop()
    return lines


def batches(lines: list[str], parse: Callable[[str], T],
            batch_lines: int = 2000) -> Iterator[tuple[int, T]]:
    """``(first line index, parse(text))`` for consecutive batches of whole statements.

    ``parse`` raises ``SyntaxError`` (or ``ValueError``, ``RecursionError``,
    ``MemoryError``) for text it refuses; when the batch already reaches the end of
    ``lines`` that error is the source's own and is raised, with the line numbers of the
    batch (``begin`` lines above it).
    """
    starts = [i for i, line in enumerate(lines) if not _NOT_A_START.match(line)]
    starts.append(len(lines))
    position = 0  # index into ``starts`` at or before the current batch's first line
    begin = 0
    while begin < len(lines):
        want = batch_lines
        while True:
            cut = bisect.bisect_left(starts, begin + want, lo=position)
            end = starts[min(cut, len(starts) - 1)]
            try:
                result = parse("".join(lines[begin:end]))
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                if end >= len(lines):
                    raise
                want *= 2
                continue
            break
        yield begin, result
        position = bisect.bisect_left(starts, end, lo=position)
        begin = end
