"""Helpers for tests/integration/test-bridge: real processes (the fake OpenAI Realtime server and
voicebridge) on free loopback ports, started and waited for asynchronously and always reaped;
parsers for voicebridge's log and the fake's JSONL log; a raw Twilio Media Streams client for
malformed-message cases; audio measurements on the simulator's recordings; and the check list
that prints "ok"/"FAIL" lines and the closing counts.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
import traceback
import wave

import numpy
import websockets

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FAKES = os.path.join(ROOT, "tests", "fakes")
PYTHON = "/usr/bin/python3"
FAKE_OPENAI = os.path.join(FAKES, "fake_openai.py")

sys.path.insert(0, FAKES)
import twilio_sim as ts  # noqa: E402

# Environment variables that would change voicebridge's configuration behind the test's back.
VB_ENV_DROP = ("OPENAI_API_KEY", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_PHONE_NUMBER",
               "JWT_SECRET", "REDIS_URL", "PUBLIC_BASE_URL")
# voicebridge checks X-Twilio-Signature and stream tokens (twilio.validate_signatures is on by
# default): every Bridge gets this auth token, and the clients here sign with it.
TEST_AUTH_TOKEN = "test-auth-token-not-a-real-one-0123"
# The call API checks an HS256 JWT: every Bridge gets this secret, jwt_token() signs with it.
TEST_JWT_SECRET = "test-jwt-secret-not-a-real-one-4567"
SANITIZER_RE = re.compile(r"ERROR: (AddressSanitizer|LeakSanitizer|ThreadSanitizer)|"
                          r"runtime error:|SUMMARY: \w+Sanitizer")


def free_port():
    """A loopback port nobody listens on now (the kernel's pick, released for the caller)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_until(pred, timeout, step=0.05):
    """Polls pred() until it is truthy (returns its value) or timeout seconds pass (None)."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            return None
        await asyncio.sleep(step)


def stream_token(call_id, ttl=300, auth_token=TEST_AUTH_TOKEN, now=None):
    """The streamToken voicebridge puts in its TwiML for call_id (docs/security.md), computed
    independently of the C code: "<expiry>.<base64url(HMAC-SHA256(key, "vb-stream-v1\\n" id
    "\\n" expiry))>" with key = HMAC-SHA256(auth token, "voicebridge stream token key v1")."""
    exp = int(time.time() if now is None else now) + ttl
    key = hmac.new(auth_token.encode(), b"voicebridge stream token key v1", hashlib.sha256).digest()
    mac = hmac.new(key, f"vb-stream-v1\n{call_id}\n{exp}".encode(), hashlib.sha256).digest()
    return f"{exp}." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def jwt_token(sub="tester", ttl=300, secret=TEST_JWT_SECRET, claims=None):
    """An HS256 JWT made independently of the C code (RFC 7519 by hand)."""
    def b64(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    body = {"sub": sub, "iat": int(time.time()), "exp": int(time.time()) + ttl}
    body.update(claims or {})
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(body).encode())
    mac = hmac.new(secret.encode(), f"{head}.{payload}".encode(), hashlib.sha256).digest()
    return f"{head}.{payload}.{b64(mac)}"


def signature(url, params=None, auth_token=TEST_AUTH_TOKEN):
    """X-Twilio-Signature by twilio-python's RequestValidator (through the simulator)."""
    return ts.twilio_signature(auth_token, url, params or {})


async def ready_port(proc, out_path, timeout):
    """The port a stand-in announces on its "READY port=N" line, or None if it exits first or
    timeout seconds pass."""
    def ready():
        if proc.poll() is not None:
            return "exited"
        with open(out_path, encoding="utf-8", errors="replace") as f:
            m = re.search(r"^READY port=(\d+)", f.read(), re.M)
        return m and m.group(1)
    got = await wait_until(ready, timeout)
    return None if not got or got == "exited" else int(got)


# ------------------------------------------------------------------------------------------------
# Processes: every one started goes into the registry and is killed and reaped at the end, whatever
# happened.

