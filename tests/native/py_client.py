"""The native server against a second, independent client: Python websockets
10.4 (Debian python3-websockets), zlib-based permessage-deflate included.

usage: py_client.py URL [JSON-OPTIONS]
OPTIONS (all optional): {"server_no_context_takeover": bool,
  "client_no_context_takeover": bool, "server_max_window_bits": 9..15,
  "client_max_window_bits": true | 9..15}; absent: the library's default
offer ("permessage-deflate; client_max_window_bits").
Echoes text and binary messages (repeated, so context takeover is used),
then closes with 1000. Prints one JSON line: the response's extension
header, the parameters the client agreed to, the close code. Exit 0 only
when every echo matched."""
import asyncio
import json
import sys

import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory


async def main(url, opts):
    kw = {"max_size": None}
    if opts is not None:
        kw["compression"] = None
        kw["extensions"] = [ClientPerMessageDeflateFactory(**opts)]
    results = {}
    async with websockets.connect(url, **kw) as ws:
        results["header"] = ws.response_headers.get("Sec-WebSocket-Extensions")
        ext = ws.extensions[0] if ws.extensions else None
        results["extensions"] = [e.name for e in ws.extensions]
        if ext is not None:
            results["agreed"] = {
                "server_no_context_takeover": ext.remote_no_context_takeover,
                "client_no_context_takeover": ext.local_no_context_takeover,
                "server_max_window_bits": ext.remote_max_window_bits,
                "client_max_window_bits": ext.local_max_window_bits,
            }
        words = "permessage-deflate über λόγος window takeover "
        for rep in range(3):
            for n in (0, 1, 5, 125, 126, 4000, 65535, 65536, 300000):
                text = (words * (n // len(words) + 1))[:n]
                await ws.send(text)
                got = await asyncio.wait_for(ws.recv(), 10)
                assert got == text, f"text {n} (round {rep}): got {len(got)} chars"
                data = bytes(((i * 7) ^ (i >> 5)) & 0xFF for i in range(n))
                await ws.send(data)
                got = await asyncio.wait_for(ws.recv(), 10)
                assert got == data, f"binary {n} (round {rep})"
        pong = await ws.ping(b"py-ping")
        await asyncio.wait_for(pong, 10)
        await ws.close(1000, "done")
        results["close_code"] = ws.close_code
    print(json.dumps(results))


asyncio.run(main(sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else None))
