"""Keep generated lines within 100 columns by splitting the first bracket's arguments."""

from __future__ import annotations

LIMIT = 100


def _scan(text: str) -> list[tuple[int, str, int]]:
    """(position, char, depth before it) for every bracket and top-level comma outside strings."""
    out: list[tuple[int, str, int]] = []
    depth = 0
    quote: str | None = None
    i = 0
    while i < len(text):
        c = text[i]
        if quote is not None:
            if c == "\\":
                i += 2
                continue
            if text.startswith(quote, i):
                i += len(quote)
                quote = None
                continue
        elif c in "\"'":
            quote = text[i:i + 3] if text[i:i + 3] in ('"""', "'''") else c
            i += len(quote)
            continue
        elif c == "#":
            break
        elif c in "([{":
            out.append((i, c, depth))
            depth += 1
        elif c in ")]}":
            depth -= 1
            out.append((i, c, depth))
        elif c == ",":
            out.append((i, c, depth))
        i += 1
    return out


def wrap(line: str, limit: int = LIMIT) -> list[str]:
    """``line`` (with its indentation) as one or more lines no longer than ``limit`` if possible."""
    if len(line) <= limit or line.lstrip().startswith("#"):
        return [line]
    indent = line[: len(line) - len(line.lstrip())]
    marks = _scan(line)
    start = close = -1
    for p, c, d in marks:  # the first depth-0 bracket pair with something inside
        if c in "([{" and d == 0:
            end = next((q for q, c2, d2 in marks if q > p and c2 in ")]}" and d2 == 0), None)
            if end is not None and end - p >= 3:
                start, close = p, end
                break
    if start < 0:
        return [line]
    commas = [p for p, c, d in marks if start < p < close and c == "," and d == 1]
    parts: list[str] = []
    prev = start + 1
    for p in commas:
        parts.append(line[prev:p].strip())
        prev = p + 1
    last = line[prev:close].strip()
    if last:
        parts.append(last)
    inner = indent + "    "
    out = [line[: start + 1]]
    for part in parts:
        out += wrap(f"{inner}{part},", limit)
    out.append(f"{indent}{line[close:]}")
    return out
