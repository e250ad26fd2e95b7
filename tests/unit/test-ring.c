/* SPSC ring: full/empty/wrap semantics, spans that stop at the wrap, free-running counters
 * (even across 2^64), discard, misuse answered without crashing, attach validation of
 * hostile fds, a read-only observer on another mapping, a two-thread stress run (also under
 * ThreadSanitizer) and a 100 MB two-process transfer through a 64 KiB ring. Data is checked
 * against a position-derived pattern, so a lost, repeated or reordered byte is caught. */
#include "common/ring.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/unit/testing.h"

#if defined(__SANITIZE_THREAD__)
#define RING_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RING_TEST_TSAN 1
#endif
#endif

/* The shared layout as ring.h documents it: tests forge and corrupt headers through it. */
#define HDR_MAGIC_OFF 0
#define HDR_VERSION_OFF 4
#define HDR_CAPACITY_OFF 8
#define HDR_HEAD_OFF 64
#define HDR_TAIL_OFF 128
#define HDR_DATA_OFF 192

/* ---- helpers ---- */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The byte at stream position pos: both sides can compute it independently. */
static void pattern_fill(uint8_t *dst, uint64_t pos, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint64_t w = splitmix64((pos + i) >> 3);
        for (unsigned sh = (unsigned)((pos + i) & 7); sh < 8 && i < n; sh++, i++)
            dst[i] = (uint8_t)(w >> (sh * 8));
    }
}

/* Returns n if src holds the pattern for [pos, pos + n), else the index of the first bad byte. */
static size_t pattern_check(const uint8_t *src, uint64_t pos, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint64_t w = splitmix64((pos + i) >> 3);
        for (unsigned sh = (unsigned)((pos + i) & 7); sh < 8 && i < n; sh++, i++)
            if (src[i] != (uint8_t)(w >> (sh * 8)))
                return i;
    }
    return n;
}

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}
#define FNV_INIT 0xcbf29ce484222325ull

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static int fd_is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

/* Waiting for the other side without spinning forever: a short spin, then yields, then
 * sleeps; after ~60 s without progress it gives up, so a lost wake-up fails instead of hanging.
 * This bounds a hang; it does not judge speed. */
struct backoff {
    unsigned spins;
    unsigned long sleeps;
};

static void backoff_reset(struct backoff *b)
{
    b->spins = 0;
    b->sleeps = 0;
}

static int backoff_wait(struct backoff *b)
{
    if (b->spins < 64) {
        b->spins++;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        return 0;
    }
    if (b->spins < 64 + 256) {
        b->spins++;
        sched_yield();
        return 0;
    }
    usleep(200);
    return ++b->sleeps > 300000 ? -1 : 0;
}

/* A sealed (or not) memfd of size bytes with a forged header. */
static int forge_ring_fd(off_t size, int seal, uint32_t magic, uint32_t version, uint64_t cap)
{
    int fd = memfd_create("forged", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    CHECK(fd != -1);
    CHECK(ftruncate(fd, size) == 0);
    if (size >= HDR_DATA_OFF) {
        CHECK(pwrite(fd, &magic, 4, HDR_MAGIC_OFF) == 4);
        CHECK(pwrite(fd, &version, 4, HDR_VERSION_OFF) == 4);
        CHECK(pwrite(fd, &cap, 8, HDR_CAPACITY_OFF) == 8);
    }
    if (seal)
        CHECK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW) == 0);
    return fd;
}

/* Attaches expecting failure: the error, the fd closed and the view owning nothing. */
static void check_attach_fails(int fd, int writable, int want)
{
    struct ring r;
    memset(&r, 0x5a, sizeof r);
    CHECK_EQ(ring_attach(&r, fd, writable), want);
    CHECK(!fd_is_open(fd));
    CHECK(r.hdr == NULL);
    CHECK_EQ(r.fd, -1);
    ring_close(&r);
}

/* ---- semantics ---- */

TEST(ring_create_checks_capacity)
{
    /* clang-format off */
    static const size_t bad[] = {0, 1, 2, 32, 63, 65, 96, 100, 4095, 4097, ((size_t)1 << 30) + 1,
                                 (size_t)1 << 31, (size_t)1 << 63, SIZE_MAX};
    /* clang-format on */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct ring r;
        memset(&r, 0x5a, sizeof r);
        CHECK_MSG(ring_create(&r, bad[i], "bad") == -EINVAL, "capacity %zu accepted", bad[i]);
        CHECK(r.hdr == NULL);
        CHECK_EQ(r.fd, -1);
        ring_close(&r);
    }
    static const size_t good[] = {64, 128, 4096, (size_t)1 << 20, (size_t)1 << 30};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct ring r;
        CHECK_EQ(ring_create(&r, good[i], "good"), 0);
        CHECK_EQ(ring_capacity(&r), good[i]);
        CHECK_EQ(ring_fill(&r), 0);
        CHECK_EQ(ring_writable(&r), good[i]);
        /* Touch both ends of the data area (a 1 GiB memfd is sparse: two pages get real). */
        uint8_t b[3] = {1, 2, 3}, o[3];
        struct ring_span s = ring_write_span(&r);
        CHECK_EQ(s.len, good[i]);
        s.ptr[good[i] - 1] = 7;
        CHECK_EQ(ring_push(&r, b, 3), 3);
        CHECK_EQ(ring_pop(&r, o, 3), 3);
        CHECK(memcmp(b, o, 3) == 0);
        ring_close(&r);
    }
}

