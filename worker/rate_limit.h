/* Call-creation rate limits: one token bucket per user and one for the whole worker. A bucket
 * holds up to `burst` calls and refills at `per_minute`; a call takes one token from both, and
 * is refused (nothing taken) when either is empty. Users are remembered in a bounded table: when
 * it is full, the least recently seen user is forgotten (it comes back with a full bucket, so the
 * table bounds memory, not the global limit, which always holds). The clock is the caller's
 * (milliseconds, monotonic), so tests inject it. Main loop only; not thread-safe. */
#ifndef VB_WORKER_RATE_LIMIT_H
#define VB_WORKER_RATE_LIMIT_H

#include <stddef.h>
#include <stdint.h>

#define RATE_LIMIT_USER_MAX 128 /* bytes of a user id, NUL included */

struct rate_limit_settings {
    unsigned user_per_minute, user_burst;     /* >= 1 each */
    unsigned global_per_minute, global_burst; /* >= 1 each */
    unsigned max_users;                       /* >= 1 */
};

struct rate_limit;

/* Allocates a limiter with every bucket full. Returns 0, -EINVAL (a zero setting) or -ENOMEM.
 * *out is owned by the caller: rate_limit_free. */
int rate_limit_new(struct rate_limit **out, const struct rate_limit_settings *s);
void rate_limit_free(struct rate_limit *rl);

/* Takes one call for user (NULL or "": nobody in particular, only the global bucket applies)
 * at now_ms. Returns 0 (allowed, counted), -EDQUOT (this user's bucket is empty), -EBUSY (the
 * global bucket is empty) or -EINVAL (user longer than RATE_LIMIT_USER_MAX - 1). A refusal takes
 * nothing. */
int rate_limit_take(struct rate_limit *rl, const char *user, uint64_t now_ms);

/* Milliseconds until rate_limit_take(user) would succeed (0: now), for a Retry-After header. */
uint64_t rate_limit_wait_ms(struct rate_limit *rl, const char *user, uint64_t now_ms);

/* Users currently remembered (for tests and metrics). */
size_t rate_limit_users(const struct rate_limit *rl);

#endif
