#!/usr/bin/python3
"""An independent HTTP/1.1 server (Python's http.server) for the HTTP client's interop tests.

http_peer.py [--cert CRT --key KEY]
    Listens on 127.0.0.1 (http, or https with the certificate), prints "READY <port>", serves:
      GET  /hello    -> 200 "hello" with Content-Length
      POST /echo     -> 200 with the request body back, and X-Got-ContentType, X-Got-UserAgent,
                        X-Got-Host, X-Got-Authorization, X-Got-Length headers
      GET  /chunked  -> 200 "hello, world" in three chunks
      GET  /conns    -> the number of TCP connections accepted so far (decimal)
    Leaves when its stdin closes (the test that started it is gone) or after 60 s.
"""
import http.server
import os
import ssl
import sys
import threading


def watchdog():
    def run():
        try:
            while os.read(0, 4096):
                pass
        except Exception:
            pass
        os._exit(3)
    threading.Thread(target=run, daemon=True).start()
    timer = threading.Timer(60, lambda: os._exit(4))
    timer.daemon = True
    timer.start()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    ctx = None
    accepted = 0
    lock = threading.Lock()

    def get_request(self):
        sock, addr = self.socket.accept()
        with self.lock:
            Server.accepted += 1
        if self.ctx is not None:
            # handshake in the handler thread, on first read: a client that rejects our
            # certificate must not stall the accept loop
            sock = self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, body, headers=()):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/hello":
            self.reply(b"hello")
        elif self.path == "/conns":
            self.reply(str(Server.accepted).encode())
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello", b", ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_error(404)

    def do_POST(self):
        if self.path != "/echo":
            self.send_error(404)
            return
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        got = [("X-Got-" + name.replace("-", ""), self.headers.get(name, "-"))
               for name in ("Content-Type", "User-Agent", "Host", "Authorization")]
        got.append(("X-Got-Length", str(n)))
        self.reply(body, got)


def main():
    args = sys.argv[1:]
    watchdog()
    srv = Server(("127.0.0.1", 0), Handler)
    if "--cert" in args:
        cert = args[args.index("--cert") + 1]
        key = args[args.index("--key") + 1]
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        Server.ctx = ctx
    print("READY %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
