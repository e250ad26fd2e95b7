/* The SPSC byte ring behind the audio path and the scoreboard's fill levels (layout in ring.h).
 * Like liburing's SQ/CQ rings, the shared header holds free-running indices, never pointers,
 * and each side publishes with a release store what the other side reads with an acquire load;
 * like HAProxy's rings, head and tail sit on cache lines of their own. Creating and attaching
 * make system calls; the producer and consumer calls make none and allocate nothing. */
#include "common/ring.h"

#include <errno.h>
#include <fcntl.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define RING_LINE 64
#define RING_CAP_MIN ((uint64_t)64)
#define RING_CAP_MAX ((uint64_t)1 << 30)

/* The shared layout. Fields before head are written once by ring_create before the fd is
 * shared and only read afterwards (and read once, into the view, at attach). */
struct ring_hdr {
    uint32_t magic;
    uint32_t version;
    uint64_t capacity;
    alignas(RING_LINE) _Atomic uint64_t head; /* bytes ever written: the producer's */
    alignas(RING_LINE) _Atomic uint64_t tail; /* bytes ever read: the consumer's */
};

/* Data starts right after the header, on a cache line of its own. */
#define RING_DATA_OFF ((sizeof(struct ring_hdr) + RING_LINE - 1) & ~(size_t)(RING_LINE - 1))

/* Another process maps the same header at another address: the atomics must be lock-free
 * (hence address-free), and the layout must be what ring.h promises. */
_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free for shared memory");
_Static_assert(sizeof(_Atomic uint64_t) == 8, "a shared index is 8 bytes");
_Static_assert(offsetof(struct ring_hdr, head) == 64, "head on the second cache line");
_Static_assert(offsetof(struct ring_hdr, tail) == 128, "tail on the third cache line");
_Static_assert(RING_DATA_OFF == 192, "data on the fourth cache line");

static int ring_capacity_ok(uint64_t cap)
{
    return cap >= RING_CAP_MIN && cap <= RING_CAP_MAX && (cap & (cap - 1)) == 0;
}

static void ring_view_reset(struct ring *r)
{
    memset(r, 0, sizeof *r);
    r->fd = -1;
}

/* Fills the view from a mapping whose header has been validated. */
static void ring_view_init(struct ring *r, void *map, size_t map_len, uint64_t capacity, int fd,
                           int writable)
{
    r->hdr = map;
    r->data = (uint8_t *)map + RING_DATA_OFF;
    r->mask = capacity - 1;
    r->map_len = map_len;
    r->fd = fd;
    r->writable = writable;
    r->cached_tail = atomic_load_explicit(&r->hdr->tail, memory_order_acquire);
    r->cached_head = atomic_load_explicit(&r->hdr->head, memory_order_acquire);
    r->trimmed = r->cached_tail;
}

int ring_create(struct ring *r, size_t capacity, const char *name)
{
    char label[64];
    int fd, err;
    void *map;

    ring_view_reset(r);
    if (!ring_capacity_ok(capacity))
        return -EINVAL;
    size_t map_len = RING_DATA_OFF + capacity;

    /* memfd_create rejects names over 249 bytes; the name is only a label in /proc. */
    snprintf(label, sizeof label, "%s", name != NULL ? name : "vb-ring");
    fd = memfd_create(label, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd == -1)
        return -errno;
    if (ftruncate(fd, (off_t)map_len) == -1) {
        err = -errno;
        goto fail_fd;
    }
    /* Fix the size for good: a peer that shrank it would turn our next access into SIGBUS.
     * F_SEAL_SEAL stops anyone adding seals later (F_SEAL_WRITE would break the producer). */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == -1) {
        err = -errno;
        goto fail_fd;
    }
    map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        err = -errno;
        goto fail_fd;
    }

    /* ftruncate zero-filled the memory; the fd is not shared yet, so plain stores suffice. */
    struct ring_hdr *hdr = map;
    hdr->magic = RING_MAGIC;
    hdr->version = RING_VERSION;
    hdr->capacity = capacity;
    atomic_init(&hdr->head, 0);
    atomic_init(&hdr->tail, 0);
    ring_view_init(r, map, map_len, capacity, fd, 1);
    return 0;

fail_fd:
    close(fd);
    return err;
}

