#!/usr/bin/python3
"""fake_openai.py: a local stand-in for the OpenAI Realtime API (GA dialect, WebSocket).

voicebridge, its integration tests, `make demo` and users without a paid key talk to this
instead of wss://api.openai.com/v1/realtime. It follows the GA wire protocol closely (event
names and shapes, validation errors, one active response, barge-in, truncate limits), speaks
real espeak-ng speech, and records what the client did so tests can judge the bridge.
See tests/fakes/README.md for usage, the script format, the fault modes and the log format.
"""

import argparse
import asyncio
import base64
import binascii
import hashlib
import http
import json
import math
import operator
import os
import random
import re
import shutil
import signal
import ssl
import string
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
from array import array

import websockets

# ----------------------------------------------------------------------------------------------
# Protocol constants

REALTIME_PATH = "/v1/realtime"

# Model names the GA SDK types list; anything else gets model_not_found at the handshake.
MODELS = (
    "gpt-realtime", "gpt-realtime-2025-08-28", "gpt-realtime-1.5", "gpt-realtime-2",
    "gpt-realtime-2.1", "gpt-realtime-2.1-mini", "gpt-realtime-mini",
    "gpt-realtime-mini-2025-10-06", "gpt-realtime-mini-2025-12-15",
    "gpt-4o-realtime-preview", "gpt-4o-realtime-preview-2024-10-01",
    "gpt-4o-realtime-preview-2024-12-17", "gpt-4o-realtime-preview-2025-06-03",
    "gpt-4o-mini-realtime-preview", "gpt-4o-mini-realtime-preview-2024-12-17",
    "gpt-audio-1.5", "gpt-audio-mini", "gpt-audio-mini-2025-10-06", "gpt-audio-mini-2025-12-15",
)

VOICES = ("alloy", "ash", "ballad", "coral", "echo", "sage", "shimmer", "verse", "marin", "cedar")

# Each OpenAI voice maps to a distinct espeak-ng voice so a listener can tell them apart.
ESPEAK_VOICES = {
    "alloy": "en-us+f2", "ash": "en-us+m3", "ballad": "en-gb+m2", "coral": "en-us+f4",
    "echo": "en-us+m1", "sage": "en-gb+f3", "shimmer": "en-us+f5", "verse": "en-us+m4",
    "marin": "en-us+f3", "cedar": "en-us+m2",
}

CLIENT_EVENTS = (
    "session.update", "input_audio_buffer.append", "input_audio_buffer.commit",
    "input_audio_buffer.clear", "conversation.item.create", "conversation.item.retrieve",
    "conversation.item.truncate", "conversation.item.delete", "response.create",
    "response.cancel", "output_audio_buffer.clear",
)

# Server events that are streamed many times per response; logged as counts, not one by one.
DELTA_EVENTS = (
    "response.output_audio.delta", "response.output_audio_transcript.delta",
    "response.output_text.delta", "response.function_call_arguments.delta",
    "conversation.item.input_audio_transcription.delta",
)

# Input/output audio: bytes per millisecond and the byte that encodes silence.
FORMATS = {
    "audio/pcm": {"rate": 24000, "bpms": 48, "silence": b"\x00\x00", "ext": "pcm"},
    "audio/pcmu": {"rate": 8000, "bpms": 8, "silence": b"\xff", "ext": "ulaw"},
    "audio/pcma": {"rate": 8000, "bpms": 8, "silence": b"\xd5", "ext": "alaw"},
}

MAX_APPEND_AUDIO_BYTES = 15 * 1024 * 1024  # GA API reference: <= 15 MiB per append
MIN_COMMIT_MS = 100.0
FAULT_MODES = ("error_event", "drop", "slow", "bursty", "oversized", "reject_session",
               "close_4000")

DEFAULT_GREETING = "Hello! This is the test assistant. How can I help you today?"
DEFAULT_REPLY = "I heard you. Please go on."
DEFAULT_TOOL_REPLY = "The result is: {output}"
DEFAULT_IDLE_REPLY = "Are you still there?"
DEFAULT_INSTRUCTIONS = ("You are a helpful, witty, and friendly AI. Your voice and personality "
                        "should be warm and engaging.")

_ids = random.SystemRandom()
_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix, n=21):
    return prefix + "".join(_ids.choice(_ID_ALPHABET) for _ in range(n))


def now():
    return time.time()


# ----------------------------------------------------------------------------------------------
# Errors in the API's own shape

class ApiError(Exception):
    """An error the real service would report as an `error` event."""

    def __init__(self, code, message, param=None, etype="invalid_request_error"):
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.etype = etype


def _tname(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int):
        return "an integer"
    if isinstance(v, float):
        return "a decimal"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def _quote(v):
    return "'%s'" % v if isinstance(v, str) else json.dumps(v)


def _list_words(vals):
    q = [_quote(v) for v in vals]
    if len(q) == 1:
        return q[0]
    if len(q) == 2:
        return "%s and %s" % (q[0], q[1])
    return ", ".join(q[:-1]) + ", and " + q[-1]


def _join(path, key):
    return "%s.%s" % (path, key) if path else key


def type_error(path, expected, v):
    return ApiError("invalid_type", "Invalid type for '%s': expected %s, but got %s instead."
                    % (path, expected, _tname(v)), path)


def unknown_param(path):
    return ApiError("unknown_parameter", "Unknown parameter: '%s'." % path, path)


def missing_param(path):
    return ApiError("missing_required_parameter", "Missing required parameter: '%s'." % path,
                    path)


def invalid_value(path, v, allowed):
    return ApiError("invalid_value", "Invalid value: %s. Supported values are: %s."
                    % (_quote(v), _list_words(allowed)), path)


# ----------------------------------------------------------------------------------------------
# A small schema language: each validator checks a value at a dotted path and raises ApiError.

class V:
    kinds = ()  # python types this validator accepts (used to choose a branch of a union)
    expected = "a value"

    def accepts(self, x):
        if isinstance(x, bool):
            return bool in self.kinds
        return isinstance(x, self.kinds)


class Str(V):
    kinds = (str,)
    expected = "a string"

    def __init__(self, max_len=None, pattern=None):
        self.max_len, self.pattern = max_len, pattern

    def __call__(self, x, path):
        if not isinstance(x, str):
            raise type_error(path, self.expected, x)
        if self.max_len is not None and len(x) > self.max_len:
            raise ApiError("string_above_max_length",
                           "Invalid '%s': string too long. Expected a string with maximum length "
                           "%d, but got a string with length %d instead."
                           % (path, self.max_len, len(x)), path)
        if self.pattern is not None and not re.fullmatch(self.pattern, x):
            raise ApiError("invalid_value", "Invalid '%s': string does not match pattern. "
                           "Expected a string that matches the pattern '%s'."
                           % (path, self.pattern), path)


class Enum(V):
    def __init__(self, *vals):
        self.vals = vals
        self.kinds = tuple({type(v) for v in vals})
        self.expected = "a string" if self.kinds == (str,) else "one of the supported values"

    def __call__(self, x, path):
        if not self.accepts(x):
            raise type_error(path, self.expected, x)
        if x not in self.vals:
            raise invalid_value(path, x, self.vals)


class Int(V):
    kinds = (int,)
    expected = "an integer"

    def __init__(self, lo=None, hi=None):
        self.lo, self.hi = lo, hi

    def __call__(self, x, path):
        if isinstance(x, bool) or not isinstance(x, int):
            raise type_error(path, self.expected, x)
        if self.lo is not None and x < self.lo:
            raise ApiError("integer_below_min_value", "Invalid '%s': integer below minimum value. "
                           "Expected a value >= %d, but got %d instead." % (path, self.lo, x), path)
        if self.hi is not None and x > self.hi:
            raise ApiError("integer_above_max_value", "Invalid '%s': integer above maximum value. "
                           "Expected a value <= %d, but got %d instead." % (path, self.hi, x), path)


class Num(V):
    kinds = (int, float)
    expected = "a decimal"

    def __init__(self, lo=None, hi=None):
        self.lo, self.hi = lo, hi

    def __call__(self, x, path):
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise type_error(path, self.expected, x)
        if self.lo is not None and x < self.lo:
            raise ApiError("decimal_below_min_value", "Invalid '%s': decimal below minimum value. "
                           "Expected a value >= %s, but got %s instead." % (path, self.lo, x), path)
        if self.hi is not None and x > self.hi:
            raise ApiError("decimal_above_max_value", "Invalid '%s': decimal above maximum value. "
                           "Expected a value <= %s, but got %s instead." % (path, self.hi, x), path)


class Bool(V):
    kinds = (bool,)
    expected = "a boolean"

    def __call__(self, x, path):
        if not isinstance(x, bool):
            raise type_error(path, self.expected, x)


class Any(V):
    kinds = (object,)

    def accepts(self, x):
        return True

    def __call__(self, x, path):
        pass


class Nullable(V):
    def __init__(self, inner):
        self.inner = inner
        self.kinds = inner.kinds + (type(None),)
        self.expected = inner.expected

    def accepts(self, x):
        return x is None or self.inner.accepts(x)

    def __call__(self, x, path):
        if x is not None:
            self.inner(x, path)


class List(V):
    kinds = (list,)
    expected = "an array"

    def __init__(self, inner, max_items=None):
        self.inner, self.max_items = inner, max_items

    def __call__(self, x, path):
        if not isinstance(x, list):
            raise type_error(path, self.expected, x)
        if self.max_items is not None and len(x) > self.max_items:
            raise ApiError("array_above_max_length", "Invalid '%s': array too long. Expected an "
                           "array with maximum length %d, but got an array with length %d instead."
                           % (path, self.max_items, len(x)), path)
        for i, v in enumerate(x):
            self.inner(v, "%s[%d]" % (path, i))


class Obj(V):
    kinds = (dict,)
    expected = "an object"

    def __init__(self, fields, required=(), open_=False):
        self.fields, self.required, self.open = fields, required, open_

    def __call__(self, x, path):
        if not isinstance(x, dict):
            raise type_error(path, self.expected, x)
        for k in x:
            if k not in self.fields and not self.open:
                raise unknown_param(_join(path, k))
        for k in self.required:
            if k not in x:
                raise missing_param(_join(path, k))
        for k, v in x.items():
            if k in self.fields:
                self.fields[k](v, _join(path, k))


class Tagged(V):
    """An object whose `type` field selects its schema."""
    kinds = (dict,)
    expected = "an object"

    def __init__(self, variants):
        self.variants = variants

    def __call__(self, x, path):
        if not isinstance(x, dict):
            raise type_error(path, self.expected, x)
        if "type" not in x:
            raise missing_param(_join(path, "type"))
        t = x["type"]
        if not isinstance(t, str):
            raise type_error(_join(path, "type"), "a string", t)
        if t not in self.variants:
            raise invalid_value(_join(path, "type"), t, tuple(self.variants))
        self.variants[t](x, path)


