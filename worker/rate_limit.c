/* Token buckets in fixed point: one token is 60000 units, and a bucket refilling at R per
 * minute gains R units per millisecond, so refills are exact integer arithmetic with no drift.
 *
 * The user table is an array of entries with a hash index (chains of entry numbers) and an LRU
 * list through the same entries: lookup, touch and evict are O(1), and nothing is allocated
 * after rate_limit_new.
 *
 *   heads[hash % nheads] -> entry -> hnext -> ...      lru: newest <-> ... <-> oldest (evicted)
 */
#include "worker/rate_limit.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define UNIT 60000ull /* units per token; per-minute rates are units per ms */
#define NIL UINT32_MAX

struct bucket {
    uint64_t level; /* units */
    uint64_t last_ms;
};

struct entry {
    char user[RATE_LIMIT_USER_MAX];
    struct bucket b;
    uint32_t hnext, newer, older;
};

struct rate_limit {
    struct rate_limit_settings s;
    struct bucket global;
    struct entry *e;
    uint32_t *heads;
    uint32_t nheads, cap, n;
    uint32_t newest, oldest;
};

static void refill(struct bucket *b, uint64_t now, unsigned per_minute, unsigned burst)
{
    uint64_t cap = burst * UNIT;
    if (now > b->last_ms) {
        uint64_t elapsed = now - b->last_ms;
        if (elapsed > cap) /* per_minute >= 1: this much time refills any bucket; no overflow */
            elapsed = cap;
        uint64_t add = elapsed * per_minute;
        b->level = add >= cap - b->level ? cap : b->level + add;
    }
    if (now > b->last_ms || b->last_ms == 0)
        b->last_ms = now; /* a clock that goes back gives nothing and takes nothing */
}

static uint64_t wait_of(const struct bucket *b, unsigned per_minute)
{
    if (b->level >= UNIT)
        return 0;
    return (UNIT - b->level + per_minute - 1) / per_minute;
}

int rate_limit_new(struct rate_limit **out, const struct rate_limit_settings *s)
{
    if (s->user_per_minute == 0 || s->user_burst == 0 || s->global_per_minute == 0 ||
        s->global_burst == 0 || s->max_users == 0 || s->max_users >= NIL / 2)
        return -EINVAL;
    struct rate_limit *rl = calloc(1, sizeof *rl);
    if (rl == NULL)
        return -ENOMEM;
    rl->s = *s;
    rl->cap = s->max_users;
    rl->nheads = s->max_users * 2;
    rl->e = malloc(rl->cap * sizeof *rl->e);
    rl->heads = malloc(rl->nheads * sizeof *rl->heads);
    if (rl->e == NULL || rl->heads == NULL) {
        rate_limit_free(rl);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < rl->nheads; i++)
        rl->heads[i] = NIL;
    rl->newest = rl->oldest = NIL;
    rl->global.level = s->global_burst * UNIT;
    *out = rl;
    return 0;
}

void rate_limit_free(struct rate_limit *rl)
{
    if (rl == NULL)
        return;
    free(rl->e);
    free(rl->heads);
    free(rl);
}

size_t rate_limit_users(const struct rate_limit *rl)
{
    return rl->n;
}

static uint32_t hash_of(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (uint32_t)(h ^ (h >> 32));
}

static void lru_unlink(struct rate_limit *rl, uint32_t i)
{
    struct entry *e = &rl->e[i];
    if (e->newer != NIL)
        rl->e[e->newer].older = e->older;
    else
        rl->newest = e->older;
    if (e->older != NIL)
        rl->e[e->older].newer = e->newer;
    else
        rl->oldest = e->newer;
}

static void lru_push(struct rate_limit *rl, uint32_t i)
{
    struct entry *e = &rl->e[i];
    e->newer = NIL;
    e->older = rl->newest;
    if (rl->newest != NIL)
        rl->e[rl->newest].newer = i;
    rl->newest = i;
    if (rl->oldest == NIL)
        rl->oldest = i;
}

static void hash_unlink(struct rate_limit *rl, uint32_t i)
{
    uint32_t *p = &rl->heads[hash_of(rl->e[i].user) % rl->nheads];
    while (*p != i)
        p = &rl->e[*p].hnext;
    *p = rl->e[i].hnext;
}

/* The entry for user, created (with a full bucket, evicting the oldest if needed) when absent
 * and create is set; NIL otherwise. A found entry becomes the newest. */
static uint32_t entry_get(struct rate_limit *rl, const char *user, bool create)
{
    uint32_t h = hash_of(user) % rl->nheads;
    for (uint32_t i = rl->heads[h]; i != NIL; i = rl->e[i].hnext) {
        if (strcmp(rl->e[i].user, user) == 0) {
            lru_unlink(rl, i);
            lru_push(rl, i);
            return i;
        }
    }
    if (!create)
        return NIL;
    uint32_t i;
    if (rl->n < rl->cap) {
        i = rl->n++;
    } else {
        i = rl->oldest;
        lru_unlink(rl, i);
        hash_unlink(rl, i);
    }
    struct entry *e = &rl->e[i];
    strcpy(e->user, user); /* length checked by the callers */
    e->b.level = rl->s.user_burst * UNIT;
    e->b.last_ms = 0; /* the first refill starts its clock */
    e->hnext = rl->heads[h];
    rl->heads[h] = i;
    lru_push(rl, i);
    return i;
}

static bool user_named(const char *user)
{
    return user != NULL && user[0] != '\0';
}

int rate_limit_take(struct rate_limit *rl, const char *user, uint64_t now_ms)
{
    const struct rate_limit_settings *s = &rl->s;
    if (user_named(user) && strlen(user) >= RATE_LIMIT_USER_MAX)
        return -EINVAL;
    struct bucket *ub = NULL;
    if (user_named(user)) {
        ub = &rl->e[entry_get(rl, user, true)].b;
        refill(ub, now_ms, s->user_per_minute, s->user_burst);
    }
    refill(&rl->global, now_ms, s->global_per_minute, s->global_burst);
    if (ub != NULL && ub->level < UNIT)
        return -EDQUOT;
    if (rl->global.level < UNIT)
        return -EBUSY;
    if (ub != NULL)
        ub->level -= UNIT;
    rl->global.level -= UNIT;
    return 0;
}

uint64_t rate_limit_wait_ms(struct rate_limit *rl, const char *user, uint64_t now_ms)
{
    const struct rate_limit_settings *s = &rl->s;
    refill(&rl->global, now_ms, s->global_per_minute, s->global_burst);
    uint64_t wait = wait_of(&rl->global, s->global_per_minute);
    if (user_named(user) && strlen(user) < RATE_LIMIT_USER_MAX) {
        uint32_t i = entry_get(rl, user, false);
        if (i != NIL) {
            refill(&rl->e[i].b, now_ms, s->user_per_minute, s->user_burst);
            uint64_t w = wait_of(&rl->e[i].b, s->user_per_minute);
            if (w > wait)
                wait = w;
        }
    }
    return wait;
}
