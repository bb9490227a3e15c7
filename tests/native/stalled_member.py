"""A WebSocket client with a tiny receive buffer that stops reading (or reads
a trickle), for the --send-timeout tests. Node cannot set SO_RCVBUF on a TCP
socket, and a paused Node socket still lets the kernel buffer megabytes.

usage: stalled_member.py PORT TARGET [READ_BYTES READ_EVERY_MS]

SO_RCVBUF is set to 1 KiB before connecting (the kernel rounds it up to its
minimum, ~2 KiB), so the window the server sees stays tiny. After the 101
(read byte by byte: nothing past the head is consumed) it prints
{"ready": true, "rcvbuf": N}. Then, without READ_BYTES, it never reads the
socket again; with them it reads up to READ_BYTES every READ_EVERY_MS.
Meanwhile it watches the connection's TCP state (TCP_INFO, which reads no
data) and prints {"state": "closed" | "close_wait", "tcp_state": N, "read": B}
once the server reset (CLOSE) or shut (CLOSE_WAIT) it, then exits. At EOF on
stdin (the test is done) it prints {"done": true, "read": B} and exits,
closing its socket."""
import base64
import json
import os
import select
import socket
import sys
import time

ESTABLISHED, CLOSE_WAIT, CLOSE = 1, 8, 7


def say(**kw):
    sys.stdout.write(json.dumps(kw) + "\n")
    sys.stdout.flush()


def tcp_state(s):
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)[0]


def main():
    port, target = int(sys.argv[1]), sys.argv[2]
    chunk = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    every = int(sys.argv[4]) / 1000 if len(sys.argv) > 4 else 0
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    s.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        b = s.recv(1)
        if not b:
            say(error="closed during the handshake", head=head.decode("latin1"))
            return 1
        head += b
    status = head.split(b" ", 2)[1]
    if status != b"101":
        say(error="upgrade failed", status=int(status))
        return 1
    say(ready=True, rcvbuf=s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))
    got = 0
    next_read = time.monotonic() + every
    s.setblocking(False)
    while True:
        st = tcp_state(s)
        if st != ESTABLISHED:
            say(state="closed" if st == CLOSE else "close_wait" if st == CLOSE_WAIT else "other",
                tcp_state=st, read=got)
            return 0
        if chunk and time.monotonic() >= next_read:
            next_read += every
            try:
                b = s.recv(chunk)
                got += len(b)
            except BlockingIOError:
                pass
            except OSError:
                pass  # a reset: the state check above reports it
        r, _, _ = select.select([sys.stdin], [], [], 0.02)
        if r and not sys.stdin.buffer.read1(4096):
            say(done=True, read=got)
            return 0


sys.exit(main())