class Union(V):
    def __init__(self, *alts):
        self.alts = alts
        self.kinds = tuple(k for a in alts for k in a.kinds)
        self.expected = " or ".join(dict.fromkeys(a.expected for a in alts))

    def accepts(self, x):
        return any(a.accepts(x) for a in self.alts)

    def __call__(self, x, path):
        for a in self.alts:
            if a.accepts(x):
                return a(x, path)
        raise type_error(path, "one of " + self.expected, x)


def _format_schema():
    return Tagged({
        "audio/pcm": Obj({"type": Str(), "rate": Enum(24000)}),
        "audio/pcmu": Obj({"type": Str()}),
        "audio/pcma": Obj({"type": Str()}),
    })


_TURN_DETECTION = Nullable(Tagged({
    "server_vad": Obj({
        "type": Str(), "threshold": Num(0.0, 1.0), "prefix_padding_ms": Int(0, 10000),
        "silence_duration_ms": Int(0, 10000), "idle_timeout_ms": Nullable(Int(1)),
        "create_response": Bool(), "interrupt_response": Bool()}),
    "semantic_vad": Obj({
        "type": Str(), "eagerness": Enum("low", "medium", "high", "auto"),
        "create_response": Bool(), "interrupt_response": Bool()}),
}))

_TOOL = Tagged({
    "function": Obj({"type": Str(), "name": Str(64, r"[a-zA-Z0-9_-]{1,64}"),
                     "description": Str(1024), "parameters": Obj({}, open_=True)},
                    required=("name",)),
    # MCP tools are accepted but never called by the fake.
    "mcp": Obj({"type": Str()}, open_=True),
})

_TOOL_CHOICE = Union(
    Enum("auto", "none", "required"),
    Tagged({"function": Obj({"type": Str(), "name": Str()}, required=("name",)),
            "mcp": Obj({"type": Str(), "server_label": Str(), "name": Nullable(Str())},
                       required=("server_label",))}))

_MAX_TOKENS = Union(Int(1, 4096), Enum("inf"))

SESSION_SCHEMA = Obj({
    "type": Str(),  # checked by hand: must be "realtime"
    "model": Enum(*MODELS),
    "instructions": Str(),
    "output_modalities": List(Enum("audio", "text"), 1),
    "audio": Obj({
        "input": Obj({
            "format": _format_schema(),
            "noise_reduction": Nullable(Obj({"type": Enum("near_field", "far_field")})),
            "transcription": Nullable(Obj({"model": Str(), "language": Str(), "prompt": Str()})),
            "turn_detection": _TURN_DETECTION,
        }),
        "output": Obj({
            "format": _format_schema(),
            "voice": Union(Enum(*VOICES), Obj({"id": Str()}, required=("id",))),
            "speed": Num(0.25, 1.5),
        }),
    }),
    "tools": List(_TOOL, 128),
    "tool_choice": _TOOL_CHOICE,
    "max_output_tokens": _MAX_TOKENS,
    "truncation": Union(Enum("auto", "disabled"),
                        Obj({"type": Enum("retention_ratio"), "retention_ratio": Num(0.0, 1.0),
                             "token_limits": Obj({"post_instructions": Int(0)})},
                            required=("type", "retention_ratio"))),
    "include": List(Enum("item.input_audio_transcription.logprobs")),
    "tracing": Nullable(Union(Enum("auto"), Obj({"workflow_name": Str(), "group_id": Str(),
                                                 "metadata": Any()}))),
    "prompt": Nullable(Obj({"id": Str(), "version": Nullable(Str()), "variables": Any()},
                           required=("id",))),
    "reasoning": Obj({"effort": Enum("minimal", "low", "medium", "high")}),
    "parallel_tool_calls": Bool(),
}, required=("type",))

RESPONSE_SCHEMA = Obj({
    "instructions": Str(),
    "tools": List(_TOOL, 128),
    "tool_choice": _TOOL_CHOICE,
    "max_output_tokens": _MAX_TOKENS,
    "output_modalities": List(Enum("audio", "text"), 1),
    "audio": Obj({"output": Obj({"format": _format_schema(),
                                 "voice": Union(Enum(*VOICES), Obj({"id": Str()}))})}),
    "conversation": Str(),
    "input": List(Any()),
    "metadata": Nullable(Obj({}, open_=True)),
    "prompt": Nullable(Obj({}, open_=True)),
})

_CONTENT = Tagged({
    "input_text": Obj({"type": Str(), "text": Str()}, required=("text",)),
    "input_audio": Obj({"type": Str(), "audio": Str(), "transcript": Nullable(Str())}),
    "input_image": Obj({"type": Str(), "image_url": Str(), "detail": Enum("auto", "low", "high")}),
    "output_text": Obj({"type": Str(), "text": Str()}, required=("text",)),
    "output_audio": Obj({"type": Str(), "audio": Str(), "transcript": Nullable(Str())}),
})

ITEM_SCHEMA = Tagged({
    "message": Obj({"id": Str(32), "type": Str(), "object": Enum("realtime.item"),
                    "status": Enum("completed", "incomplete", "in_progress"),
                    "role": Enum("user", "assistant", "system"), "content": List(_CONTENT)},
                   required=("role", "content")),
    "function_call": Obj({"id": Str(32), "type": Str(), "object": Enum("realtime.item"),
                          "status": Enum("completed", "incomplete", "in_progress"),
                          "call_id": Str(), "name": Str(), "arguments": Str()},
                         required=("name", "arguments")),
    "function_call_output": Obj({"id": Str(32), "type": Str(), "object": Enum("realtime.item"),
                                 "status": Enum("completed", "incomplete", "in_progress"),
                                 "call_id": Str(), "output": Str()},
                                required=("call_id", "output")),
})

_EID = Str(512)
EVENT_SCHEMAS = {
    "session.update": Obj({"type": Str(), "event_id": _EID, "session": Any()},
                          required=("session",)),
    "input_audio_buffer.append": Obj({"type": Str(), "event_id": _EID, "audio": Str()},
                                     required=("audio",)),
    "input_audio_buffer.commit": Obj({"type": Str(), "event_id": _EID}),
    "input_audio_buffer.clear": Obj({"type": Str(), "event_id": _EID}),
    "conversation.item.create": Obj({"type": Str(), "event_id": _EID,
                                     "previous_item_id": Nullable(Str()), "item": Any()},
                                    required=("item",)),
    "conversation.item.retrieve": Obj({"type": Str(), "event_id": _EID, "item_id": Str()},
                                      required=("item_id",)),
    "conversation.item.truncate": Obj({"type": Str(), "event_id": _EID, "item_id": Str(),
                                       "content_index": Int(0), "audio_end_ms": Int(0)},
                                      required=("item_id", "content_index", "audio_end_ms")),
    "conversation.item.delete": Obj({"type": Str(), "event_id": _EID, "item_id": Str()},
                                    required=("item_id",)),
    "response.create": Obj({"type": Str(), "event_id": _EID, "response": Any()}),
    "response.cancel": Obj({"type": Str(), "event_id": _EID, "response_id": Str()}),
    "output_audio_buffer.clear": Obj({"type": Str(), "event_id": _EID}),
}


# ----------------------------------------------------------------------------------------------
# Audio: G.711 decoding for the VAD, and espeak-ng speech synthesis with a file cache.

def _ulaw_to_lin(b):
    b = ~b & 0xFF
    t = ((b & 0x0F) << 3) + 0x84
    t <<= (b & 0x70) >> 4
    return (0x84 - t) if (b & 0x80) else (t - 0x84)