TEST(ring_create_memfd_is_sealed_and_cloexec)
{
    struct ring r;
    char longname[400];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK_EQ(ring_create(&r, 4096, longname), 0); /* too long for memfd_create: truncated */
    ring_close(&r);
    CHECK_EQ(ring_create(&r, 4096, NULL), 0);
    ring_close(&r);

    CHECK_EQ(ring_create(&r, 4096, "uplink-test"), 0);
    CHECK(fcntl(r.fd, F_GETFD) & FD_CLOEXEC);
    int seals = fcntl(r.fd, F_GET_SEALS);
    CHECK(seals != -1);
    CHECK((seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)) ==
          (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL));
    CHECK(!(seals & F_SEAL_WRITE));
    /* Nobody can change the size under a mapping, nor add seals. */
    CHECK(ftruncate(r.fd, HDR_DATA_OFF) == -1 && errno == EPERM);
    CHECK(ftruncate(r.fd, 1 << 20) == -1 && errno == EPERM);
    CHECK(fcntl(r.fd, F_ADD_SEALS, F_SEAL_WRITE) == -1);
    struct stat st;
    CHECK(fstat(r.fd, &st) == 0);
    CHECK_EQ(st.st_size, HDR_DATA_OFF + 4096);
    char link[64], target[256];
    snprintf(link, sizeof link, "/proc/self/fd/%d", r.fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    CHECK(n > 0);
    target[n] = '\0';
    CHECK_MSG(strstr(target, "memfd:uplink-test") != NULL, "fd is %s", target);
    int fd = r.fd;
    ring_close(&r);
    CHECK(!fd_is_open(fd));
    CHECK_EQ(r.fd, -1);
    CHECK(r.hdr == NULL);
    ring_close(&r); /* twice is fine */
}

TEST(ring_push_until_full_then_pop_exact)
{
    struct ring r;
    uint8_t src[256], out[256];
    pattern_fill(src, 0, sizeof src);
    CHECK_EQ(ring_create(&r, 64, "full"), 0);

    CHECK_EQ(ring_push(&r, src, 50), 50);
    CHECK_EQ(ring_fill(&r), 50);
    CHECK_EQ(ring_writable(&r), 14);
    CHECK_EQ(ring_push(&r, src + 50, 50), 14); /* partial: what fit */
    CHECK_EQ(ring_fill(&r), 64);
    CHECK_EQ(ring_writable(&r), 0);
    CHECK_EQ(ring_push(&r, src + 64, 1), 0);
    CHECK_EQ(ring_write_span(&r).len, 0);
    CHECK_EQ(ring_head(&r), 64);
    CHECK_EQ(ring_tail(&r), 0);

    CHECK_EQ(ring_pop(&r, out, 10), 10);
    CHECK(memcmp(out, src, 10) == 0);
    CHECK_EQ(ring_fill(&r), 54);
    CHECK_EQ(ring_writable(&r), 10);
    CHECK_EQ(ring_push(&r, src + 64, 20), 10); /* crosses the wrap */
    CHECK_EQ(ring_fill(&r), 64);

    memset(out, 0, sizeof out);
    CHECK_EQ(ring_pop(&r, out, 200), 64); /* asks for more than there is; crosses the wrap */
    CHECK(memcmp(out, src + 10, 64) == 0);
    CHECK_EQ(ring_fill(&r), 0);
    CHECK_EQ(ring_pop(&r, out, 1), 0);
    CHECK_EQ(ring_read_span(&r).len, 0);
    CHECK_EQ(ring_head(&r), 74);
    CHECK_EQ(ring_tail(&r), 74);
    CHECK_EQ(ring_writable(&r), 64);
    ring_close(&r);
}

TEST(ring_spans_stop_at_the_wrap)
{
    struct ring r;
    uint8_t src[128], out[128];
    pattern_fill(src, 1000, sizeof src);
    CHECK_EQ(ring_create(&r, 64, "spans"), 0);
    CHECK_EQ(ring_push(&r, src, 40), 40);
    CHECK_EQ(ring_pop(&r, out, 40), 40);

    /* 64 bytes free, but the first contiguous piece ends at the wrap. */
    struct ring_span s = ring_write_span(&r);
    CHECK(s.ptr == r.data + 40);
    CHECK_EQ(s.len, 24);
    memcpy(s.ptr, src, 24);
    ring_commit_write(&r, 24);
    s = ring_write_span(&r);
    CHECK(s.ptr == r.data);
    CHECK_EQ(s.len, 40);
    memcpy(s.ptr, src + 24, 30);
    ring_commit_write(&r, 30); /* partial commit */
    s = ring_write_span(&r);
    CHECK(s.ptr == r.data + 30);
    CHECK_EQ(s.len, 10);
    CHECK_EQ(ring_fill(&r), 54);

    struct ring_span rs = ring_read_span(&r);
    CHECK(rs.ptr == r.data + 40);
    CHECK_EQ(rs.len, 24);
    CHECK(memcmp(rs.ptr, src, 24) == 0);
    ring_commit_read(&r, 4); /* partial */
    rs = ring_read_span(&r);
    CHECK(rs.ptr == r.data + 44);
    CHECK_EQ(rs.len, 20);
    ring_commit_read(&r, 20);
    rs = ring_read_span(&r);
    CHECK(rs.ptr == r.data);
    CHECK_EQ(rs.len, 30);
    CHECK(memcmp(rs.ptr, src + 24, 30) == 0);
    ring_commit_read(&r, 30);
    CHECK_EQ(ring_read_span(&r).len, 0);
    CHECK_EQ(ring_fill(&r), 0);

    /* Full at an odd offset: the write span is empty, the read span stops at the wrap. */
    CHECK_EQ(ring_push(&r, src, 64), 64);
    CHECK_EQ(ring_write_span(&r).len, 0);
    rs = ring_read_span(&r);
    CHECK(rs.ptr == r.data + 30);
    CHECK_EQ(rs.len, 34);

    /* Commits beyond the span are clamped, never published. */
    ring_commit_read(&r, 1000);
    CHECK_EQ(ring_fill(&r), 0);
    CHECK_EQ(ring_tail(&r), ring_head(&r));
    s = ring_write_span(&r);
    CHECK_EQ(s.len, 34);
    ring_commit_write(&r, 1000);
    CHECK_EQ(ring_fill(&r), 64);
    CHECK_EQ(ring_head(&r) - ring_tail(&r), 64);
    ring_close(&r);
}

