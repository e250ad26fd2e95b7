#!/usr/bin/env bash
# make demo: one complete outbound call through the real voicebridge binary, the way a user
# places one: POST /api/voice-calls/realtime with a JWT. The stand-ins for the paid services play
# their parts over loopback: tests/fakes/twilio_rest_sim.py (Twilio's REST API: it accepts the
# call, sends the status callbacks, fetches our TwiML, opens the media stream and speaks a
# scripted caller through twilio_sim, then the recording callback) and tests/fakes/fake_openai.py
# (OpenAI Realtime, GA protocol, espeak-ng speech); redis-server holds the call's record,
# transcript and events. Prints the transcript as it happens, the record from Redis and a latency
# summary; writes build/demo-call.wav (stereo: the caller left, what the caller heard right).
set -euo pipefail
cd "$(dirname "$0")/.."
py=/usr/bin/python3
work=$(mktemp -d /tmp/vb-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "${VB_DEMO_KEEP:-}" ]; then echo "demo files kept in $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

free_port() { $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ready() { # file: the READY port=N line of a stand-in
  for _ in $(seq 1 300); do grep -q '^READY' "$1" && break; sleep 0.1; done
  sed -n 's/^READY port=\([0-9]*\).*/\1/p' "$1"
}
vb_port=$(free_port)
redis_port=$(free_port)

# Made-up credentials: the stand-in checks them as Twilio would; voicebridge signs nothing with
# them but checks the stand-in's webhook signatures with the auth token.
export TWILIO_ACCOUNT_SID=AC00000000000000000000000000demo0
export TWILIO_AUTH_TOKEN=demo-auth-token-not-a-real-one
export TWILIO_PHONE_NUMBER=+15005550006
export JWT_SECRET=demo-jwt-secret-not-a-real-one-0000

echo "== starting redis-server on 127.0.0.1:$redis_port"
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save "" --appendonly no \
  --protected-mode no >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

echo "== starting the fake OpenAI Realtime server"
$py tests/fakes/fake_openai.py --port 0 --script tests/fakes/demo-openai.json \
  --log "$work/openai.log" >"$work/openai.out" 2>"$work/openai.err" &
pids+=($!)
for _ in $(seq 1 300); do grep -q '^READY' "$work/openai.out" && break; sleep 0.1; done
ai_port=$(sed -n 's/^READY port=\([0-9]*\).*/\1/p' "$work/openai.out")
[ -n "$ai_port" ] || { echo "fake OpenAI did not start:"; cat "$work/openai.err"; exit 1; }

echo "== starting the Twilio REST stand-in"
mkdir -p "$work/recordings" "$work/reports" build
$py tests/fakes/twilio_rest_sim.py --port 0 --account-sid "$TWILIO_ACCOUNT_SID" \
  --auth-token "$TWILIO_AUTH_TOKEN" --connect "127.0.0.1:$vb_port" \
  --script tests/fakes/demo-caller.json --recordings-dir "$work/recordings" \
  --report-dir "$work/reports" --max-call-ms 60000 --log "$work/twilio.log" \
  >"$work/twilio.out" 2>&1 &
pids+=($!)
tw_port=$(wait_ready "$work/twilio.out")
[ -n "$tw_port" ] || { echo "Twilio stand-in did not start:"; cat "$work/twilio.out"; exit 1; }

# As behind HAProxy: Twilio is told https://voice.demo.example (TLS ends at the proxy), and the
# stand-in connects to our plain listener with that URL's Host and path.
public=https://voice.demo.example
cat >"$work/voicebridge.json" <<JSON
{ "listen": ["127.0.0.1:$vb_port"], "public_url": "$public", "workers": 1,
  "log_level": "info",
  "redis_url": "redis://127.0.0.1:$redis_port/0",
  "openai": { "url": "ws://127.0.0.1:$ai_port/v1/realtime",
              "transcription_model": "gpt-4o-mini-transcribe" },
  "twilio": { "api_url": "http://127.0.0.1:$tw_port" } }
JSON
echo "== starting voicebridge on 127.0.0.1:$vb_port (OpenAI stand-in on :$ai_port, Twilio on :$tw_port)"
env -u OPENAI_API_KEY build/voicebridge -c "$work/voicebridge.json" >"$work/vb.log" 2>&1 &
vb=$!
pids+=($vb)
for _ in $(seq 1 100); do
  $py -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$vb_port/healthz',timeout=1)" 2>/dev/null && break
  sleep 0.1
done

# One process follows the log (so killing it by pid ends it) and prints the conversation.
$py -u - "$work/vb.log" <<'PY' &
import re, sys, time
f = open(sys.argv[1])
while True:
    line = f.readline()
    if not line:
        time.sleep(0.05)
        continue
    m = re.search(r"transcript \S+ \+(\d+) ms (user|assistant): (.*)", line)
    if m:
        who = "caller" if m.group(2) == "user" else "AI    "
        print(f"  [{int(m.group(1))/1000:6.2f} s] {who}: {m.group(3)}", flush=True)
    elif "barge-in: cleared" in line:
        print("  [ ...... ] (the caller talks over the AI: playback cleared)", flush=True)
    elif "tool call" in line:
        print("  [ ...... ] (the AI calls " + line.split("tool call: ", 1)[1].strip() + ")", flush=True)
PY
pids+=($!)

echo "== placing the call: POST /api/voice-calls/realtime (JWT), Twilio rings, fetches TwiML,"
echo "   opens the media stream, the caller talks"
echo
call_id=$($py - "$vb_port" "$redis_port" <<'PY'
import base64, hashlib, hmac, json, os, socket, sys, time, urllib.error, urllib.request
port, redis_port = sys.argv[1], int(sys.argv[2])
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"sub": "demo-user", "exp": int(time.time()) + 300}).encode())
sig = hmac.new(os.environ["JWT_SECRET"].encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
req = urllib.request.Request(
    f"http://127.0.0.1:{port}/api/voice-calls/realtime", method="POST",
    data=json.dumps({"toNumber": "+34612345678", "contactName": "Ana García",
                     "businessName": "La Terraza", "metadata": {"booking": "demo"}}).encode(),
    headers={"Content-Type": "application/json", "Authorization": f"Bearer {head}.{body}.{b64(sig)}"})
try:
    with urllib.request.urlopen(req, timeout=15) as r:
        res = json.load(r)
except urllib.error.HTTPError as e:
    print(f"  the API answered {e.code}: {e.read().decode()}", file=sys.stderr)
    sys.exit(1)
d = res["data"]
print(f"  201: call {d['id']}, Twilio {d['twilioCallSid']}, {d['status']}", file=sys.stderr)
print(d["id"])

def redis(*args):  # one RESP command, the reply's first line (enough for HGET)
    with socket.create_connection(("127.0.0.1", redis_port), timeout=5) as s:
        s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in
                                                     (x.encode() for x in args)))
        f = s.makefile("rb")
        line = f.readline()
        return (f.readline() if line[:2] not in (b"$-", b"") and line[:1] == b"$" else line).decode(errors="replace")