def _alaw_to_lin(b):
    b ^= 0x55
    t = (b & 0x0F) << 4
    seg = (b & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t += 0x108
        t <<= seg - 1
    return t if (b & 0x80) else -t


ULAW_TABLE = [_ulaw_to_lin(i) for i in range(256)]
ALAW_TABLE = [_alaw_to_lin(i) for i in range(256)]


def decode_samples(fmt_type, raw):
    """Linear 16-bit samples of one appended chunk (for the VAD only)."""
    if fmt_type == "audio/pcm":
        a = array("h")
        a.frombytes(raw[: len(raw) & ~1])
        if sys.byteorder != "little":
            a.byteswap()
        return a
    table = ULAW_TABLE if fmt_type == "audio/pcmu" else ALAW_TABLE
    return array("h", (table[b] for b in raw))


def rms(samples, start, end):
    n = end - start
    if n <= 0:
        return 0.0
    w = samples[start:end]
    return math.sqrt(sum(map(operator.mul, w, w)) / n)


def vad_threshold_rms(threshold):
    """server_vad threshold 0..1 -> RMS level: 0.0 = -60 dBFS, 0.5 = -35 dBFS, 1.0 = -10 dBFS."""
    db = -60.0 + 50.0 * float(threshold)
    return 32768.0 * (10.0 ** (db / 20.0))


class Synth:
    """Text -> speech bytes in every output format, generated once and kept in a cache dir."""

    def __init__(self, cache_dir):
        os.makedirs(cache_dir, exist_ok=True)
        self.dir = cache_dir
        self.mem = {}
        self.locks = {}

    @staticmethod
    def clean_text(text):
        text = "".join(c if c.isprintable() else " " for c in text)[:1000]
        return text.replace("[[", "[ [").strip() or "."

    def _paths(self, text, voice):
        h = hashlib.sha1(("%s\n%s" % (voice, text)).encode()).hexdigest()[:20]
        base = os.path.join(self.dir, h)
        return {fmt: base + "." + info["ext"] for fmt, info in FORMATS.items()}

    def generate_sync(self, text, voice):
        """Runs espeak-ng and sox; returns {format: bytes}. Blocking (call from a thread)."""
        text = self.clean_text(text)
        paths = self._paths(text, voice)
        if all(os.path.exists(p) for p in paths.values()):
            return {fmt: open(p, "rb").read() for fmt, p in paths.items()}
        espeak_voice = ESPEAK_VOICES.get(voice, "en-us") if isinstance(voice, str) else "en-us"
        tmp = tempfile.mkdtemp(prefix="synth-", dir=self.dir)
        try:
            wav = os.path.join(tmp, "a.wav")
            pcm = os.path.join(tmp, "a.pcm")
            subprocess.run(["espeak-ng", "-v", espeak_voice, "-s", "170", "--stdin", "-w", wav],
                           input=text.encode(), check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=30)
            raw24 = ["-t", "raw", "-r", "24000", "-c", "1", "-b", "16", "-e", "signed-integer",
                     "-L"]
            subprocess.run(["sox", wav] + raw24 + [pcm], check=True, stderr=subprocess.PIPE,
                           timeout=30)
            outs = {"audio/pcm": pcm}
            for fmt, enc in (("audio/pcmu", "mu-law"), ("audio/pcma", "a-law")):
                out = os.path.join(tmp, "a." + FORMATS[fmt]["ext"])
                subprocess.run(["sox"] + raw24 + [pcm, "-t", "raw", "-r", "8000", "-c", "1",
                                                  "-e", enc, out],
                               check=True, stderr=subprocess.PIPE, timeout=30)
                outs[fmt] = out
            for fmt, src in outs.items():
                os.replace(src, paths[fmt])
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return {fmt: open(p, "rb").read() for fmt, p in paths.items()}

    def key(self, text, voice):
        return (self.clean_text(text), json.dumps(voice, sort_keys=True))

    def preload(self, text, voice):
        k = self.key(text, voice)
        if k not in self.mem:
            self.mem[k] = self.generate_sync(text, voice)

    async def get(self, text, voice, fmt):
        k = self.key(text, voice)
        if k not in self.mem:
            lock = self.locks.setdefault(k, asyncio.Lock())
            async with lock:
                if k not in self.mem:
                    loop = asyncio.get_running_loop()
                    self.mem[k] = await loop.run_in_executor(None, self.generate_sync, text, voice)
        return self.mem[k][fmt]


# ----------------------------------------------------------------------------------------------
# The script: what the caller is deemed to say, and what the assistant answers.

def _norm(s):
    return " ".join(re.sub(r"[^a-z0-9 ]+", " ", s.lower()).split())


class Script:
    """Loaded from JSON: {"greeting"?, "turns": [...], "default_reply"?, "tool_reply"?,
    "idle_reply"?}."""

    def __init__(self, data=None, source="(built-in)"):
        data = data or {}
        if not isinstance(data, dict):
            raise ValueError("%s: the script must be a JSON object" % source)
        for k in data:
            if k not in ("greeting", "turns", "default_reply", "tool_reply", "idle_reply"):
                raise ValueError("%s: unknown key %r" % (source, k))
        turns = data.get("turns", [])
        if not isinstance(turns, list):
            raise ValueError("%s: 'turns' must be an array" % source)
        self.turns = []
        for i, t in enumerate(turns):
            if not isinstance(t, dict):
                raise ValueError("%s: turns[%d] must be an object" % (source, i))
            for k in t:
                if k not in ("say", "transcript", "call", "after_call"):
                    raise ValueError("%s: turns[%d]: unknown key %r" % (source, i, k))
            for k in ("say", "transcript", "after_call"):
                if k in t and not isinstance(t[k], str):
                    raise ValueError("%s: turns[%d].%s must be a string" % (source, i, k))
            if "call" in t:
                c = t["call"]
                if not isinstance(c, dict) or not isinstance(c.get("name"), str):
                    raise ValueError("%s: turns[%d].call needs a string 'name'" % (source, i))
                if not isinstance(c.get("arguments", {}), (dict, str)):
                    raise ValueError("%s: turns[%d].call.arguments must be an object or string"
                                     % (source, i))
            self.turns.append(t)
        self.greeting = data.get("greeting")
        self.default_reply = data.get("default_reply", DEFAULT_REPLY)
        self.tool_reply = data.get("tool_reply", DEFAULT_TOOL_REPLY)
        self.idle_reply = data.get("idle_reply", DEFAULT_IDLE_REPLY)
        for k in ("greeting", "default_reply", "tool_reply", "idle_reply"):
            if data.get(k) is not None and not isinstance(data[k], str):
                raise ValueError("%s: %s must be a string" % (source, k))

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f), path)

    def texts(self):
        """Every fixed text the assistant may speak (pre-synthesized at startup)."""
        out = [DEFAULT_GREETING, self.default_reply, self.idle_reply]
        if self.greeting:
            out.append(self.greeting)
        out += [t["say"] for t in self.turns if t.get("say")]
        return out


class ScriptCursor:
    """One connection's position in a script: turns are consumed in order, or by phrase."""

    def __init__(self, script):
        self.script = script
        self.used = [False] * len(script.turns)
        self.greeted = False

    def _take(self, i):
        self.used[i] = True
        return self.script.turns[i]

    def next_turn(self):
        for i, u in enumerate(self.used):
            if not u:
                return self._take(i)
        return {"say": self.script.default_reply}

    def greeting_turn(self):
        """A response with no caller input before it: the greeting, once, then the next turn."""
        if self.script.greeting and not self.greeted:
            self.greeted = True
            return {"say": self.script.greeting}
        if not self.script.turns and not self.greeted:
            self.greeted = True
            return {"say": DEFAULT_GREETING}
        self.greeted = True
        return self.next_turn()

    def match(self, text):
        """The first unused turn whose transcript phrase occurs in the caller's text."""
        nt = _norm(text)
        for i, t in enumerate(self.script.turns):
            if not self.used[i] and t.get("transcript") and _norm(t["transcript"]) in nt:
                return self._take(i)
        return None


# ----------------------------------------------------------------------------------------------
# Observability: JSON-lines event log and the exit summary.

class EventLog:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1, encoding="utf-8") if path else None

    def write(self, conn_id, direction, etype, **fields):
        if not self.f:
            return
        rec = {"t": round(now(), 6), "conn": conn_id, "dir": direction, "type": etype}
        rec.update(fields)
        self.f.write(json.dumps(rec, separators=(",", ":")) + "\n")


class Stats:
    def __init__(self):
        self.d = {
            "connections": 0, "handshakes_rejected": {}, "session_updates": 0,
            "session_updates_rejected": 0, "append_events": 0, "appended_bytes": 0,
            "appended_audio_ms": 0.0, "commits": 0, "speech_started": 0, "speech_stopped": 0,
            "responses": 0, "responses_completed": 0, "responses_incomplete": 0,
            "responses_cancelled": {"turn_detected": 0, "client_cancelled": 0},
            "response_audio_ms": 0.0, "function_calls": 0, "function_call_outputs": 0,
            "truncates": {"accepted": 0, "rejected": 0}, "errors_sent": {},
            "malformed_messages": 0, "faults_fired": {},
            "session_update_before_append": 0, "append_before_session_update": 0,
            "usage": {"input_tokens": 0, "output_tokens": 0, "input_audio_tokens": 0,
                      "output_audio_tokens": 0, "input_text_tokens": 0, "output_text_tokens": 0,
                      "cached_tokens": 0},
            "per_connection": [],
        }

    def inc(self, key, n=1):
        self.d[key] += n

    def inc_map(self, key, sub, n=1):
        m = self.d[key]
        m[sub] = m.get(sub, 0) + n


# ----------------------------------------------------------------------------------------------
# One conversation item as the server keeps it.

class ItemRec:
    def __init__(self, item, audio_ms=0.0, text_tokens=0, is_assistant_audio=False):
        self.item = item
        self.audio_ms = audio_ms          # current audio length (after truncation)
        self.sent_ms = audio_ms           # audio the server produced/sent for this item
        self.text_tokens = text_tokens
        self.is_assistant_audio = is_assistant_audio
        self.audio_role = item.get("role")


# ----------------------------------------------------------------------------------------------
# A response being streamed

class _Stopped(Exception):
    pass