/* Many laps of odd-sized chunks, mixing copies and spans: every byte in order and the
 * free-running counters exactly the totals. */
TEST(ring_counters_run_free_across_laps)
{
    struct ring r;
    uint8_t buf[128];
    CHECK_EQ(ring_create(&r, 64, "laps"), 0);
    uint64_t wpos = 0, rpos = 0;
    for (unsigned i = 0; rpos < 200 * 64; i++) {
        CHECK(i < 100000); /* progress, not a hang */
        size_t want = i * 7 % 63 + 1;
        if (i & 1) {
            pattern_fill(buf, wpos, want);
            wpos += ring_push(&r, buf, want);
        } else {
            struct ring_span s = ring_write_span(&r);
            size_t n = s.len < want ? s.len : want;
            pattern_fill(s.ptr, wpos, n);
            ring_commit_write(&r, n);
            wpos += n;
        }
        CHECK_EQ(ring_head(&r), wpos);
        CHECK(ring_fill(&r) <= 64);
        want = i * 13 % 61 + 1;
        if (i % 3) {
            size_t n = ring_pop(&r, buf, want);
            CHECK_EQ(pattern_check(buf, rpos, n), n);
            rpos += n;
        } else {
            struct ring_span s = ring_read_span(&r);
            size_t n = s.len < want ? s.len : want;
            CHECK_EQ(pattern_check(s.ptr, rpos, n), n);
            ring_commit_read(&r, n);
            rpos += n;
        }
        CHECK_EQ(ring_tail(&r), rpos);
        CHECK_EQ(ring_fill(&r), wpos - rpos);
        CHECK_EQ(ring_writable(&r), 64 - (wpos - rpos));
    }
    ring_close(&r);
}

/* Counters are unsigned 64-bit and only their difference matters, even past 2^64. */
TEST(ring_counters_wrap_past_2_64)
{
    struct ring r, p;
    uint8_t buf[64], out[64];
    CHECK_EQ(ring_create(&r, 64, "wrap64"), 0);
    uint64_t start = UINT64_MAX - 100;
    CHECK(pwrite(r.fd, &start, 8, HDR_HEAD_OFF) == 8);
    CHECK(pwrite(r.fd, &start, 8, HDR_TAIL_OFF) == 8);
    CHECK_EQ(ring_attach(&p, fcntl(r.fd, F_DUPFD_CLOEXEC, 0), 1), 0);
    ring_close(&r);
    uint64_t pos = start;
    CHECK_EQ(ring_fill(&p), 0);
    for (int i = 0; i < 10; i++) {
        pattern_fill(buf, pos, 50);
        CHECK_EQ(ring_push(&p, buf, 50), 50);
        CHECK_EQ(ring_fill(&p), 50);
        CHECK_EQ(ring_writable(&p), 14);
        CHECK_EQ(ring_pop(&p, out, 64), 50);
        CHECK_EQ(pattern_check(out, pos, 50), 50);
        pos += 50;
        CHECK(ring_head(&p) == pos);
    }
    CHECK(ring_head(&p) < start); /* it did wrap */
    ring_close(&p);
}

TEST(ring_discard_drops_what_is_readable)
{
    struct ring r;
    uint8_t buf[64];
    pattern_fill(buf, 0, sizeof buf);
    CHECK_EQ(ring_create(&r, 64, "discard"), 0);
    CHECK_EQ(ring_discard(&r), 0);
    CHECK_EQ(ring_push(&r, buf, 30), 30);
    CHECK_EQ(ring_discard(&r), 30);
    CHECK_EQ(ring_fill(&r), 0);
    CHECK_EQ(ring_head(&r), 30);
    CHECK_EQ(ring_tail(&r), 30);
    CHECK_EQ(ring_discard(&r), 0);
    /* Across the wrap, and with the ring full. */
    CHECK_EQ(ring_push(&r, buf, 60), 60);
    CHECK_EQ(ring_pop(&r, buf, 10), 10);
    CHECK_EQ(ring_push(&r, buf, 64), 14);
    CHECK_EQ(ring_discard(&r), 64);
    CHECK_EQ(ring_writable(&r), 64);
    CHECK_EQ(ring_tail(&r), 30 + 74);
    /* The producer goes on where it was. */
    pattern_fill(buf, 0, sizeof buf);
    CHECK_EQ(ring_push(&r, buf, 20), 20);
    uint8_t out[64];
    CHECK_EQ(ring_pop(&r, out, 64), 20);
    CHECK(memcmp(out, buf, 20) == 0);
    ring_close(&r);
}

