/* The worker's record of its calls in Redis: turns the call threads' events into the keys of
 * docs/redis.md (call record, CallSid index, live session, transcript, event stream) through
 * the worker's redis_client, keeps the live sessions fresh, and receives the control commands
 * published on this worker's channel and hands them to the owning call. Main-loop thread only. */
#ifndef VB_WORKER_CALL_STORE_H
#define VB_WORKER_CALL_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct config;
struct call_event;
struct call_store;
struct redis_client;
struct redis_client_stats;

/* Starts the Redis client (never fails because Redis is down) and subscribes to
 * {prefix}ctl:{node}:{worker_id}; node is cfg->node_name or the host name. cfg must outlive
 * the store. Returns 0 and *out, or -ENOMEM. */
int call_store_new(uv_loop_t *loop, const struct config *cfg, unsigned worker_id,
                   struct call_store **out);

/* Closes the Redis client and frees the store (its handles close on the loop). */
void call_store_close(struct call_store *cs);

/* The hook in the worker's event consumer: call for every event, before call_pair_join. */
void call_store_event(struct call_store *cs, const struct call_event *ev);

/* For the HTTP routes (worker/api_control.c) and /metrics, /readyz. */
struct redis_client *call_store_redis(struct call_store *cs);
/* Twilio's REST client for control of calls with no live stream (set by the call API; NULL:
 * Twilio is not configured). Borrowed: its owner outlives the store's routes. */
struct twilio_rest;
void call_store_set_twilio(struct call_store *cs, struct twilio_rest *tr);
struct twilio_rest *call_store_twilio(struct call_store *cs);
const struct redis_client_stats *call_store_redis_stats(const struct call_store *cs);
const char *call_store_prefix(const struct call_store *cs);
const char *call_store_node(const struct call_store *cs);
const struct config *call_store_config(const struct call_store *cs);

/* Appends an event to the stream: fields are name/value pairs (2*n strings); type and call_id
 * first, then the node and the time are added. Queued like every write. */
void call_store_xadd(struct call_store *cs, const char *type, const char *call_id,
                     const char *const *fields, size_t n);

/* A call placed through POST /api/voice-calls/realtime (worker/api_calls.c). Strings are
 * copied into the write; NULL or "" optional ones are left out of the record. */
struct call_store_new_call {
    const char *id, *to, *from;     /* required */
    const char *contact_name, *business_name, *user_id;
    const char *requested_by;       /* the JWT's subject */
    const char *metadata_json;      /* compact JSON object */
    const char *voice, *instructions;
    uint64_t created_ms;            /* wall clock */
};

/* Writes the record (status queued, direction outbound, source api) and emits call.created.
 * Queued like every write: it is written even if Redis is away right now. */
void call_store_create(struct call_store *cs, const struct call_store_new_call *c);

/* Twilio accepted the call: its CallSid on the record and in {prefix}callsid:{sid}, and its
 * status (unless a callback has already moved the record past queued). */
void call_store_placed(struct call_store *cs, const char *id, const char *call_sid,
                       const char *status);

/* Twilio refused the call or could not be reached: status failed, finished, with reason
 * ("twilio_refused", "twilio_unreachable") and Twilio's code and message; call.completed. */
void call_store_place_failed(struct call_store *cs, const char *id, const char *reason,
                             const char *code, const char *message);

/* The hooks of worker/twilio_callbacks_api.h (arg = the store): apply a status or recording
 * callback to the record found through {prefix}callsid:{CallSid}, atomically in Redis (one
 * script each, queued like every write). Status: status, status_seq, answered_at and
 * answered_by (in-progress: call.answered), and on a terminal status finished, ended_at,
 * duration_s (CallDuration), sip_response_code, recording_* and call.completed (held until
 * the stream has ended if it is still live). Recording: recording_url, recording_sid,
 * recording_channels, recording_duration_s and recording.ready. A CallSid the store does not
 * know changes nothing. Returns 0 or -ENOMEM. */
struct twilio_call_status;
struct twilio_recording_status;
int call_store_on_status(void *arg, const struct twilio_call_status *st);
int call_store_on_recording(void *arg, const struct twilio_recording_status *rec);

/* Pure helpers, exposed for the unit tests. */
/* ISO 8601 UTC with milliseconds, "2025-01-31T12:00:00.123Z", from ms since the epoch. */
void call_store_iso8601(uint64_t epoch_ms, char out[32]);
/* A call id we put into keys: 1-64 of [A-Za-z0-9_-]. */
int call_store_id_ok(const char *id);
/* {"role":..,"text":..,"t_ms":..} as compact JSON (owned, free()); NULL out of memory. */
char *call_store_turn_json(const char *role, const char *text, uint32_t t_ms);
/* The usage JSON of the call record from the token counts. */
struct openai_usage;
char *call_store_usage_json(const struct openai_usage *u);

#endif