class Response:
    """One model response. Streams in its own task; finish() ends it exactly once."""

    def __init__(self, conn, plan, overrides, trigger):
        self.conn = conn
        self.id = new_id("resp_")
        self.plan = plan
        self.trigger = trigger
        s = conn.session
        self.modalities = overrides.get("output_modalities", s["output_modalities"])
        aout = overrides.get("audio", {}).get("output", {})
        self.fmt = aout.get("format", s["audio"]["output"]["format"])
        self.fmt = normalize_format(self.fmt)
        self.voice = aout.get("voice", s["audio"]["output"]["voice"])
        self.conversation = overrides.get("conversation", "auto")
        self.in_conversation = self.conversation != "none"
        self.metadata = overrides.get("metadata")
        self.max_tokens = overrides.get("max_output_tokens", s["max_output_tokens"])
        self.state = "active"
        self.outputs = []          # ItemRec of every output item
        self.cur = None            # the output item being streamed
        self.cur_kind = None       # "audio" | "text" | "call"
        self.cur_part_open = False
        self.cur_text = ""         # transcript/text/arguments sent so far for cur
        self.cur_index = 0
        self.audio_bytes = 0
        self.audio_ms = 0.0
        self.out_text_chars = 0
        self.input_usage = conn.input_usage()
        self.created_sent = False
        self.close_lock = asyncio.Lock()  # an item's .done events are never split by a cancel
        self.task = None

    def shape(self, status, status_details=None, usage=None):
        return {
            "object": "realtime.response", "id": self.id, "status": status,
            "status_details": status_details,
            "output": [r.item for r in self.outputs] if status != "in_progress" else [],
            "conversation_id": self.conn.conversation_id if self.in_conversation else None,
            "output_modalities": self.modalities, "max_output_tokens": self.max_tokens,
            "audio": {"output": {"format": self.fmt, "voice": self.voice}},
            "usage": usage, "metadata": self.metadata,
        }

    async def emit(self, ev):
        if self.state != "active":
            raise _Stopped()
        await self.conn.send(ev)

    def ids(self):
        if self.state != "active" or self.cur is None:
            raise _Stopped()  # finished by a cancel while this task was suspended
        return {"response_id": self.id, "item_id": self.cur.item["id"],
                "output_index": self.cur_index}

    async def emit_text(self, etype, delta, extra=None):
        """A text/transcript/arguments delta of the current item, counted only if sent."""
        ids = self.ids()
        self.cur_text += delta
        self.out_text_chars += len(delta)
        ev = {"type": etype, **ids}
        ev.update(extra or {"content_index": 0})
        ev["delta"] = delta
        await self.emit(ev)

    async def run(self):
        c = self.conn
        try:
            if c.opts["latency_ms"] > 0:
                await asyncio.sleep(c.opts["latency_ms"] / 1000.0)
            await self.emit({"type": "response.created", "response": self.shape("in_progress")})
            self.created_sent = True
            await self.emit({"type": "rate_limits.updated", "rate_limits": [
                {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
                {"name": "tokens", "limit": 400000, "remaining": 395000, "reset_seconds": 0.75}]})
            for idx, part in enumerate(self.plan):
                self.cur_index = idx
                if part[0] == "say":
                    await self.stream_message(part[1])
                else:
                    await self.stream_call(part[1], part[2])
                if self.state != "active":
                    return
            await self.finish("completed")
        except (_Stopped, websockets.ConnectionClosed):
            pass
        except Exception:  # a bug here must not take the server down
            traceback.print_exc(file=sys.stderr)
            try:
                await self.finish("failed")
            except Exception:
                pass

    async def open_item(self, item, kind):
        rec = ItemRec(item, is_assistant_audio=(kind == "audio"))
        # All of cur's state is set together, so a cancel at any await closes it correctly.
        self.cur_kind, self.cur_text, self.cur_part_open = kind, "", False
        self.cur = rec
        if kind == "call":
            self.conn.calls[item["call_id"]] = rec
        self.outputs.append(rec)
        prev = self.conn.last_item_id()
        if self.in_conversation:
            self.conn.add_item(rec)
        await self.emit({"type": "response.output_item.added", "response_id": self.id,
                         "output_index": self.cur_index, "item": dict(item)})
        if self.in_conversation:
            await self.emit({"type": "conversation.item.created", "previous_item_id": prev,
                             "item": dict(item)})
            await self.emit({"type": "conversation.item.added", "previous_item_id": prev,
                             "item": dict(item)})
        return rec

    async def stream_message(self, text):
        c = self.conn
        audio_mode = "audio" in self.modalities
        item = {"id": new_id("item_"), "object": "realtime.item", "type": "message",
                "status": "in_progress", "role": "assistant", "content": []}
        await self.open_item(item, "audio" if audio_mode else "text")
        words = re.findall(r"\S+\s*", text)
        if audio_mode:
            audio = await c.synth.get(text, self.voice, self.fmt["type"])
            if self.state != "active":
                raise _Stopped()
            ids = self.ids()
            self.cur_part_open = True
            await self.emit({"type": "response.content_part.added", **ids,
                             "content_index": 0, "part": {"type": "audio", "transcript": ""}})
            await self.stream_audio(audio, words)
        else:
            ids = self.ids()
            self.cur_part_open = True
            await self.emit({"type": "response.content_part.added", **ids,
                             "content_index": 0, "part": {"type": "text", "text": ""}})
            budget = None if self.max_tokens == "inf" else self.max_tokens * 4
            for w in words:
                if budget is not None and len(self.cur_text) + len(w) > budget:
                    await self.finish("incomplete", {"type": "incomplete",
                                                     "reason": "max_output_tokens"})
                    return
                await self.emit_text("response.output_text.delta", w)
                await c.pace_gap()
        await self.close_current(incomplete=False)

    async def stream_audio(self, audio, words):
        c = self.conn
        info = FORMATS[self.fmt["type"]]
        bpms = info["bpms"]
        rec = self.cur
        total_words = len(words)
        wi = 0
        pos = 0
        budget_ms = None if self.max_tokens == "inf" else self.max_tokens * 50.0
        t0 = asyncio.get_running_loop().time()
        first = True
        while pos < len(audio):
            ms = c.rng.randint(c.opts["delta_ms"][0] // 10, c.opts["delta_ms"][1] // 10) * 10
            chunk = audio[pos:pos + max(bpms, ms * bpms)]
            if first and "oversized" in c.modes and not c.oversized_sent:
                # One message bigger than the configured size: pad the first delta with silence.
                raw_needed = (c.opts["oversized_bytes"] * 3) // 4 + 3
                raw_needed += (-raw_needed) % len(info["silence"])
                chunk = audio[pos:pos + raw_needed]
                pos += len(chunk)
                chunk += info["silence"] * ((raw_needed - len(chunk)) // len(info["silence"]))
                c.oversized_sent = True
                c.fault_fired("oversized")
            else:
                pos += len(chunk)
            chunk_ms = len(chunk) / bpms
            if budget_ms is not None and self.audio_ms + chunk_ms > budget_ms:
                await self.finish("incomplete", {"type": "incomplete",
                                                 "reason": "max_output_tokens"})
                return
            # The transcript runs a little ahead of the audio, as the real service's does.
            frac = min(1.0, (pos / len(audio)) if audio else 1.0)
            want = min(total_words, math.ceil(frac * total_words))
            if want > wi:
                delta = "".join(words[wi:want])
                wi = want
                await self.emit_text("response.output_audio_transcript.delta", delta)
            # Count before sending: the frame is in the socket buffer before send() can yield.
            # No await between this check and the send, so a cancel cannot slip in between.
            if self.state != "active":
                raise _Stopped()
            self.audio_bytes += len(chunk)
            self.audio_ms += chunk_ms
            rec.sent_ms += chunk_ms
            rec.audio_ms += chunk_ms
            c.assistant_audio_present = True
            await self.emit({"type": "response.output_audio.delta", **self.ids(),
                             "content_index": 0,
                             "delta": base64.b64encode(chunk).decode("ascii")})
            if first:
                first = False
                c.on_first_audio()
            await c.pace_after(t0, self.audio_ms)
        if wi < total_words:
            await self.emit_text("response.output_audio_transcript.delta",
                                 "".join(words[wi:]))

    async def stream_call(self, name, arguments):
        c = self.conn
        args = (arguments if isinstance(arguments, str)
                else json.dumps(arguments, separators=(",", ":")))
        call_id = new_id("call_", 16)
        item = {"id": new_id("item_"), "object": "realtime.item", "type": "function_call",
                "status": "in_progress", "call_id": call_id, "name": name, "arguments": ""}
        c.stats.inc("function_calls")
        await self.open_item(item, "call")
        step = max(1, math.ceil(len(args) / 4))
        for i in range(0, len(args), step):
            await self.emit_text("response.function_call_arguments.delta", args[i:i + step],
                                 {"call_id": call_id})
            await c.pace_gap()
        await self.emit({"type": "response.function_call_arguments.done", **self.ids(),
                         "call_id": call_id, "name": name, "arguments": args})
        c.last_call_turn = c.current_turn
        await self.close_current(incomplete=False)

    async def close_current(self, incomplete):
        """Sends the .done events of the open output item (also on cancel)."""
        async with self.close_lock:
            await self._close_current(incomplete)

    async def _close_current(self, incomplete):
        rec, kind, text = self.cur, self.cur_kind, self.cur_text
        if rec is None:
            return
        self.cur = None
        c = self.conn
        ids = {"response_id": self.id, "item_id": rec.item["id"], "output_index": self.cur_index}
        item = rec.item
        if kind in ("audio", "text"):
            if self.cur_part_open:
                if kind == "audio":
                    await c.send({"type": "response.output_audio.done", **ids, "content_index": 0})
                    await c.send({"type": "response.output_audio_transcript.done", **ids,
                                  "content_index": 0, "transcript": text})
                    part = {"type": "audio", "transcript": text}
                else:
                    await c.send({"type": "response.output_text.done", **ids,
                                  "content_index": 0, "text": text})
                    part = {"type": "text", "text": text}
                await c.send({"type": "response.content_part.done", **ids, "content_index": 0,
                              "part": part})
            self.cur_part_open = False
            item["content"] = ([{"type": "output_audio", "transcript": text}] if kind == "audio"
                               else [{"type": "output_text", "text": text}])
            rec.text_tokens = math.ceil(len(text) / 4)
        else:
            item["arguments"] = text
            rec.text_tokens = math.ceil((len(text) + len(item["name"])) / 4)
        item["status"] = "incomplete" if incomplete else "completed"
        await c.send({"type": "response.output_item.done", "response_id": self.id,
                      "output_index": self.cur_index, "item": dict(item)})
        if self.in_conversation:
            await c.send({"type": "conversation.item.done", "item": dict(item)})

    def usage(self):
        inp = self.input_usage
        out_audio = math.ceil(self.audio_ms / 50.0)
        out_text = math.ceil(self.out_text_chars / 4)
        return {
            "total_tokens": inp["input_tokens"] + out_audio + out_text,
            "input_tokens": inp["input_tokens"],
            "output_tokens": out_audio + out_text,
            "input_token_details": {
                "text_tokens": inp["text_tokens"], "audio_tokens": inp["audio_tokens"],
                "image_tokens": 0, "cached_tokens": inp["cached_text"] + inp["cached_audio"],
                "cached_tokens_details": {"text_tokens": inp["cached_text"],
                                          "audio_tokens": inp["cached_audio"],
                                          "image_tokens": 0}},
            "output_token_details": {"text_tokens": out_text, "audio_tokens": out_audio},
        }

    async def finish(self, status, status_details=None):
        """Ends the response: closes the open item and sends response.done. Runs once."""
        if self.state != "active":
            return
        self.state = "closing"
        c = self.conn
        try:
            if not self.created_sent:
                # Cancelled before it started: the client still sees a created/done pair.
                self.created_sent = True
                await c.send({"type": "response.created", "response": self.shape("in_progress")})
            # Waits for an item the stream task is closing right now, or closes the open one.
            await self.close_current(incomplete=(status != "completed"))
        finally:
            self.state = "done"
            c.on_response_done(self)
        usage = self.usage()
        if status == "failed":
            status_details = {"type": "failed", "error": {"type": "server_error",
                                                         "code": "server_error"}}
        c.record_response(self, status, status_details, usage)
        await c.send({"type": "response.done",
                      "response": self.shape(status, status_details, usage)})


def normalize_format(fmt):
    if fmt.get("type") == "audio/pcm":
        return {"type": "audio/pcm", "rate": 24000}
    return {"type": fmt["type"]}


# ----------------------------------------------------------------------------------------------
# One client connection

def default_session(model):
    return {
        "type": "realtime", "object": "realtime.session", "id": new_id("sess_"),
        "model": model, "output_modalities": ["audio"], "instructions": DEFAULT_INSTRUCTIONS,
        "tools": [], "tool_choice": "auto", "max_output_tokens": "inf", "tracing": None,
        "truncation": "auto", "prompt": None, "expires_at": int(now()) + 3600, "include": None,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000}, "transcription": None,
                "noise_reduction": None,
                "turn_detection": {"type": "server_vad", "threshold": 0.5,
                                   "prefix_padding_ms": 300, "silence_duration_ms": 500,
                                   "idle_timeout_ms": None, "create_response": True,
                                   "interrupt_response": True}},
            "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy",
                       "speed": 1.0}},
    }


def fill_turn_detection(td):
    if td is None:
        return None
    if td["type"] == "server_vad":
        out = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300,
               "silence_duration_ms": 500, "idle_timeout_ms": None, "create_response": True,
               "interrupt_response": True}
    else:
        out = {"type": "semantic_vad", "eagerness": "auto", "create_response": True,
               "interrupt_response": True}
    out.update(td)
    return out