/* Pages of the memfd that hold memory (shmem counts its allocated pages in st_blocks). */
static long ring_pages_held(const struct ring *r)
{
    struct stat st;
    CHECK_EQ(fstat(r->fd, &st), 0);
    return (long)(st.st_blocks * 512 / sysconf(_SC_PAGESIZE));
}

TEST(ring_trim_frees_pages_without_readable_bytes)
{
    long page = sysconf(_SC_PAGESIZE);
    enum { CAP = 64 << 10 };
    static uint8_t in[CAP], out[CAP];
    pattern_fill(in, 0, sizeof in);
    struct ring r;
    CHECK_EQ(ring_create(&r, CAP, "trim"), 0);
    long base = ring_pages_held(&r); /* the header's page */
    CHECK_EQ(ring_trim(&r), 0);
    CHECK_EQ(ring_pages_held(&r), base);
    /* 48 KiB written, 40 KiB read: the first 40 KiB of data are dead, 8 KiB live. */
    CHECK_EQ(ring_push(&r, in, 48 << 10), 48 << 10);
    long full = ring_pages_held(&r);
    CHECK(full >= base + (48 << 10) / page);
    CHECK_EQ(ring_pop(&r, out, 40 << 10), 40 << 10);
    CHECK(memcmp(out, in, 40 << 10) == 0);
    CHECK_EQ(ring_trim(&r), 0);
    long after = ring_pages_held(&r);
    CHECK_MSG(after <= full - (40 << 10) / page + 1, "held %ld pages, %ld before", after, full);
    /* The live bytes survive, and the producer goes on across the wrap into freed pages. */
    CHECK_EQ(ring_push(&r, in + (48 << 10), 16 << 10), 16 << 10);
    CHECK_EQ(ring_push(&r, in, 30 << 10), 30 << 10); /* wraps to the start */
    CHECK_EQ(ring_pop(&r, out, 24 << 10), 24 << 10);
    CHECK(memcmp(out, in + (40 << 10), 24 << 10) == 0);
    CHECK_EQ(ring_trim(&r), 0); /* live wraps no more: [0, 30 KiB) */
    CHECK_EQ(ring_pop(&r, out, CAP), 30 << 10);
    CHECK(memcmp(out, in, 30 << 10) == 0);
    /* Empty: every whole data page goes back. */
    CHECK_EQ(ring_trim(&r), 0);
    CHECK_MSG(ring_pages_held(&r) <= base + 1, "held %ld pages, %ld idle", ring_pages_held(&r),
              base);
    ring_close(&r);
}

/* ring_trim_read, called after every step of a random mix of writes, reads and discards across
 * many wraps (the ring full at times, the read position inside a page, the writer a lap ahead of
 * the last trim), holds exactly the pages ring_trim holds when called as often, and never loses
 * a readable byte. */
TEST(ring_trim_read_holds_what_ring_trim_holds)
{
    enum { CAP = 64 << 10 };
    static uint8_t buf[24 << 10];
    struct ring a, b;
    CHECK_EQ(ring_create(&a, CAP, "trim-all"), 0);
    CHECK_EQ(ring_create(&b, CAP, "trim-read"), 0);
    uint64_t wpos = 0, rpos = 0, x = 7;
    for (int step = 0; step < 3000; step++) {
        x = splitmix64(x);
        size_t n = (size_t)(x % sizeof buf);
        if (x >> 62 == 0) { /* write */
            pattern_fill(buf, wpos, n);
            size_t wa = ring_push(&a, buf, n);
            CHECK_EQ(ring_push(&b, buf, n), wa);
            wpos += wa;
        } else if (x >> 56 == 0x7f) { /* discard */
            size_t da = ring_discard(&a);
            CHECK_EQ(ring_discard(&b), da);
            rpos += da;
        } else if (x >> 62 == 1) {
            size_t ra = ring_pop(&a, buf, n);
            CHECK_EQ(pattern_check(buf, rpos, ra), ra);
            CHECK_EQ(ring_pop(&b, buf, n), ra);
            CHECK_EQ(pattern_check(buf, rpos, ra), ra);
            rpos += ra;
        } else { /* read a little: the read position stops inside a page */
            n %= 300;
            size_t ra = ring_pop(&a, buf, n);
            CHECK_EQ(ring_pop(&b, buf, n), ra);
            CHECK_EQ(pattern_check(buf, rpos, ra), ra);
            rpos += ra;
        }
        CHECK_EQ(ring_trim(&a), 0);
        CHECK_EQ(ring_trim_read(&b), 0);
        long pa = ring_pages_held(&a), pb = ring_pages_held(&b);
        CHECK_MSG(pa == pb, "step %d: %ld pages, ring_trim %ld", step, pb, pa);
        if (pa != pb)
            break;
    }
    CHECK(wpos > 8 * (uint64_t)CAP); /* many laps */
    ring_close(&a);
    ring_close(&b);
    struct ring ro;
    memset(&ro, 0, sizeof ro);
    CHECK_EQ(ring_trim_read(&ro), -EPERM);
}

