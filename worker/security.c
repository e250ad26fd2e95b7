/* Assembly of the worker's guards from the configuration, so worker.c needs one init call, one
 * attach call and one free. */
#include "worker/security.h"

#include <errno.h>
#include <string.h>

#include "common/config.h"
#include "common/log.h"
#include "worker/http_endpoints.h"

int worker_security_init(struct worker_security *s, const struct config *cfg)
{
    memset(s, 0, sizeof *s);
    int rc = twilio_guard_init(&s->twilio, cfg);
    if (rc != 0)
        return rc;
    api_auth_init(&s->api, cfg);
    if (cfg->jwt_secret == NULL)
        log_warn("JWT_SECRET is not set: every /api/ request will be answered 401");
    if (cfg->twilio.auth_token != NULL) {
        rc = stream_token_key_derive(&s->stream_key, cfg->twilio.auth_token,
                                     strlen(cfg->twilio.auth_token));
        if (rc != 0)
            return rc;
        s->stream_tokens = true;
    }
    const struct config_rate_limit *r = &cfg->rate_limit;
    struct rate_limit_settings rs = {.user_per_minute = r->user_per_minute,
                                     .user_burst = r->user_burst,
                                     .global_per_minute = r->global_per_minute,
                                     .global_burst = r->global_burst,
                                     .max_users = r->max_users};
    rc = rate_limit_new(&s->calls, &rs);
    if (rc != 0) {
        worker_security_free(s);
        return rc;
    }
    return 0;
}

void worker_security_attach(struct worker_security *s, struct http_endpoints *ep,
                            const struct config *cfg)
{
    ep->twilio_guard = twilio_guard_check;
    ep->twilio_guard_arg = &s->twilio;
    ep->stream_key = s->stream_tokens ? &s->stream_key : NULL;
    ep->stream_token_ttl_s = cfg->twilio.stream_token_ttl_s;
}

void worker_security_free(struct worker_security *s)
{
    rate_limit_free(s->calls);
    s->calls = NULL;
    memset(&s->stream_key, 0, sizeof s->stream_key);
    s->stream_tokens = false;
}
