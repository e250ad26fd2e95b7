/* The call API's guard: Authorization: Bearer <JWT> (HS256 with JWT_SECRET, common/jwt.h), 401
 * with {"success":false,"error":{"code":"unauthorized","message":...}} for a missing, malformed,
 * wrongly signed, expired or not-yet-valid token. On success req->user holds the token's sub
 * (else userId), which the handlers use for the per-user rate limit. Attach it to every /api/
 * route as {.guard = api_auth_guard, .guard_arg = &the_api_auth}. */
#ifndef VB_WORKER_API_AUTH_H
#define VB_WORKER_API_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "worker/http_router.h"

struct config;

/* Filled by api_auth_init, then read-only. Points into the config, which must outlive it. */
struct api_auth {
    const char *secret; /* JWT_SECRET; NULL: every request is refused */
    size_t secret_len;
    unsigned leeway_s;
    bool require_exp;
    int64_t (*now)(void); /* Unix seconds; NULL: the system clock (tests set their own) */
};

void api_auth_init(struct api_auth *a, const struct config *cfg);

/* http_guard_fn: 0 (req->user filled), or 401 with req->refusal set. arg: struct api_auth. */
int api_auth_guard(struct http_request *req, void *arg);

#endif