TEST(ring_zero_sizes_and_misuse_are_harmless)
{
    struct ring r;
    uint8_t b[8] = {0};
    CHECK_EQ(ring_create(&r, 64, "zero"), 0);
    CHECK_EQ(ring_push(&r, NULL, 0), 0);
    CHECK_EQ(ring_pop(&r, NULL, 0), 0);
    ring_commit_write(&r, 0);
    ring_commit_read(&r, 0);
    CHECK_EQ(ring_head(&r), 0);
    CHECK_EQ(ring_tail(&r), 0);
    ring_commit_read(&r, 5); /* nothing readable: clamped to nothing */
    CHECK_EQ(ring_tail(&r), 0);
    CHECK_EQ(ring_push(&r, b, 8), 8);
    CHECK_EQ(ring_push(&r, b, 0), 0);
    CHECK_EQ(ring_pop(&r, b, 0), 0);
    CHECK_EQ(ring_fill(&r), 8);
    ring_close(&r);

    /* A zeroed view owns nothing (not fd 0 either); a closed one is zeroed. */
    struct ring z;
    memset(&z, 0, sizeof z);
    int stdin_open = fd_is_open(0);
    CHECK_EQ(ring_capacity(&z), 0);
    CHECK_EQ(ring_fill(&z), 0);
    CHECK_EQ(ring_head(&z), 0);
    CHECK_EQ(ring_tail(&z), 0);
    CHECK_EQ(ring_writable(&z), 0);
    CHECK_EQ(ring_push(&z, b, 8), 0);
    CHECK_EQ(ring_pop(&z, b, 8), 0);
    CHECK_EQ(ring_write_span(&z).len, 0);
    CHECK_EQ(ring_read_span(&z).len, 0);
    ring_commit_write(&z, 8);
    ring_commit_read(&z, 8);
    CHECK_EQ(ring_discard(&z), 0);
    ring_close(&z);
    ring_close(&z);
    CHECK_EQ(fd_is_open(0), stdin_open);
    CHECK_EQ(z.fd, -1);
}

/* ---- attach ---- */

TEST(ring_attach_rejects_bad_fds)
{
    const off_t size = HDR_DATA_OFF + 4096;
    struct ring r;

    /* The forger makes an acceptable ring, so each rejection below is the defect's doing. */
    int fd = forge_ring_fd(size, 1, RING_MAGIC, RING_VERSION, 4096);
    CHECK_EQ(ring_attach(&r, fd, 1), 0);
    CHECK_EQ(ring_capacity(&r), 4096);
    CHECK_EQ(ring_push(&r, "abc", 3), 3);
    ring_close(&r);

    check_attach_fails(forge_ring_fd(size, 1, RING_MAGIC ^ 1, RING_VERSION, 4096), 1, -EPROTO);
    check_attach_fails(forge_ring_fd(size, 1, RING_MAGIC ^ 1, RING_VERSION, 4096), 0, -EPROTO);
    check_attach_fails(forge_ring_fd(size, 1, RING_MAGIC, RING_VERSION + 1, 4096), 1, -EPROTO);
    /* Capacity not a power of two, too small, too large, or not what the size holds. */
    check_attach_fails(forge_ring_fd(HDR_DATA_OFF + 4000, 1, RING_MAGIC, RING_VERSION, 4000), 1,
                       -EPROTO);
    check_attach_fails(forge_ring_fd(HDR_DATA_OFF + 32, 1, RING_MAGIC, RING_VERSION, 32), 1,
                       -EPROTO);
    check_attach_fails(forge_ring_fd(size, 1, RING_MAGIC, RING_VERSION, 8192), 1, -EPROTO);
    check_attach_fails(forge_ring_fd(size, 1, RING_MAGIC, RING_VERSION, 2048), 1, -EPROTO);
    check_attach_fails(forge_ring_fd(size, 1, RING_MAGIC, RING_VERSION, 0), 1, -EPROTO);
    check_attach_fails(forge_ring_fd(size, 1, RING_MAGIC, RING_VERSION, UINT64_MAX), 1, -EPROTO);
    check_attach_fails(forge_ring_fd(size, 1, RING_MAGIC, RING_VERSION, (uint64_t)1 << 63), 1,
                       -EPROTO);
    /* Truncated: a header claiming 4096 bytes of data over a shorter file, or no room for
     * the header at all, or empty. */
    check_attach_fails(forge_ring_fd(HDR_DATA_OFF + 100, 1, RING_MAGIC, RING_VERSION, 4096), 1,
                       -EPROTO);
    check_attach_fails(forge_ring_fd(HDR_DATA_OFF, 1, RING_MAGIC, RING_VERSION, 4096), 1, -EPROTO);
    check_attach_fails(forge_ring_fd(100, 1, 0, 0, 0), 1, -EPROTO);
    check_attach_fails(forge_ring_fd(0, 1, 0, 0, 0), 0, -EPROTO);
    /* Larger than any ring (sparse, never mapped). */
    check_attach_fails(forge_ring_fd(HDR_DATA_OFF + ((off_t)1 << 31), 1, RING_MAGIC, RING_VERSION,
                                     (uint64_t)1 << 31),
                       1, -EPROTO);
    /* Not sealed: a peer could shrink it under our mapping. */
    check_attach_fails(forge_ring_fd(size, 0, RING_MAGIC, RING_VERSION, 4096), 1, -EPROTO);

    /* Not a memfd: a pipe, a regular file with a perfect header. */
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    close(p[1]);
    check_attach_fails(p[0], 0, -EPROTO);
    char path[512];
    snprintf(path, sizeof path, "%s/ring", test_tmpdir());
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    CHECK(fd != -1);
    CHECK(ftruncate(fd, size) == 0);
    uint32_t magic = RING_MAGIC, version = RING_VERSION;
    uint64_t cap = 4096;
    CHECK(pwrite(fd, &magic, 4, HDR_MAGIC_OFF) == 4);
    CHECK(pwrite(fd, &version, 4, HDR_VERSION_OFF) == 4);
    CHECK(pwrite(fd, &cap, 8, HDR_CAPACITY_OFF) == 8);
    check_attach_fails(fd, 1, -EPROTO);

    /* No fd at all. */
    memset(&r, 0, sizeof r);
    CHECK_EQ(ring_attach(&r, -1, 0), -EBADF);
    CHECK(r.hdr == NULL);
}