class Conn:
    def __init__(self, srv, ws, cid, model, modes, opts, script):
        self.srv, self.ws, self.id = srv, ws, cid
        self.stats, self.log, self.synth = srv.stats, srv.log, srv.synth
        self.model = model
        self.modes = modes
        self.opts = opts
        self.rng = random.Random(srv.args.seed * 1000003 + cid)
        self.cursor = ScriptCursor(script)
        self.session = default_session(model)
        self.conversation_id = new_id("conv_")
        self.items = {}            # item_id -> ItemRec, in conversation order
        self.calls = {}            # call_id -> ItemRec of the function_call
        self.active = None         # the Response being streamed
        self.assistant_audio_present = False
        self.current_turn = None   # the script turn of the response being built
        self.pending_turn = None   # turn chosen for the caller's last committed input
        self.last_call_turn = None
        self.pending_outputs = []  # function_call_output texts since the last response
        self.prev_input = {"text": 0, "audio": 0}
        self.oversized_sent = False
        self.fired = False
        self.seq = 0
        self.first_update_seq = None
        self.first_append_seq = None
        self.appended_ms = 0.0
        self.n_responses = 0
        self.truncates = []
        # Input timeline and VAD state.
        self.in_pos_ms = 0.0       # audio time of everything processed by the VAD
        self.buf_start_ms = 0.0    # start of the uncommitted input buffer
        self.carry = array("h")
        self.carry_rate = None
        self.vad_speaking = False
        self.vad_run_start = None
        self.vad_run_ms = 0.0
        self.vad_gap = 0
        self.vad_last_voiced = 0.0
        self.speech_start_ms = 0.0
        self.speech_item_id = None
        self.logged = False
        self.idle_timer = None     # server_vad idle_timeout_ms, armed after each response
        self.tasks = set()

    # -- sending ---------------------------------------------------------------------------------

    async def send(self, ev):
        ev = dict(ev)
        ev_type = ev["type"]
        out = {"type": ev_type, "event_id": new_id("event_")}
        out.update((k, v) for k, v in ev.items() if k != "type")
        if ev_type not in DELTA_EVENTS:
            self.log_out(out)
        await self.ws.send(json.dumps(out, separators=(",", ":")))

    def log_out(self, ev):
        t = ev["type"]
        f = {}
        if t == "error":
            f = {"code": ev["error"].get("code"), "message": ev["error"].get("message"),
                 "param": ev["error"].get("param"), "client_event_id": ev["error"].get("event_id")}
        elif t == "response.done":
            return  # logged with its summary by record_response
        else:
            for k in ("item_id", "response_id", "audio_start_ms", "audio_end_ms", "call_id",
                      "name", "arguments", "transcript", "previous_item_id"):
                if k in ev:
                    f[k] = ev[k]
            if "item" in ev:
                f["item_id"] = ev["item"].get("id")
                f["item_type"] = ev["item"].get("type")
                if ev["item"].get("role"):
                    f["role"] = ev["item"]["role"]
            if "response" in ev:
                f["response_id"] = ev["response"]["id"]
        self.log.write(self.id, "out", t, **f)

    async def send_error(self, err, client_event_id=None):
        self.stats.inc_map("errors_sent", err.code or "null")
        await self.send({"type": "error", "error": {
            "type": err.etype, "code": err.code, "message": err.message, "param": err.param,
            "event_id": client_event_id}})

    def spawn(self, coro):
        t = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)
        return t

    # -- pacing ----------------------------------------------------------------------------------

    async def pace_gap(self):
        await asyncio.sleep(self.opts["gap_ms"] / 1000.0)

    async def pace_after(self, t0, sent_ms):
        pace = self.opts["pace"]
        if pace > 0:
            due = t0 + sent_ms / 1000.0 / pace
            delay = due - asyncio.get_running_loop().time()
            # Keep about one delta ahead of real time, as a streaming service does.
            await asyncio.sleep(max(0.0, delay - self.opts["delta_ms"][1] / 1000.0 / pace))
        else:
            await self.pace_gap()

    # -- faults ----------------------------------------------------------------------------------

    def arm_faults(self):
        timed = [m for m in self.modes if m in ("error_event", "drop", "close_4000")]
        if timed and self.opts["after_ms"] is not None:
            loop = asyncio.get_running_loop()
            loop.call_later(self.opts["after_ms"] / 1000.0,
                            lambda: self.spawn(self.fire_faults()))

    def on_first_audio(self):
        if self.opts["after_ms"] is None and not self.fired:
            self.spawn(self.fire_faults())

    def fault_fired(self, name):
        self.stats.inc_map("faults_fired", name)
        self.log.write(self.id, "fault", name)

    async def fire_faults(self):
        if self.fired:
            return
        self.fired = True
        try:
            if "error_event" in self.modes:
                self.fault_fired("error_event")
                await self.send_error(ApiError(
                    "server_error", "The server had an error while processing your request. "
                    "Sorry about that! (fake_mode=error_event)", None, "server_error"))
            if "close_4000" in self.modes:
                self.fault_fired("close_4000")
                await self.send_error(ApiError(
                    "session_expired", "Your session hit the maximum duration of 60 minutes."))
                await self.ws.close(4000, "invalid_request_error.session_expired")
            if "drop" in self.modes:
                self.fault_fired("drop")
                self.ws.transport.abort()
        except websockets.ConnectionClosed:
            pass

    # -- conversation ----------------------------------------------------------------------------

    def last_item_id(self):
        return next(reversed(self.items), None) if self.items else None

    def add_item(self, rec, previous_item_id=None):
        if previous_item_id is None:
            self.items[rec.item["id"]] = rec
            return
        new = {}
        if previous_item_id == "root":
            new[rec.item["id"]] = rec
        for k, v in self.items.items():
            new[k] = v
            if k == previous_item_id:
                new[rec.item["id"]] = rec
        self.items = new

    def input_usage(self):
        """Tokens of everything a new response reads: the whole conversation so far."""
        s = self.session
        text = 4 + math.ceil(len(s["instructions"]) / 4)
        if s["tools"]:
            text += math.ceil(len(json.dumps(s["tools"])) / 4)
        audio = 0
        for rec in self.items.values():
            text += 4 + rec.text_tokens
            if rec.item.get("role") == "user":
                audio += math.ceil(rec.audio_ms / 100.0)
            elif rec.is_assistant_audio:
                audio += math.ceil(rec.audio_ms / 50.0)
        # The prefix the previous response read is cached (the service caches in 64-token steps).
        cached_text = min(text, self.prev_input["text"]) // 64 * 64
        cached_audio = min(audio, self.prev_input["audio"]) // 64 * 64
        self.prev_input = {"text": text, "audio": audio}
        return {"input_tokens": text + audio, "text_tokens": text, "audio_tokens": audio,
                "cached_text": cached_text, "cached_audio": cached_audio}

    # -- responses -------------------------------------------------------------------------------

    def build_plan(self, manual):
        """Chooses what the next response says: tool reply, the caller's turn, or the greeting."""
        if self.pending_outputs and manual:
            out = self.pending_outputs[-1]
            self.pending_outputs = []
            tmpl = (self.last_call_turn or {}).get("after_call") or self.cursor.script.tool_reply
            self.current_turn = None
            return [("say", tmpl.replace("{output}", out))]
        if self.pending_turn is not None:
            turn, self.pending_turn = self.pending_turn, None
        else:
            turn = self.cursor.greeting_turn()
        self.current_turn = turn
        plan = []
        if turn.get("say"):
            plan.append(("say", turn["say"]))
        if turn.get("call"):
            plan.append(("call", turn["call"]["name"], turn["call"].get("arguments", {})))
        if not plan:
            plan.append(("say", self.cursor.script.default_reply))
        return plan

    def start_response(self, plan, overrides, trigger):
        self.disarm_idle()
        r = Response(self, plan, overrides, trigger)
        self.active = r
        self.n_responses += 1
        self.stats.inc("responses")
        r.task = self.spawn(r.run())
        return r

    def on_response_done(self, r):
        if self.active is r:
            self.active = None
            self.arm_idle(r.audio_ms)

    # -- idle timeout ----------------------------------------------------------------------------

    def arm_idle(self, playback_ms):
        """idle_timeout_ms counts from the end of the model's audio playback (after done)."""
        self.disarm_idle()
        td = self.td()
        if not td or td.get("type") != "server_vad" or not td.get("idle_timeout_ms"):
            return
        delay = (playback_ms + td["idle_timeout_ms"]) / 1000.0
        self.idle_timer = asyncio.get_running_loop().call_later(
            delay, lambda: self.spawn(self.idle_fired()))

    def disarm_idle(self):
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None

    async def idle_fired(self):
        self.idle_timer = None
        if self.active is not None or self.vad_speaking:
            return
        try:
            item_id = new_id("item_")
            start, end = self.buf_start_ms, max(self.buf_start_ms, self.in_pos_ms)
            self.log.write(self.id, "note", "idle_timeout", audio_start_ms=int(start),
                           audio_end_ms=int(end))
            await self.send({"type": "input_audio_buffer.timeout_triggered",
                             "audio_start_ms": int(start), "audio_end_ms": int(end),
                             "item_id": item_id})
            await self.commit(start, end, item_id, turn={"say": self.cursor.script.idle_reply,
                                                         "transcript": ""})
            if self.active is None:
                self.start_response(self.build_plan(manual=False), {}, "idle_timeout")
        except websockets.ConnectionClosed:
            pass

    def record_response(self, r, status, details, usage):
        st = self.stats
        if status == "completed":
            st.inc("responses_completed")
        elif status == "cancelled":
            st.inc_map("responses_cancelled", details["reason"])
        elif status == "incomplete":
            st.inc("responses_incomplete")
        st.d["response_audio_ms"] += r.audio_ms
        u = st.d["usage"]
        u["input_tokens"] += usage["input_tokens"]
        u["output_tokens"] += usage["output_tokens"]
        u["input_audio_tokens"] += usage["input_token_details"]["audio_tokens"]
        u["input_text_tokens"] += usage["input_token_details"]["text_tokens"]
        u["cached_tokens"] += usage["input_token_details"]["cached_tokens"]
        u["output_audio_tokens"] += usage["output_token_details"]["audio_tokens"]
        u["output_text_tokens"] += usage["output_token_details"]["text_tokens"]
        calls = [{"name": o.item["name"], "call_id": o.item["call_id"],
                  "arguments": o.item["arguments"]} for o in r.outputs
                 if o.item["type"] == "function_call"]
        transcript = " ".join(c["transcript"] for o in r.outputs if o.item["type"] == "message"
                              for c in o.item["content"] if "transcript" in c)
        self.log.write(self.id, "out", "response.done", response_id=r.id, status=status,
                       reason=(details or {}).get("reason"), trigger=r.trigger,
                       audio_ms=round(r.audio_ms, 3), audio_bytes=r.audio_bytes,
                       format=r.fmt["type"], transcript=transcript, calls=calls,
                       item_ids=[o.item["id"] for o in r.outputs], usage=usage)

    # -- input audio and VAD ---------------------------------------------------------------------

    def td(self):
        return self.session["audio"]["input"]["turn_detection"]

    async def feed_audio(self, raw):
        fmt = self.session["audio"]["input"]["format"]["type"]
        info = FORMATS[fmt]
        rate = info["rate"]
        dur = len(raw) / info["bpms"]
        self.appended_ms += dur
        self.stats.d["appended_audio_ms"] += dur
        td = self.td()
        if td is None:
            self.in_pos_ms += dur
            return
        samples = decode_samples(fmt, raw)
        if self.carry_rate != rate:
            self.carry = array("h")
            self.carry_rate = rate
        buf = self.carry + samples
        win = rate // 50  # 20 ms windows
        thr = vad_threshold_rms(td.get("threshold", 0.5))
        if td["type"] == "semantic_vad":
            silence_ms = {"low": 1500, "medium": 800, "auto": 800, "high": 400}[td["eagerness"]]
            prefix_ms = 300
        else:
            silence_ms = td["silence_duration_ms"]
            prefix_ms = td["prefix_padding_ms"]
        onset_ms = self.srv.args.vad_onset_ms
        i = 0
        while i + win <= len(buf):
            voiced = rms(buf, i, i + win) >= thr
            t_start = self.in_pos_ms
            t_end = t_start + 20.0
            self.in_pos_ms = t_end
            i += win
            if not self.vad_speaking:
                if voiced:
                    if self.vad_run_start is None:
                        self.vad_run_start = t_start
                        self.vad_run_ms = 0.0
                    self.vad_run_ms += 20.0
                    self.vad_gap = 0
                    if self.vad_run_ms >= onset_ms:
                        self.vad_speaking = True
                        self.vad_last_voiced = t_end
                        start = max(self.buf_start_ms, self.vad_run_start - prefix_ms)
                        self.vad_run_start = None
                        await self.speech_started(start)
                else:
                    self.vad_gap += 1
                    if self.vad_gap >= 2:  # tolerate one quiet window inside an onset
                        self.vad_run_start = None
                        self.vad_run_ms = 0.0
                    if self.vad_run_start is None:
                        # Silence before speech is not kept beyond the prefix padding.
                        self.buf_start_ms = max(self.buf_start_ms, t_end - prefix_ms)
            else:
                if voiced:
                    self.vad_last_voiced = t_end
                elif t_end - self.vad_last_voiced >= silence_ms:
                    self.vad_speaking = False
                    await self.speech_stopped(t_end)
        self.carry = buf[i:]

    async def speech_started(self, start_ms):
        self.disarm_idle()
        self.speech_start_ms = start_ms
        self.speech_item_id = new_id("item_")
        self.stats.inc("speech_started")
        await self.send({"type": "input_audio_buffer.speech_started",
                         "audio_start_ms": int(start_ms), "item_id": self.speech_item_id})
        td = self.td()
        # Only a response writing to the default conversation is interrupted (not out-of-band).
        if (self.active is not None and self.active.in_conversation and td
                and td.get("interrupt_response", True)):
            await self.active.finish("cancelled", {"type": "cancelled", "reason": "turn_detected"})

    async def speech_stopped(self, end_ms):
        self.stats.inc("speech_stopped")
        item_id = self.speech_item_id
        await self.send({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": int(end_ms),
                         "item_id": item_id})
        await self.commit(self.speech_start_ms, end_ms, item_id)
        td = self.td()
        if td and td.get("create_response", True):
            if self.active is None:
                self.start_response(self.build_plan(manual=False), {}, "vad")
            else:
                self.log.write(self.id, "note", "response_not_created",
                               reason="a response is still active (interrupt_response is false)")

    async def commit(self, start_ms, end_ms, item_id=None, turn=None):
        item_id = item_id or new_id("item_")
        dur = max(0.0, end_ms - start_ms)
        self.buf_start_ms = end_ms
        self.stats.inc("commits")
        prev = self.last_item_id()
        await self.send({"type": "input_audio_buffer.committed", "previous_item_id": prev,
                         "item_id": item_id})
        item = {"id": item_id, "object": "realtime.item", "type": "message",
                "status": "completed", "role": "user",
                "content": [{"type": "input_audio", "transcript": None}]}
        rec = ItemRec(item, audio_ms=dur)
        self.add_item(rec)
        await self.send({"type": "conversation.item.created", "previous_item_id": prev,
                         "item": item})
        await self.send({"type": "conversation.item.added", "previous_item_id": prev,
                         "item": item})
        await self.send({"type": "conversation.item.done", "previous_item_id": prev,
                         "item": item})
        if turn is None:
            turn = self.cursor.next_turn()
        self.pending_turn = turn
        transcript = turn.get("transcript")
        if transcript is None:
            transcript = "[speech %d ms]" % int(round(dur))
        rec.text_tokens = math.ceil(len(transcript) / 4)
        tr = self.session["audio"]["input"]["transcription"]
        if tr is not None:
            if transcript:
                await self.send({"type": "conversation.item.input_audio_transcription.delta",
                                 "item_id": item_id, "content_index": 0, "delta": transcript})
            if tr.get("model", "whisper-1") == "whisper-1":
                usage = {"type": "duration", "seconds": round(dur / 1000.0, 3)}
            else:
                a = math.ceil(dur / 100.0)
                o = math.ceil(len(transcript) / 4)
                usage = {"type": "tokens", "input_tokens": a, "output_tokens": o,
                         "total_tokens": a + o,
                         "input_token_details": {"text_tokens": 0, "audio_tokens": a}}
            await self.send({"type": "conversation.item.input_audio_transcription.completed",
                             "item_id": item_id, "content_index": 0, "transcript": transcript,
                             "usage": usage})

    # -- client events ---------------------------------------------------------------------------

    def log_in(self, etype, **fields):
        """Logs the client event being handled; handle_message logs it if nothing else did."""
        self.logged = True
        self.log.write(self.id, "in", etype, **fields)

    async def handle_message(self, msg):
        self.seq += 1
        self.logged = False
        if isinstance(msg, bytes):
            self.stats.inc("malformed_messages")
            self.log_in(None, malformed=True, binary=True, bytes=len(msg))
            await self.send_error(ApiError("invalid_json", "Binary frames are not supported; "
                                           "send client events as JSON text frames."))
            return
        try:
            ev = json.loads(msg)
        except ValueError as e:
            self.stats.inc("malformed_messages")
            self.log_in(None, malformed=True, bytes=len(msg))
            await self.send_error(ApiError("invalid_json", "Invalid JSON in client event: %s" % e))
            return
        if not isinstance(ev, dict):
            self.stats.inc("malformed_messages")
            self.log_in(None, malformed=True, bytes=len(msg))
            await self.send_error(ApiError("invalid_json", "Expected a JSON object as the client "
                                           "event, but got %s instead." % _tname(ev)))
            return
        eid = ev.get("event_id") if isinstance(ev.get("event_id"), str) else None
        etype = ev.get("type")
        try:
            if "type" not in ev:
                raise missing_param("type")
            if not isinstance(etype, str):
                raise type_error("type", "a string", etype)
            if etype not in EVENT_SCHEMAS:
                raise invalid_value("type", etype, CLIENT_EVENTS)
            EVENT_SCHEMAS[etype](ev, "")
            handler = getattr(self, "on_" + etype.replace(".", "_"))
            await handler(ev, eid)
        except ApiError as e:
            if not self.logged:
                if etype == "conversation.item.truncate":
                    # Every truncate is recorded, even one too malformed to look at.
                    self.stats.d["truncates"]["rejected"] += 1
                    rec = {k: ev.get(k) for k in ("item_id", "content_index", "audio_end_ms")}
                    rec.update(accepted=False, error=e.code, param=e.param)
                    self.truncates.append(rec)
                self.log_in(etype if isinstance(etype, str) else None, event_id=eid,
                            accepted=False, error=e.code, param=e.param)
            await self.send_error(e, eid)

    async def on_session_update(self, ev, eid):
        self.stats.inc("session_updates")
        if self.first_update_seq is None:
            self.first_update_seq = self.seq
        sess = ev["session"]
        try:
            if "reject_session" in self.modes:
                self.fault_fired("reject_session")
                raise ApiError("invalid_value", "Invalid value for 'session' "
                               "(fake_mode=reject_session).", "session")
            SESSION_SCHEMA(sess, "session")
            if sess["type"] != "realtime":
                raise invalid_value("session.type", sess["type"], ("realtime",))
            if "model" in sess and sess["model"] != self.session["model"]:
                raise ApiError("invalid_value", "Cannot change a session's model once it has "
                               "started (it is '%s')." % self.session["model"], "session.model")
            mods = sess.get("output_modalities")
            if mods is not None and len(mods) != 1:
                raise ApiError("invalid_value", "Invalid 'session.output_modalities': expected "
                               "exactly one of 'audio' or 'text'.", "session.output_modalities")
            voice = sess.get("audio", {}).get("output", {}).get("voice")
            if (voice is not None and voice != self.session["audio"]["output"]["voice"]
                    and self.assistant_audio_present):
                raise ApiError("cannot_update_voice", "Cannot update a conversation's voice if "
                               "assistant audio is present.")
        except ApiError as e:
            self.stats.inc("session_updates_rejected")
            self.log_in("session.update", event_id=eid, session=sess,
                        accepted=False, error=e.code, param=e.param)
            raise
        self.log_in("session.update", event_id=eid, session=sess, accepted=True)
        self.disarm_idle()
        s = self.session
        for k, v in sess.items():
            if k == "audio":
                for side in ("input", "output"):
                    for kk, vv in v.get(side, {}).items():
                        if kk == "format":
                            vv = normalize_format(vv)
                        elif kk == "turn_detection":
                            vv = fill_turn_detection(vv)
                            self.vad_speaking = False
                            self.vad_run_start = None
                        s["audio"][side][kk] = vv
            elif k == "type":
                continue
            else:
                s[k] = v
        await self.send({"type": "session.updated", "session": s})

    async def on_input_audio_buffer_append(self, ev, eid):
        try:
            raw = base64.b64decode(ev["audio"], validate=True)
        except (binascii.Error, ValueError):
            raise ApiError("invalid_value", "Invalid 'audio': expected base64-encoded audio "
                           "bytes.", "audio")
        if len(raw) > MAX_APPEND_AUDIO_BYTES:
            raise ApiError("string_above_max_length", "Invalid 'audio': at most 15 MiB of audio "
                           "may be appended per event.", "audio")
        fmt = self.session["audio"]["input"]["format"]["type"]
        if self.first_append_seq is None:
            self.first_append_seq = self.seq
        self.stats.inc("append_events")
        self.stats.inc("appended_bytes", len(raw))
        self.log_in("input_audio_buffer.append", event_id=eid, bytes=len(raw),
                    ms=round(len(raw) / FORMATS[fmt]["bpms"], 3), format=fmt)
        await self.feed_audio(raw)

    async def on_input_audio_buffer_commit(self, ev, eid):
        start = self.speech_start_ms if self.vad_speaking else self.buf_start_ms
        dur = self.in_pos_ms - start
        if dur < MIN_COMMIT_MS:
            self.log_in("input_audio_buffer.commit", event_id=eid,
                        accepted=False, buffer_ms=round(dur, 3))
            raise ApiError("input_audio_buffer_commit_empty", "Error committing input audio "
                           "buffer: buffer too small. Expected at least 100ms of audio, but "
                           "buffer only has %.2fms of audio." % max(0.0, dur))
        self.log_in("input_audio_buffer.commit", event_id=eid, accepted=True,
                    buffer_ms=round(dur, 3))
        item_id = self.speech_item_id if self.vad_speaking else None
        self.vad_speaking = False
        self.vad_run_start = None
        await self.commit(start, self.in_pos_ms, item_id)

    async def on_input_audio_buffer_clear(self, ev, eid):
        self.log_in("input_audio_buffer.clear", event_id=eid)
        self.buf_start_ms = self.in_pos_ms
        self.vad_speaking = False
        self.vad_run_start = None
        await self.send({"type": "input_audio_buffer.cleared"})

    async def on_conversation_item_create(self, ev, eid):
        item = ev["item"]
        ITEM_SCHEMA(item, "item")
        prev = ev.get("previous_item_id")
        if prev is not None and prev != "root" and prev not in self.items:
            raise ApiError("invalid_value", "Previous item with id '%s' not found." % prev,
                           "previous_item_id")
        if "id" in item and item["id"] in self.items:
            raise ApiError("invalid_value", "Item with id '%s' already exists." % item["id"],
                           "item.id")
        t = item["type"]
        text_tokens = 0
        if t == "message":
            role = item["role"]
            allowed = {"user": ("input_text", "input_audio", "input_image"),
                       "system": ("input_text",), "assistant": ("output_text",)}[role]
            for i, part in enumerate(item["content"]):
                if part["type"] not in allowed:
                    raise invalid_value("item.content[%d].type" % i, part["type"], allowed)
                text_tokens += math.ceil(len(part.get("text") or part.get("transcript") or "")
                                         / 4)
        elif t == "function_call_output":
            if item["call_id"] not in self.calls:
                self.log_in("conversation.item.create", event_id=eid,
                            item_type=t, call_id=item["call_id"], accepted=False,
                            error="invalid_tool_call_id")
                raise ApiError("invalid_tool_call_id", "Tool call ID '%s' not found in "
                               "conversation." % item["call_id"])
            text_tokens = math.ceil(len(item["output"]) / 4)
        else:
            text_tokens = math.ceil((len(item["arguments"]) + len(item["name"])) / 4)
        full = {"id": item.get("id") or new_id("item_"), "object": "realtime.item",
                "type": t, "status": "completed"}
        full.update((k, v) for k, v in item.items() if k not in ("id", "object", "status"))
        rec = ItemRec(full, text_tokens=text_tokens)
        log = {"item_id": full["id"], "item_type": t, "accepted": True}
        if t == "function_call_output":
            self.pending_outputs.append(item["output"])
            self.stats.inc("function_call_outputs")
            log.update(call_id=item["call_id"], output=item["output"])
        elif t == "function_call":
            self.calls[full.setdefault("call_id", new_id("call_", 16))] = rec
        elif t == "message":
            log["role"] = item["role"]
            if item["role"] == "user":
                text = " ".join(p.get("text", "") for p in item["content"]
                                if p["type"] == "input_text")
                if text.strip():
                    self.pending_turn = self.cursor.match(text) or self.cursor.next_turn()
        self.log_in("conversation.item.create", event_id=eid, **log)
        before = prev if prev is not None else self.last_item_id()
        self.add_item(rec, prev)
        before = None if prev == "root" else before
        await self.send({"type": "conversation.item.created", "previous_item_id": before,
                         "item": full})
        await self.send({"type": "conversation.item.added", "previous_item_id": before,
                         "item": full})
        await self.send({"type": "conversation.item.done", "previous_item_id": before,
                         "item": full})

    async def on_conversation_item_retrieve(self, ev, eid):
        self.log_in("conversation.item.retrieve", event_id=eid,
                    item_id=ev["item_id"])
        rec = self.items.get(ev["item_id"])
        if rec is None:
            raise ApiError("item_not_found", "Item with item_id not found: %s" % ev["item_id"],
                           "item_id")
        await self.send({"type": "conversation.item.retrieved", "item": rec.item})

    async def on_conversation_item_delete(self, ev, eid):
        self.log_in("conversation.item.delete", event_id=eid,
                    item_id=ev["item_id"])
        if ev["item_id"] not in self.items:
            raise ApiError("item_not_found", "Item with item_id not found: %s" % ev["item_id"],
                           "item_id")
        del self.items[ev["item_id"]]
        await self.send({"type": "conversation.item.deleted", "item_id": ev["item_id"]})

    async def on_conversation_item_truncate(self, ev, eid):
        item_id, ci, end = ev["item_id"], ev["content_index"], ev["audio_end_ms"]
        rec = self.items.get(item_id)
        sent = rec.sent_ms if rec else None
        cur = rec.audio_ms if rec else None
        err = None
        if rec is None:
            err = ApiError("item_not_found", "Item with item_id not found: %s" % item_id,
                           "item_id")
        elif not rec.is_assistant_audio or rec.sent_ms <= 0:
            err = ApiError("unsupported_content_type",
                           "Only model output audio messages can be truncated")
        elif ci != 0:
            err = ApiError("invalid_value", "Invalid 'content_index': item %s has no content "
                           "part %d." % (item_id, ci), "content_index")
        elif end > rec.audio_ms:
            err = ApiError("invalid_value", "Audio content of %dms is already shorter than %dms"
                           % (int(rec.audio_ms), end), "audio_end_ms")
        rec_log = {"item_id": item_id, "content_index": ci, "audio_end_ms": end,
                   "sent_ms": round(sent, 3) if sent is not None else None,
                   "audio_ms_before": round(cur, 3) if cur is not None else None,
                   "response_active": self.active is not None, "accepted": err is None}
        if err is not None:
            rec_log["error"] = err.code
        self.truncates.append(rec_log)
        self.stats.d["truncates"]["accepted" if err is None else "rejected"] += 1
        self.log_in("conversation.item.truncate", event_id=eid, **rec_log)
        if err is not None:
            raise err
        rec.audio_ms = float(end)
        # The unheard part of the transcript goes too (proportionally; the fake has no timings).
        for part in rec.item.get("content", []):
            if part.get("transcript") and rec.sent_ms > 0:
                keep = int(len(part["transcript"]) * min(1.0, end / rec.sent_ms))
                part["transcript"] = part["transcript"][:keep]
        await self.send({"type": "conversation.item.truncated", "item_id": item_id,
                         "content_index": ci, "audio_end_ms": end})

    async def on_response_create(self, ev, eid):
        overrides = ev.get("response") or {}
        if "response" in ev and ev["response"] is not None:
            RESPONSE_SCHEMA(overrides, "response")
        mods = overrides.get("output_modalities")
        if mods is not None and len(mods) != 1:
            raise ApiError("invalid_value", "Invalid 'response.output_modalities': expected "
                           "exactly one of 'audio' or 'text'.", "response.output_modalities")
        if self.active is not None:
            self.log_in("response.create", event_id=eid, accepted=False,
                        error="conversation_already_has_active_response",
                        active_response_id=self.active.id)
            raise ApiError("conversation_already_has_active_response",
                           "Conversation already has an active response in progress: %s. Wait "
                           "until the response is finished before creating a new one."
                           % self.active.id)
        plan = self.build_plan(manual=True)
        r = self.start_response(plan, overrides, "response.create")
        self.log_in("response.create", event_id=eid, accepted=True,
                    response_id=r.id, plan=[list(p) for p in plan])

    async def on_response_cancel(self, ev, eid):
        rid = ev.get("response_id")
        r = self.active
        ok = r is not None and (rid is None or rid == r.id)
        self.log_in("response.cancel", event_id=eid, response_id=rid,
                    accepted=ok)
        if not ok:
            raise ApiError("response_cancel_not_active",
                           "Cancellation failed: no active response found")
        await r.finish("cancelled", {"type": "cancelled", "reason": "client_cancelled"})

    async def on_output_audio_buffer_clear(self, ev, eid):
        raise ApiError("invalid_value", "output_audio_buffer.clear is only supported for WebRTC "
                       "and SIP connections.", "type")

    # -- lifecycle -------------------------------------------------------------------------------

    async def serve(self):
        self.arm_faults()
        await self.send({"type": "session.created", "session": self.session})
        async for msg in self.ws:
            try:
                await self.handle_message(msg)
            except websockets.ConnectionClosed:
                raise
            except Exception:
                traceback.print_exc(file=sys.stderr)
                await self.send_error(ApiError("server_error", "The server had an error while "
                                               "processing your request.", None, "server_error"))

    def summary(self):
        if self.first_append_seq is None:
            order = "no_append"
        elif self.first_update_seq is None or self.first_append_seq < self.first_update_seq:
            order = "append_first"
        else:
            order = "session_update_first"
        return {"conn": self.id, "model": self.model, "modes": sorted(self.modes),
                "order": order, "first_session_update_seq": self.first_update_seq,
                "first_append_seq": self.first_append_seq,
                "appended_audio_ms": round(self.appended_ms, 3), "responses": self.n_responses,
                "truncates": self.truncates[:100],
                "close_code": self.ws.close_code}


