"""The interpreter: runs a graph IR on asyncio/uvloop."""