TEST(ring_attach_rejects_corrupted_live_ring)
{
    struct ring r;
    CHECK_EQ(ring_create(&r, 4096, "corrupt"), 0);
    int dup1 = fcntl(r.fd, F_DUPFD_CLOEXEC, 0);
    uint32_t bad = 0xdeadbeef;
    CHECK(pwrite(r.fd, &bad, 4, HDR_MAGIC_OFF) == 4);
    check_attach_fails(dup1, 1, -EPROTO);
    uint32_t good = RING_MAGIC;
    CHECK(pwrite(r.fd, &good, 4, HDR_MAGIC_OFF) == 4);
    uint64_t cap = 1 << 20; /* the size no longer matches */
    CHECK(pwrite(r.fd, &cap, 8, HDR_CAPACITY_OFF) == 8);
    check_attach_fails(fcntl(r.fd, F_DUPFD_CLOEXEC, 0), 0, -EPROTO);
    ring_close(&r);
}

/* A peer that scribbles on head/tail makes us see garbage, never step outside the data. */
TEST(ring_hostile_indices_stay_in_bounds)
{
    struct ring r;
    uint8_t big[3 * 4096];
    CHECK_EQ(ring_create(&r, 4096, "hostile"), 0);
    uint64_t head = 1000000, tail = 3; /* far more "readable" than capacity */
    CHECK(pwrite(r.fd, &head, 8, HDR_HEAD_OFF) == 8);
    CHECK(pwrite(r.fd, &tail, 8, HDR_TAIL_OFF) == 8);
    CHECK_EQ(ring_fill(&r), 4096);
    CHECK_EQ(ring_writable(&r), 0);
    CHECK_EQ(ring_push(&r, big, sizeof big), 0);
    CHECK_EQ(ring_write_span(&r).len, 0);
    struct ring_span s = ring_read_span(&r);
    CHECK(s.ptr >= r.data && s.ptr + s.len <= r.data + 4096);
    CHECK_EQ(ring_pop(&r, big, sizeof big), 4096);
    /* tail ahead of head: "negative" fill */
    head = 10, tail = 5000;
    CHECK(pwrite(r.fd, &head, 8, HDR_HEAD_OFF) == 8);
    CHECK(pwrite(r.fd, &tail, 8, HDR_TAIL_OFF) == 8);
    CHECK_EQ(ring_fill(&r), 4096);
    CHECK_EQ(ring_writable(&r), 0);
    CHECK_EQ(ring_push(&r, big, sizeof big), 0);
    CHECK_EQ(ring_discard(&r), 4096); /* and discard repairs it */
    CHECK_EQ(ring_tail(&r), 10);
    CHECK_EQ(ring_writable(&r), 4096);
    CHECK_EQ(ring_push(&r, big, sizeof big), 4096);
    ring_close(&r);
}

static void on_segv(int sig)
{
    (void)sig;
    _exit(42);
}

TEST(ring_observer_sees_writer_on_another_mapping)
{
    struct ring w, c, obs;
    uint8_t buf[1000], out[1000];
    pattern_fill(buf, 0, sizeof buf);
    CHECK_EQ(ring_create(&w, 4096, "observed"), 0);

    /* The observer gets a genuinely read-only fd, as the master would. */
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", w.fd);
    int ro = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(ro != -1);
    check_attach_fails(fcntl(ro, F_DUPFD_CLOEXEC, 0), 1, -EACCES);
    CHECK_EQ(ring_attach(&obs, ro, 0), 0);
    CHECK_EQ(ring_attach(&c, fcntl(w.fd, F_DUPFD_CLOEXEC, 0), 1), 0);
    CHECK((void *)obs.hdr != (void *)w.hdr && (void *)c.hdr != (void *)w.hdr);
    CHECK_EQ(ring_capacity(&obs), 4096);
    CHECK_EQ(ring_fill(&obs), 0);

    CHECK_EQ(ring_push(&w, buf, 1000), 1000);
    CHECK_EQ(ring_fill(&obs), 1000);
    CHECK_EQ(ring_head(&obs), 1000);
    CHECK_EQ(ring_tail(&obs), 0);

    CHECK_EQ(ring_pop(&c, out, 300), 300); /* the consumer, on a third mapping */
    CHECK(memcmp(out, buf, 300) == 0);
    CHECK_EQ(ring_fill(&obs), 700);
    CHECK_EQ(ring_tail(&obs), 300);
    CHECK_EQ(ring_writable(&w), 4096 - 700);

    /* Producer and consumer calls on the observer do nothing. */
    CHECK_EQ(ring_push(&obs, buf, 10), 0);
    CHECK_EQ(ring_pop(&obs, out, 10), 0);
    CHECK_EQ(ring_writable(&obs), 0);
    CHECK_EQ(ring_write_span(&obs).len, 0);
    CHECK_EQ(ring_read_span(&obs).len, 0);
    ring_commit_write(&obs, 10);
    ring_commit_read(&obs, 10);
    CHECK_EQ(ring_discard(&obs), 0);
    CHECK_EQ(ring_fill(&obs), 700);
    CHECK_EQ(ring_head(&w), 1000);

    /* And its mapping really is read-only: a stray store faults. */
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid != -1);
    if (pid == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_segv;
        sigaction(SIGSEGV, &sa, NULL);
        sigaction(SIGBUS, &sa, NULL);
        *(volatile uint8_t *)obs.data = 0x55;
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 42, "store to observer: status %#x",
              status);

    CHECK_EQ(ring_discard(&c), 700);
    CHECK_EQ(ring_fill(&obs), 0);
    CHECK_EQ(ring_head(&obs), ring_tail(&obs));
    ring_close(&obs);
    ring_close(&c);
    CHECK_EQ(ring_push(&w, buf, 10), 10); /* the writer's mapping outlives the others */
    ring_close(&w);
}

