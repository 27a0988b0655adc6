#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# examples/chat with python3-websockets clients: every client sees every
# line in order; a client that stops reading is paused, not the room: the
# others get all their lines meanwhile, and when it reads again it is told
# how many it missed. Usage: chat_test.py PATH-TO-CHAT
import asyncio
import time
import re
import socket
import subprocess
import sys

import websockets

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


async def recv_until(ws, pred, limit=20000):
    seen = []
    for _ in range(limit):
        m = await asyncio.wait_for(ws.recv(), 10)
        seen.append(m)
        if pred(m):
            return seen
    return seen


async def main(port):
    url = "ws://127.0.0.1:%d/chat" % port
    a = await websockets.connect(url)
    b = await websockets.connect(url)
    await a.send("hello from a")
    got_a = await recv_until(a, lambda m: m.endswith(": hello from a"))
    got_b = await recv_until(b, lambda m: m.endswith(": hello from a"))
    check(got_a[-1].endswith(": hello from a"), "a sees its own line")
    check(got_b[-1].endswith(": hello from a"), "b sees a's line")

    # a slow client: a raw socket that upgrades, then does not read
    # (a small receive buffer, set before connecting: set after, the
    # window shrinks under the sender and Linux stalls the stream)
    slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", port))
    slow.sendall(b"GET /chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    await asyncio.sleep(0.2)

    # a floods the room. b reads as fast as python can: a reader that
    # falls far behind is paused and skips lines, but is always told how
    # many, exactly; the room never waits for anyone
    n = 8000  # 8 MB: more than the kernel and the connection buffer
    big = "x" * 1000
    for i in range(n):
        await a.send("%d %s" % (i, big))

    async def ender():
        while True:
            await a.send("END")
            await asyncio.sleep(0.3)
    task = asyncio.ensure_future(ender())
    lines = await recv_until(b, lambda m: m.endswith(": END"), limit=n + 1000)
    task.cancel()
    check(lines[-1].endswith(": END"), "b reached the end")
    prev = None
    note = None
    seen = 0
    bad = 0
    for m in lines:
        mm = re.match(r"\(you missed (\d+) messages\)$", m)
        if mm:
            note = int(mm.group(1))
            continue
        body = m.split(": ", 1)[1] if ": " in m else ""
        if body[:1].isdigit():
            k = int(body.split(" ")[0])
            gap = k - prev - 1 if prev is not None else None
            if prev is not None and k <= prev:
                bad += 1
            if gap is not None and gap != (note or 0):
                bad += 1
            prev = k
            seen += 1
        note = None
    check(bad == 0, "b: lines in order, every gap announced exactly (%d bad)" % bad)
    check(seen > 0, "b got lines (%d of %d)" % (seen, n))
    print("b got %d of %d flood lines" % (seen, n))

    # now the slow client reads; once its socket has drained it rejoins,
    # and the next line comes with news of how many it missed
    slow.settimeout(0.3)
    data = b""
    told = False
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            d = slow.recv(1 << 16)
            if not d:
                break
            data += d
            told = b"(you missed " in data
            if told:
                break
        except socket.timeout:
            await a.send("are you back?")
    check(told, "the slow client was told it missed lines")
    slow.close()
    await a.close()
    await b.close()


proc = subprocess.Popen([sys.argv[1], "--port", "0"], stdout=subprocess.PIPE,
                        text=True)
try:
    line = proc.stdout.readline()
    m = re.search(r":(\d+)$", line.strip())
    check(m is not None, "chat started: %r" % line)
    if m:
        asyncio.run(main(int(m.group(1))))
finally:
    proc.terminate()
    proc.wait(10)
print("chat tests: %d failures" % len(failures))
sys.exit(1 if failures else 0)
