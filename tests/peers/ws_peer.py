#!/usr/bin/python3
"""An independent WebSocket peer for interoperability tests (python3-websockets).

server [--cert CRT --key KEY] [--max-size N] [--reject STATUS]
    Listens on 127.0.0.1 (ws://, or wss:// with a certificate), prints "READY <port>", and for
    each connection (refused with HTTP STATUS if --reject) answers text commands, else echoes:
      headers            -> JSON object of the request headers (names lower-cased) and "path"
      frag:N:TEXT        -> TEXT as one message in N fragments
      big:N              -> one text message of N 'x'
      ping               -> pings the client, then sends "pong-ok" once the pong came back
      close:CODE:REASON  -> closes with CODE and REASON
      binary             -> sends the binary message 00 01 02
    When a connection ends it prints "CLOSED <code> <reason>" (what the client sent).
client URL SCENARIO [ARG...] [--ca FILE]
    Runs one scenario against our server and prints "CLOSE <code> <reason>" (what the server
    sent) and OK/FAIL lines; exits 0 only if every expectation held.
Both leave when their stdin closes (the test that started them is gone) or after 60 s.
"""
import asyncio
import http
import json
import os
import ssl
import sys
import threading

import websockets


def watchdog():
    """Exit when the parent closes our stdin or after a minute, whatever happens."""
    def run():
        try:
            while os.read(0, 4096):  # the raw fd: a buffered reader would hold a lock at exit
                pass
        except Exception:
            pass
        os._exit(3)
    threading.Thread(target=run, daemon=True).start()
    timer = threading.Timer(60, lambda: os._exit(4))
    timer.daemon = True
    timer.start()


def arg_value(args, name, default=None):
    if name in args:
        i = args.index(name)
        value = args[i + 1]
        del args[i:i + 2]
        return value
    return default


async def serve(args):
    cert = arg_value(args, "--cert")
    key = arg_value(args, "--key")
    max_size = int(arg_value(args, "--max-size", str(1 << 20)))
    reject = arg_value(args, "--reject")

    async def process_request(path, headers):
        if reject:
            return http.HTTPStatus(int(reject)), [("Content-Type", "text/plain")], b"refused by the test\n"
        return None
    ctx = None
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)

    async def handler(ws, path=None):
        try:
            async for msg in ws:
                if isinstance(msg, bytes):
                    await ws.send(msg)
                elif msg == "headers":
                    h = {k.lower(): v for k, v in ws.request_headers.raw_items()}
                    h["path"] = ws.path
                    await ws.send(json.dumps(h))
                elif msg.startswith("frag:"):
                    _, n, text = msg.split(":", 2)
                    n = int(n)
                    step = max(1, len(text) // n)
                    parts = [text[i:i + step] for i in range(0, len(text), step)]
                    await ws.send(parts)
                elif msg.startswith("big:"):
                    await ws.send("x" * int(msg[4:]))
                elif msg == "ping":
                    waiter = await ws.ping(b"hi")
                    await asyncio.wait_for(waiter, 5)
                    await ws.send("pong-ok")
                elif msg.startswith("close:"):
                    _, code, reason = msg.split(":", 2)
                    await ws.close(int(code), reason)
                elif msg == "binary":
                    await ws.send(b"\x00\x01\x02")
                else:
                    await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
        await ws.wait_closed()
        print(f"CLOSED {ws.close_code} {ws.close_reason}", flush=True)

    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, context: None)  # failed TLS handshakes are expected
    async with websockets.serve(handler, "127.0.0.1", 0, ssl=ctx, max_size=max_size,
                                ping_interval=None, close_timeout=5,
                                process_request=process_request) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"READY {port}", flush=True)
        await asyncio.Future()


async def client(args):
    ca = arg_value(args, "--ca")
    url, scenario, rest = args[0], args[1], args[2:]
    ctx = None
    if url.startswith("wss:"):
        ctx = ssl.create_default_context(cafile=ca)
    ok = True

    def expect(cond, what):
        nonlocal ok
        print(("OK " if cond else "FAIL ") + what, flush=True)
        ok = ok and cond

    ws = await websockets.connect(url, ssl=ctx, max_size=4 << 20, ping_interval=None,
                                  close_timeout=5, open_timeout=5)
    try:
        if scenario == "echo":
            await ws.send("hello")
            expect(await ws.recv() == "hello", "text echo")
            await ws.send(b"\x01\x02\xff")
            expect(await ws.recv() == b"\x01\x02\xff", "binary echo")
            await ws.close(1000, "bye")
        elif scenario == "fragments":
            await ws.send(["frag", "mented ", "message"])
            expect(await ws.recv() == "fragmented message", "fragmented message joined")
            await ws.close(1000, "")
        elif scenario == "large":
            n = int(rest[0])
            await ws.send("y" * n)
            reply = await ws.recv()
            expect(len(reply) == n and reply == "y" * n, f"large echo of {n}")
            await ws.close(1000, "")
        elif scenario == "toolarge":
            await ws.send("z" * int(rest[0]))
            try:
                reply = await asyncio.wait_for(ws.recv(), 5)
                expect(False, f"got a reply of {len(reply)} instead of a close")
            except websockets.ConnectionClosed:
                pass
        elif scenario == "close":
            await ws.close(int(rest[0]), rest[1] if len(rest) > 1 else "")
        elif scenario == "ping":
            waiter = await ws.ping(b"abc")
            await asyncio.wait_for(waiter, 5)
            expect(True, "pong received")
            await ws.close(1000, "")
        elif scenario == "serverclose":
            await ws.send("please-close")
            try:
                await asyncio.wait_for(ws.recv(), 5)
                expect(False, "server did not close")
            except websockets.ConnectionClosed:
                pass
        else:
            expect(False, f"unknown scenario {scenario}")
        await ws.wait_closed()
    except (websockets.ConnectionClosed, asyncio.TimeoutError) as e:
        expect(False, f"unexpected {type(e).__name__}: {e}")
    print(f"CLOSE {ws.close_code} {ws.close_reason}", flush=True)
    return 0 if ok else 1


def main():
    watchdog()
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        return 2
    if args[0] == "server":
        asyncio.run(serve(args[1:]))
        return 0
    if args[0] == "client":
        return asyncio.run(client(args[1:]))
    return 2


if __name__ == "__main__":
    rc = main()
    sys.stdout.flush()
    os._exit(rc)