/* ---- concurrency ---- */

#ifdef RING_TEST_TSAN
#define STRESS_BYTES ((uint64_t)32 << 20) /* TSan is ~10x slower; still ~8000 laps */
#else
#define STRESS_BYTES ((uint64_t)64 << 20)
#endif
#define STRESS_CAP 4096

/* One view shared by both threads, as a call thread's peer would share it in-process, so
 * ThreadSanitizer sees the same addresses on both sides (two mappings would hide races). */
struct stress {
    struct ring r;
    uint64_t total;
    _Atomic int stop;     /* the consumer gave up: the producer must not wait forever */
    _Atomic int finished; /* threads done */
    int producer_err;     /* read after join */
    int consumer_err;
    uint64_t bad_pos;
};

/* Chunk sizes from 1 byte to more than the ring, skewed small (audio frames are 160-960 B). */
static size_t stress_chunk(uint64_t *rng)
{
    uint64_t x = xorshift64(rng);
    switch (x & 3) {
    case 0:
        return 1 + (x >> 8) % 16;
    case 1:
    case 2:
        return 1 + (x >> 8) % 1024;
    default:
        return 1 + (x >> 8) % (2 * STRESS_CAP);
    }
}

static void *stress_producer(void *arg)
{
    struct stress *st = arg;
    static uint8_t buf[2 * STRESS_CAP];
    uint64_t rng = 0x1234567, pos = 0;
    struct backoff b = {0, 0};
    while (pos < st->total && !atomic_load(&st->stop)) {
        size_t want = stress_chunk(&rng);
        if (want > st->total - pos)
            want = (size_t)(st->total - pos);
        size_t n;
        if (rng & 0x100) {
            pattern_fill(buf, pos, want);
            n = ring_push(&st->r, buf, want);
        } else {
            struct ring_span s = ring_write_span(&st->r);
            n = s.len < want ? s.len : want;
            pattern_fill(s.ptr, pos, n);
            ring_commit_write(&st->r, n);
        }
        pos += n;
        if (n > 0) {
            backoff_reset(&b);
        } else if (backoff_wait(&b) != 0) {
            st->producer_err = 1;
            break;
        }
    }
    atomic_fetch_add(&st->finished, 1);
    return NULL;
}

static void *stress_consumer(void *arg)
{
    struct stress *st = arg;
    static uint8_t buf[2 * STRESS_CAP];
    uint64_t rng = 0x7654321, pos = 0;
    struct backoff b = {0, 0};
    while (pos < st->total) {
        size_t want = stress_chunk(&rng), n, ok;
        if (rng & 0x200) {
            n = ring_pop(&st->r, buf, want);
            ok = pattern_check(buf, pos, n);
        } else {
            struct ring_span s = ring_read_span(&st->r);
            n = s.len < want ? s.len : want;
            ok = pattern_check(s.ptr, pos, n);
            ring_commit_read(&st->r, n);
        }
        if (ok != n) {
            st->consumer_err = 1;
            st->bad_pos = pos + ok;
            break;
        }
        pos += n;
        if (n > 0) {
            backoff_reset(&b);
        } else if (backoff_wait(&b) != 0) {
            st->consumer_err = 2;
            st->bad_pos = pos;
            break;
        }
    }
    atomic_store(&st->stop, 1);
    atomic_fetch_add(&st->finished, 1);
    return NULL;
}

