#!/usr/bin/env bash
# make demo: one complete local call through the real voicebridge binary. The stand-ins for the
# paid services play their parts over loopback: tests/fakes/fake_openai.py (OpenAI Realtime, GA
# protocol, espeak-ng speech) and tests/fakes/twilio_sim.py (Twilio: fetches our TwiML, opens the
# media stream, speaks a scripted caller, plays back what it receives, echoes marks). Prints the
# transcript as it happens and a latency summary; writes build/demo-call.wav (stereo: the caller
# left, what the caller heard right).
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
vb_port=$(free_port)

echo "== starting the fake OpenAI Realtime server"
$py tests/fakes/fake_openai.py --port 0 --script tests/fakes/demo-openai.json \
  --log "$work/openai.log" >"$work/openai.out" 2>"$work/openai.err" &
pids+=($!)
for _ in $(seq 1 300); do grep -q '^READY' "$work/openai.out" && break; sleep 0.1; done
ai_port=$(sed -n 's/^READY port=\([0-9]*\).*/\1/p' "$work/openai.out")
[ -n "$ai_port" ] || { echo "fake OpenAI did not start:"; cat "$work/openai.err"; exit 1; }

# As behind HAProxy: Twilio is told wss://voice.demo.example (TLS ends at the proxy), and the
# simulator connects to our plain listener with that URL's Host and path.
public=https://voice.demo.example
cat >"$work/voicebridge.json" <<JSON
{ "listen": ["127.0.0.1:$vb_port"], "public_url": "$public",
  "log_level": "info",
  "openai": { "url": "ws://127.0.0.1:$ai_port/v1/realtime",
              "transcription_model": "gpt-4o-mini-transcribe" } }
JSON
echo "== starting voicebridge on 127.0.0.1:$vb_port (OpenAI stand-in on :$ai_port)"
# A made-up auth token: voicebridge checks the simulator's signatures with it, as with Twilio.
token=demo-auth-token-not-a-real-one
env -u OPENAI_API_KEY TWILIO_AUTH_TOKEN=$token build/voicebridge -c "$work/voicebridge.json" >"$work/vb.log" 2>&1 &
vb=$!
pids+=($vb)
for _ in $(seq 1 100); do
  $py -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$vb_port/healthz',timeout=1)" 2>/dev/null && break
  sleep 0.1
done

echo "== placing the call: Twilio fetches TwiML, opens the media stream, the caller talks"
echo
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

mkdir -p build
$py tests/fakes/twilio_sim.py \
  --twiml-url "http://127.0.0.1:$vb_port/webhook/realtime/incoming/demo-call-1" \
  --public-base-url "$public" --connect "127.0.0.1:$vb_port" --auth-token "$token" \
  --script tests/fakes/demo-caller.json --record build/demo-call.wav \
  --report "$work/report.json" --max-duration-ms 60000 -q || true
sleep 0.5
kill -TERM "$vb"
wait "$vb" || true
sleep 0.2
echo
$py - "$work/report.json" "$work/vb.log" "$work/openai.log" <<'PY'
import json, re, sys
rep = json.load(open(sys.argv[1]))
call = rep["calls"][0] if "calls" in rep else rep
end = next((l for l in open(sys.argv[2]) if " ended (" in l), "")

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
