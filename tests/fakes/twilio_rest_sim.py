#!/usr/bin/python3
"""Stand-in for Twilio's REST Calls API on loopback: checks Basic auth and the create/update
parameters like the real API (protocols.md §3), answers with Twilio's call JSON or its error
JSON, and then plays each call it created: status callbacks in order, the signed voice webhook,
the signed media stream (through twilio_sim, with a scripted caller), hang-up and transfer via
the update call, the completed callback and the recording callback. Every step is one JSON line
in the log, for tests to check. CLI: `twilio_rest_sim.py --help`; README-twilio-sim.md.
"""

import argparse
import asyncio
import base64
import email.utils
import json
import logging
import math
import os
import re
import secrets
import sys
import time
import urllib.parse
import xml.etree.ElementTree as ET
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import twilio_sim as ts  # noqa: E402

log = logging.getLogger("twilio_rest_sim")

API_VERSION = "2010-04-01"
E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
SID = re.compile(r"^[A-Za-z0-9]{1,64}$")
CALLBACK_EVENTS = ("initiated", "ringing", "answered", "completed")
MAX_BODY = 1 << 20
HEAD_MAX = 65536

# Magic To numbers (like Twilio's test credentials): what the call or the request does.
MAGIC_ERRORS = {  # To -> (HTTP status, Twilio code, message)
    "+15005550001": (400, 21211, "Invalid 'To' Phone Number"),
    "+15005550002": (400, 21612, "The 'To' phone number is not currently reachable"),
    "+15005550500": (500, 20500, "Internal Server Error"),
}
MAGIC_HTML_503 = "+15005550503"      # 503 with an HTML body, as a load balancer would answer
MAGIC_HANG = "+15005550408"          # never answers the create request
MAGIC_OUTCOMES = {                    # the call is placed but not answered
    "+15005550486": "busy",
    "+15005550487": "no-answer",
    "+15005550488": "failed",
}


def rfc2822(t: Optional[float] = None) -> str:
    return email.utils.formatdate(t if t is not None else time.time(), usegmt=False).replace(
        "-0000", "+0000")


class EventLog:
    """JSON lines: {"t": unix time, "event": name, ...}."""

    def __init__(self, path: Optional[str]):
        self.f = open(path, "a", buffering=1) if path else None
        self.events: List[Dict[str, Any]] = []

    def __call__(self, event: str, **kw: Any) -> None:
        rec = {"t": round(time.time(), 3), "event": event, **kw}
        self.events.append(rec)
        if self.f:
            self.f.write(json.dumps(rec, sort_keys=True) + "\n")
        log.info("%s %s", event, json.dumps(kw, sort_keys=True)[:300])


