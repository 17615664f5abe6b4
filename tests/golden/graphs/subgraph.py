"""A sub-graph node: its inputs come from the outer graph, its outputs feed it back."""

from collections.abc import Iterator

from operonx.core import END, PARENT, START, GraphOp, op


@op
def split(text: str) -> Iterator[dict[str, str]]:
    for word in text.split():
        yield {"word": word}


@op
def shout(word: str) -> dict[str, str]:
    return {"loud": word.upper()}


@op
def count(words: list[str]) -> dict[str, int]:
    return {"n": len(words)}


with GraphOp(name="outer") as graph:
    with GraphOp(name="inner", inputs={"text": PARENT["text"]}) as inner:
        words = split(text=PARENT["text"])
        loud = shout(word=words["word"])
        START >> words >> loud >> END
    counted = count(words=inner["loud"])
    START >> inner >> counted >> END