end = time.monotonic() + 90
while time.monotonic() < end and "RE" not in redis("HGET", f"vb:call:{d['id']}", "recording_ready"):
    time.sleep(0.2)
PY
)
sleep 0.3
kill -TERM "$vb"
wait "$vb" || true
sleep 0.2
echo
sid=$($py -c "import json,sys; print(next((json.loads(l)['call_sid'] for l in open(sys.argv[1]) if '\"call.created\"' in l), ''))" "$work/twilio.log")
[ -f "$work/recordings/$sid.wav" ] && cp "$work/recordings/$sid.wav" build/demo-call.wav
$py - "$work/reports/$sid.json" "$work/vb.log" "$work/openai.log" "$redis_port" "$call_id" <<'PY'
import json, re, socket, sys
try:
    call = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    call = {}
end = next((l for l in open(sys.argv[2]) if " ended (" in l), "")
redis_port, call_id = int(sys.argv[4]), sys.argv[5]

def redis(*args):
    with socket.create_connection(("127.0.0.1", redis_port), timeout=5) as s:
        s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in
                                                     (x.encode() for x in args)))
        f = s.makefile("rb")
        def read():
            line = f.readline()
            t, rest = line[:1], line[1:-2]
            if t == b"*":
                return [read() for _ in range(int(rest))]
            if t == b"$":
                n = int(rest)
                return None if n < 0 else f.read(n + 2)[:-2].decode(errors="replace")
            return rest.decode()
        return read()

rec = redis("HGETALL", f"vb:call:{call_id}") or []
rec = dict(zip(rec[0::2], rec[1::2]))
print(f"== the call record in Redis (vb:call:{call_id})")
for k in ("status", "direction", "to", "from", "contact_name", "business_name", "metadata",
          "twilio_call_sid", "created_at", "answered_at", "answered_by", "ended_at",
          "duration_s", "end_reason", "recording_url", "recording_channels", "usage"):
    if k in rec:
        print(f"  {k + ':':21}{rec[k]}")
turns = [json.loads(t) for t in redis("LRANGE", f"vb:transcript:{call_id}", "0", "-1") or []]
print(f"== the transcript in Redis (vb:transcript:{call_id}, {len(turns)} turns)")
for t in turns:
    who = "caller" if t["role"] == "user" else "AI    "
    print(f"  [{t['t_ms']/1000:6.2f} s] {who}: {t['text']}")
events = [dict(zip(f[0::2], f[1::2])) for _, f in redis("XRANGE", "vb:events", "-", "+") or []]
types = [e["type"] for e in events if e.get("call_id") == call_id]
squeezed = [t for i, t in enumerate(types) if i == 0 or t != types[i - 1]]
print("== events (vb:events): " + " -> ".join(squeezed))

def num(pat):
    m = re.search(pat, end)
    return m.group(1) if m else "?"

why = num(r"ended \(([^)]*)\)")
up_avg, up_max = num(r"up avg (\d+)"), num(r"up avg \d+ max (\d+)")
down_avg, down_max = num(r"down avg (\d+)"), num(r"down avg \d+ max (\d+)")
barge = num(r"worst (\d+) us")
print("== summary")
print(f"  ended:               {why}")
print(f"  caller -> AI:        {up_avg} us average, {up_max} us worst, added by the bridge per 20 ms frame")
print(f"  AI -> caller:        {down_avg} us average, {down_max} us worst, from a response's first audio to its first frame out")
print(f"  barge-in:            clear sent {barge} us (worst) after speech_started arrived")
for line in open(sys.argv[3]):
    if '"conversation.item.truncate"' in line:
        t = json.loads(line)
        print(f"  truncate:            at {t.get('audio_end_ms')} ms of {t.get('sent_ms', 0):.0f} ms generated, accepted: {t.get('accepted')}")
for i, r in enumerate(call.get("responses", [])):
    lat = r.get("first_audio_latency_ms")
    extra = f", first audio {lat:.0f} ms after the caller stopped (fake VAD and model included)" if lat else ""
    print(f"  response {i + 1}:          {r['audio_ms']:.0f} ms of audio{extra}")
pb = call.get("playback", {})
v = call.get("violations", {}).get("count", 0)
print(f"  playback:            {pb.get('played_ms', 0):.0f} ms played, {pb.get('underruns', 0)} underruns, {v} protocol violations")
print("  recording:           build/demo-call.wav (left: the caller, right: what the caller heard)")
PY
