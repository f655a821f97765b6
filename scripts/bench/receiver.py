#!/usr/bin/env python3
"""A webhook receiver for benches: answers every POST with 200 after DELAY_MS milliseconds,
keeps connections alive, and counts per path the requests and the most in flight at once.
GET /stats answers those counts as JSON; POST /reset forgets them. Usage: receiver.py PORT DELAY_MS"""
import asyncio
import json
import sys

PORT, DELAY = int(sys.argv[1]), int(sys.argv[2]) / 1000
counts, in_flight, most = {}, {}, {}


async def answer(path):
    in_flight[path] = in_flight.get(path, 0) + 1
    most[path] = max(most.get(path, 0), in_flight[path])
    try:
        await asyncio.sleep(DELAY)
    finally:
        in_flight[path] -= 1
    counts[path] = counts.get(path, 0) + 1
    return b"{}"


async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            if method == "GET" and path == "/stats":
                body = json.dumps({"count": counts, "most_at_once": most}).encode()
            elif method == "POST" and path == "/reset":
                counts.clear()
                most.clear()
                body = b"{}"
            else:
                body = await answer(path)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", PORT, backlog=1024)
    async with server:
        await server.serve_forever()


asyncio.run(main())