int ring_attach(struct ring *r, int fd, int writable)
{
    struct stat st;
    void *map;
    int seals, err;

    ring_view_reset(r);
    writable = writable != 0;

    /* Without the shrink seal the size we check below could change under the mapping. */
    seals = fcntl(fd, F_GET_SEALS);
    if (seals == -1) {
        err = errno == EBADF ? -EBADF : -EPROTO; /* EINVAL: not a memfd at all */
        goto fail_fd;
    }
    if (!(seals & F_SEAL_SHRINK)) {
        err = -EPROTO;
        goto fail_fd;
    }
    if (fstat(fd, &st) == -1) {
        err = -errno;
        goto fail_fd;
    }
    /* Size first, so the header can be read at all and the mapping stays bounded. */
    if (!S_ISREG(st.st_mode) || st.st_size < (off_t)RING_DATA_OFF + (off_t)RING_CAP_MIN ||
        st.st_size > (off_t)RING_DATA_OFF + (off_t)RING_CAP_MAX) {
        err = -EPROTO;
        goto fail_fd;
    }
    size_t map_len = (size_t)st.st_size;
    map = mmap(NULL, map_len, writable ? PROT_READ | PROT_WRITE : PROT_READ, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        err = -errno;
        goto fail_fd;
    }

    /* Each field is read once: a peer may still be scribbling on it. */
    const volatile struct ring_hdr *hdr = map;
    uint32_t magic = hdr->magic;
    uint32_t version = hdr->version;
    uint64_t capacity = hdr->capacity;
    if (magic != RING_MAGIC || version != RING_VERSION || !ring_capacity_ok(capacity) ||
        RING_DATA_OFF + capacity != map_len) {
        err = -EPROTO;
        goto fail_map;
    }

    /* The view keeps the validated capacity; shared memory is never asked for it again. */
    ring_view_init(r, map, map_len, capacity, fd, writable);
    return 0;

fail_map:
    munmap(map, map_len);
fail_fd:
    close(fd);
    return err;
}

size_t ring_mem_size(size_t capacity)
{
    return RING_DATA_OFF + capacity;
}

int ring_format(struct ring *r, void *mem, size_t capacity)
{
    ring_view_reset(r);
    if (!ring_capacity_ok(capacity) || ((uintptr_t)mem & (RING_LINE - 1)) != 0)
        return -EINVAL;
    /* The slot may hold a previous call's ring: start over. Nobody else writes it now (the
     * slot is between owners); the master only reads. */
    struct ring_hdr *hdr = mem;
    hdr->magic = RING_MAGIC;
    hdr->version = RING_VERSION;
    hdr->capacity = capacity;
    atomic_store_explicit(&hdr->head, 0, memory_order_relaxed);
    atomic_store_explicit(&hdr->tail, 0, memory_order_release);
    ring_view_init(r, mem, 0, capacity, -1, 1);
    return 0;
}

int ring_observe(struct ring *r, const void *mem, size_t mem_len)
{
    ring_view_reset(r);
    if (mem_len < RING_DATA_OFF + RING_CAP_MIN || ((uintptr_t)mem & (RING_LINE - 1)) != 0)
        return -EPROTO;
    const volatile struct ring_hdr *hdr = mem;
    uint32_t magic = hdr->magic;
    uint32_t version = hdr->version;
    uint64_t capacity = hdr->capacity;
    if (magic != RING_MAGIC || version != RING_VERSION || !ring_capacity_ok(capacity) ||
        RING_DATA_OFF + capacity > mem_len)
        return -EPROTO;
    ring_view_init(r, (void *)mem, 0, capacity, -1, 0);
    return 0;
}

void ring_close(struct ring *r)
{
    if (r->hdr != NULL && r->map_len > 0) {
        munmap(r->hdr, r->map_len);
        if (r->fd >= 0)
            close(r->fd);
    }
    ring_view_reset(r);
}

size_t ring_capacity(const struct ring *r)
{
    return r->hdr != NULL ? (size_t)r->mask + 1 : 0;
}

/* head - tail, clamped to the capacity: only a misbehaving peer makes it larger (or
 * "negative"), and a clamped count keeps every copy inside the data area. */
static inline uint64_t ring_used(const struct ring *r, uint64_t head, uint64_t tail)
{
    uint64_t used = head - tail;
    return used <= r->mask ? used : r->mask + 1;
}

size_t ring_fill(const struct ring *r)
{
    if (r->hdr == NULL)
        return 0;
    /* Tail first: the head loaded after it is at least as new, so an honest ring never shows
     * head < tail to an observer. */
    uint64_t tail = atomic_load_explicit(&r->hdr->tail, memory_order_acquire);
    uint64_t head = atomic_load_explicit(&r->hdr->head, memory_order_acquire);
    return (size_t)ring_used(r, head, tail);
}

uint64_t ring_head(const struct ring *r)
{
    return r->hdr != NULL ? atomic_load_explicit(&r->hdr->head, memory_order_acquire) : 0;
}

uint64_t ring_tail(const struct ring *r)
{
    return r->hdr != NULL ? atomic_load_explicit(&r->hdr->tail, memory_order_acquire) : 0;
}

/* ---- producer ---- */