def twilio_error(status: int, code: int, message: str) -> Tuple[int, Dict[str, Any]]:
    return status, {"code": code, "message": message,
                    "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


class Call:
    def __init__(self, sim: "Sim", account_sid: str, p: Dict[str, List[str]]):
        one = lambda k, d=None: p[k][0] if k in p else d  # noqa: E731
        self.sim = sim
        self.sid = ts.new_sid("CA")
        self.account_sid = account_sid
        self.to = one("To")
        self.from_ = one("From")
        self.url = one("Url")
        self.twiml = one("Twiml")
        self.method = one("Method", "POST")
        self.status_callback = one("StatusCallback")
        self.status_callback_method = one("StatusCallbackMethod", "POST")
        self.events = p.get("StatusCallbackEvent", ["completed"]) if self.status_callback else []
        self.record = one("Record", "false") == "true"
        self.recording_channels = one("RecordingChannels", "mono")
        self.recording_callback = one("RecordingStatusCallback")
        self.machine_detection = one("MachineDetection")
        self.status = "queued"
        self.created = time.time()
        self.answered_at: Optional[float] = None
        self.ended_at: Optional[float] = None
        self.seq = 0
        self.control: asyncio.Queue = asyncio.Queue()   # ("hangup",) or ("twiml", text)
        self.ended = asyncio.Event()
        self.transfer_to: Optional[str] = None
        self.report: Optional[Dict[str, Any]] = None
        self.task: Optional[asyncio.Task] = None
        self.recording_sid: Optional[str] = None
        self.recording_path: Optional[str] = None

    def duration(self) -> Optional[int]:
        if self.answered_at is None:
            return 0 if self.ended_at else None
        end = self.ended_at or time.time()
        return int(math.ceil(end - self.answered_at))

    def resource(self) -> Dict[str, Any]:
        d = self.duration()
        done = self.status in ("completed", "busy", "failed", "no-answer", "canceled")
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{self.sid}"
        return {
            "sid": self.sid, "account_sid": self.account_sid, "parent_call_sid": None,
            "to": self.to, "to_formatted": self.to, "from": self.from_,
            "from_formatted": self.from_, "phone_number_sid": "PN" + "0" * 32,
            "status": self.status, "direction": "outbound-api",
            "answered_by": "human" if self.machine_detection and self.answered_at else None,
            "api_version": API_VERSION, "date_created": rfc2822(self.created),
            "date_updated": rfc2822(), "start_time": rfc2822(self.answered_at) if self.answered_at else None,
            "end_time": rfc2822(self.ended_at) if self.ended_at else None,
            "duration": str(d) if done and d is not None else None,
            "price": "-0.01400" if done and self.answered_at else None, "price_unit": "USD",
            "forwarded_from": None, "caller_name": None, "group_sid": None, "queue_time": "0",
            "trunk_sid": None, "uri": base + ".json",
            "subresource_uris": {k: f"{base}/{k.capitalize()}.json"
                                 for k in ("recordings", "streams", "notifications", "events")},
        }

    def voice_params(self, status: str) -> Dict[str, str]:
        return ts.webhook_params(self.sid, self.account_sid, self.from_, self.to,
                                 direction="outbound-api", call_status=status)


class Sim:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.account_sid = args.account_sid
        self.auth_token = args.auth_token
        self.log = EventLog(args.log)
        self.calls: Dict[str, Call] = {}
        self.port = 0
        self.hanging: List[asyncio.StreamWriter] = []
        self.script = None
        if args.script:
            with open(args.script) as f:
                self.script = json.load(f)

    # ---- HTTP server ---------------------------------------------------------------------

    async def serve(self, host: str, port: int) -> asyncio.AbstractServer:
        srv = await asyncio.start_server(self.on_conn, host, port)
        self.port = srv.sockets[0].getsockname()[1]
        return srv

    async def on_conn(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await r.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                if len(head) > HEAD_MAX:
                    return
                lines = head.decode("latin-1").split("\r\n")
                try:
                    method, target, _version = lines[0].split(" ", 2)
                except ValueError:
                    return
                headers: Dict[str, str] = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length", "0") or 0)
                if n > MAX_BODY:
                    await self.send(w, 413, {"code": 20001, "message": "Request too large"}, True)
                    return
                body = await r.readexactly(n) if n else b""
                res = await self.handle(method, target, headers, body)
                if res is None:           # hang: never answer, keep the connection open
                    self.hanging.append(w)
                    await r.read()        # until the client gives up
                    return
                status, payload = res
                close = headers.get("connection", "").lower() == "close"
                await self.send(w, status, payload, close)
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            try:
                w.close()
            except Exception:
                pass

    async def send(self, w: asyncio.StreamWriter, status: int, payload: Any, close: bool) -> None:
        if isinstance(payload, (bytes, str)):
            body = payload.encode() if isinstance(payload, str) else payload
            ctype = "text/html" if isinstance(payload, str) else "audio/wav"
        else:
            body = json.dumps(payload).encode()
            ctype = "application/json; charset=utf-8"
        reason = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request",
                  401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
                  413: "Payload Too Large", 500: "Internal Server Error",
                  503: "Service Unavailable"}.get(status, "Status")
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nTwilio-Request-Id: RQ{secrets.token_hex(16)}\r\n"
                f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n")
        w.write(head.encode() + body)
        await w.drain()

    def auth_ok(self, headers: Dict[str, str]) -> bool:
        a = headers.get("authorization", "")
        if not a.startswith("Basic "):
            return False
        try:
            user, _, pw = base64.b64decode(a[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == self.account_sid and secrets.compare_digest(pw, self.auth_token)

    async def handle(self, method: str, target: str, headers: Dict[str, str],
                     body: bytes) -> Optional[Tuple[int, Any]]:
        path = urllib.parse.urlsplit(target).path
        res = await self.route(method, path, headers, body)
        if res is not None:
            status, payload = res
            code = payload.get("code") if isinstance(payload, dict) else None
            self.log("request", method=method, path=path, status=status, code=code)
        else:
            self.log("request", method=method, path=path, status=None, hang=True)
        return res

    async def route(self, method: str, path: str, headers: Dict[str, str],
                    body: bytes) -> Optional[Tuple[int, Any]]:
        m = re.fullmatch(rf"/{API_VERSION}/Accounts/([^/]+)/Calls(?:/([^/]+?))?\.json", path)
        rec = re.fullmatch(rf"/{API_VERSION}/Accounts/([^/]+)/Recordings/(RE[0-9a-f]+)(\.wav)?", path)
        if m is None and rec is None:
            return twilio_error(404, 20404, "The requested resource was not found")
        if not self.auth_ok(headers):
            return twilio_error(401, 20003, "Authenticate")
        account = (m or rec).group(1)
        if account != self.account_sid:
            return twilio_error(403, 20003, "Authentication Error - account mismatch")
        if rec is not None:
            return self.get_recording(rec.group(2))
        if self.args.hang:
            return None
        sid = m.group(2)
        if method == "GET":
            c = self.calls.get(sid or "")
            if sid is None or c is None:
                return twilio_error(404, 20404, "The requested resource was not found")
            return 200, c.resource()
        if method != "POST":
            return twilio_error(405, 20004, "Method not allowed")
        if self.args.fail:
            st, _, code = self.args.fail.partition(":")
            return twilio_error(int(st), int(code or 20500 if int(st) >= 500 else 20001),
                                "Failing as told (--fail)")
        ctype = headers.get("content-type", "")
        if body and not ctype.startswith("application/x-www-form-urlencoded"):
            return twilio_error(400, 20001, "Content-Type must be application/x-www-form-urlencoded")
        try:
            params = urllib.parse.parse_qs(body.decode("utf-8"), keep_blank_values=True,
                                           strict_parsing=bool(body), errors="strict")
        except (ValueError, UnicodeDecodeError):
            return twilio_error(400, 20001, "Malformed form body")
        if sid is None:
            return await self.create(params)
        return await self.update(sid, params)

    def get_recording(self, re_sid: str) -> Tuple[int, Any]:
        for c in self.calls.values():
            if c.recording_sid == re_sid and c.recording_path and os.path.exists(c.recording_path):
                with open(c.recording_path, "rb") as f:
                    return 200, f.read()
        return twilio_error(404, 20404, "The requested resource was not found")

    # ---- create ---------------------------------------------------------------------------

    def check_create(self, p: Dict[str, List[str]]) -> Optional[Tuple[int, Dict[str, Any]]]:
        one = lambda k: p[k][0] if k in p else None  # noqa: E731
        to, frm = one("To"), one("From")
        if not to:
            return twilio_error(400, 21201, "No 'To' number is specified")
        if not (E164.match(to) or to.startswith("sip:") or to.startswith("client:")):
            return twilio_error(400, 21211, f"Invalid 'To' Phone Number: {to[:3]}XXXX")
        if not frm:
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not E164.match(frm) and not frm.startswith("client:"):
            return twilio_error(400, 21212, f"Invalid 'From' Phone Number: {frm[:3]}XXXX")
        if not (one("Url") or one("Twiml") or one("ApplicationSid")):
            return twilio_error(400, 21205, "Url parameter is required.")
        for k in ("Url", "StatusCallback", "RecordingStatusCallback", "FallbackUrl"):
            v = one(k)
            if v is not None:
                u = urllib.parse.urlsplit(v)
                if u.scheme not in ("http", "https") or not u.hostname or "_" in u.hostname:
                    return twilio_error(400, 21205 if k == "Url" else 21609,
                                        f"{k} is not a valid URL: {v}")
        for k in ("Method", "StatusCallbackMethod", "RecordingStatusCallbackMethod"):
            if one(k) is not None and one(k) not in ("GET", "POST"):
                return twilio_error(400, 21207 if k == "Method" else 21610,
                                    f"{k} must be GET or POST")
        for ev in p.get("StatusCallbackEvent", []):
            if ev not in CALLBACK_EVENTS:
                return twilio_error(400, 21626, f"Invalid StatusCallbackEvent: {ev}")
        if one("Record") not in (None, "true", "false"):
            return twilio_error(400, 20001, "Record must be true or false")
        if one("RecordingChannels") not in (None, "mono", "dual"):
            return twilio_error(400, 20001, "RecordingChannels must be mono or dual")
        if one("MachineDetection") not in (None, "Enable", "DetectMessageEnd"):
            return twilio_error(400, 21620, "MachineDetection must be Enable or DetectMessageEnd")
        t = one("Timeout")
        if t is not None and not (t.isdigit() and 1 <= int(t) <= 600):
            return twilio_error(400, 20001, "Timeout must be between 1 and 600")
        for k, v in p.items():
            if len(v) > 1 and k != "StatusCallbackEvent":
                return twilio_error(400, 20001, f"{k} given more than once")
        return None

    async def create(self, p: Dict[str, List[str]]) -> Optional[Tuple[int, Any]]:
        err = self.check_create(p)
        if err is not None:
            return err
        to = p["To"][0]
        if to == MAGIC_HANG:
            return None
        if to == MAGIC_HTML_503:
            return 503, "<html><body><h1>503 Service Unavailable</h1></body></html>"
        if to in MAGIC_ERRORS:
            return twilio_error(*MAGIC_ERRORS[to])
        c = Call(self, self.account_sid, p)
        self.calls[c.sid] = c
        self.log("call.created", call_sid=c.sid, to=c.to, url=c.url, **{"from": c.from_},
                 status_callback=c.status_callback, events=c.events, record=c.record,
                 recording_channels=c.recording_channels,
                 recording_status_callback=c.recording_callback,
                 machine_detection=c.machine_detection,
                 params=sorted(p.keys()))
        body = c.resource()
        c.task = asyncio.ensure_future(self.play(c, MAGIC_OUTCOMES.get(to)))
        return 201, body

    # ---- update ---------------------------------------------------------------------------

    async def update(self, sid: str, p: Dict[str, List[str]]) -> Tuple[int, Any]:
        c = self.calls.get(sid)
        if c is None or not SID.match(sid) or c.ended.is_set():
            return twilio_error(404, 20404, f"The requested resource /{API_VERSION}/Accounts/"
                                f"{self.account_sid}/Calls/{sid}.json was not found")
        one = lambda k: p[k][0] if k in p else None  # noqa: E731
        status, twiml, url = one("Status"), one("Twiml"), one("Url")
        if sum(x is not None for x in (status, twiml, url)) != 1:
            return twilio_error(400, 20001, "Give exactly one of Status, Twiml or Url")
        if status is not None:
            if status not in ("completed", "canceled"):
                return twilio_error(400, 20001, f"Invalid Status: {status}")
            self.log("update", call_sid=sid, status=status)
            await c.control.put(("hangup", status))
        elif twiml is not None:
            if len(twiml) > 4000:
                return twilio_error(400, 21219, "Twiml is longer than 4000 characters")
            try:
                ET.fromstring(twiml)
            except ET.ParseError:
                return twilio_error(400, 12100, "Document parse failure")
            self.log("update", call_sid=sid, twiml=twiml)
            await c.control.put(("twiml", twiml))
        else:
            self.log("update", call_sid=sid, url=url)
            await c.control.put(("url", url))
        return 200, c.resource()

    # ---- playing a call -------------------------------------------------------------------

    def local_url(self, public: str) -> Tuple[str, Optional[str]]:
        """(URL to connect to, public base to sign with): --connect maps every URL whose host
        is not loopback to voicebridge's listener, as HAProxy would; loopback URLs are used as
        they are (a test's own callback receiver)."""
        u = urllib.parse.urlsplit(public)
        if not self.args.connect or ts._is_loopback_name(u.hostname or ""):
            return public, None
        local = urllib.parse.urlunsplit(("http", self.args.connect, u.path, u.query, ""))
        return local, urllib.parse.urlunsplit((u.scheme, u.netloc, "", "", ""))

    async def post_signed(self, public_url: str, params: Dict[str, str]) -> Tuple[int, bytes]:
        local, _ = self.local_url(public_url)
        headers = {"Content-Type": "application/x-www-form-urlencoded",
                   "User-Agent": ts.WEBHOOK_USER_AGENT, "Accept": "*/*",
                   "I-Twilio-Idempotency-Token": secrets.token_hex(16)}
        if not self.args.no_signature:
            headers["X-Twilio-Signature"] = ts.twilio_signature(self.auth_token, public_url, params)
        body = urllib.parse.urlencode(params).encode()
        ts._check_loopback(urllib.parse.urlsplit(local).hostname or "")
        status, _h, data = await asyncio.to_thread(ts._http_post, local, body, headers, 10.0, None)
        return status, data

    async def status_callback(self, c: Call, event: str, status: str, **extra: str) -> None:
        c.status = status
        if event not in c.events or not c.status_callback:
            return
        p = c.voice_params(status)
        p.update({"CallbackSource": "call-progress-events", "SequenceNumber": str(c.seq),
                  "Timestamp": rfc2822()})
        c.seq += 1
        if c.machine_detection and status == "in-progress":
            p["AnsweredBy"] = "human"
        p.update(extra)
        try:
            code, data = await self.post_signed(c.status_callback, p)
        except (OSError, ts.SimError, Exception) as e:  # a callback failing never stops the call
            code, data = None, str(e).encode()
        self.log("status_callback", call_sid=c.sid, call_status=status, callback_event=event,
                 sequence=int(p["SequenceNumber"]), http_status=code,
                 params={k: v for k, v in p.items() if k in ("CallDuration", "Duration",
                                                              "AnsweredBy", "RecordingSid",
                                                              "RecordingUrl", "SipResponseCode")},
                 body=data[:200].decode(errors="replace") if code != 204 else "")

    async def play(self, c: Call, unanswered: Optional[str]) -> None:
        try:
            await self._play(c, unanswered)
        except Exception as e:   # logged, and the call still ends cleanly
            log.exception("call %s", c.sid)
            self.log("error", call_sid=c.sid, error=repr(e))
            if not c.ended.is_set():
                c.ended_at = time.time()
                await self.status_callback(c, "completed", "failed", CallDuration="0")
                c.ended.set()

    async def _play(self, c: Call, unanswered: Optional[str]) -> None:
        await asyncio.sleep(self.args.step_ms / 1000)
        await self.status_callback(c, "initiated", "initiated")
        await asyncio.sleep(self.args.step_ms / 1000)
        await self.status_callback(c, "ringing", "ringing")
        # A hang-up while ringing cancels the call.
        try:
            cmd = await asyncio.wait_for(c.control.get(), self.args.ring_ms / 1000)
        except asyncio.TimeoutError:
            cmd = None
        if cmd is not None and cmd[0] == "hangup":
            unanswered = "canceled"
        if unanswered:
            c.ended_at = time.time()
            sip = {"busy": "486", "no-answer": "487", "failed": "404", "canceled": "487"}[unanswered]
            await self.status_callback(c, "completed", unanswered, CallDuration="0",
                                       SipResponseCode=sip)
            c.ended.set()
            self.log("call.ended", call_sid=c.sid, status=unanswered, duration=0)
            return
        c.answered_at = time.time()
        await self.status_callback(c, "answered", "in-progress")
        ended_by = await self.run_twiml(c)
        c.ended_at = time.time()
        dur = c.duration() or 0
        extra = {"CallDuration": str(dur), "Duration": str(max(1, math.ceil(dur / 60))),
                 "SipResponseCode": "200"}
        if c.record:
            c.recording_sid = ts.new_sid("RE")
            extra.update({"RecordingSid": c.recording_sid, "RecordingUrl": self.recording_url(c),
                          "RecordingDuration": str(dur)})
        await self.status_callback(c, "completed", "completed", **extra)
        c.ended.set()
        self.log("call.ended", call_sid=c.sid, status="completed", duration=dur,
                 ended_by=ended_by, transfer_to=c.transfer_to)
        if c.record and c.recording_callback:
            await asyncio.sleep(self.args.step_ms / 1000)
            await self.recording_callback(c, dur)

    def recording_url(self, c: Call) -> str:
        return (f"http://127.0.0.1:{self.port}/{API_VERSION}/Accounts/{c.account_sid}"
                f"/Recordings/{c.recording_sid}")

    async def recording_callback(self, c: Call, dur: int) -> None:
        p = {"AccountSid": c.account_sid, "CallSid": c.sid, "RecordingSid": c.recording_sid,
             "RecordingUrl": self.recording_url(c), "RecordingStatus": "completed",
             "RecordingDuration": str(dur),
             "RecordingChannels": "2" if c.recording_channels == "dual" else "1",
             "RecordingStartTime": rfc2822(c.answered_at), "RecordingSource": "OutboundAPI",
             "RecordingTrack": "both", "ErrorCode": "0"}
        try:
            code, data = await self.post_signed(c.recording_callback, p)
        except Exception as e:
            code, data = None, str(e).encode()
        self.log("recording_callback", call_sid=c.sid, recording_sid=c.recording_sid,
                 http_status=code, channels=p["RecordingChannels"], duration=dur,
                 body=data[:200].decode(errors="replace") if code != 204 else "")

    async def fetch(self, c: Call, url: str) -> Optional[str]:
        try:
            code, data = await self.post_signed(url, c.voice_params("in-progress"))
        except Exception as e:
            self.log("webhook", call_sid=c.sid, url=url, http_status=None, error=str(e))
            return None
        text = data.decode("utf-8", errors="replace")
        self.log("webhook", call_sid=c.sid, url=url, http_status=code, twiml=text[:2000])
        return text if code == 200 else None

    async def run_twiml(self, c: Call) -> str:
        """Runs the call's TwiML and whatever replaces it; returns how the call ended."""
        text = c.twiml if c.url is None else await self.fetch(c, c.url)
        base = c.url
        while text is not None:
            try:
                root = ET.fromstring(text)
            except ET.ParseError:
                self.log("twiml_error", call_sid=c.sid, error="not XML")
                return "twiml_error"
            verbs = [v.tag for v in root]
            connect = root.find("Connect")
            if connect is not None and connect.find("Stream") is not None:
                result, cmd = await self.stream(c, ts.parse_twiml(text, base))
                if cmd is not None:
                    text, base = await self.apply(c, cmd)
                    if text is None:
                        return cmd[0] if cmd[0] != "twiml" else "transfer"
                    continue
                action = connect.get("action")
                if result == "server_close" and action:
                    text = await self.fetch(c, urllib.parse.urljoin(base or "", action))
                    base = action
                    continue
                return result
            dial = root.find("Dial")
            if dial is not None:
                c.transfer_to = "".join(dial.itertext()).strip()
                self.log("transfer", call_sid=c.sid, to=c.transfer_to)
                await asyncio.sleep(self.args.transfer_ms / 1000)
                return "transfer"
            if "Say" in verbs:
                self.log("say", call_sid=c.sid,
                         text=" ".join("".join(s.itertext()) for s in root.findall("Say")))
            return "hangup_verb" if "Hangup" in verbs else "twiml_end"
        return "webhook_failed"

    async def apply(self, c: Call, cmd: Tuple[str, str]) -> Tuple[Optional[str], Optional[str]]:
        """An update arrived during the stream: (new TwiML to run, its base URL) or (None, _)."""
        if cmd[0] == "hangup":
            return None, None
        if cmd[0] == "twiml":
            return cmd[1], None
        return await self.fetch(c, cmd[1]), cmd[1]

    async def stream(self, c: Call, tw: "ts.Twiml") -> Tuple[str, Optional[Tuple[str, str]]]:
        """The media stream, until the script ends, the server closes or an update comes."""
        u = urllib.parse.urlsplit(tw.stream_url)
        if self.args.connect and not ts._is_loopback_name(u.hostname or ""):
            h, _, p = self.args.connect.rpartition(":")
            connect = (h, int(p))
        else:
            connect = (u.hostname, u.port or (443 if u.scheme == "wss" else 80))
        script = self.script if self.script is not None else {"hangup": {"wait": "never"}}
        cfg = ts.CallConfig(auth_token=self.auth_token, stream_url=tw.stream_url,
                            parameters=tw.parameters, connect=connect,
                            sign=not self.args.no_signature, account_sid=c.account_sid,
                            call_sid=c.sid, from_number=c.from_, to_number=c.to,
                            direction="outbound-api", call_status="in-progress",
                            script=script, max_duration_ms=self.args.max_call_ms,
                            hangup_after_ms=None if self.script else self.args.call_ms,
                            record_path=self.recording_path(c), label=c.sid)
        self.log("stream.start", call_sid=c.sid, url=tw.stream_url,
                 parameters=tw.parameters, problems=tw.problems)
        got: Dict[str, Any] = {}

        async def driver(call: "ts.SimCall") -> None:
            norm = ts.normalize_script(script)
            audio = await ts.prepare_script(norm, os.path.dirname(self.args.script or "."))
            play = asyncio.ensure_future(ts.run_script(call, norm, audio))
            ctl = asyncio.ensure_future(c.control.get())
            done, _ = await asyncio.wait({play, ctl}, return_when=asyncio.FIRST_COMPLETED)
            if ctl in done:
                got["cmd"] = ctl.result()
                play.cancel()
            else:
                ctl.cancel()
                play.result()     # re-raises CallEnded: the server closed
            await asyncio.gather(play, ctl, return_exceptions=True)

        report = await ts.run_call(cfg, driver=driver)
        c.report = report
        if self.args.report_dir:  # twilio_sim's full report of the stream, as its --report writes
            with open(os.path.join(self.args.report_dir, c.sid + ".json"), "w") as f:
                json.dump(report, f, default=str)
        ended_by = "api_" + got["cmd"][0] if "cmd" in got else report.get("ended_by")
        self.log("stream.end", call_sid=c.sid, ended_by=ended_by,
                 stream_sid=report.get("stream_sid"), error=report.get("error"),
                 frames_sent=report.get("sent", {}).get("frames"),
                 media_received_ms=report.get("received", {}).get("media_ms"),
                 violations=report.get("violations", {}).get("count"),
                 close_code=report.get("close_code"))
        return report.get("ended_by") or "error", got.get("cmd")

    def recording_path(self, c: Call) -> Optional[str]:
        if not c.record or not self.args.recordings_dir:
            return None
        c.recording_path = os.path.join(self.args.recordings_dir, c.sid + ".wav")
        return c.recording_path


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1", help="listen address (loopback only)")
    ap.add_argument("--port", type=int, default=0, help="0 picks one; printed as READY port=N")
    ap.add_argument("--account-sid", default=os.environ.get("TWILIO_ACCOUNT_SID") or
                    "AC" + "0" * 32)
    ap.add_argument("--auth-token", default=os.environ.get("TWILIO_AUTH_TOKEN") or
                    ts.DEFAULT_AUTH_TOKEN)
    ap.add_argument("--connect", metavar="HOST:PORT",
                    help="voicebridge's local listener: every webhook, callback and stream URL "
                         "is sent there (signed for the public URL), as through HAProxy")
    ap.add_argument("--script", help="caller script for every call (twilio_sim format); "
                                     "default: a silent caller who hangs up after --call-ms")
    ap.add_argument("--call-ms", type=int, default=3000)
    ap.add_argument("--max-call-ms", type=int, default=120000)
    ap.add_argument("--ring-ms", type=int, default=100, help="ringing before the answer")
    ap.add_argument("--step-ms", type=int, default=20, help="between queued/initiated/ringing")
    ap.add_argument("--transfer-ms", type=int, default=500, help="a transferred leg lasts this")
    ap.add_argument("--recordings-dir", help="keep each call's dual-channel WAV here (served "
                                             "at its RecordingUrl + .wav)")
    ap.add_argument("--report-dir", help="write each call's media-stream report (twilio_sim's "
                                         "--report format) here as CALLSID.json")
    ap.add_argument("--no-signature", action="store_true", help="send no X-Twilio-Signature")
    ap.add_argument("--fail", metavar="STATUS[:CODE]", help="refuse every create/update")
    ap.add_argument("--hang", action="store_true", help="never answer API requests")
    ap.add_argument("--log", help="JSON lines of what happened (default: none)")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap


async def amain(args: argparse.Namespace) -> int:
    ts._check_loopback(args.host)
    sim = Sim(args)
    srv = await sim.serve(args.host, args.port)
    sim.log("listening", port=sim.port, account_sid=sim.account_sid)
    print(f"READY port={sim.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    import signal
    for s in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(s, stop.set)
    await stop.wait()
    srv.close()
    for c in sim.calls.values():
        if c.task and not c.task.done():
            c.task.cancel()
    await asyncio.gather(*(c.task for c in sim.calls.values() if c.task), return_exceptions=True)
    sim.log("exit", calls=len(sim.calls))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="twilio_rest_sim: %(message)s")
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
