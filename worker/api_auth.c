/* Bearer-token check for the call API: header parsing here, token verification in common/jwt.
 * The refusal text says what was wrong with the token, never what it contained. */
#include "worker/api_auth.h"

#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/config.h"
#include "common/jwt.h"

void api_auth_init(struct api_auth *a, const struct config *cfg)
{
    memset(a, 0, sizeof *a);
    a->secret = cfg->jwt_secret;
    a->secret_len = cfg->jwt_secret ? strlen(cfg->jwt_secret) : 0;
    a->leeway_s = cfg->auth.jwt_leeway_s;
    a->require_exp = cfg->auth.jwt_require_exp;
}

static int refuse(struct http_request *req, const char *why)
{
    req->refusal = why;
    return 401;
}

int api_auth_guard(struct http_request *req, void *arg)
{
    const struct api_auth *a = arg;
    const char *h = http_msg_header(req->msg, "authorization");
    if (h == NULL)
        return refuse(req, "missing Authorization: Bearer token");
    while (*h == ' ' || *h == '\t')
        h++;
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return refuse(req, "Authorization must be a Bearer token");
    const char *tok = h + 7;
    while (*tok == ' ' || *tok == '\t')
        tok++;
    size_t len = strlen(tok);
    while (len > 0 && (tok[len - 1] == ' ' || tok[len - 1] == '\t'))
        len--;
    if (len == 0)
        return refuse(req, "missing Authorization: Bearer token");
    if (a->secret == NULL)
        return refuse(req, "this server has no JWT_SECRET: API tokens cannot be checked");
    struct jwt_options o = {.key = a->secret,
                            .key_len = a->secret_len,
                            .now_s = a->now ? a->now() : (int64_t)time(NULL),
                            .leeway_s = a->leeway_s,
                            .require_exp = a->require_exp};
    struct jwt_claims c;
    const char *why;
    if (jwt_verify(tok, len, &o, &c, &why) != 0)
        return refuse(req, why); /* jwt's reasons are static and never quote the token */
    _Static_assert(sizeof req->user >= sizeof c.subject, "subject must fit req->user");
    memcpy(req->user, c.subject, sizeof c.subject);
    return 0;
}
