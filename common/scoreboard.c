/* The scoreboard's shared memory (layout in scoreboard.h): sealed memfds, so that a process
 * that inherits one can trust its size (no SIGBUS from a peer shrinking it), mapped shared.
 * memfds are created with no swap reservation, so a large call area costs only the pages its
 * live calls touch. */
#include "common/scoreboard.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/ring.h"

#define SB_LINE 64

_Static_assert(sizeof(struct sb_slot) % SB_LINE == 0, "a slot fills whole cache lines");
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "shared counters must be lock-free");

static int memfd_sealed(const char *name, size_t len)
{
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd == -1)
        return -errno;
    if (ftruncate(fd, (off_t)len) == -1 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == -1) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

/* Maps fd, which must be a memfd sealed against shrinking of exactly len bytes. Closes fd on
 * failure. */
static void *map_checked(int fd, size_t len, int writable, int *err)
{
    struct stat st;
    int seals = fcntl(fd, F_GET_SEALS);
    if (seals == -1 || !(seals & F_SEAL_SHRINK) || fstat(fd, &st) == -1 ||
        st.st_size != (off_t)len) {
        *err = -EPROTO;
        close(fd);
        return NULL;
    }
    void *p = mmap(NULL, len, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        *err = -errno;
        close(fd);
        return NULL;
    }
    return p;
}

int scoreboard_create(struct scoreboard *sb)
{
    sb->hdr = NULL;
    sb->fd = memfd_sealed("vb-scoreboard", sizeof(struct sb_header));
    if (sb->fd < 0) {
        int err = sb->fd;
        sb->fd = -1;
        return err;
    }
    int err = 0;
    int fd = sb->fd;
    sb->hdr = map_checked(fd, sizeof(struct sb_header), 1, &err);
    if (!sb->hdr) {
        sb->fd = -1;
        return err;
    }
    /* Zero-filled by ftruncate; nobody else has the fd yet. */
    sb->hdr->magic = SB_MAGIC;
    sb->hdr->version = SB_VERSION;
    sb->hdr->n_slots = SB_SLOTS_MAX;
    return 0;
}

int scoreboard_attach(struct scoreboard *sb, int fd)
{
    int err = 0;
    sb->fd = -1;
    sb->hdr = map_checked(fd, sizeof(struct sb_header), 1, &err);
    if (!sb->hdr)
        return err;
    if (sb->hdr->magic != SB_MAGIC || sb->hdr->version != SB_VERSION ||
        sb->hdr->n_slots != SB_SLOTS_MAX) {
        munmap(sb->hdr, sizeof(struct sb_header));
        sb->hdr = NULL;
        close(fd);
        return -EPROTO;
    }
    sb->fd = fd;
    return 0;
}

void scoreboard_close(struct scoreboard *sb)
{
    if (sb->hdr)
        munmap(sb->hdr, sizeof(struct sb_header));
    if (sb->fd >= 0)
        close(sb->fd);
    sb->hdr = NULL;
    sb->fd = -1;
}

static size_t call_head_size(void)
{
    return (sizeof(struct sb_call) + SB_LINE - 1) & ~(size_t)(SB_LINE - 1);
}

static size_t area_stride(size_t up_cap, size_t down_cap)
{
    return call_head_size() + ring_mem_size(up_cap) + ring_mem_size(down_cap);
}

size_t sb_area_size(unsigned n_calls, size_t up_cap, size_t down_cap)
{
    return (size_t)n_calls * area_stride(up_cap, down_cap);
}

static int area_geometry_ok(unsigned n_calls, size_t up_cap, size_t down_cap)
{
    /* Ring capacities are powers of two of at least 64, so every ring starts on a line. */
    return n_calls > 0 && n_calls <= 1000000 && up_cap >= 64 && down_cap >= 64 &&
           (up_cap & (up_cap - 1)) == 0 && (down_cap & (down_cap - 1)) == 0 &&
           up_cap <= (1u << 24) && down_cap <= (1u << 24);
}