/* Only the producer stores head, so its own index needs no ordering. */
static inline uint64_t ring_my_head(const struct ring *r)
{
    return atomic_load_explicit(&r->hdr->head, memory_order_relaxed);
}

/* Free space as far as the cached tail tells; reloads tail (acquire: the consumer is done
 * with those bytes) only when that is less than want. */
static inline uint64_t ring_free_for(struct ring *r, uint64_t head, uint64_t want)
{
    uint64_t free = r->mask + 1 - ring_used(r, head, r->cached_tail);
    if (free < want) {
        r->cached_tail = atomic_load_explicit(&r->hdr->tail, memory_order_acquire);
        free = r->mask + 1 - ring_used(r, head, r->cached_tail);
    }
    return free;
}

size_t ring_writable(const struct ring *r)
{
    if (!r->writable)
        return 0;
    uint64_t tail = atomic_load_explicit(&r->hdr->tail, memory_order_acquire);
    return (size_t)(r->mask + 1 - ring_used(r, ring_my_head(r), tail));
}

struct ring_span ring_write_span(struct ring *r)
{
    struct ring_span span = {NULL, 0};
    if (!r->writable)
        return span;
    uint64_t head = ring_my_head(r);
    uint64_t off = head & r->mask;
    uint64_t to_wrap = r->mask + 1 - off;
    uint64_t free = ring_free_for(r, head, to_wrap);
    span.ptr = r->data + off;
    span.len = (size_t)(free < to_wrap ? free : to_wrap);
    return span;
}

void ring_commit_write(struct ring *r, size_t n)
{
    if (!r->writable || n == 0)
        return;
    uint64_t head = ring_my_head(r);
    uint64_t free = r->mask + 1 - ring_used(r, head, r->cached_tail);
    if (n > free)
        n = (size_t)free;
    atomic_store_explicit(&r->hdr->head, head + n, memory_order_release);
}

size_t ring_push(struct ring *r, const void *src, size_t n)
{
    if (!r->writable || n == 0)
        return 0;
    uint64_t head = ring_my_head(r);
    uint64_t free = ring_free_for(r, head, n);
    if (n > free)
        n = (size_t)free;
    if (n == 0)
        return 0;
    size_t off = (size_t)(head & r->mask);
    size_t first = r->mask + 1 - off;
    if (first > n)
        first = n;
    memcpy(r->data + off, src, first);
    memcpy(r->data, (const uint8_t *)src + first, n - first);
    atomic_store_explicit(&r->hdr->head, head + n, memory_order_release);
    return n;
}

/* ---- consumer ---- */

/* Only the consumer stores tail. */
static inline uint64_t ring_my_tail(const struct ring *r)
{
    return atomic_load_explicit(&r->hdr->tail, memory_order_relaxed);
}

/* Readable bytes as far as the cached head tells; reloads head (acquire: the producer's bytes
 * are visible) only when that is less than want. */
static inline uint64_t ring_avail_for(struct ring *r, uint64_t tail, uint64_t want)
{
    uint64_t avail = ring_used(r, r->cached_head, tail);
    if (avail < want) {
        r->cached_head = atomic_load_explicit(&r->hdr->head, memory_order_acquire);
        avail = ring_used(r, r->cached_head, tail);
    }
    return avail;
}

struct ring_span ring_read_span(struct ring *r)
{
    struct ring_span span = {NULL, 0};
    if (!r->writable)
        return span;
    uint64_t tail = ring_my_tail(r);
    uint64_t off = tail & r->mask;
    uint64_t to_wrap = r->mask + 1 - off;
    uint64_t avail = ring_avail_for(r, tail, to_wrap);
    span.ptr = r->data + off;
    span.len = (size_t)(avail < to_wrap ? avail : to_wrap);
    return span;
}

void ring_commit_read(struct ring *r, size_t n)
{
    if (!r->writable || n == 0)
        return;
    uint64_t tail = ring_my_tail(r);
    uint64_t avail = ring_used(r, r->cached_head, tail);
    if (n > avail)
        n = (size_t)avail;
    atomic_store_explicit(&r->hdr->tail, tail + n, memory_order_release);
}

size_t ring_pop(struct ring *r, void *dst, size_t n)
{
    if (!r->writable || n == 0)
        return 0;
    uint64_t tail = ring_my_tail(r);
    uint64_t avail = ring_avail_for(r, tail, n);
    if (n > avail)
        n = (size_t)avail;
    if (n == 0)
        return 0;
    size_t off = (size_t)(tail & r->mask);
    size_t first = r->mask + 1 - off;
    if (first > n)
        first = n;
    memcpy(dst, r->data + off, first);
    memcpy((uint8_t *)dst + first, r->data, n - first);
    atomic_store_explicit(&r->hdr->tail, tail + n, memory_order_release);
    return n;
}

