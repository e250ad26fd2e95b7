/* The scoreboard's shared memory: a second mapping (as another process would have) sees the
 * first one's writes; rings placed in the call area work and an observer reads their levels;
 * inherited fds are checked before they are trusted. */
#include "common/scoreboard.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/ring.h"
#include "tests/unit/testing.h"

TEST(scoreboard_second_mapping_sees_the_first)
{
    struct scoreboard a, b;
    CHECK_EQ(scoreboard_create(&a), 0);
    CHECK_EQ(scoreboard_attach(&b, dup(a.fd)), 0);
    CHECK(a.hdr != b.hdr);
    sb_store(&a.hdr->slots[5].active_calls, 17);
    atomic_store(&a.hdr->slots[5].state, SB_READY);
    CHECK_EQ(sb_load(&b.hdr->slots[5].active_calls), 17u);
    CHECK_EQ(atomic_load(&b.hdr->slots[5].state), SB_READY);
    CHECK(strcmp(sb_state_name(SB_DRAINING), "draining") == 0);
    scoreboard_close(&a);
    scoreboard_close(&b);
}

TEST(scoreboard_attach_refuses_what_is_not_a_board)
{
    struct scoreboard sb;
    int fd = memfd_create("x", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    CHECK(fd >= 0);
    CHECK_EQ(ftruncate(fd, sizeof(struct sb_header)), 0);
    CHECK_EQ(scoreboard_attach(&sb, dup(fd)), -EPROTO); /* not sealed */
    CHECK_EQ(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
    CHECK_EQ(scoreboard_attach(&sb, dup(fd)), -EPROTO); /* sealed, but no magic */
    close(fd);
    int p[2];
    CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
    CHECK_EQ(scoreboard_attach(&sb, p[0]), -EPROTO); /* not a memfd (and closed for us) */
    close(p[1]);
}

TEST(scoreboard_call_area_rings_are_observable)
{
    struct sb_area w, m;
    CHECK_EQ(sb_area_create(&w, 8, 1024, 4096), 0);
    CHECK_EQ(sb_area_attach(&m, dup(w.fd), 9, 1024, 4096, 0), -EPROTO); /* wrong geometry */
    CHECK_EQ(sb_area_attach(&m, dup(w.fd), 8, 1024, 4096, 0), 0);
    struct ring up, down, obs;
    CHECK_EQ(ring_format(&up, sb_area_uplink(&w, 7), 1024), 0);
    CHECK_EQ(ring_format(&down, sb_area_downlink(&w, 7), 4096), 0);
    CHECK_EQ(ring_push(&up, "hello", 5), 5u);
    CHECK_EQ(ring_push(&down, "0123456789", 10), 10u);
    char b[4];
    CHECK_EQ(ring_pop(&down, b, 4), 4u);
    CHECK_EQ(ring_observe(&obs, sb_area_downlink(&m, 7), 4096 + 192), 0);
    CHECK_EQ(ring_fill(&obs), 6u);
    CHECK_EQ(ring_tail(&obs), 4u);
    CHECK_EQ(ring_observe(&obs, sb_area_uplink(&m, 7), 1024 + 192), 0);
    CHECK_EQ(ring_fill(&obs), 5u);
    CHECK_EQ(ring_observe(&obs, sb_area_uplink(&m, 7), 1000), -EPROTO); /* too small */
    CHECK_EQ(ring_observe(&obs, sb_area_uplink(&m, 6), 1024 + 192), -EPROTO); /* never formatted */
    /* the rings of neighbouring calls do not overlap */
    CHECK((uint8_t *)sb_area_uplink(&w, 7) >= (uint8_t *)sb_area_downlink(&w, 6) + 4096 + 192);
    CHECK((uint8_t *)sb_area_call(&w, 7) >= (uint8_t *)sb_area_downlink(&w, 6) + 4096 + 192);
    CHECK(sb_area_call(&w, 8) == NULL);
    /* a reused slot starts empty */
    CHECK_EQ(ring_format(&up, sb_area_uplink(&w, 7), 1024), 0);
    CHECK_EQ(ring_fill(&up), 0u);
    ring_close(&up);
    ring_close(&down);
    sb_area_close(&w);
    sb_area_close(&m);
}