static void area_fill(struct sb_area *a, uint8_t *base, int fd, unsigned n_calls, size_t up_cap,
                      size_t down_cap, int writable)
{
    a->base = base;
    a->fd = fd;
    a->n_calls = n_calls;
    a->up_cap = up_cap;
    a->down_cap = down_cap;
    a->stride = area_stride(up_cap, down_cap);
    a->len = sb_area_size(n_calls, up_cap, down_cap);
    a->writable = writable;
}

int sb_area_create(struct sb_area *a, unsigned n_calls, size_t up_cap, size_t down_cap)
{
    memset(a, 0, sizeof *a);
    a->fd = -1;
    if (!area_geometry_ok(n_calls, up_cap, down_cap))
        return -EINVAL;
    size_t len = sb_area_size(n_calls, up_cap, down_cap);
    int fd = memfd_sealed("vb-calls", len);
    if (fd < 0)
        return fd;
    int err = 0;
    uint8_t *base = map_checked(fd, len, 1, &err);
    if (!base)
        return err;
    area_fill(a, base, fd, n_calls, up_cap, down_cap, 1);
    return 0;
}

int sb_area_attach(struct sb_area *a, int fd, unsigned n_calls, size_t up_cap, size_t down_cap,
                   int writable)
{
    memset(a, 0, sizeof *a);
    a->fd = -1;
    if (!area_geometry_ok(n_calls, up_cap, down_cap)) {
        close(fd);
        return -EINVAL;
    }
    int err = 0;
    uint8_t *base = map_checked(fd, sb_area_size(n_calls, up_cap, down_cap), writable, &err);
    if (!base)
        return err;
    area_fill(a, base, fd, n_calls, up_cap, down_cap, writable);
    return 0;
}

void sb_area_close(struct sb_area *a)
{
    if (a->base)
        munmap(a->base, a->len);
    if (a->fd >= 0)
        close(a->fd);
    memset(a, 0, sizeof *a);
    a->fd = -1;
}

struct sb_call *sb_area_call(const struct sb_area *a, unsigned i)
{
    return i < a->n_calls ? (struct sb_call *)(a->base + (size_t)i * a->stride) : NULL;
}

void *sb_area_uplink(const struct sb_area *a, unsigned i)
{
    return i < a->n_calls ? a->base + (size_t)i * a->stride + call_head_size() : NULL;
}

void *sb_area_downlink(const struct sb_area *a, unsigned i)
{
    return i < a->n_calls
               ? a->base + (size_t)i * a->stride + call_head_size() + ring_mem_size(a->up_cap)
               : NULL;
}

void scoreboard_failed_add(struct sb_header *h, const char *call_id)
{
    uint32_t i = atomic_fetch_add(&h->failed_next, 1) % SB_FAILED_CALLS;
    size_t n = strnlen(call_id, SB_CALL_ID_MAX - 1);
    h->failed[i][0] = '\0'; /* a reader sees the empty string, not a mix, while we copy */
    memcpy(h->failed[i] + 1, call_id + 1, n > 0 ? n - 1 : 0);
    h->failed[i][n] = '\0';
    atomic_thread_fence(memory_order_release);
    h->failed[i][0] = n > 0 ? call_id[0] : '\0';
}

int scoreboard_failed_has(const struct sb_header *h, const char *call_id)
{
    for (unsigned i = 0; i < SB_FAILED_CALLS; i++)
        if (strncmp(h->failed[i], call_id, SB_CALL_ID_MAX) == 0 && call_id[0] != '\0')
            return 1;
    return 0;
}

const char *sb_state_name(uint32_t state)
{
    switch (state) {
    case SB_FREE: return "free";
    case SB_STARTING: return "starting";
    case SB_READY: return "ready";
    case SB_DRAINING: return "draining";
    }
    return "unknown";
}
