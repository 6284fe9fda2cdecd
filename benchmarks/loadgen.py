"""A load generator on raw asyncio sockets: keep-alive HTTP/1.1, one coroutine per client.

httpx costs about a millisecond of client CPU per request; on a two-core machine that
CPU is taken from the very server being measured. A hand-written request and a
Content-Length read cost a few microseconds, so the latencies are the server's.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Request = tuple[str, str, bytes | None]  # method, path, JSON body


@dataclass
class Results:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    elapsed_s: float = 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: Request, host: str
) -> tuple[int, bytes]:
    method, path, body = request
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"\r\n" + (body or b""))
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    payload = await reader.readexactly(length)
    return int(status_line.split()[1]), payload


async def _client(
    host: str,
    port: int,
    next_request: Callable[[int], Request],
    until: float,
    results: Results,
    interval_s: float | None,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    n = 0
    if interval_s is not None:
        # Paced clients start at random points of the interval, as independent pollers
        # do; started together they would arrive in bursts of every client at once.
        await asyncio.sleep(random.uniform(0, interval_s))
    next_at = time.monotonic()
    try:
        while time.monotonic() < until:
            started = time.perf_counter()
            status, _ = await _exchange(reader, writer, next_request(n), f"{host}:{port}")
            results.latencies_ms.append((time.perf_counter() - started) * 1000)
            results.statuses[status] = results.statuses.get(status, 0) + 1
            n += 1
            if interval_s is not None:  # one request per interval, on a fixed schedule
                next_at += interval_s
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    finally:
        writer.close()


def run_clients(
    url: str,
    clients: int,
    duration_s: float,
    next_request: Callable[[int, int], Request],
    *,
    interval_s: float | None = None,
) -> Results:
    """`clients` connections, each sending `next_request(client, n)` back to back (or one
    per `interval_s`) for `duration_s`."""
    host, port = url.removeprefix("http://").split(":")
    results = Results()

    async def main() -> None:
        until = time.monotonic() + duration_s
        started = time.monotonic()
        await asyncio.gather(
            *(
                _client(
                    host, int(port), lambda n, c=c: next_request(c, n), until, results, interval_s
                )
                for c in range(clients)
            )
        )
        results.elapsed_s = time.monotonic() - started

    asyncio.run(main())
    return results


def json_body(value: Any) -> bytes:
    return json.dumps(value).encode()
