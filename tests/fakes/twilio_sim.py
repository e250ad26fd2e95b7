#!/usr/bin/python3
"""Twilio simulator for Media Streams: plays Twilio's part of one or many phone calls against a
voicebridge (or any Media Streams server) on loopback, so that integration tests, `make demo`
and users can run calls without Twilio. It fetches TwiML like Twilio (signed form POST), opens the
signed WebSocket, streams caller audio in real time, plays the server's audio into a simulated
playback buffer (marks, clear), checks every message it gets, and records and reports what happened.
CLI: `twilio_sim.py --help`. Module: `SimCall`, `CallConfig`, `run_call`, `run_calls` (asyncio).
"""

import argparse
import asyncio
import base64
import binascii
import collections
import http.client
import ipaddress
import json
import logging
import math
import os
import re
import secrets
import shutil
import socket
import ssl
import sys
import tempfile
import time
import urllib.parse
import wave
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

import websockets
from twilio.request_validator import RequestValidator

log = logging.getLogger("twilio_sim")

SAMPLE_RATE = 8000            # mu-law samples (= bytes) per second
BYTES_PER_MS = 8
FRAME_MS = 20
FRAME_BYTES = 160             # one 20 ms frame, as Twilio sends them
FRAME_S = FRAME_MS / 1000.0
SILENCE = 0xFF                # mu-law encoding of linear 0
SILENCE_FRAME = bytes([SILENCE]) * FRAME_BYTES
SILENCE_FRAME_B64 = base64.b64encode(SILENCE_FRAME).decode("ascii")

DEFAULT_USER_AGENT = "Twilio.TmeWs/1.0"       # what Twilio's media-stream client is seen to send
WEBHOOK_USER_AGENT = "TwilioProxy/1.1"        # what Twilio's webhook fetcher sends
DEFAULT_AUTH_TOKEN = "test-auth-token-0123456789abcdef"
SEND_QUEUE_LIMIT = 50         # frames waiting for a slow server before Twilio-like dropping (1 s)
VOICED_MEAN_ABS = 160         # mean |linear| of a frame above which it counts as speech (~-46 dBFS)
MAX_MESSAGE_BYTES = 4 << 20   # larger server messages close the socket (1009)
MAX_EXAMPLES = 10             # violation examples kept per call


class SimError(Exception):
    """A call could not be set up or run (bad TwiML, refused upgrade, missing tool ...)."""


class CallEnded(Exception):
    """Raised inside a script when the call ended under it (server closed, hangup)."""


# ----------------------------------------------------------------------------------------------
# mu-law: an independent table decoder (ITU-T G.711), used for recording and speech detection.

def _ulaw_to_linear(u: int) -> int:
    u = ~u & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    sample = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return -sample if sign else sample


ULAW_LINEAR = [_ulaw_to_linear(i) for i in range(256)]
ULAW_ABS = [abs(v) for v in ULAW_LINEAR]
# bytes.translate tables that give the low and high byte of each decoded little-endian sample.
_ULAW_LO = bytes(v & 0xFF for v in ULAW_LINEAR)
_ULAW_HI = bytes((v >> 8) & 0xFF for v in ULAW_LINEAR)


def ulaw_to_pcm16le(data: bytes) -> bytes:
    """Decodes mu-law bytes to 16-bit little-endian PCM."""
    out = bytearray(2 * len(data))
    out[0::2] = data.translate(_ULAW_LO)
    out[1::2] = data.translate(_ULAW_HI)
    return bytes(out)


def frame_is_voiced(frame: bytes) -> bool:
    """True if a frame carries speech-level energy rather than (near) silence."""
    return sum(ULAW_ABS[b] for b in frame) >= VOICED_MEAN_ABS * len(frame)


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def new_sid(prefix: str) -> str:
    """A Twilio-shaped SID: two letters and 32 lowercase hex digits."""
    return prefix + secrets.token_hex(16)


def twilio_signature(auth_token: str, url: str, params: Optional[Dict[str, str]] = None) -> str:
    """X-Twilio-Signature for url (+ sorted POST params), computed by twilio-python itself."""
    return RequestValidator(auth_token).compute_signature(url, params or {})