class Procs:
    def __init__(self):
        self.live = []

    def spawn(self, argv, out_path, env=None):
        out = open(out_path, "ab")
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                 env=env, cwd=ROOT)
        finally:
            out.close()
        self.live.append(p)
        return p

    def reap_all(self):
        """SIGTERM, a grace period, then SIGKILL; every child is waited for."""
        for p in self.live:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        end = time.monotonic() + 5
        for p in self.live:
            try:
                p.wait(timeout=max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.live = []


async def stop_process(p, sig=signal.SIGTERM, timeout=20.0):
    """Signals p and waits (without blocking the loop) for it to exit; returns its status or None
    if it did not exit in time (it is then killed, and still reaped)."""
    if p.poll() is None:
        p.send_signal(sig)
    rc = await wait_until(lambda: p.poll() is not None, timeout)
    if rc is None:
        p.kill()
        await wait_until(lambda: p.poll() is not None, 5)
        return None
    return p.returncode


# ------------------------------------------------------------------------------------------------
# The fake OpenAI Realtime server.

class Fake:
    """One fake_openai.py process with its own script, log and stats file."""

    def __init__(self, procs, tmp, name, script, args=(), cache=None, log=True):
        self.procs, self.name, self.args, self.keep_log = procs, name, list(args), log
        self.script_path = os.path.join(tmp, f"{name}-script.json")
        with open(self.script_path, "w", encoding="utf-8") as f:
            json.dump(script, f)
        self.log_path = os.path.join(tmp, f"{name}.jsonl")
        self.stats_path = os.path.join(tmp, f"{name}-stats.json")
        self.out_path = os.path.join(tmp, f"{name}.out")
        self.cache = cache or os.path.join(tmp, "cache")
        self.proc = None
        self.port = None
        self.stats = None
        self._events = []
        self._log_pos = 0

    async def start(self, port=0, timeout=30.0):
        open(self.out_path, "w").close()
        argv = [PYTHON, FAKE_OPENAI, "--port", str(port), "--script", self.script_path,
                "--stats", self.stats_path, "--cache", self.cache] + self.args
        if self.keep_log:
            argv += ["--log", self.log_path]
        self.proc = self.procs.spawn(argv, self.out_path)
        got = await ready_port(self.proc, self.out_path, timeout)
        if got is None:
            raise RuntimeError(f"fake {self.name} did not get ready: {self.output()[-2000:]}")
        self.port = got

    def output(self):
        with open(self.out_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    @property
    def url(self):
        return f"ws://127.0.0.1:{self.port}/v1/realtime"

    async def stop(self):
        """SIGTERM; the fake writes its stats and exits 0. Returns the exit status."""
        rc = await stop_process(self.proc, timeout=15)
        try:
            with open(self.stats_path, encoding="utf-8") as f:
                self.stats = json.load(f)
        except (OSError, ValueError):
            self.stats = None
        return rc

    def events(self):
        """Every log record so far (read incrementally: the log grows during the run)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_pos)
                data = f.read()
        except FileNotFoundError:
            return self._events
        end = data.rfind(b"\n") + 1          # a line being written right now waits for later
        self._log_pos += end
        for line in data[:end].splitlines():
            try:
                self._events.append(json.loads(line))
            except ValueError:
                pass
        return self._events

    def conn_of(self, call_id, events=None):
        """The fake's connection number for the call whose session.update carried our
        instructions "Test call <call_id>." (voicebridge fills {{callId}} from the stream)."""
        want = f"Test call {call_id}."
        for e in events if events is not None else self.events():
            if e.get("type") == "session.update" and e.get("dir") == "in":
                if (e.get("session") or {}).get("instructions") == want:
                    return e["conn"]
        return None

    def conn_events(self, conn, events=None):
        return [e for e in (events if events is not None else self.events()) if e.get("conn") == conn]


# ------------------------------------------------------------------------------------------------
# A real redis-server and a minimal RESP client (no Python redis module on the test host).

class Redis:
    def __init__(self, procs, tmp):
        self.procs, self.tmp = procs, tmp
        self.port = free_port()
        self.dir = os.path.join(tmp, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.proc = None

    async def start(self):
        # Every write on disk before it is answered: a kill loses nothing already answered.
        self.proc = self.procs.spawn(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir,
             "--save", "", "--appendonly", "yes", "--appendfsync", "always",
             "--protected-mode", "no"], os.path.join(self.tmp, "redis.log"))
        ok = await wait_until(self.ping, 10)
        if not ok:
            raise RuntimeError("redis-server did not start")

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def ping(self):
        try:
            return self.cmd("PING") == "PONG"
        except OSError:
            return False

    def cmd(self, *args):
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            out = b"*%d\r\n" % len(args)
            for a in args:
                a = a if isinstance(a, bytes) else str(a).encode()
                out += b"$%d\r\n%s\r\n" % (len(a), a)
            s.sendall(out)
            f = s.makefile("rb")
            return self._read(f)

    def _read(self, f):
        line = f.readline()
        if not line:
            raise OSError("redis closed the connection")
        t, rest = line[:1], line[1:-2]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = f.read(n + 2)[:-2]
            return data.decode("utf-8", "replace")
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read(f) for _ in range(n)]
        raise OSError(f"bad RESP {line!r}")

    def hgetall(self, key):
        r = self.cmd("HGETALL", key) or []
        return dict(zip(r[0::2], r[1::2]))

    def events(self, call_id=None):
        out = []
        for _id, fields in self.cmd("XRANGE", "vb:events", "-", "+") or []:
            e = dict(zip(fields[0::2], fields[1::2]))
            if call_id is None or e.get("call_id") == call_id:
                out.append(e)
        return out


# ------------------------------------------------------------------------------------------------
# The Twilio REST stand-in (tests/fakes/twilio_rest_sim.py).

TEST_ACCOUNT_SID = "AC" + "7" * 32
TEST_PHONE_NUMBER = "+15005550006"


class RestSim:
    """One twilio_rest_sim.py process; its JSONL log is read with events()."""

    def __init__(self, procs, tmp, name, args=(), auth_token=TEST_AUTH_TOKEN,
                 account_sid=TEST_ACCOUNT_SID):
        self.procs, self.name, self.args = procs, name, list(args)
        self.auth_token, self.account_sid = auth_token, account_sid
        self.out_path = os.path.join(tmp, f"{name}.out")
        self.log_path = os.path.join(tmp, f"{name}.jsonl")
        self.proc = None
        self.port = None

    async def start(self, timeout=30.0):
        open(self.out_path, "w").close()
        self.proc = self.procs.spawn(
            [PYTHON, os.path.join(FAKES, "twilio_rest_sim.py"), "--port", "0", "--account-sid",
             self.account_sid, "--auth-token", self.auth_token, "--log", self.log_path]
            + self.args, self.out_path)
        got = await ready_port(self.proc, self.out_path, timeout)
        if got is None:
            raise RuntimeError(f"REST stand-in {self.name} did not get ready")
        self.port = got

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def env(self):
        """What voicebridge needs in its environment to place calls through this stand-in."""
        return {"TWILIO_ACCOUNT_SID": self.account_sid, "TWILIO_PHONE_NUMBER": TEST_PHONE_NUMBER}

    def events(self, name=None, call_sid=None):
        out = []
        try:
            with open(self.log_path, encoding="utf-8") as f:
                for line in f:
                    try:
                        e = json.loads(line)
                    except ValueError:
                        continue
                    if (name is None or e.get("event") == name) and \
                            (call_sid is None or e.get("call_sid") == call_sid):
                        out.append(e)
        except FileNotFoundError:
            pass
        return out

    async def stop(self):
        return await stop_process(self.proc, timeout=15)


# ------------------------------------------------------------------------------------------------
# voicebridge.

RE_PID = re.compile(r"\[(\d+)\] ")
RE_STARTED = re.compile(r"call (\d+) started: (\S+) (CA\w+) \(stream (MZ\w+)\)")
RE_ENDED = re.compile(r"call (\d+) ended \(([^)]*)\): (\d+) frames in, (\d+) up, (\d+) out; "
                      r"added latency up avg (\d+) max (\d+) us, down avg (\d+) max (\d+) us; "
                      r"barge-ins (\d+) \(worst (\d+) us\), truncates (\d+); "
                      r"dropped (\d+)/(\d+) bytes")
RE_TRANSCRIPT = re.compile(r"transcript (CA\w+) \+(\d+) ms (\w+): (.*)$")


class Bridge:
    """One voicebridge process (VB_BIN) with its own configuration and log."""

    def __init__(self, procs, tmp, name, openai_url, extra=None, binary=None):
        self.procs, self.name = procs, name
        self.binary = binary or os.environ.get("VB_BIN", "build/voicebridge")
        self.port = free_port()
        self.cfg_path = os.path.join(tmp, f"{name}.json")
        self.log_path = os.path.join(tmp, f"{name}.log")
        cfg = {
            "listen": [f"127.0.0.1:{self.port}"],
            "public_url": f"http://127.0.0.1:{self.port}",
            "pid_file": os.path.join(tmp, f"{name}.pid"),
            "drain_timeout_s": 10,
            # A port nobody listens on: a test never writes into a Redis it did not start (the
            # Redis tests pass their own redis_url in extra).
            "redis_url": f"redis://127.0.0.1:{free_port()}/0",
            "openai": {"url": openai_url, "transcription_model": "gpt-4o-mini-transcribe",
                       "instructions": "Test call {{callId}}."},
        }
        for k, v in (extra or {}).items():
            if isinstance(v, dict):
                cfg.setdefault(k, {}).update(v)
            else:
                cfg[k] = v
        with open(self.cfg_path, "w", encoding="utf-8") as f:
            json.dump(cfg, f)
        self.proc = None
        self.exit_status = "not stopped"

    @property
    def stream_url(self):
        return f"ws://127.0.0.1:{self.port}/api/voice-calls/media-stream"

    @property
    def pid(self):
        return self.proc.pid

    async def start(self, timeout=20.0, auth_token=TEST_AUTH_TOKEN, env_extra=None):
        env = {k: v for k, v in os.environ.items() if k not in VB_ENV_DROP}
        if auth_token is not None:
            env["TWILIO_AUTH_TOKEN"] = auth_token
        env["JWT_SECRET"] = TEST_JWT_SECRET
        env.update(env_extra or {})
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        open(self.log_path, "w").close()
        self.proc = self.procs.spawn([self.binary, "-c", self.cfg_path], self.log_path, env=env)

        async def healthy():
            if self.proc.poll() is not None:
                return "exited"
            try:
                status, _ = await http_get(self.port, "/healthz")
                return status == 200
            except OSError:
                return False
        end = time.monotonic() + timeout
        while True:
            h = await healthy()
            if h == "exited":
                raise RuntimeError(f"voicebridge {self.name} exited: {self.log()[-2000:]}")
            if h:
                return
            if time.monotonic() > end:
                raise RuntimeError(f"voicebridge {self.name} did not answer /healthz")
            await asyncio.sleep(0.05)

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def lines(self):
        return self.log().splitlines()

    @staticmethod
    def _key(line, serial):
        """A call's key: (worker pid, the worker's serial); serials count per worker."""
        p = RE_PID.search(line)
        return (int(p.group(1)) if p else 0, int(serial))

    def started(self):
        """{(pid, serial): (direction, call_sid)} for every call whose stream started, in log
        order."""
        out = {}
        for line in self.lines():
            m = RE_STARTED.search(line)
            if m:
                out[self._key(line, m.group(1))] = (m.group(2), m.group(3))
        return out

    def ended(self):
        """{(pid, serial): dict} for every call that ended (the worker's per-call end line), in
        log order: the last one ended last."""
        out = {}
        for line in self.lines():
            m = RE_ENDED.search(line)
            if m:
                g = m.groups()
                out[self._key(line, g[0])] = {"reason": g[1], "frames_in": int(g[2]), "frames_up": int(g[3]),
                                  "frames_out": int(g[4]), "up_avg_us": int(g[5]),
                                  "up_max_us": int(g[6]), "down_avg_us": int(g[7]),
                                  "down_max_us": int(g[8]), "barge_ins": int(g[9]),
                                  "worst_us": int(g[10]), "truncates": int(g[11]),
                                  "up_dropped": int(g[12]), "down_dropped": int(g[13])}
        return out

    def serial_of(self, call_sid):
        for serial, (_, sid) in self.started().items():
            if sid == call_sid:
                return serial
        return None

    def end_of(self, call_sid):
        s = self.serial_of(call_sid)
        return None if s is None else self.ended().get(s)

    async def wait_end(self, call_sid, timeout=10.0):
        return await wait_until(lambda: self.end_of(call_sid), timeout)

    def transcripts(self, call_sid):
        return [(m.group(3), m.group(4), int(m.group(2)))
                for m in (RE_TRANSCRIPT.search(l) for l in self.lines())
                if m and m.group(1) == call_sid]

    def call_lines(self, call_sid):
        """Lines logged from the call's loop once Twilio named it (context "call=N <CallSid>")."""
        return [l for l in self.lines() if re.search(rf" call=\d+ {re.escape(call_sid)} ", l)]

    def tree(self):
        """The master's pid and its workers' (the children of the master)."""
        return [self.pid] + children_of(self.pid)

    def fds(self):
        """Open fds of the master and every worker, summed."""
        return sum(len(os.listdir(f"/proc/{p}/fd")) for p in self.tree())

    def threads(self):
        return sum(len(os.listdir(f"/proc/{p}/task")) for p in self.tree())

    async def stop(self):
        """SIGTERM: voicebridge drains and exits. Returns the exit status (None: had to kill)."""
        if self.proc is None:
            return None
        self.exit_status = await stop_process(self.proc, timeout=25)
        return self.exit_status

    def sanitizer_report(self):
        """The first lines of a sanitizer report in the log (stderr), or ""."""
        lines = self.lines()
        for i, line in enumerate(lines):
            if SANITIZER_RE.search(line):
                return "\n".join(lines[i:i + 12])
        return ""


def children_of(pid):
    """Pids whose parent is pid (from /proc; a process that exits meanwhile is skipped)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", encoding="ascii", errors="replace") as f:
                st = f.read()
        except OSError:
            continue
        if int(st[st.rindex(")") + 2:].split()[1]) == pid:
            out.append(int(d))
    return sorted(out)


async def http_get(port, path, timeout=5.0):
    """One HTTP/1.1 GET with Connection: close; returns (status, body)."""
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        w.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(r.read(), timeout)
    finally:
        w.close()
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.1 (\d{3})", head)
    return (int(m.group(1)) if m else None), body


async def raw_http(port, request, timeout=5.0):
    """Sends raw request bytes; returns the response's status code (None if none came)."""
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        w.write(request)
        try:
            data = await asyncio.wait_for(r.read(65536), timeout)
        except asyncio.TimeoutError:
            data = b""
    finally:
        w.close()
    m = re.match(rb"HTTP/1\.1 (\d{3})", data)
    return int(m.group(1)) if m else None


# ------------------------------------------------------------------------------------------------
# A raw Twilio Media Streams client: exactly the messages a test gives, no simulator logic.

class RawStream:
    """sign: send X-Twilio-Signature for url; start() adds a callId (call_id) and its valid
    streamToken unless the test's params name a callId themselves."""

    def __init__(self, url, sign=True, call_id=None, sign_url=None, auth_token=TEST_AUTH_TOKEN):
        self.url = url
        self.sign = sign
        self.sign_url = sign_url or url   # the public URL Twilio would have signed
        self.auth_token = auth_token
        self.call_id = call_id or "raw-" + ts.new_sid("")[:12]
        self.call_sid = ts.new_sid("CA")
        self.stream_sid = ts.new_sid("MZ")
        self.account_sid = ts.new_sid("AC")
        self.seq = 0
        self.ws = None

    async def __aenter__(self):
        headers = ([("X-Twilio-Signature", signature(self.sign_url, auth_token=self.auth_token))]
                   if self.sign else [])
        self.ws = await websockets.connect(self.url, compression=None, ping_interval=None,
                                           close_timeout=2, max_size=1 << 22, open_timeout=10,
                                           extra_headers=headers)
        return self

    async def __aexit__(self, *exc):
        await self.ws.close()

    def _next(self):
        self.seq += 1
        return str(self.seq)

    def connected(self):
        return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    def start(self, params=None):
        params = dict(params or {})
        if "callId" not in params:
            params["callId"] = self.call_id
        if "streamToken" not in params:
            params["streamToken"] = stream_token(params["callId"])
        return json.dumps({
            "event": "start", "sequenceNumber": self._next(), "streamSid": self.stream_sid,
            "start": {"streamSid": self.stream_sid, "accountSid": self.account_sid,
                      "callSid": self.call_sid, "tracks": ["inbound"],
                      "customParameters": params,
                      "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000,
                                      "channels": 1}}})

    def media(self, k, payload_b64):
        return json.dumps({"event": "media", "sequenceNumber": self._next(),
                           "streamSid": self.stream_sid,
                           "media": {"track": "inbound", "chunk": str(k + 1),
                                     "timestamp": str(k * 20), "payload": payload_b64}})

    def stop(self):
        return json.dumps({"event": "stop", "sequenceNumber": self._next(),
                           "streamSid": self.stream_sid,
                           "stop": {"accountSid": self.account_sid, "callSid": self.call_sid}})

    async def send_all(self, msgs):
        """Sends each message; stops quietly if the server has closed the connection."""
        for m in msgs:
            try:
                await self.ws.send(m)
            except websockets.exceptions.ConnectionClosed:
                return False
        return True

    async def closed_with(self, timeout=5.0):
        """Waits for the server to close; returns (code, reason), or (None, None) if still open."""
        try:
            await asyncio.wait_for(self.ws.wait_closed(), timeout)
        except asyncio.TimeoutError:
            return None, None
        return self.ws.close_code, self.ws.close_reason


# ------------------------------------------------------------------------------------------------
# Audio measurements on the simulator's stereo recording (left: caller; right: what was heard).

def read_stereo(path):
    with wave.open(path, "rb") as w:
        if w.getnchannels() != 2 or w.getsampwidth() != 2 or w.getframerate() != 8000:
            raise ValueError(f"{path}: not 8 kHz 16-bit stereo")
        a = numpy.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    return a[:, 0].astype(numpy.float64), a[:, 1].astype(numpy.float64)


def dbfs(x):
    if len(x) == 0:
        return -200.0
    rms = math.sqrt(float(numpy.mean(x * x)))
    return 20 * math.log10(rms / 32768.0) if rms > 0 else -200.0


def voiced_ms(x, threshold_dbfs=-40.0):
    """Milliseconds of 20 ms windows whose level is above the threshold."""
    win = 160
    n = len(x) // win
    if n == 0:
        return 0
    w = x[:n * win].reshape(n, win)
    rms = numpy.sqrt(numpy.mean(w * w, axis=1))
    return int(numpy.sum(rms > 32768.0 * 10 ** (threshold_dbfs / 20))) * 20


def ulaw_file_linear(path):
    with open(path, "rb") as f:
        return numpy.frombuffer(ts.ulaw_to_pcm16le(f.read()), dtype="<i2").astype(numpy.float64)


def best_match(heard, ref, start, search=800):
    """Normalised cross-correlation of ref against heard[start-search : start+len+search]:
    returns (score 0..1, offset in samples of the best alignment from heard's start)."""
    lo = max(0, start - search)
    seg = heard[lo:start + len(ref) + search]
    if len(seg) < len(ref) or not numpy.any(ref):
        return 0.0, None
    c = numpy.correlate(seg, ref, "valid")
    k = int(numpy.argmax(c))
    x = seg[k:k + len(ref)]
    den = math.sqrt(float(numpy.sum(x * x)) * float(numpy.sum(ref * ref)))
    return (float(c[k]) / den if den else 0.0), lo + k


# ------------------------------------------------------------------------------------------------
# Checks.

class Checks:
    """One scenario's results: checks ("ok"/"FAIL") and measured figures ("--")."""

    def __init__(self, title):
        self.title = title
        self.items = []

    def check(self, name, cond, detail=""):
        self.items.append((bool(cond), name, "" if cond else detail))
        return bool(cond)

    def info(self, name, value):
        self.items.append((None, name, value))

    def crashed(self, exc):
        tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
        self.items.append((False, "scenario ran to completion", "".join(tb[-3:]).strip()))

    def print(self):
        print(f"== {self.title}")
        for ok, name, detail in self.items:
            if ok is None:
                print(f"  --   {name}: {detail}")
            elif ok:
                print(f"  ok   {name}")
            else:
                print(f"  FAIL {name}" + (f": {detail}" if detail != "" else ""))
        sys.stdout.flush()

    @property
    def passed(self):
        return sum(1 for ok, _, _ in self.items if ok is True)

    @property
    def failed(self):
        return sum(1 for ok, _, _ in self.items if ok is False)