/* Frees the whole pages inside data[a, b). */
static int ring_trim_range(struct ring *r, uint64_t a, uint64_t b)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t from = ((uintptr_t)(r->data + a) + page - 1) & ~(page - 1);
    uintptr_t to = (uintptr_t)(r->data + b) & ~(page - 1);
    if (to <= from)
        return 0;
    return madvise((void *)from, to - from, MADV_REMOVE) == -1 ? -errno : 0;
}

int ring_trim(struct ring *r)
{
    if (!r->writable || r->hdr == NULL)
        return -EPERM;
    uint64_t tail = ring_my_tail(r);
    uint64_t head = atomic_load_explicit(&r->hdr->head, memory_order_acquire);
    uint64_t used = ring_used(r, head, tail), cap = r->mask + 1;
    if (used == cap)
        return 0;
    uint64_t t = tail & r->mask, h = (tail + used) & r->mask;
    if (used == 0)
        return ring_trim_range(r, 0, cap);
    if (t < h) { /* live: [t, h) */
        int rc = ring_trim_range(r, 0, t);
        return rc != 0 ? rc : ring_trim_range(r, h, cap);
    }
    return ring_trim_range(r, h, t); /* live wraps: [t, cap) and [0, h) */
}

/* Frees the whole pages of data[a, b) and the page a falls in from its start, when that page
 * lies within the data area: its bytes before a were read before (ring_trim_read). */
static int ring_trim_from_page(struct ring *r, uint64_t a, uint64_t b)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t first = ((uintptr_t)r->data + page - 1) & ~(page - 1);
    uintptr_t from = (uintptr_t)(r->data + a) & ~(page - 1);
    uintptr_t to = (uintptr_t)(r->data + b) & ~(page - 1);
    if (from < first)
        from = first; /* the page the data area starts in holds the header */
    if (to <= from)
        return 0;
    return madvise((void *)from, to - from, MADV_REMOVE) == -1 ? -errno : 0;
}

/* The counts read since the last call, [trimmed, tail), are dead, and so is the rest of the
 * page trimmed falls in (read before) unless the producer's next lap has come back to it: the
 * bytes of counts from head - capacity on are readable again where they sit. */
int ring_trim_read(struct ring *r)
{
    if (!r->writable || r->hdr == NULL)
        return -EPERM;
    uint64_t tail = ring_my_tail(r);
    uint64_t head = atomic_load_explicit(&r->hdr->head, memory_order_acquire);
    uint64_t cap = r->mask + 1, from = r->trimmed, to = tail;
    if (to - from > cap || ring_used(r, head, tail) != head - tail) {
        r->trimmed = tail; /* moved more than a lap, or a bad head: only a bad peer does that */
        return ring_trim(r);
    }
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    if (head == tail) {
        /* Nothing readable: the page the read position is in goes too (the next write there
         * faults in a zeroed page), as ring_trim would give it back; not past the data area. */
        uintptr_t at = (uintptr_t)(r->data + (tail & r->mask));
        uint64_t lap_end = tail - (tail & r->mask) + cap;
        to = tail + ((page - at % page) % page);
        if (to > lap_end)
            to = lap_end;
    }
    if (to == from)
        return 0;
    r->trimmed = tail;
    int from_page = 1; /* the page from falls in may go from its start */
    if (head >= cap) {
        uint64_t lo = head - cap; /* <= tail: used <= cap */
        uint64_t before = (uintptr_t)(r->data + (from & r->mask)) % page; /* from's page offset */
        if (from < lo) {
            from = lo;
            from_page = 0;
        } else if (from - lo < before) {
            from_page = 0; /* lo lies in from's page: the next lap wrote its start */
        }
        if (from >= to)
            return 0;
    }
    uint64_t fo = from & r->mask, n = to - from;
    uint64_t first_end = fo + n <= cap ? fo + n : cap;
    int rc = from_page ? ring_trim_from_page(r, fo, first_end) : ring_trim_range(r, fo, first_end);
    if (rc != 0 || fo + n <= cap)
        return rc;
    return ring_trim_range(r, 0, fo + n - cap);
}

size_t ring_discard(struct ring *r)
{
    if (!r->writable)
        return 0;
    uint64_t tail = ring_my_tail(r);
    r->cached_head = atomic_load_explicit(&r->hdr->head, memory_order_acquire);
    uint64_t dropped = ring_used(r, r->cached_head, tail);
    if (dropped == 0)
        return 0;
    /* Jump to head itself rather than tail + dropped: a peer-corrupted distance is then
     * repaired instead of kept. */
    atomic_store_explicit(&r->hdr->tail, r->cached_head, memory_order_release);
    return (size_t)dropped;
}