# ----------------------------------------------------------------------------------------------
# The server

def http_error(status, message, code=None, param=None, etype="invalid_request_error"):
    body = json.dumps({"error": {"message": message, "type": etype, "param": param,
                                 "code": code}}).encode() + b"\n"
    return (status, [("Content-Type", "application/json")], body)


def mask_key(k):
    return (k[:3] + "*" * max(0, min(len(k) - 7, 10)) + k[-4:]) if len(k) > 8 else "***"


def parse_range(s, what):
    m = re.fullmatch(r"(\d+)(?:-(\d+))?", str(s).strip())
    if not m:
        raise ValueError("%s must be N or N-M (ms)" % what)
    lo = int(m.group(1))
    hi = int(m.group(2) or lo)
    if lo < 10 or hi < lo or hi > 60000:
        raise ValueError("%s must be within 10..60000 ms and N <= M" % what)
    return (lo, hi)


class Server:
    def __init__(self, args):
        self.args = args
        self.stats = Stats()
        self.log = EventLog(args.log)
        self.synth = None
        self.script = None
        self.scripts = {}
        self.next_id = 0
        self.conns = set()

    def modes_and_opts(self, query):
        """Connection options: server defaults, overridden by fake_* query parameters."""
        a = self.args
        modes = set(m for m in (a.mode or "").split(",") if m)
        if "fake_mode" in query:
            modes = set(m for m in query["fake_mode"][-1].split(",") if m)
        for m in modes:
            if m not in FAULT_MODES:
                raise ValueError("unknown fake_mode %r (known: %s)" % (m, ", ".join(FAULT_MODES)))
        opts = {"pace": a.pace, "delta_ms": parse_range(a.delta_ms, "--delta-ms"),
                "gap_ms": a.gap_ms, "after_ms": a.after_ms, "latency_ms": a.latency_ms,
                "oversized_bytes": a.oversized_bytes}
        if "slow" in modes:
            opts["pace"] = a.slow_pace
            opts["delta_ms"] = (100, 100)
        if "bursty" in modes:
            opts["pace"] = 0.0
            opts["gap_ms"] = 0.0
            opts["delta_ms"] = (2000, 4000)
        q = {k: v[-1] for k, v in query.items()}
        if "fake_pace" in q:
            opts["pace"] = float(q["fake_pace"])
            if not (0.0 <= opts["pace"] <= 100.0):
                raise ValueError("fake_pace must be within 0..100")
        if "fake_delta_ms" in q:
            opts["delta_ms"] = parse_range(q["fake_delta_ms"], "fake_delta_ms")
        if "fake_gap_ms" in q:
            opts["gap_ms"] = float(q["fake_gap_ms"])
        if "fake_after_ms" in q:
            opts["after_ms"] = int(q["fake_after_ms"])
        if "fake_latency_ms" in q:
            opts["latency_ms"] = int(q["fake_latency_ms"])
        if "fake_oversized_bytes" in q:
            opts["oversized_bytes"] = int(q["fake_oversized_bytes"])
        if opts["gap_ms"] < 0 or opts["latency_ms"] < 0 or opts["oversized_bytes"] < 1:
            raise ValueError("fake_* values must not be negative")
        return modes, opts

    def script_for(self, query):
        if "fake_script" not in query:
            return self.script
        path = query["fake_script"][-1]
        if path not in self.scripts:
            s = Script.load(path)
            self.scripts[path] = s
        return self.scripts[path]

    def reject(self, status, *a, **kw):
        self.stats.inc_map("handshakes_rejected", str(int(status)))
        self.log.write(None, "conn", "rejected", status=int(status), code=kw.get("code"))
        return http_error(status, *a, **kw)

    async def process_request(self, path, headers):
        url = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(url.query)
        if url.path.rstrip("/") != REALTIME_PATH:
            return self.reject(http.HTTPStatus.NOT_FOUND, "Invalid URL (GET %s)" % url.path)
        if self.args.api_key is not None:
            auth = headers.get("Authorization")
            if not auth:
                return self.reject(
                    http.HTTPStatus.UNAUTHORIZED, "You didn't provide an API key. You need to "
                    "provide your API key in an Authorization header using Bearer auth (i.e. "
                    "Authorization: Bearer YOUR_KEY).")
            key = auth[7:] if auth.startswith("Bearer ") else ""
            if key != self.args.api_key:
                return self.reject(http.HTTPStatus.UNAUTHORIZED, "Incorrect API key provided: %s."
                                   % mask_key(key), code="invalid_api_key")
        if "model" not in query and "call_id" not in query:
            return self.reject(http.HTTPStatus.BAD_REQUEST, "Missing required parameter: "
                               "'model'.", code="missing_required_parameter", param="model")
        if "call_id" in query and "model" not in query:
            return self.reject(http.HTTPStatus.BAD_REQUEST, "SIP calls (call_id) are not "
                               "supported by this fake.", code="invalid_value", param="call_id")
        model = query["model"][-1]
        if model not in MODELS:
            return self.reject(http.HTTPStatus.NOT_FOUND, "The model '%s' does not exist or you "
                               "do not have access to it." % model, code="model_not_found")
        try:
            self.modes_and_opts(query)
            self.script_for(query)
        except (ValueError, OSError) as e:
            return self.reject(http.HTTPStatus.BAD_REQUEST, "fake: %s" % e, code="invalid_value")
        return None

    async def handler(self, ws, path):
        url = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(url.query)
        self.next_id += 1
        cid = self.next_id
        self.stats.inc("connections")
        beta = ws.request_headers.get("OpenAI-Beta")
        modes, opts = self.modes_and_opts(query)
        self.log.write(cid, "conn", "open", path=url.path, model=query["model"][-1],
                       modes=sorted(modes), beta_header=beta,
                       tls=ws.transport.get_extra_info("sslcontext") is not None)
        if beta is not None:
            # GA refuses the beta dialect: an error first, then close 4000 (protocols.md §4.0).
            err = {"type": "error", "event_id": new_id("event_"), "error": {
                "type": "invalid_request_error", "code": "beta_api_shape_disabled",
                "message": "The Realtime Beta API is no longer supported. Please use "
                           "/v1/realtime for the GA API.", "param": None, "event_id": None}}
            self.stats.inc_map("errors_sent", "beta_api_shape_disabled")
            self.log.write(cid, "out", "error", code="beta_api_shape_disabled")
            try:
                await ws.send(json.dumps(err))
                await ws.close(4000, "invalid_request_error.beta_api_shape_disabled")
            except websockets.ConnectionClosed:
                pass
            self.log.write(cid, "conn", "close", code=ws.close_code)
            return
        conn = Conn(self, ws, cid, query["model"][-1], modes, opts, self.script_for(query))
        self.conns.add(conn)
        try:
            await conn.serve()
        except websockets.ConnectionClosed:
            pass
        finally:
            if conn.active is not None:
                conn.active.state = "done"
            for t in list(conn.tasks):
                t.cancel()
            self.conns.discard(conn)
            s = conn.summary()
            if s["order"] == "append_first":
                self.stats.inc("append_before_session_update")
            elif s["order"] == "session_update_first":
                self.stats.inc("session_update_before_append")
            if len(self.stats.d["per_connection"]) < 1000:
                self.stats.d["per_connection"].append(s)
            self.log.write(cid, "conn", "close", code=ws.close_code, reason=ws.close_reason,
                           order=s["order"])


