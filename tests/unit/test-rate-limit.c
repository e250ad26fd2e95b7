/* worker/rate_limit with an injected clock: bursts, exact refill per minute, the global bucket
 * over several users, a refusal taking nothing, the wait hint, eviction of the least recently
 * seen user from a full table, a clock that goes back, and bad arguments. */
#include "worker/rate_limit.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "testing.h"

static struct rate_limit *make(unsigned upm, unsigned ub, unsigned gpm, unsigned gb, unsigned users)
{
    struct rate_limit *rl;
    struct rate_limit_settings s = {.user_per_minute = upm, .user_burst = ub,
                                    .global_per_minute = gpm, .global_burst = gb,
                                    .max_users = users};
    CHECK_EQ(rate_limit_new(&rl, &s), 0);
    return rl;
}

TEST(rate_limit_user_burst_and_refill)
{
    /* 6 per minute = one per 10 s; burst 3 */
    struct rate_limit *rl = make(6, 3, 1000, 1000, 10);
    uint64_t t = 5000000;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(rate_limit_take(rl, "alice", t), 0);
    CHECK_EQ(rate_limit_take(rl, "alice", t), -EDQUOT);
    CHECK_EQ(rate_limit_wait_ms(rl, "alice", t), 10000);
    CHECK_EQ(rate_limit_take(rl, "alice", t + 9999), -EDQUOT);
    CHECK_EQ(rate_limit_wait_ms(rl, "alice", t + 9999), 1);
    CHECK_EQ(rate_limit_take(rl, "alice", t + 10000), 0);
    CHECK_EQ(rate_limit_take(rl, "alice", t + 10000), -EDQUOT);
    /* another user is not affected */
    CHECK_EQ(rate_limit_take(rl, "bob", t), 0);
    /* a long pause refills to the burst, not beyond */
    t += 10 * 60 * 1000;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(rate_limit_take(rl, "alice", t), 0);
    CHECK_EQ(rate_limit_take(rl, "alice", t), -EDQUOT);
    rate_limit_free(rl);
}

TEST(rate_limit_global_bucket)
{
    /* users may do 100 at once, all together 4 at once, 60 per minute = 1 per second */
    struct rate_limit *rl = make(100, 100, 60, 4, 100);
    char user[16];
    for (int i = 0; i < 4; i++) {
        snprintf(user, sizeof user, "u%d", i);
        CHECK_EQ(rate_limit_take(rl, user, 1000), 0);
    }
    CHECK_EQ(rate_limit_take(rl, "u9", 1000), -EBUSY);
    CHECK_EQ(rate_limit_take(rl, NULL, 1000), -EBUSY);
    CHECK_EQ(rate_limit_wait_ms(rl, "u9", 1000), 1000);
    CHECK_EQ(rate_limit_take(rl, "", 2000), 0); /* nobody in particular: global only */
    CHECK_EQ(rate_limit_take(rl, "u9", 2000), -EBUSY);
    rate_limit_free(rl);
}

TEST(rate_limit_refusal_takes_nothing)
{
    /* user bucket 2, global 3: the user's refusals must not drain the global bucket */
    struct rate_limit *rl = make(1, 2, 1, 3, 10);
    CHECK_EQ(rate_limit_take(rl, "a", 100), 0);
    CHECK_EQ(rate_limit_take(rl, "a", 100), 0);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(rate_limit_take(rl, "a", 100), -EDQUOT);
    CHECK_EQ(rate_limit_take(rl, "b", 100), 0); /* the global bucket still had one */
    CHECK_EQ(rate_limit_take(rl, "b", 100), -EBUSY);
    /* and a global refusal takes nothing from the user */
    CHECK_EQ(rate_limit_take(rl, "c", 100), -EBUSY);
    CHECK_EQ(rate_limit_take(rl, "c", 100 + 60000), 0);
    CHECK_EQ(rate_limit_take(rl, "c", 100 + 120000), 0);
    rate_limit_free(rl);
}

TEST(rate_limit_evicts_least_recent)
{
    struct rate_limit *rl = make(1, 1, 1000000, 1000000, 3);
    CHECK_EQ(rate_limit_take(rl, "a", 10), 0);
    CHECK_EQ(rate_limit_take(rl, "b", 11), 0);
    CHECK_EQ(rate_limit_take(rl, "c", 12), 0);
    CHECK_EQ(rate_limit_users(rl), 3);
    CHECK_EQ(rate_limit_take(rl, "a", 13), -EDQUOT); /* a is now the most recent */
    CHECK_EQ(rate_limit_take(rl, "d", 14), 0);       /* evicts b, the least recent */
    CHECK_EQ(rate_limit_users(rl), 3);
    CHECK_EQ(rate_limit_take(rl, "a", 15), -EDQUOT); /* still remembered */
    CHECK_EQ(rate_limit_take(rl, "c", 16), -EDQUOT); /* still remembered */
    /* b was forgotten: a full bucket again; it evicts d, the oldest after a and c were seen */
    CHECK_EQ(rate_limit_take(rl, "b", 17), 0);
    CHECK_EQ(rate_limit_take(rl, "c", 18), -EDQUOT);
    CHECK_EQ(rate_limit_take(rl, "d", 19), 0);
    /* many users through a small table: bounded, and lookups stay right */
    char u[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(u, sizeof u, "x%d", i);
        CHECK_EQ(rate_limit_take(rl, u, 100), 0);
        CHECK_EQ(rate_limit_take(rl, u, 100), -EDQUOT);
    }
    CHECK_EQ(rate_limit_users(rl), 3);
    rate_limit_free(rl);
}

TEST(rate_limit_clock_and_arguments)
{
    struct rate_limit *rl = make(60, 1, 1000, 1000, 4);
    CHECK_EQ(rate_limit_take(rl, "a", 50000), 0);
    CHECK_EQ(rate_limit_take(rl, "a", 40000), -EDQUOT); /* clock back: nothing refilled */
    CHECK_EQ(rate_limit_take(rl, "a", 50999), -EDQUOT);
    CHECK_EQ(rate_limit_take(rl, "a", 51000), 0);
    /* a huge jump does not overflow */
    CHECK_EQ(rate_limit_take(rl, "a", UINT64_MAX / 2), 0);
    CHECK_EQ(rate_limit_take(rl, "a", UINT64_MAX / 2), -EDQUOT);
    char long_user[RATE_LIMIT_USER_MAX + 1];
    memset(long_user, 'z', sizeof long_user - 1);
    long_user[sizeof long_user - 1] = '\0';
    CHECK_EQ(rate_limit_take(rl, long_user, 1), -EINVAL);
    long_user[RATE_LIMIT_USER_MAX - 1] = '\0';
    CHECK_EQ(rate_limit_take(rl, long_user, 1), 0);
    rate_limit_free(rl);
    struct rate_limit *bad;
    struct rate_limit_settings s = {1, 1, 1, 1, 0};
    CHECK_EQ(rate_limit_new(&bad, &s), -EINVAL);
    s.max_users = 1;
    s.user_burst = 0;
    CHECK_EQ(rate_limit_new(&bad, &s), -EINVAL);
}