def write_stereo_wav(path: str, left: bytes, right: bytes) -> None:
    """Writes two mu-law tracks (caller left, heard right) as an 8 kHz 16-bit stereo WAV."""
    n = max(len(left), len(right))
    left = left + bytes([SILENCE]) * (n - len(left))
    right = right + bytes([SILENCE]) * (n - len(right))
    lp, rp = ulaw_to_pcm16le(left), ulaw_to_pcm16le(right)
    out = bytearray(4 * n)
    out[0::4] = lp[0::2]
    out[1::4] = lp[1::2]
    out[2::4] = rp[0::2]
    out[3::4] = rp[1::2]
    with wave.open(path, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(bytes(out))


# ----------------------------------------------------------------------------------------------
# Caller audio: any WAV via sox, or text via espeak-ng; converted once and cached per process.

@dataclass
class Audio:
    """Caller audio ready to stream: mu-law 8 kHz mono, padded to whole 160-byte frames."""
    data: bytes
    label: str = ""
    voiced: List[bool] = field(default_factory=list)

    @classmethod
    def from_ulaw(cls, data: bytes, label: str = "") -> "Audio":
        pad = (-len(data)) % FRAME_BYTES
        data = bytes(data) + bytes([SILENCE]) * pad
        voiced = [frame_is_voiced(data[i:i + FRAME_BYTES]) for i in range(0, len(data), FRAME_BYTES)]
        return cls(data, label, voiced)

    def trimmed(self) -> "Audio":
        """The same audio without silent frames at either end (espeak-ng pads its output)."""
        v = [i for i, x in enumerate(self.voiced) if x]
        if not v:
            return self
        a, b = v[0] * FRAME_BYTES, (v[-1] + 1) * FRAME_BYTES
        return Audio(self.data[a:b], self.label, self.voiced[v[0]:v[-1] + 1])

    @property
    def frames(self) -> int:
        return len(self.data) // FRAME_BYTES

    @property
    def duration_ms(self) -> int:
        return len(self.data) // BYTES_PER_MS


_audio_cache: Dict[Tuple, "asyncio.Future[Audio]"] = {}


async def _run_tool(argv: List[str]) -> bytes:
    if shutil.which(argv[0]) is None:
        raise SimError(f"{argv[0]} is not installed (Debian package {argv[0]})")
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise SimError(f"{argv[0]} failed ({proc.returncode}): {err.decode(errors='replace').strip()[:300]}")
    return out


async def _sox_to_ulaw(path: str) -> bytes:
    # -c 1 mixes channels down; sox resamples with its own high-quality rate converter.
    return await _run_tool(["sox", "-V1", path, "-t", "raw", "-e", "mu-law", "-b", "8",
                            "-r", str(SAMPLE_RATE), "-c", "1", "-"])


async def _cached(key: Tuple, make) -> Audio:
    fut = _audio_cache.get(key)
    if fut is None:
        fut = asyncio.get_running_loop().create_task(make())
        _audio_cache[key] = fut
    try:
        return await asyncio.shield(fut)
    except Exception:
        _audio_cache.pop(key, None)
        raise


async def load_wav(path: str) -> Audio:
    """Any audio file sox reads (WAV of any rate/width/channels) as caller audio."""
    st = os.stat(path)
    label = os.path.basename(path)

    async def make() -> Audio:
        return Audio.from_ulaw(await _sox_to_ulaw(path), label)
    return await _cached(("wav", os.path.abspath(path), st.st_mtime_ns, st.st_size), make)


async def synthesize(text: str, voice: str = "en-us", rate: int = 165) -> Audio:
    """Speech for text from espeak-ng (`espeak-ng -w`), converted to 8 kHz mu-law by sox."""
    async def make() -> Audio:
        with tempfile.TemporaryDirectory(prefix="twilio-sim-") as d:
            wav = os.path.join(d, "say.wav")
            await _run_tool(["espeak-ng", "-v", voice, "-s", str(int(rate)), "-w", wav, "--", text])
            return Audio.from_ulaw(await _sox_to_ulaw(wav), text[:40]).trimmed()
    return await _cached(("say", text, voice, int(rate)), make)


# ----------------------------------------------------------------------------------------------
# TwiML: fetch like Twilio (signed form POST of the voice webhook parameters) and parse.

@dataclass
class Twiml:
    stream_url: str
    parameters: Dict[str, str]
    bidirectional: bool          # <Connect><Stream> (True) or <Start><Stream> (False)
    stream_name: Optional[str] = None
    status_callback: Optional[str] = None
    problems: List[str] = field(default_factory=list)   # things Twilio would reject or ignore
    raw: str = ""


def parse_twiml(text: str, base_url: Optional[str] = None) -> Twiml:
    """Finds the <Stream> in a TwiML document; a relative url is resolved against base_url."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise SimError(f"TwiML is not well-formed XML: {e}")
    if root.tag != "Response":
        raise SimError(f"TwiML root is <{root.tag}>, not <Response>")
    verbs = [child.tag for child in root]
    for verb in root:
        if verb.tag not in ("Connect", "Start"):
            continue
        stream = verb.find("Stream")
        if stream is None:
            continue
        url = stream.get("url")
        if not url:
            raise SimError("<Stream> has no url attribute")
        problems = []
        if base_url and not urllib.parse.urlsplit(url).scheme:
            b = urllib.parse.urlsplit(base_url)
            scheme = {"https": "wss", "http": "ws"}.get(b.scheme, b.scheme)
            url = urllib.parse.urljoin(urllib.parse.urlunsplit((scheme, b.netloc, b.path, "", "")), url)
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "wss":
            problems.append(f"stream url scheme is {parts.scheme!r}; Twilio only connects to wss")
        if parts.query:
            problems.append("stream url has a query string; Twilio does not support it")
        params: Dict[str, str] = {}
        for p in stream.findall("Parameter"):
            name, value = p.get("name"), p.get("value", "")
            if not name:
                problems.append("<Parameter> without a name")
                continue
            if len(name) + len(value) >= 500:
                problems.append(f"<Parameter name={name!r}>: name+value is {len(name) + len(value)} chars (limit 500)")
            params[name] = value
        return Twiml(url, params, verb.tag == "Connect", stream.get("name"),
                     stream.get("statusCallback"), problems, text)
    raise SimError(f"TwiML has no <Connect><Stream> or <Start><Stream> (verbs: {verbs})")


def webhook_params(call_sid: str, account_sid: str, from_number: str, to_number: str,
                   direction: str = "inbound", call_status: str = "ringing",
                   extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    """Form parameters of a Twilio voice webhook request (protocols.md §3.5)."""
    p = {
        "AccountSid": account_sid, "ApiVersion": "2010-04-01", "CallSid": call_sid,
        "CallStatus": call_status, "Called": to_number, "CalledCity": "", "CalledCountry": "US",
        "CalledState": "", "CalledZip": "", "Caller": from_number, "CallerCity": "",
        "CallerCountry": "US", "CallerState": "", "CallerZip": "", "Direction": direction,
        "From": from_number, "FromCity": "", "FromCountry": "US", "FromState": "", "FromZip": "",
        "To": to_number, "ToCity": "", "ToCountry": "US", "ToState": "", "ToZip": "",
    }
    p.update(extra or {})
    return p


def public_url_for(actual_url: str, public_base_url: Optional[str]) -> str:
    """The URL Twilio would have requested: public base (scheme://host[:port][/prefix]) + path."""
    if not public_base_url:
        return actual_url
    a = urllib.parse.urlsplit(actual_url)
    b = urllib.parse.urlsplit(public_base_url)
    path = b.path.rstrip("/") + a.path
    return urllib.parse.urlunsplit((b.scheme, b.netloc, path, a.query, ""))


def _check_loopback(host: str) -> None:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as e:
        raise SimError(f"cannot resolve {host}: {e}")
    for info in infos:
        if not ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback:
            raise SimError(f"{host} is not a loopback address; the simulator only talks to loopback "
                           f"(map public URLs with --connect HOST:PORT)")


def _tls_context(cafile: Optional[str]) -> ssl.SSLContext:
    if cafile:
        return ssl.create_default_context(cafile=cafile)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False          # loopback test certificates are self-signed
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _http_post(url: str, body: bytes, headers: Dict[str, str], timeout: float,
               cafile: Optional[str]) -> Tuple[int, Dict[str, str], bytes]:
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(u.hostname, u.port or 443, timeout=timeout,
                                           context=_tls_context(cafile))
    elif u.scheme == "http":
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    else:
        raise SimError(f"TwiML url must be http(s): {url}")
    try:
        path = (u.path or "/") + ("?" + u.query if u.query else "")
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read(1 << 20)
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


async def fetch_twiml(url: str, params: Dict[str, str], auth_token: str,
                      public_base_url: Optional[str] = None, timeout: float = 10.0,
                      cafile: Optional[str] = None, sign: bool = True) -> Twiml:
    """POSTs the voice webhook like Twilio (signed for the public URL) and parses the TwiML."""
    host = urllib.parse.urlsplit(url).hostname or ""
    _check_loopback(host)
    signed_url = public_url_for(url, public_base_url)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "User-Agent": WEBHOOK_USER_AGENT,
        "Accept": "*/*",
        "I-Twilio-Idempotency-Token": secrets.token_hex(16),
    }
    if sign:
        headers["X-Twilio-Signature"] = twilio_signature(auth_token, signed_url, params)
    body = urllib.parse.urlencode(params).encode()
    try:
        status, rh, data = await asyncio.to_thread(_http_post, url, body, headers, timeout, cafile)
    except (OSError, http.client.HTTPException) as e:
        raise SimError(f"TwiML fetch from {url} failed: {e}")
    if status != 200:
        raise SimError(f"TwiML fetch from {url}: HTTP {status}: {data[:200].decode(errors='replace')}")
    ctype = rh.get("content-type", "")
    tw = parse_twiml(data.decode("utf-8", errors="replace"), signed_url)
    if "xml" not in ctype:
        tw.problems.append(f"TwiML Content-Type is {ctype!r}, expected text/xml or application/xml")
    return tw


# ----------------------------------------------------------------------------------------------
# One call.

@dataclass
class CallConfig:
    """Everything one simulated call needs. Either twiml_url or stream_url must be set."""
    auth_token: str = DEFAULT_AUTH_TOKEN
    twiml_url: Optional[str] = None           # actual local URL of the voice webhook
    public_base_url: Optional[str] = None     # what Twilio would have used (signing only)
    webhook_extra: Dict[str, str] = field(default_factory=dict)
    stream_url: Optional[str] = None          # used when twiml_url is None
    parameters: Dict[str, str] = field(default_factory=dict)   # customParameters then
    connect: Optional[Tuple[str, int]] = None # actual address to connect to (loopback)
    tls: bool = False                         # TLS to the connect address (e.g. HAProxy)
    cafile: Optional[str] = None
    sign: bool = True                         # send X-Twilio-Signature
    sign_url: Optional[str] = None            # URL to sign for the upgrade (default: stream url)
    user_agent: str = DEFAULT_USER_AGENT
    account_sid: Optional[str] = None         # default: random AC…
    call_sid: Optional[str] = None            # default: random CA…
    stream_sid: Optional[str] = None          # default: random MZ…
    from_number: str = "+15005550006"
    to_number: str = "+15005550001"
    direction: str = "inbound"
    call_status: str = "ringing"
    script: Optional[Dict[str, Any]] = None   # see README-twilio-sim.md; None = stay silent
    dtmf: List[Tuple[int, str]] = field(default_factory=list)  # (stream ms, digits)
    hangup_after_ms: Optional[int] = None     # hang up at this stream time whatever happens
    max_duration_ms: int = 300_000
    hangup_mode: str = "stop"                 # stop (stop + close), close (close only), abort (TCP)
    ai_timeout_ms: int = 10_000               # how long a turn waits for the AI to answer
    response_gap_ms: int = 700                # idle playback this long separates two responses
    barge_in_at_ms: Optional[int] = None      # fixed "caller talks over the AI" stream time
    record_path: Optional[str] = None
    open_timeout: float = 10.0
    label: str = ""
    keep_events: bool = False                 # keep a log of non-media events in the report


class _Utterance:
    """Caller audio queued for sending, with the stream times at which it really went out."""

    def __init__(self, audio: Audio, kind: str):
        self.audio = audio
        self.kind = kind
        self.pos = 0
        self.start_t: Optional[float] = None
        self.voice_start_t: Optional[float] = None
        self.voice_end_t: Optional[float] = None
        self.end_t: Optional[float] = None
        self.done = asyncio.get_running_loop().create_future()


class _Response:
    """One burst of server audio (an AI response), as the playback buffer saw it."""

    def __init__(self, start_t: float, latency: Optional[float]):
        self.start_t = start_t
        self.latency = latency
        self.bytes = 0
        self.underruns: List[float] = []
        self.cleared = False
        self.cleared_bytes = 0


class SimCall:
    """One simulated Twilio call. Create, `await start()`, script it, `await hangup()`, `report()`.

    All times in reports are milliseconds of stream time: 0 is the moment `start` was sent, and
    media frame k (timestamp k*20) is due at k*20 ms. Use from one asyncio loop only.
    """

    def __init__(self, cfg: CallConfig):
        self.cfg = cfg
        self.account_sid = cfg.account_sid or new_sid("AC")
        self.call_sid = cfg.call_sid or new_sid("CA")
        self.stream_sid = cfg.stream_sid or new_sid("MZ")
        self.log = log
        self.label = cfg.label or self.call_sid[:12]
        self.twiml: Optional[Twiml] = None
        self.stream_url: Optional[str] = None
        self.parameters: Dict[str, str] = dict(cfg.parameters)
        self.bidirectional = True
        self.ws = None
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.t0: Optional[float] = None
        self.end_t: Optional[float] = None
        self.ended_by: Optional[str] = None
        self.error: Optional[str] = None
        self.close_code: Optional[int] = None
        self.close_reason: Optional[str] = None
        self.closed = False
        self._ending = False
        self._tasks: List[asyncio.Task] = []
        self._ticker_task: Optional[asyncio.Task] = None
        self._sendq: "asyncio.Queue" = None
        self._seq = 0
        self._tick_fut: Optional[asyncio.Future] = None
        self._closed_event: Optional[asyncio.Event] = None
        # sending
        self.frames_sent = 0
        self.voiced_frames_sent = 0
        self.frames_dropped = 0
        self.late_frames = 0
        self.late_max = 0.0
        self.dtmf_sent = 0
        self.messages_sent = 0
        self._queue: "collections.deque[_Utterance]" = collections.deque()
        self._current: Optional[_Utterance] = None
        self.utterances: List[_Utterance] = []
        self._last_voiced_t: Optional[float] = None
        self._last_caller_end: Optional[float] = None   # last frame of the last utterance sent
        self._last_speech_end: Optional[float] = None   # its last voiced frame
        # receiving and playback; positions are in samples (bytes) of stream time
        self.received_by_event: "collections.Counter[str]" = collections.Counter()
        self.messages_received = 0
        self.media_received = 0
        self.media_bytes = 0
        self.play_end = 0
        self.cleared_bytes = 0
        self.responses: List[_Response] = []
        self._last_media_t: Optional[float] = None
        self._cleared_since_media = False
        self._voiced_since_media = False
        self.marks_received = 0
        self.marks: List[Dict[str, Any]] = []      # name, received_ms, echoed_ms, how
        self._pending_marks: "collections.deque[Tuple[int, Dict[str, Any]]]" = collections.deque()
        self._mark_timer: Optional[asyncio.TimerHandle] = None
        self.clear_times: List[float] = []
        self.violations: "collections.Counter[str]" = collections.Counter()
        self.warnings: "collections.Counter[str]" = collections.Counter()
        self.examples: List[Dict[str, Any]] = []
        self.events: List[Dict[str, Any]] = []
        self.barge_ins: List[Dict[str, Any]] = []
        self.turns: List[Dict[str, Any]] = []
        self._left = bytearray() if cfg.record_path else None
        self._right = bytearray() if cfg.record_path else None

    # -- time -----------------------------------------------------------------------------------

    def _ms(self, t: Optional[float]) -> Optional[float]:
        return None if t is None or self.t0 is None else round((t - self.t0) * 1000.0, 1)

    @property
    def now_ms(self) -> float:
        return (self.loop.time() - self.t0) * 1000.0

    def _sample(self, t: float) -> int:
        return int((t - self.t0) * SAMPLE_RATE + 0.5)

    @property
    def playing(self) -> bool:
        """True while audio the server sent is still being played to the caller."""
        return self.play_end > self._sample(self.loop.time())

    @property
    def caller_speaking(self) -> bool:
        return self._current is not None or bool(self._queue)

    def _event(self, direction: str, event: str, **info) -> None:
        if self.cfg.keep_events and len(self.events) < 5000:
            self.events.append({"t_ms": self._ms(self.loop.time()), "dir": direction, "event": event, **info})

    def _violation(self, kind: str, raw: Any) -> None:
        self.violations[kind] += 1
        if len(self.examples) < MAX_EXAMPLES:    # the first few are shown and logged, all counted
            text = raw if isinstance(raw, str) else repr(raw)
            self.examples.append({"t_ms": self._ms(self.loop.time()), "kind": kind, "message": text[:200]})
            self.log.warning("%s: protocol violation %s: %.120s", self.label, kind, text)

    # -- set-up ---------------------------------------------------------------------------------

    async def __aenter__(self) -> "SimCall":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        if self.loop is not None and self._sendq is not None:
            await self.hangup("script_end")

    async def start(self) -> None:
        """Fetches TwiML (if configured), connects, sends connected + start, starts streaming."""
        self.loop = asyncio.get_running_loop()
        cfg = self.cfg
        if cfg.twiml_url:
            params = webhook_params(self.call_sid, self.account_sid, cfg.from_number, cfg.to_number,
                                    cfg.direction, cfg.call_status, cfg.webhook_extra)
            self.twiml = await fetch_twiml(cfg.twiml_url, params, cfg.auth_token, cfg.public_base_url,
                                           cafile=cfg.cafile, sign=cfg.sign)
            for p in self.twiml.problems:
                self._violation("twiml_problem", p)
            self.stream_url = self.twiml.stream_url
            self.parameters = dict(self.twiml.parameters)
            self.bidirectional = self.twiml.bidirectional
        elif cfg.stream_url:
            self.stream_url = cfg.stream_url
        else:
            raise SimError("no stream url: give twiml_url or stream_url")

        wsuri = urllib.parse.urlsplit(self.stream_url)
        if wsuri.scheme not in ("ws", "wss") or not wsuri.hostname:
            raise SimError(f"stream url must be ws:// or wss://: {self.stream_url}")
        if cfg.connect:
            host, port = cfg.connect
        elif _is_loopback_name(wsuri.hostname):
            host, port = wsuri.hostname, wsuri.port or (443 if wsuri.scheme == "wss" else 80)
        elif cfg.twiml_url:
            t = urllib.parse.urlsplit(cfg.twiml_url)
            host, port = t.hostname, t.port or (443 if t.scheme == "https" else 80)
        else:
            raise SimError(f"{wsuri.hostname} is public; say where to connect with --connect HOST:PORT")
        _check_loopback(host)
        self.connect_addr = (host, port)

        uri = self.stream_url
        kwargs: Dict[str, Any] = {"host": host, "port": port}
        if cfg.tls:
            if wsuri.scheme == "ws":      # websockets ties TLS to the scheme; Host stays the same
                uri = urllib.parse.urlunsplit(("wss",) + tuple(wsuri)[1:])
            kwargs["ssl"] = _tls_context(cfg.cafile)
            kwargs["server_hostname"] = wsuri.hostname
        else:
            kwargs["ssl"] = None          # plain TCP to the local address, even for a wss:// URL
        headers = []
        if cfg.sign:
            headers.append(("X-Twilio-Signature",
                            twilio_signature(cfg.auth_token, cfg.sign_url or self.stream_url)))
        try:
            self.ws = await websockets.connect(
                uri, extra_headers=headers, user_agent_header=cfg.user_agent, compression=None,
                open_timeout=cfg.open_timeout, ping_interval=None, close_timeout=2,
                max_size=MAX_MESSAGE_BYTES, max_queue=256, **kwargs)
        except websockets.exceptions.InvalidStatusCode as e:
            raise SimError(f"WebSocket upgrade to {self.stream_url} via {host}:{port} refused: HTTP {e.status_code}")
        except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as e:
            raise SimError(f"WebSocket connect to {self.stream_url} via {host}:{port} failed: {e!r}")

        self._sendq = asyncio.Queue()
        self._closed_event = asyncio.Event()
        self._tick_fut = self.loop.create_future()
        self._send(("connected",))
        self.t0 = self.loop.time()
        self._last_caller_end = self._last_speech_end = self.t0
        self._send(("start",))
        self._event("out", "start")
        self._tasks.append(self.loop.create_task(self._writer()))
        self._tasks.append(self.loop.create_task(self._receiver()))
        self._ticker_task = self.loop.create_task(self._ticker())
        self._tasks.append(self._ticker_task)
        self.log.info("%s: connected to %s via %s:%d", self.label, self.stream_url, host, port)

    # -- sending --------------------------------------------------------------------------------

    def _send(self, item: Tuple) -> None:
        self._sendq.put_nowait(item)

    def _build(self, item: Tuple) -> str:
        """Builds the text of one outgoing message; sequence numbers are given in wire order."""
        kind = item[0]
        if kind == "connected":
            return _compact({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        self._seq += 1
        seq = str(self._seq)
        if kind == "media":
            _, k, payload_b64 = item
            return ('{"event":"media","sequenceNumber":"%s","streamSid":"%s","media":{"track":"inbound",'
                    '"chunk":"%d","timestamp":"%d","payload":"%s"}}'
                    % (seq, self.stream_sid, k + 1, k * FRAME_MS, payload_b64))
        if kind == "start":
            return _compact({
                "event": "start", "sequenceNumber": seq, "streamSid": self.stream_sid,
                "start": {"streamSid": self.stream_sid, "accountSid": self.account_sid,
                          "callSid": self.call_sid, "tracks": ["inbound"],
                          "customParameters": self.parameters,
                          "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": SAMPLE_RATE,
                                          "channels": 1}}})
        if kind == "mark":
            return _compact({"event": "mark", "sequenceNumber": seq, "streamSid": self.stream_sid,
                               "mark": {"name": item[1]}})
        if kind == "dtmf":
            return _compact({"event": "dtmf", "streamSid": self.stream_sid, "sequenceNumber": seq,
                               "dtmf": {"track": "inbound_track", "digit": item[1]}})
        if kind == "stop":
            return _compact({"event": "stop", "sequenceNumber": seq, "streamSid": self.stream_sid,
                               "stop": {"accountSid": self.account_sid, "callSid": self.call_sid}})
        raise ValueError(kind)

    async def _writer(self) -> None:
        """The only task that writes to the socket, so sequence numbers go out in order."""
        try:
            while True:
                item = await self._sendq.get()
                try:
                    await self.ws.send(self._build(item))
                    self.messages_sent += 1
                finally:
                    self._sendq.task_done()
        except websockets.exceptions.ConnectionClosed:
            while not self._sendq.empty():     # let a pending join() finish
                self._sendq.get_nowait()
                self._sendq.task_done()

    def _next_frame(self, now: float) -> Tuple[bytes, bool]:
        if self._current is None and self._queue:
            self._current = self._queue.popleft()
        u = self._current
        if u is None:
            return SILENCE_FRAME, False
        i = u.pos // FRAME_BYTES
        frame = u.audio.data[u.pos:u.pos + FRAME_BYTES]
        voiced = u.audio.voiced[i]
        if u.pos == 0:
            u.start_t = now
        if voiced:
            if u.voice_start_t is None:
                u.voice_start_t = now
            u.voice_end_t = now
        u.pos += FRAME_BYTES
        if u.pos >= len(u.audio.data):
            u.end_t = now
            self._last_caller_end = now
            self._last_speech_end = u.voice_end_t or now
            self._current = None
            if not u.done.done():
                u.done.set_result(u)
        return frame, voiced

    async def _ticker(self) -> None:
        """Sends one 20 ms media frame per deadline t0 + k*20 ms (no drift, catches up if late)."""
        k = 0
        silence_b64 = SILENCE_FRAME_B64
        try:
            # Let whoever started the call queue audio due at 0 ms before frame 0 goes out.
            await asyncio.sleep(0)
            while True:
                deadline = self.t0 + k * FRAME_S
                delay = deadline - self.loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                now = self.loop.time()
                late = now - deadline
                if late > 0.005:
                    self.late_frames += 1
                self.late_max = max(self.late_max, late)
                frame, voiced = self._next_frame(now)
                if voiced:
                    self.voiced_frames_sent += 1
                    self._last_voiced_t = now
                    self._voiced_since_media = True
                if self._left is not None:
                    self._left += frame
                if self._sendq.qsize() >= SEND_QUEUE_LIMIT:
                    self.frames_dropped += 1        # Twilio drops audio to a congested socket
                else:
                    b64 = silence_b64 if frame is SILENCE_FRAME else base64.b64encode(frame).decode("ascii")
                    self._send(("media", k, b64))
                self.frames_sent += 1
                k += 1
                fut, self._tick_fut = self._tick_fut, self.loop.create_future()
                fut.set_result(None)
        except asyncio.CancelledError:
            pass

    # -- receiving ------------------------------------------------------------------------------

    async def _receiver(self) -> None:
        try:
            async for raw in self.ws:
                if self._ending:
                    continue
                try:
                    self._on_message(raw)
                except Exception as e:    # a bug here must not look like a server fault
                    self.log.exception("%s: internal error handling a message", self.label)
                    self.error = f"internal error: {e!r}"
        except websockets.exceptions.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.close_reason = self.ws.close_reason
            if self.close_code == 1009:
                self._violation("message_too_big", f"server message over {MAX_MESSAGE_BYTES} bytes")
            self._on_closed()

    def _on_closed(self) -> None:
        if self.closed:
            return
        self.closed = True
        now = self.loop.time()
        if self.end_t is None:
            self.end_t = now
        if self.ended_by is None:
            self.ended_by = "server_close"
        self._event("in", "close", code=self.close_code)
        if self._ticker_task is not None:
            self._ticker_task.cancel()
        if self._mark_timer:
            self._mark_timer.cancel()
            self._mark_timer = None
        self._closed_event.set()
        if not self._tick_fut.done():
            self._tick_fut.set_result(None)
        for u in list(self._queue) + ([self._current] if self._current else []):
            if not u.done.done():
                u.done.set_exception(CallEnded())
                u.done.exception()    # retrieved: nobody may be waiting for it

    def _on_message(self, raw) -> None:
        now = self.loop.time()
        self.messages_received += 1
        if isinstance(raw, bytes):
            self.received_by_event["(binary)"] += 1
            return self._violation("binary_frame", raw[:60])
        try:
            msg = json.loads(raw)
        except ValueError:
            self.received_by_event["(invalid)"] += 1
            return self._violation("invalid_json", raw)
        if not isinstance(msg, dict) or not isinstance(msg.get("event"), str):
            self.received_by_event["(invalid)"] += 1
            return self._violation("no_event", raw)
        event = msg["event"]
        self.received_by_event[event] += 1
        if not self.bidirectional:
            return self._violation("message_on_unidirectional_stream", raw)
        if event not in ("media", "mark", "clear"):
            return self._violation("unknown_event", raw)
        sid = msg.get("streamSid")
        if sid is None:
            return self._violation("stream_sid_missing", raw)
        if sid != self.stream_sid:
            return self._violation("stream_sid_mismatch", raw)
        if event == "media":
            media = msg.get("media")
            payload = media.get("payload") if isinstance(media, dict) else None
            if not isinstance(payload, str):
                return self._violation("media_without_payload", raw)
            try:
                data = binascii.a2b_base64(payload.encode("ascii"), strict_mode=True)
            except (binascii.Error, ValueError, UnicodeEncodeError):
                return self._violation("bad_base64", raw)
            if base64.b64encode(data).decode("ascii") != payload:
                self.warnings["base64_noncanonical"] += 1
            if not data:
                self.warnings["empty_payload"] += 1
                return
            if len(data) % FRAME_BYTES:
                self.warnings["non_frame_payloads"] += 1
            self._on_media(data, now)
        elif event == "mark":
            mark = msg.get("mark")
            name = mark.get("name") if isinstance(mark, dict) else None
            if not isinstance(name, str):
                return self._violation("mark_without_name", raw)
            self._on_mark(name, now)
        else:
            self._on_clear(now)

    def _on_media(self, data: bytes, now: float) -> None:
        self.media_received += 1
        self.media_bytes += len(data)
        now_s = self._sample(now)
        if self.play_end <= now_s:                      # the playback buffer had run dry
            gap = now_s - self.play_end
            new = (not self.responses or self._cleared_since_media or self._voiced_since_media
                   or gap >= self.cfg.response_gap_ms * BYTES_PER_MS)
            if new:
                latency = None
                if self._last_voiced_t is not None:
                    latency = now - self._last_voiced_t
                self.responses.append(_Response(now, latency))
                self._event("in", "response_start", latency_ms=None if latency is None else round(latency * 1000, 1))
            elif gap >= BYTES_PER_MS:                   # audible gap (>= 1 ms) inside a response
                self.responses[-1].underruns.append(gap / BYTES_PER_MS)
            start = now_s
        else:
            start = self.play_end
        if self._right is not None:
            end = start + len(data)
            if len(self._right) < start:
                self._right += bytes([SILENCE]) * (start - len(self._right))
            self._right[start:end] = data
        self.play_end = start + len(data)
        self.responses[-1].bytes += len(data)
        self._last_media_t = now
        self._cleared_since_media = False
        self._voiced_since_media = False

    def _on_mark(self, name: str, now: float) -> None:
        self.marks_received += 1
        rec = {"name": name, "received_ms": self._ms(now), "echoed_ms": None, "how": None}
        self.marks.append(rec)
        self._event("in", "mark", name=name)
        if self.play_end <= self._sample(now) and not self._pending_marks:
            self._echo_mark(rec, "immediate", now)
            return
        self._pending_marks.append((self.play_end, rec))
        self._arm_mark_timer()

    def _arm_mark_timer(self) -> None:
        if self._mark_timer is not None or not self._pending_marks:
            return
        pos = self._pending_marks[0][0]
        self._mark_timer = self.loop.call_at(self.t0 + pos / SAMPLE_RATE, self._marks_due)

    def _marks_due(self) -> None:
        self._mark_timer = None
        if self.closed or self._ending:
            return
        now = self.loop.time()
        limit = self._sample(now) + BYTES_PER_MS       # the loop may wake up to 1 ms early
        while self._pending_marks and self._pending_marks[0][0] <= limit:
            self._echo_mark(self._pending_marks.popleft()[1], "played", now)
        self._arm_mark_timer()

    def _echo_mark(self, rec: Dict[str, Any], how: str, now: float) -> None:
        rec["echoed_ms"] = self._ms(now)
        rec["how"] = how
        self._send(("mark", rec["name"]))
        self._event("out", "mark", name=rec["name"], how=how)

    def _on_clear(self, now: float) -> None:
        now_s = self._sample(now)
        self.clear_times.append(now)
        self._event("in", "clear")
        if self.play_end > now_s:
            dropped = self.play_end - now_s
            self.cleared_bytes += dropped
            if self.responses:
                self.responses[-1].cleared = True
                self.responses[-1].cleared_bytes += dropped
            if self._right is not None:
                end = min(self.play_end, len(self._right))
                if end > now_s:
                    self._right[now_s:end] = bytes([SILENCE]) * (end - now_s)
            self.play_end = now_s
        self._cleared_since_media = True
        if self._mark_timer:
            self._mark_timer.cancel()
            self._mark_timer = None
        while self._pending_marks:
            self._echo_mark(self._pending_marks.popleft()[1], "clear", now)

    # -- scripting API --------------------------------------------------------------------------

    async def tick(self) -> None:
        """Waits for the next 20 ms media tick; raises CallEnded once the call is over."""
        if self.closed or self._ending:
            raise CallEnded()
        await asyncio.shield(self._tick_fut)
        if self.closed or self._ending:
            raise CallEnded()

    async def sleep_until_ms(self, ms: float) -> None:
        delay = self.t0 + ms / 1000.0 - self.loop.time()
        if delay > 0:
            await self._wait_or_end(asyncio.sleep(delay))

    async def _wait_or_end(self, aw) -> Any:
        task = asyncio.ensure_future(aw)
        closed = asyncio.ensure_future(self._closed_event.wait())
        try:
            done, _ = await asyncio.wait({task, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
        if task in done:
            return task.result()
        task.cancel()
        raise CallEnded()

    def enqueue(self, audio: Audio, kind: str = "say", front: bool = False) -> _Utterance:
        """Queues caller audio to be streamed after what is queued (or first, if front)."""
        u = _Utterance(audio, kind)
        if self.closed or self._ending:
            u.done.set_exception(CallEnded())
            u.done.exception()
            return u
        (self._queue.appendleft if front else self._queue.append)(u)
        self.utterances.append(u)
        return u

    async def play(self, audio: Audio, kind: str = "say", front: bool = False, wait: bool = True) -> _Utterance:
        """Streams audio as the caller's speech; with wait, returns when its last frame was sent."""
        u = self.enqueue(audio, kind, front)
        if wait:
            await asyncio.shield(u.done)
        return u

    async def say(self, text: str, voice: str = "en-us", rate: int = 165, wait: bool = True) -> _Utterance:
        return await self.play(await synthesize(text, voice, rate), "say", wait=wait)

    async def play_wav(self, path: str, wait: bool = True) -> _Utterance:
        return await self.play(await load_wav(path), "wav", wait=wait)

    async def send_dtmf(self, digits: str, gap_ms: int = 200) -> None:
        """Sends one `dtmf` event per digit, gap_ms apart (as key presses arrive)."""
        for i, d in enumerate(digits):
            if d not in "0123456789*#":
                raise SimError(f"bad DTMF digit {d!r}")
            if i:
                await self._wait_or_end(asyncio.sleep(gap_ms / 1000.0))
            if self.closed or self._ending:
                raise CallEnded()
            self._send(("dtmf", d))
            self.dtmf_sent += 1
            self._event("out", "dtmf", digit=d)

    async def wait_ai_reply(self, after_ms: int = 1000, timeout_ms: Optional[int] = None) -> bool:
        """Turn-taking: waits until the AI has sent audio since the caller's last voiced frame,
        that audio has finished playing, the caller is not speaking, and after_ms more passed
        with nothing playing. False on timeout (no AI audio within timeout_ms)."""
        timeout_ms = self.cfg.ai_timeout_ms if timeout_ms is None else timeout_ms
        started = self.loop.time()
        while True:
            if self.closed or self._ending:
                raise CallEnded()
            now = self.loop.time()
            if not self.caller_speaking:
                since = self._last_speech_end
                if self._last_media_t is not None and self._last_media_t > since:
                    target = max(self.t0 + self.play_end / SAMPLE_RATE, self._last_media_t) + after_ms / 1000.0
                    if now >= target:
                        return True
                    # Sleep to the exact moment, then look again: more audio may have come.
                    await self._wait_or_end(asyncio.sleep(target - now))
                    continue
                if now - started >= timeout_ms / 1000.0:
                    return False
            await self.tick()

    async def wait_response(self, after_t: float, timeout_ms: Optional[int] = None) -> Optional[_Response]:
        """Waits for an AI response that starts after loop time after_t."""
        timeout_ms = self.cfg.ai_timeout_ms if timeout_ms is None else timeout_ms
        end = self.loop.time() + timeout_ms / 1000.0
        while True:
            for r in self.responses:
                if r.start_t > after_t:
                    return r
            if self.loop.time() >= end:
                return None
            await self.tick()

    async def wait_closed(self) -> None:
        await self._closed_event.wait()

    # -- ending ---------------------------------------------------------------------------------

    async def hangup(self, reason: str = "hangup", mode: Optional[str] = None) -> None:
        """Ends the call as Twilio does (stop, then close), unless the server closed it first."""
        if self._ending:
            return
        self._ending = True
        mode = mode or self.cfg.hangup_mode
        if self.end_t is None:
            self.end_t = self.loop.time()
        if self.ended_by is None:
            self.ended_by = reason
        if self._ticker_task is not None:
            self._ticker_task.cancel()
        if self._mark_timer:
            self._mark_timer.cancel()
            self._mark_timer = None
        if not self._tick_fut.done():
            self._tick_fut.set_result(None)
        if not self.closed:
            try:
                if mode == "stop":
                    self._send(("stop",))
                    self._event("out", "stop")
                    await asyncio.wait_for(self._sendq.join(), 5)
                if mode == "abort":
                    self.ws.transport.abort()
                else:
                    await asyncio.wait_for(self.ws.close(), 5)
            except (asyncio.TimeoutError, websockets.exceptions.ConnectionClosed, OSError):
                pass
        for t in self._tasks:
            if not t.done():
                t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._on_closed()
        if self.cfg.record_path:
            self.write_recording(self.cfg.record_path)

    def write_recording(self, path: str) -> None:
        """Stereo WAV: left = caller audio as sent, right = what the caller heard."""
        n = len(self._left)
        right = bytes(self._right[:n])
        write_stereo_wav(path, bytes(self._left), right)

    # -- report ---------------------------------------------------------------------------------

    def report(self) -> Dict[str, Any]:
        """The call's JSON-ready report (see README-twilio-sim.md for the fields)."""
        end_t = self.end_t or (self.loop.time() if self.loop else None)
        end_s = self._sample(end_t) if self.t0 is not None else 0
        unplayed = max(0, self.play_end - end_s) if self.t0 is not None else 0
        gaps = [g for r in self.responses for g in r.underruns]
        marks_echoed = [m for m in self.marks if m["echoed_ms"] is not None]
        rep: Dict[str, Any] = {
            "label": self.label,
            "ok": self.error is None and not self.violations,
            "error": self.error,
            "call_sid": self.call_sid, "account_sid": self.account_sid, "stream_sid": self.stream_sid,
            "stream_url": self.stream_url,
            "connect": "%s:%d" % self.connect_addr if hasattr(self, "connect_addr") else None,
            "custom_parameters": self.parameters,
            "bidirectional": self.bidirectional,
            "ended_by": self.ended_by,
            "close_code": self.close_code, "close_reason": self.close_reason or None,
            "duration_ms": self._ms(end_t) if self.t0 is not None else 0,
            "sent": {
                "messages": self.messages_sent, "frames": self.frames_sent,
                "bytes": self.frames_sent * FRAME_BYTES, "voiced_frames": self.voiced_frames_sent,
                "frames_dropped": self.frames_dropped, "dtmf": self.dtmf_sent,
                "late_frames": self.late_frames, "late_max_ms": round(self.late_max * 1000, 1),
            },
            "received": {
                "messages": self.messages_received, "by_event": dict(self.received_by_event),
                "media_messages": self.media_received, "media_bytes": self.media_bytes,
                "media_ms": self.media_bytes / BYTES_PER_MS,
                "media_frames": self.media_bytes / FRAME_BYTES,
                "clears": len(self.clear_times),
            },
            "marks": {
                "received": self.marks_received, "echoed": len(marks_echoed),
                "echoed_played": sum(1 for m in marks_echoed if m["how"] == "played"),
                "echoed_immediately": sum(1 for m in marks_echoed if m["how"] == "immediate"),
                "echoed_on_clear": sum(1 for m in marks_echoed if m["how"] == "clear"),
                "pending_at_end": self.marks_received - len(marks_echoed),
                "list": self.marks[:1000],
            },
            "playback": {
                "played_ms": (self.media_bytes - self.cleared_bytes - unplayed) / BYTES_PER_MS,
                "cleared_ms": self.cleared_bytes / BYTES_PER_MS,
                "unplayed_at_end_ms": unplayed / BYTES_PER_MS,
                "underruns": len(gaps), "underrun_ms": round(sum(gaps), 1),
                "gaps_ms": [round(g, 1) for g in gaps[:200]],
            },
            "responses": [{
                "start_ms": self._ms(r.start_t),
                "first_audio_latency_ms": None if r.latency is None else round(r.latency * 1000, 1),
                "audio_ms": r.bytes / BYTES_PER_MS, "cleared": r.cleared,
                "cleared_ms": r.cleared_bytes / BYTES_PER_MS,
                "underruns": len(r.underruns), "underrun_ms": round(sum(r.underruns), 1),
            } for r in self.responses[:500]],
            "turns": self.turns,
            "barge_in": [self._barge_in_report(b) for b in self.barge_ins],
            "violations": {"count": sum(self.violations.values()), "by_kind": dict(self.violations),
                           "examples": self.examples},
            "warnings": dict(self.warnings),
        }
        if self.cfg.barge_in_at_ms is not None:
            at = self.t0 + self.cfg.barge_in_at_ms / 1000.0 if self.t0 is not None else None
            clear = next((c for c in self.clear_times if at is not None and c >= at), None)
            rep["barge_in_fixed"] = {
                "at_ms": self.cfg.barge_in_at_ms, "clear_ms": self._ms(clear),
                "clear_latency_ms": None if clear is None else round((clear - at) * 1000, 1)}
        if self.twiml is not None:
            rep["twiml"] = {"stream_url": self.twiml.stream_url, "stream_name": self.twiml.stream_name,
                            "status_callback": self.twiml.status_callback,
                            "problems": self.twiml.problems}
        if self.cfg.keep_events:
            rep["events"] = self.events
        return rep

    def _barge_in_report(self, b: Dict[str, Any]) -> Dict[str, Any]:
        u: Optional[_Utterance] = b.get("utterance")
        start = u.start_t if u else None
        voice = u.voice_start_t if u else None
        clear = next((c for c in self.clear_times if start is not None and c >= start), None)
        return {
            "after_turn": b["after_turn"], "at_ms": b["at_ms"], "done": start is not None,
            "response_start_ms": self._ms(b.get("response_start_t")),
            "ai_playing": b.get("ai_playing"),
            "utterance_start_ms": self._ms(start), "voice_start_ms": self._ms(voice),
            "clear_ms": self._ms(clear),
            "clear_latency_ms": None if clear is None else round((clear - start) * 1000, 1),
            "clear_latency_from_voice_ms": None if clear is None or voice is None
            else round((clear - voice) * 1000, 1),
        }


def _is_loopback_name(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# ----------------------------------------------------------------------------------------------
# Scripts: turns of caller speech with turn-taking, barge-ins, hang-up.

def normalize_script(script: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """Checks a script and fills defaults; raises SimError on a bad one."""
    s = dict(script or {})
    unknown = set(s) - {"voice", "rate", "ai_timeout_ms", "turns", "barge_in", "hangup"}
    if unknown:
        raise SimError(f"script: unknown keys {sorted(unknown)}")
    s.setdefault("voice", "en-us")
    s.setdefault("rate", 165)
    turns = []
    for i, t in enumerate(s.get("turns") or []):
        if not isinstance(t, dict):
            raise SimError(f"script: turn {i + 1} is not an object")
        t = dict(t)
        kinds = [k for k in ("say", "wav", "dtmf", "silence_ms") if k in t]
        if len(kinds) != 1:
            raise SimError(f"script: turn {i + 1} needs exactly one of say, wav, dtmf, silence_ms")
        t.setdefault("wait", "ai")
        if t["wait"] not in ("ai", "fixed"):
            raise SimError(f"script: turn {i + 1}: wait must be 'ai' or 'fixed'")
        t.setdefault("after_ms", 1000 if t["wait"] == "ai" else 0)
        turns.append(t)
    s["turns"] = turns
    b = s.get("barge_in") or []
    if isinstance(b, dict):
        b = [b]
    bis = []
    for j, bi in enumerate(b):
        bi = dict(bi)
        if ("say" in bi) == ("wav" in bi):
            raise SimError(f"script: barge_in {j + 1} needs one of say or wav")
        bi.setdefault("after_turn", 1 if turns else 0)
        bi.setdefault("at_ms", 800)
        if not 0 <= int(bi["after_turn"]) <= len(turns):
            raise SimError(f"script: barge_in {j + 1}: after_turn must be 0..{len(turns)}")
        bis.append(bi)
    s["barge_in"] = bis
    h = dict(s.get("hangup") or {})
    h.setdefault("wait", "ai")
    h.setdefault("after_ms", 1000)
    if h["wait"] not in ("ai", "fixed", "never"):
        raise SimError("script: hangup.wait must be 'ai', 'fixed' or 'never'")
    s["hangup"] = h
    return s


async def prepare_script(script: Dict[str, Any], base_dir: str = ".") -> Dict[Tuple[str, str], Audio]:
    """Synthesises and converts all the script's audio up front (so timing is not disturbed)."""
    out: Dict[Tuple[str, str], Audio] = {}
    items = list(script["turns"]) + list(script["barge_in"])
    for t in items:
        if "say" in t:
            out[("say", t["say"])] = await synthesize(t["say"], script["voice"], script["rate"])
        elif "wav" in t:
            path = t["wav"] if os.path.isabs(t["wav"]) else os.path.join(base_dir, t["wav"])
            out[("wav", t["wav"])] = await load_wav(path)
    return out


async def run_script(call: SimCall, script: Dict[str, Any], audio: Dict[Tuple[str, str], Audio]) -> str:
    """Plays a normalised script on a started call; returns how it wants the call to end."""
    ai_timeout = script.get("ai_timeout_ms")
    turn_ended: List[asyncio.Event] = [asyncio.Event() for _ in script["turns"]]
    turn_end_t: List[Optional[float]] = [None] * len(script["turns"])

    async def barge_in(bi: Dict[str, Any]) -> None:
        rec = {"after_turn": int(bi["after_turn"]), "at_ms": int(bi["at_ms"])}
        call.barge_ins.append(rec)
        k = rec["after_turn"]
        if k == 0:
            ref = call.t0
        else:
            await turn_ended[k - 1].wait()
            ref = turn_end_t[k - 1]         # the turn's last voiced frame
        resp = await call.wait_response(ref, timeout_ms=call.cfg.max_duration_ms)
        if resp is None:
            return
        rec["response_start_t"] = resp.start_t
        await call.sleep_until_ms((resp.start_t - call.t0) * 1000 + rec["at_ms"])
        rec["ai_playing"] = call.playing
        a = audio[("say", bi["say"])] if "say" in bi else audio[("wav", bi["wav"])]
        rec["utterance"] = call.enqueue(a, "barge_in", front=True)

    tasks = [asyncio.ensure_future(barge_in(bi)) for bi in script["barge_in"]]
    try:
        for i, t in enumerate(script["turns"]):
            rec: Dict[str, Any] = {"turn": i + 1, "wait": t["wait"], "after_ms": t["after_ms"]}
            for k in ("say", "wav", "dtmf", "silence_ms"):
                if k in t:
                    rec[k] = t[k]
            call.turns.append(rec)
            if t["wait"] == "ai":
                rec["ai_replied"] = await call.wait_ai_reply(t["after_ms"], ai_timeout)
            else:
                while call.caller_speaking:
                    await call.tick()
                await call.sleep_until_ms((call._last_caller_end - call.t0) * 1000 + t["after_ms"])
            rec["start_ms"] = round(call.now_ms, 1)
            if "dtmf" in t:
                await call.send_dtmf(str(t["dtmf"]))
            elif "silence_ms" in t:
                await call._wait_or_end(asyncio.sleep(int(t["silence_ms"]) / 1000.0))
            else:
                a = audio[("say", t["say"])] if "say" in t else audio[("wav", t["wav"])]
                u = await call.play(a, "turn")
                rec["start_ms"] = call._ms(u.start_t)
                rec["voice_start_ms"] = call._ms(u.voice_start_t)
            rec["end_ms"] = round(call.now_ms, 1)
            turn_end_t[i] = call._last_speech_end if "say" in t or "wav" in t else call.loop.time()
            turn_ended[i].set()
        h = script["hangup"]
        if h["wait"] == "never":
            await call.wait_closed()
            return "server_close"
        if h["wait"] == "ai":
            await call.wait_ai_reply(h["after_ms"], ai_timeout)
        else:
            while call.caller_speaking:
                await call.tick()
            await call.sleep_until_ms((call._last_caller_end - call.t0) * 1000 + h["after_ms"])
        return "script_end"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def run_call(cfg: CallConfig, base_dir: str = ".",
                   driver: Optional[Callable[[SimCall], Awaitable[Any]]] = None) -> Dict[str, Any]:
    """Runs one whole call (TwiML, stream, script, DTMF, hang-up) and returns its report.
    driver, if given, is an async function that plays the caller instead of cfg.script; the call
    hangs up when it returns (the server closing, hangup_after_ms and max_duration_ms still apply)."""
    call = SimCall(cfg)
    try:
        script = normalize_script(cfg.script)
        audio = await prepare_script(script, base_dir)
        await call.start()
    except (SimError, OSError) as e:
        call.error = str(e)
        call.ended_by = "error"
        call.log.error("%s: %s", call.label, e)
        return call.report()

    async def dtmf_at(ms: int, digits: str) -> None:
        await call.sleep_until_ms(ms)
        await call.send_dtmf(digits)

    async def timer(ms: int) -> str:
        await call.sleep_until_ms(ms)
        return "hangup_after"

    async def scripted() -> str:
        if driver is not None:
            await driver(call)
            return "script_end"
        return await run_script(call, script, audio)

    main = {asyncio.ensure_future(scripted()): "script",
            asyncio.ensure_future(call.wait_closed()): "closed",
            asyncio.ensure_future(timer(cfg.max_duration_ms)): "max_duration"}
    if cfg.hangup_after_ms is not None:
        main[asyncio.ensure_future(timer(cfg.hangup_after_ms))] = "hangup_after"
    side = [asyncio.ensure_future(dtmf_at(ms, d)) for ms, d in cfg.dtmf]
    reason = "script_end"
    try:
        done, _ = await asyncio.wait(main, return_when=asyncio.FIRST_COMPLETED)
        for t in done:
            what = main[t]
            exc = t.exception()
            if what == "closed" or isinstance(exc, CallEnded):
                reason = "server_close"
            elif exc is not None:
                call.error = f"script failed: {exc!r}"
                reason = "error"
            elif what == "max_duration":
                reason = "max_duration"
            elif what == "hangup_after":
                reason = "hangup_after"
            else:
                reason = t.result()
            break
    finally:
        for t in list(main) + side:
            t.cancel()
        await asyncio.gather(*main, *side, return_exceptions=True)
        await call.hangup(reason)
    call.log.info("%s: ended (%s) after %.0f ms", call.label, call.ended_by,
                  (call.end_t - call.t0) * 1000)
    return call.report()


def _stats(values: List[float]) -> Optional[Dict[str, float]]:
    v = sorted(x for x in values if x is not None)
    if not v:
        return None

    def pct(p: float) -> float:
        return v[min(len(v) - 1, max(0, math.ceil(p * len(v)) - 1))]
    return {"n": len(v), "min": v[0], "p50": pct(0.5), "p95": pct(0.95), "max": v[-1],
            "mean": round(sum(v) / len(v), 1)}


def summarize(reports: List[Dict[str, Any]]) -> Dict[str, Any]:
    """Totals and latency statistics over many call reports."""
    ok = [r for r in reports if r["ok"]]
    s: Dict[str, Any] = {
        "calls": len(reports), "ok": len(ok), "failed": len(reports) - len(ok),
        "errors": [r["error"] for r in reports if r["error"]][:20],
        "ended_by": dict(collections.Counter(r["ended_by"] for r in reports)),
        "frames_sent": sum(r["sent"]["frames"] for r in reports),
        "frames_dropped": sum(r["sent"]["frames_dropped"] for r in reports),
        "media_messages_received": sum(r["received"]["media_messages"] for r in reports),
        "media_bytes_received": sum(r["received"]["media_bytes"] for r in reports),
        "marks_received": sum(r["marks"]["received"] for r in reports),
        "marks_echoed": sum(r["marks"]["echoed"] for r in reports),
        "clears": sum(r["received"]["clears"] for r in reports),
        "violations": sum(r["violations"]["count"] for r in reports),
        "violations_by_kind": dict(sum((collections.Counter(r["violations"]["by_kind"]) for r in reports),
                                       collections.Counter())),
        "warnings": dict(sum((collections.Counter(r["warnings"]) for r in reports), collections.Counter())),
        "underruns": sum(r["playback"]["underruns"] for r in reports),
        "underrun_ms": round(sum(r["playback"]["underrun_ms"] for r in reports), 1),
        "send_late_max_ms": max([r["sent"]["late_max_ms"] for r in reports] or [0]),
        "first_audio_latency_ms": _stats([x["first_audio_latency_ms"] for r in reports
                                          for x in r["responses"]]),
        "clear_latency_ms": _stats([b["clear_latency_ms"] for r in reports for b in r["barge_in"]]
                                   + [r["barge_in_fixed"]["clear_latency_ms"]
                                      for r in reports if "barge_in_fixed" in r]),
        "duration_ms": _stats([r["duration_ms"] for r in reports]),
    }
    return s


def _numbered(path: Optional[str], i: int, n: int) -> Optional[str]:
    if not path or n == 1:
        return path
    root, ext = os.path.splitext(path)
    return f"{root}-{i + 1:04d}{ext}"


async def run_calls(cfg: CallConfig, n: int = 1, concurrency: Optional[int] = None,
                    ramp_ms: int = 20, base_dir: str = ".") -> Dict[str, Any]:
    """Runs n calls from one template config (fresh SIDs each), at most `concurrency` at once,
    starting one every ramp_ms. Returns {"summary": ..., "calls": [...]}."""
    sem = asyncio.Semaphore(concurrency or min(n, 200))
    account_sid = cfg.account_sid or new_sid("AC")     # one Twilio account places all the calls

    async def one(i: int) -> Dict[str, Any]:
        await asyncio.sleep(i * ramp_ms / 1000.0)
        async with sem:
            c = CallConfig(**{**cfg.__dict__})
            c.account_sid = account_sid
            c.call_sid = cfg.call_sid if n == 1 else None
            c.stream_sid = cfg.stream_sid if n == 1 else None
            c.record_path = _numbered(cfg.record_path, i, n)
            c.label = f"call{i + 1}" if n > 1 else (cfg.label or "call")
            return await run_call(c, base_dir)
    reports = await asyncio.gather(*(one(i) for i in range(n)))
    return {"summary": summarize(reports), "calls": reports}


# ----------------------------------------------------------------------------------------------
# CLI.

def _host_port(s: str) -> Tuple[str, int]:
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT")
    return host.strip("[]"), int(port)


def _kv(s: str) -> Tuple[str, str]:
    k, sep, v = s.partition("=")
    if not sep or not k:
        raise argparse.ArgumentTypeError("expected NAME=VALUE")
    return k, v


def _dtmf(s: str) -> Tuple[int, str]:
    ms, sep, digits = s.partition(":")
    if not sep or not ms.isdigit() or not re.fullmatch(r"[0-9*#]+", digits):
        raise argparse.ArgumentTypeError("expected MS:DIGITS, e.g. 2000:12#")
    return int(ms), digits


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="twilio_sim.py",
        description="Plays Twilio's part of Media Streams calls against a local server (loopback only).")
    g = p.add_argument_group("where the call goes")
    g.add_argument("--twiml-url", help="fetch TwiML by POSTing the voice webhook to this local URL")
    g.add_argument("--public-base-url", help="scheme://host[:port] Twilio would have used; the webhook "
                   "signature is computed for it (default: the --twiml-url itself)")
    g.add_argument("--webhook-param", action="append", type=_kv, default=[], metavar="NAME=VALUE",
                   help="add or override a voice webhook form parameter (repeatable)")
    g.add_argument("--stream-url", help="stream URL to use without TwiML (e.g. wss://host/path)")
    g.add_argument("--param", action="append", type=_kv, default=[], metavar="NAME=VALUE",
                   help="customParameters without TwiML (repeatable)")
    g.add_argument("--connect", type=_host_port, metavar="HOST:PORT",
                   help="loopback address to connect to, keeping the URL's Host and path "
                        "(default: the stream URL if loopback, else the --twiml-url address)")
    g.add_argument("--tls", action="store_true", help="use TLS to the connect address (e.g. HAProxy)")
    g.add_argument("--cafile", help="verify the TLS certificate with this CA (default: no verification)")
    g.add_argument("--auth-token", default=os.environ.get("TWILIO_AUTH_TOKEN", DEFAULT_AUTH_TOKEN),
                   help="Twilio auth token for signatures (default $TWILIO_AUTH_TOKEN or a test token)")
    g.add_argument("--no-signature", action="store_true", help="send no X-Twilio-Signature")
    g.add_argument("--sign-url", help="URL to sign for the WebSocket upgrade (default: the stream URL)")
    g.add_argument("--account-sid", default=os.environ.get("TWILIO_ACCOUNT_SID"),
                   help="AccountSid (default $TWILIO_ACCOUNT_SID or random)")
    g.add_argument("--call-sid", help="CallSid (default random; ignored with --calls > 1)")
    g.add_argument("--from", dest="from_number", default="+15005550006")
    g.add_argument("--to", dest="to_number", default="+15005550001")
    g.add_argument("--direction", default="inbound", choices=["inbound", "outbound-api", "outbound-dial"])
    g.add_argument("--call-status", default=None, help="CallStatus in the webhook (default ringing "
                   "for inbound, in-progress for outbound)")
    g.add_argument("--user-agent", default=DEFAULT_USER_AGENT)
    a = p.add_argument_group("what the caller does")
    a.add_argument("--wav", help="caller audio file (any WAV; converted with sox)")
    a.add_argument("--say", help="one caller utterance, synthesised with espeak-ng")
    a.add_argument("--script", help="JSON script of turns, barge-ins and hang-up")
    a.add_argument("--audio-start-ms", type=int, default=0, help="when --wav/--say starts (stream ms)")
    a.add_argument("--dtmf", action="append", type=_dtmf, default=[], metavar="MS:DIGITS",
                   help="send DTMF digits at stream time MS (repeatable)")
    a.add_argument("--voice", default=None, help="espeak-ng voice (default en-us)")
    e = p.add_argument_group("when the call ends")
    e.add_argument("--hangup-after-ms", type=int, help="hang up at this stream time")
    e.add_argument("--tail-ms", type=int, default=1000,
                   help="after the caller's audio, wait for the AI reply to end, then this long")
    e.add_argument("--ai-timeout-ms", type=int, default=10000,
                   help="how long to wait for the AI to start a reply")
    e.add_argument("--max-duration-ms", type=int, default=300000)
    e.add_argument("--hangup-mode", choices=["stop", "close", "abort"], default="stop",
                   help="stop: send stop then close (Twilio); close: close only; abort: drop TCP")
    m = p.add_argument_group("measurement and output")
    m.add_argument("--barge-in-at-ms", type=int,
                   help="stream time the caller starts talking over the AI; reports the clear latency")
    m.add_argument("--response-gap-ms", type=int, default=700,
                   help="playback idle this long separates two AI responses (shorter: underrun)")
    m.add_argument("--record", help="stereo WAV: left caller, right what the caller heard "
                   "(with --calls N: FILE-0001.wav ...)")
    m.add_argument("--report", default="-", help="JSON report file (default stdout)")
    m.add_argument("--events", action="store_true", help="include the event log in the report")
    m.add_argument("-v", "--verbose", action="count", default=0)
    m.add_argument("-q", "--quiet", action="store_true")
    l = p.add_argument_group("load")
    l.add_argument("--calls", type=int, default=1, help="number of calls")
    l.add_argument("--concurrency", type=int, help="calls at once (default min(calls, 200))")
    l.add_argument("--ramp-ms", type=int, default=20, help="delay between call starts")
    return p


def config_from_args(args: argparse.Namespace) -> Tuple[CallConfig, str]:
    if bool(args.twiml_url) == bool(args.stream_url):
        raise SimError("give exactly one of --twiml-url and --stream-url")
    if sum(1 for x in (args.wav, args.say, args.script) if x) > 1:
        raise SimError("give at most one of --wav, --say and --script")
    base_dir = "."
    if args.script:
        with open(args.script, encoding="utf-8") as f:
            try:
                script = json.load(f)
            except ValueError as e:
                raise SimError(f"{args.script}: {e}")
        base_dir = os.path.dirname(os.path.abspath(args.script))
    else:
        turn = None
        if args.wav:
            turn = {"wav": os.path.abspath(args.wav), "wait": "fixed", "after_ms": args.audio_start_ms}
        elif args.say:
            turn = {"say": args.say, "wait": "fixed", "after_ms": args.audio_start_ms}
        script = {"turns": [turn] if turn else [], "hangup": {"wait": "ai", "after_ms": args.tail_ms}}
    if args.voice:
        script["voice"] = args.voice
    script.setdefault("ai_timeout_ms", args.ai_timeout_ms)
    status = args.call_status or ("ringing" if args.direction == "inbound" else "in-progress")
    cfg = CallConfig(
        auth_token=args.auth_token, twiml_url=args.twiml_url, public_base_url=args.public_base_url,
        webhook_extra=dict(args.webhook_param), stream_url=args.stream_url,
        parameters=dict(args.param), connect=args.connect, tls=args.tls, cafile=args.cafile,
        sign=not args.no_signature, sign_url=args.sign_url, user_agent=args.user_agent,
        account_sid=args.account_sid, call_sid=args.call_sid, from_number=args.from_number,
        to_number=args.to_number, direction=args.direction, call_status=status, script=script,
        dtmf=list(args.dtmf), hangup_after_ms=args.hangup_after_ms,
        max_duration_ms=args.max_duration_ms, hangup_mode=args.hangup_mode,
        ai_timeout_ms=args.ai_timeout_ms, response_gap_ms=args.response_gap_ms,
        barge_in_at_ms=args.barge_in_at_ms, record_path=args.record, keep_events=args.events)
    return cfg, base_dir


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING if args.quiet else (logging.DEBUG if args.verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="twilio-sim: %(message)s", stream=sys.stderr)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    if args.calls < 1:
        print("twilio-sim: --calls must be >= 1", file=sys.stderr)
        return 2
    try:
        cfg, base_dir = config_from_args(args)
        normalize_script(cfg.script)
    except (SimError, OSError) as e:
        print(f"twilio-sim: {e}", file=sys.stderr)
        return 2
    t = time.monotonic()
    result = asyncio.run(run_calls(cfg, args.calls, args.concurrency, args.ramp_ms, base_dir))
    s = result["summary"]
    text = json.dumps(result, indent=2)
    if args.report == "-":
        print(text)
    else:
        with open(args.report, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    log.info("%d call(s) in %.1f s: %d ok, %d failed, %d violation(s)", s["calls"],
             time.monotonic() - t, s["ok"], s["failed"], s["violations"])
    return 0 if s["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
