"""Second, independent client for the native echo test: Python websockets
(Debian python3-websockets 10.4). Offers permessage-deflate (the server
negotiates it), echoes text/binary of several sizes, then closes with
1000 and checks the server's Close. Prints one JSON line; exit 0 on success."""
import asyncio
import json
import sys

import websockets


async def main(url):
    results = {}
    async with websockets.connect(url, max_size=None) as ws:
        results["extensions"] = [e.name for e in ws.extensions]
        for n in (0, 1, 125, 126, 65535, 65536, 1 << 20):
            text = ("ä" * (n // 2)) if n else ""
            await ws.send(text)
            got = await asyncio.wait_for(ws.recv(), 10)
            assert got == text, f"text {n}: got {len(got)} chars"
            data = bytes((i * 7) & 0xFF for i in range(n))
            await ws.send(data)
            got = await asyncio.wait_for(ws.recv(), 10)
            assert got == data, f"binary {n}"
        pong = await ws.ping(b"py-ping")
        await asyncio.wait_for(pong, 10)
        await ws.close(1000, "done")
        results["close_code"] = ws.close_code
        results["close_reason"] = ws.close_reason
    print(json.dumps(results))


asyncio.run(main(sys.argv[1]))
