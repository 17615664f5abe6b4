"""Routing on data (SPEC §8): each document goes to the handler its kind calls for.

    operonx run examples/branching.py --inputs '{"paths": ["a.wav", "b.png", "c.txt"]}'
    operonx graph examples/branching.py --format mermaid     # conditional edges are dashed

Per frame of the stream, ``classify`` decides which single handler runs; the
others are skipped for that frame (no frame, no error). ``coalesce`` joins the
arms: ``store`` reads whichever handler ran. ``transcribe`` only sees audio, so
``audio_minutes`` collects the audio frames alone.
"""

import asyncio
from collections.abc import Iterator
from typing import TypedDict

from operonx.core import END, PARENT, START, GraphOp, coalesce, if_, op


@op
def each_path(paths: list[str]) -> Iterator[dict[str, str]]:
    for path in paths:
        yield {"path": path}


@op
def classify(path: str) -> dict[str, str]:
    kind = {"wav": "audio", "mp3": "audio", "png": "image", "jpg": "image"}
    return {"kind": kind.get(path.rsplit(".", 1)[-1], "text")}


class Transcript(TypedDict):  # one type per key: `minutes` is an int for total_minutes
    text: str
    minutes: int


@op
async def transcribe(path: str) -> Transcript:
    await asyncio.sleep(0.01)  # a call to a speech service
    return {"text": f"<speech in {path}>", "minutes": 3}


@op
def ocr(path: str) -> dict[str, str]:
    return {"text": f"<text seen in {path}>"}


@op
def read_text(path: str) -> dict[str, str]:
    return {"text": f"<contents of {path}>"}


@op
def store(path: str, text: str) -> dict[str, str]:
    return {"stored": f"{path}: {text}"}


@op
def total_minutes(minutes: list[int]) -> dict[str, int]:
    return {"audio_minutes": sum(minutes)}


with GraphOp(name="documents") as graph:
    doc = each_path(paths=PARENT["paths"])
    kind = classify(path=doc["path"])
    audio = transcribe(path=doc["path"])
    image = ocr(path=doc["path"])
    plain = read_text(path=doc["path"])
    saved = store(path=doc["path"], text=coalesce(audio["text"], image["text"], plain["text"]))
    minutes = total_minutes(minutes=audio["minutes"].collect())

    START >> doc >> kind >> (
        if_(kind["kind"] == "audio", audio)
        .elif_(kind["kind"] == "image", image)
        .else_(plain))
    [audio, image, plain] >> saved >> END
    audio >> minutes >> END