TEST(ring_concurrent_stress)
{
    static struct stress st;
    pthread_t prod, cons;
    CHECK_EQ(ring_create(&st.r, STRESS_CAP, "stress"), 0);
    st.total = STRESS_BYTES;
    CHECK(pthread_create(&cons, NULL, stress_consumer, &st) == 0);
    CHECK(pthread_create(&prod, NULL, stress_producer, &st) == 0);

    /* Meanwhile this thread observes, as the master does: counters only ever grow, the tail
     * (loaded first) never passes the head, the fill never exceeds the capacity. */
    uint64_t last_head = 0, last_tail = 0;
    while (atomic_load(&st.finished) < 2) {
        uint64_t t = ring_tail(&st.r), h = ring_head(&st.r);
        size_t f = ring_fill(&st.r);
        CHECK_MSG(t <= h && h >= last_head && t >= last_tail && f <= STRESS_CAP,
                  "observer saw head %llu tail %llu fill %zu", (unsigned long long)h,
                  (unsigned long long)t, f);
        last_head = h, last_tail = t;
        usleep(1000);
    }
    CHECK(pthread_join(prod, NULL) == 0);
    CHECK(pthread_join(cons, NULL) == 0);
    CHECK_MSG(st.consumer_err == 0, "consumer error %d at byte %llu", st.consumer_err,
              (unsigned long long)st.bad_pos);
    CHECK_EQ(st.producer_err, 0);
    CHECK_EQ(ring_head(&st.r), STRESS_BYTES);
    CHECK_EQ(ring_tail(&st.r), STRESS_BYTES);
    CHECK_EQ(ring_fill(&st.r), 0);
    ring_close(&st.r);
}

#define XPROC_BYTES (((uint64_t)100 << 20) + 12345)
#define XPROC_CAP (64 * 1024)

/* The child: attaches its own mapping of the inherited memfd and produces the stream.
 * Exit 0 after writing the FNV-1a of all it sent to the pipe. */
static _Noreturn void xproc_producer(struct ring *inherited, int hash_fd)
{
    struct ring w;
    static uint8_t buf[16384];
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = fcntl(inherited->fd, F_DUPFD_CLOEXEC, 0);
    ring_close(inherited); /* drop the parent's mapping: use only our own */
    if (fd == -1 || ring_attach(&w, fd, 1) != 0)
        _exit(2);
    uint64_t rng = 0xabcdef, pos = 0, h = FNV_INIT;
    struct backoff b = {0, 0};
    while (pos < XPROC_BYTES) {
        uint64_t x = xorshift64(&rng);
        size_t want = 1 + (x >> 8) % sizeof buf, n;
        if (want > XPROC_BYTES - pos)
            want = (size_t)(XPROC_BYTES - pos);
        if (x & 1) {
            pattern_fill(buf, pos, want);
            n = ring_push(&w, buf, want);
            h = fnv1a(h, buf, n);
        } else {
            struct ring_span s = ring_write_span(&w);
            n = s.len < want ? s.len : want;
            pattern_fill(s.ptr, pos, n);
            h = fnv1a(h, s.ptr, n);
            ring_commit_write(&w, n);
        }
        pos += n;
        if (n > 0)
            backoff_reset(&b);
        else if (backoff_wait(&b) != 0)
            _exit(3);
    }
    ring_close(&w);
    if (write(hash_fd, &h, sizeof h) != (ssize_t)sizeof h)
        _exit(4);
    _exit(0);
}

TEST(ring_two_process_transfer)
{
    struct ring r;
    static uint8_t buf[20000];
    int p[2];
    CHECK_EQ(ring_create(&r, XPROC_CAP, "xproc"), 0);
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid != -1);
    if (pid == 0) {
        close(p[0]);
        xproc_producer(&r, p[1]);
    }
    close(p[1]);

    uint64_t rng = 0x13579, pos = 0, h = FNV_INIT;
    struct backoff b = {0, 0};
    int status = 0, reaped = 0, bad = 0;
    while (pos < XPROC_BYTES) {
        uint64_t x = xorshift64(&rng);
        size_t want = 1 + (x >> 8) % sizeof buf, n, ok;
        if (x & 1) {
            n = ring_pop(&r, buf, want);
            ok = pattern_check(buf, pos, n);
            h = fnv1a(h, buf, n);
        } else {
            struct ring_span s = ring_read_span(&r);
            n = s.len < want ? s.len : want;
            ok = pattern_check(s.ptr, pos, n);
            h = fnv1a(h, s.ptr, n);
            ring_commit_read(&r, n);
        }
        if (ok != n) {
            bad = 1;
            pos += ok;
            break;
        }
        pos += n;
        if (n > 0) {
            backoff_reset(&b);
            continue;
        }
        /* Empty: a producer that died early would leave us waiting for ever. */
        if (!reaped && b.spins >= 64 && waitpid(pid, &status, WNOHANG) == pid) {
            reaped = 1;
            continue; /* one more look: its last bytes may just have landed */
        }
        if (reaped && ring_fill(&r) == 0)
            break;
        if (backoff_wait(&b) != 0)
            break;
    }
    if (!reaped) {
        if (pos < XPROC_BYTES)
            kill(pid, SIGKILL);
        CHECK(waitpid(pid, &status, 0) == pid);
    }
    CHECK_MSG(!bad, "wrong byte at stream position %llu", (unsigned long long)pos);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "producer status %#x", status);
    CHECK_MSG(pos == XPROC_BYTES, "got %llu of %llu bytes", (unsigned long long)pos,
              (unsigned long long)XPROC_BYTES);
    uint64_t sent_hash = 0;
    ssize_t got;
    while ((got = read(p[0], &sent_hash, sizeof sent_hash)) == -1 && errno == EINTR)
        ;
    CHECK_EQ(got, sizeof sent_hash);
    CHECK_MSG(sent_hash == h, "checksums differ: sent %016llx, received %016llx",
              (unsigned long long)sent_hash, (unsigned long long)h);
    CHECK_EQ(ring_head(&r), XPROC_BYTES);
    CHECK_EQ(ring_tail(&r), XPROC_BYTES);
    close(p[0]);
    ring_close(&r);
}
