"""Protecting flaky and expensive ops (SPEC §9): timeout, retry with backoff, cache.

    operonx run examples/policies.py --inputs '{"urls": ["a", "b", "a", "c"]}' --stream

``fetch`` calls a service that sometimes stalls and sometimes drops the
connection: each attempt gets 0.2 s, and a failed attempt is retried up to
three times with an exponential backoff. ``embed`` is pure and costly, so its
results are cached per (node, arguments): the second ``"a"`` is a cache hit
and still emits its frame (``Frame.cached``). ``python examples/policies.py``
prints each frame's attempt count.
"""

import asyncio
from collections.abc import Iterator

from operonx.core import END, PARENT, START, Engine, GraphOp, Retry, op

CALLS: dict[str, int] = {}  # the "service": per url, how often it was called


@op
def each_url(urls: list[str]) -> Iterator[dict[str, str]]:
    for url in urls:
        yield {"url": url}


@op(timeout=0.2, retry=Retry(attempts=3, delay=0.01, backoff=2.0,
                             on=(ConnectionError, TimeoutError)))
async def fetch(url: str) -> dict[str, str]:
    CALLS[url] = CALLS.get(url, 0) + 1
    if url == "b" and CALLS[url] == 1:
        await asyncio.sleep(10)  # stalls: the 0.2 s timeout cancels this attempt
    if url == "c" and CALLS[url] < 3:
        raise ConnectionError("connection reset")  # fails twice, then answers
    return {"page": f"page {url}"}


@op(cache=True)
def embed(page: str) -> dict[str, list[float]]:
    return {"vector": [float(len(page)), float(sum(map(ord, page)) % 97)]}


with GraphOp(name="crawl") as graph:
    url = each_url(urls=PARENT["urls"])
    page = fetch(url=url["url"])
    vector = embed(page=page["page"])
    START >> url >> page >> vector >> END


async def main() -> None:
    async for frame in Engine(graph).stream({"urls": ["a", "b", "a", "c"]}):
        if frame.op_name != "END":
            note = " (cache hit)" if frame.cached else ""
            print(f"{frame.op_name:8} {frame.index}  attempts={frame.attempts}{note}")
        else:
            print("END", dict(frame.outputs))


if __name__ == "__main__":
    asyncio.run(main())