def write_stats(srv, dest):
    text = json.dumps(srv.stats.d, sort_keys=True)
    if dest == "-":
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    else:
        with open(dest + ".tmp", "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.replace(dest + ".tmp", dest)


async def serve(args):
    srv = Server(args)
    made_cache = args.cache is None
    cache = args.cache or tempfile.mkdtemp(prefix="fake-openai-cache-")
    os.makedirs(cache, exist_ok=True)
    srv.synth = Synth(cache)
    srv.script = Script.load(args.script) if args.script else Script()
    loop = asyncio.get_running_loop()
    # Speech for every fixed text, in the default voice, before READY: tests start fast.
    for text in srv.script.texts():
        await loop.run_in_executor(None, srv.synth.preload, text, "alloy")
    ctx = None
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
    server = await websockets.serve(
        srv.handler, args.host, args.port, ssl=ctx, process_request=srv.process_request,
        max_size=args.max_message_bytes, max_queue=64,
        ping_interval=(args.ping_interval or None), ping_timeout=(args.ping_interval or None),
        server_header="fake-openai-realtime")
    port = server.sockets[0].getsockname()[1]
    print("READY port=%d scheme=%s path=%s" % (port, "wss" if ctx else "ws", REALTIME_PATH),
          flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    try:
        await asyncio.wait_for(server.wait_closed(), 5)
    except asyncio.TimeoutError:
        pass
    if args.stats:
        write_stats(srv, args.stats)
    if made_cache:
        shutil.rmtree(cache, ignore_errors=True)


def synth_main(args):
    """--synth: write speech in an input format, for tests that need a caller's voice."""
    cache = args.cache or tempfile.mkdtemp(prefix="fake-openai-cache-")
    try:
        s = Synth(cache)
        fmt = {"pcm16": "audio/pcm", "pcmu": "audio/pcmu", "pcma": "audio/pcma"}[args.format]
        data = s.generate_sync(args.synth, args.voice)[fmt]
        with open(args.out, "wb") as f:
            f.write(data)
    finally:
        if args.cache is None:
            shutil.rmtree(cache, ignore_errors=True)
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description="Fake OpenAI Realtime (GA) server for voicebridge "
                                "tests. See tests/fakes/README.md.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = ephemeral (see the READY line)")
    p.add_argument("--cert", help="PEM certificate: serve wss://")
    p.add_argument("--key", help="PEM private key for --cert")
    p.add_argument("--api-key", help="require 'Authorization: Bearer KEY' (else 401)")
    p.add_argument("--script", help="JSON conversation script (see README)")
    p.add_argument("--cache", help="speech cache dir (default: a temp dir removed at exit)")
    p.add_argument("--log", help="append one JSON line per client event/server action here")
    p.add_argument("--stats", nargs="?", const="-", help="JSON summary at exit: to FILE, or "
                   "stdout if no FILE is given")
    p.add_argument("--mode", default="", help="comma list of fault modes for every connection: "
                   + ", ".join(FAULT_MODES))
    p.add_argument("--after-ms", type=int, default=None, help="faults fire this long after "
                   "connect (default: when the first response's first audio is sent)")
    p.add_argument("--pace", type=float, default=0.0, help="audio send rate as a multiple of "
                   "real time; 0 = bursts separated by --gap-ms (default)")
    p.add_argument("--slow-pace", type=float, default=0.5, help="pace used by mode 'slow'")
    p.add_argument("--delta-ms", default="100-200", help="audio per delta, N or N-M ms")
    p.add_argument("--gap-ms", type=float, default=5.0, help="pause between deltas when pace=0")
    p.add_argument("--latency-ms", type=int, default=0, help="delay before response.created")
    p.add_argument("--oversized-bytes", type=int, default=1024 * 1024 + 1,
                   help="size of the oversized message (mode 'oversized')")
    p.add_argument("--max-message-bytes", type=int, default=20 * 1024 * 1024 + 65536,
                   help="bigger client messages are closed with 1009")
    p.add_argument("--vad-onset-ms", type=int, default=100,
                   help="voiced audio needed before speech_started")
    p.add_argument("--ping-interval", type=float, default=20.0, help="0 = no pings")
    p.add_argument("--seed", type=int, default=1, help="seed for delta sizes")
    p.add_argument("--synth", metavar="TEXT", help="write TEXT as speech to --out and exit")
    p.add_argument("--out", help="output file for --synth")
    p.add_argument("--format", default="pcm16", choices=("pcm16", "pcmu", "pcma"),
                   help="--synth format: pcm16 = 24 kHz s16le, pcmu/pcma = 8 kHz G.711")
    p.add_argument("--voice", default="alloy", help="--synth voice (an OpenAI voice name)")
    args = p.parse_args(argv)
    if args.synth is not None:
        if not args.out:
            p.error("--synth needs --out")
        return synth_main(args)
    if bool(args.cert) != bool(args.key):
        p.error("--cert and --key go together")
    try:
        parse_range(args.delta_ms, "--delta-ms")
        for m in filter(None, args.mode.split(",")):
            if m not in FAULT_MODES:
                raise ValueError("unknown --mode %r" % m)
        if args.script:
            Script.load(args.script)
    except (ValueError, OSError) as e:
        p.error(str(e))
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
