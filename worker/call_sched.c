/* Call scheduler threads. Each thread owns an epoll set holding the backend (epoll) fd of every
 * call loop it drives plus an eventfd for new tasks, and a min-heap of the loops' next timer
 * deadlines. One pass:
 *
 *   epoll_wait(timeout: 0 if a loop asked to run again, else until the earliest deadline)
 *     -> loops whose fd is ready + loops whose deadline passed + loops that asked to run again
 *     -> each runs once: enter, uv_run(NOWAIT), then re-armed from uv_backend_timeout:
 *        0 = run again next pass, -1 = no deadline, n = deadline now + n ms (heap, O(log n))
 *     -> a loop with nothing alive is removed from the epoll set and heap, then done()
 *
 * Cross-thread wake-ups into a loop (uv_async_send) make its backend fd readable, so they wake
 * the scheduler like any other I/O. Deadlines use this file's own monotonic clock: a deadline is
 * set after the run, so it is never early, at worst late by the run itself. */
#include "worker/call_sched.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define SCHED_NOT_IN_HEAP UINT32_MAX
#define SCHED_EVENTS 256     /* epoll events taken per wait */
#define SCHED_NO_FD_POLL_MS 1 /* a loop we could not add to the epoll set is polled this often */
#define SCHED_THREADS_MAX 256

struct sched_thread {
    struct call_sched *sched;
    pthread_t tid;
    int epfd;
    int wakefd;
    atomic_uint load; /* tasks submitted here and not yet done: picks the least-loaded thread */

    pthread_mutex_t lock; /* guards inbox and stopping */
    struct sched_task *inbox, *inbox_tail;
    int stopping;

    /* the thread's own */
    struct sched_task **heap; /* max_tasks entries, allocated up front */
    unsigned heap_n;
    struct sched_task *run_head, *run_tail;
    unsigned live; /* tasks started and not done */
};

struct call_sched {
    unsigned n;
    unsigned max_tasks;
    struct sched_thread *th; /* n of them */
};

static uint64_t sched_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---- the deadline heap: heap[0] is the earliest; each task knows its index ------------------ */

static int heap_less(const struct sched_thread *th, unsigned a, unsigned b)
{
    return th->heap[a]->deadline_us < th->heap[b]->deadline_us;
}

static void heap_swap(struct sched_thread *th, unsigned a, unsigned b)
{
    struct sched_task *t = th->heap[a];
    th->heap[a] = th->heap[b];
    th->heap[b] = t;
    th->heap[a]->heap_idx = a;
    th->heap[b]->heap_idx = b;
}

static void heap_fix(struct sched_thread *th, unsigned i)
{
    while (i > 0 && heap_less(th, i, (i - 1) / 2)) {
        heap_swap(th, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    for (;;) {
        unsigned l = 2 * i + 1, r = l + 1, m = i;
        if (l < th->heap_n && heap_less(th, l, m))
            m = l;
        if (r < th->heap_n && heap_less(th, r, m))
            m = r;
        if (m == i)
            return;
        heap_swap(th, i, m);
        i = m;
    }
}

static void heap_remove(struct sched_thread *th, struct sched_task *t)
{
    unsigned i = t->heap_idx;
    if (i == SCHED_NOT_IN_HEAP)
        return;
    t->heap_idx = SCHED_NOT_IN_HEAP;
    if (i != --th->heap_n) {
        th->heap[i] = th->heap[th->heap_n];
        th->heap[i]->heap_idx = i;
        heap_fix(th, i);
    }
}

/* Room is certain: a thread never holds more than max_tasks tasks (submit checks). */
static void heap_set(struct sched_thread *th, struct sched_task *t, uint64_t deadline_us)
{
    t->deadline_us = deadline_us;
    if (t->heap_idx == SCHED_NOT_IN_HEAP) {
        t->heap_idx = th->heap_n;
        th->heap[th->heap_n++] = t;
    }
    heap_fix(th, t->heap_idx);
}

/* ---- running loops ------------------------------------------------------------------------ */

static void sched_queue(struct sched_thread *th, struct sched_task *t)
{
    if (t->queued)
        return;
    t->queued = 1;
    t->next = NULL;
    if (th->run_tail)
        th->run_tail->next = t;
    else
        th->run_head = t;
    th->run_tail = t;
}

static void sched_finish(struct sched_thread *th, struct sched_task *t)
{
    heap_remove(th, t);
    if (!t->no_fd &&
        epoll_ctl(th->epfd, EPOLL_CTL_DEL, uv_backend_fd(t->loop), NULL) == -1)
        log_error("call scheduler: epoll_ctl del: %s", strerror(errno));
    th->live--;
    atomic_fetch_sub_explicit(&th->load, 1, memory_order_relaxed);
    t->done(t); /* t may be gone from here on */
}

static void sched_run(struct sched_thread *th, struct sched_task *t)
{
    if (t->enter)
        t->enter(t);
    if (uv_run(t->loop, UV_RUN_NOWAIT) == 0) {
        sched_finish(th, t);
        return;
    }
    int ms = uv_backend_timeout(t->loop);
    if (t->no_fd && (ms < 0 || ms > SCHED_NO_FD_POLL_MS))
        ms = SCHED_NO_FD_POLL_MS;
    if (ms == 0) {
        heap_remove(th, t);
        sched_queue(th, t); /* pending callbacks, closing handles, an overdue timer */
    } else if (ms < 0) {
        heap_remove(th, t);
    } else {
        heap_set(th, t, sched_now_us() + (uint64_t)ms * 1000u);
    }
}

static void sched_start(struct sched_thread *th, struct sched_task *t)
{
    t->heap_idx = SCHED_NOT_IN_HEAP;
    t->queued = 0;
    t->no_fd = 0;
    t->next = NULL;
    int rc = t->start(t);
    if (rc != 0) {
        atomic_fetch_sub_explicit(&th->load, 1, memory_order_relaxed);
        return; /* the owner cleaned up */
    }
    th->live++;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = t};
    if (epoll_ctl(th->epfd, EPOLL_CTL_ADD, uv_backend_fd(t->loop), &ev) == -1) {
        /* The call still works, polled every millisecond: worse, but not lost. */
        log_error("call scheduler: epoll_ctl add: %s; polling this call", strerror(errno));
        t->no_fd = 1;
    }
    sched_queue(th, t); /* start may have queued work (early bytes, a connect) */
}

static void sched_take_inbox(struct sched_thread *th, int *stopping)
{
    uint64_t v;
    while (read(th->wakefd, &v, sizeof v) == -1 && errno == EINTR)
        ;
    pthread_mutex_lock(&th->lock);
    struct sched_task *t = th->inbox;
    th->inbox = th->inbox_tail = NULL;
    *stopping = th->stopping;
    pthread_mutex_unlock(&th->lock);
    while (t) {
        struct sched_task *next = t->next;
        sched_start(th, t);
        t = next;
    }
}

static int sched_timeout_ms(const struct sched_thread *th)
{
    if (th->run_head)
        return 0;
    if (th->heap_n == 0)
        return -1;
    uint64_t now = sched_now_us(), at = th->heap[0]->deadline_us;
    if (at <= now)
        return 0;
    uint64_t ms = (at - now + 999) / 1000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

static void *sched_main(void *arg)
{
    struct sched_thread *th = arg;
    struct epoll_event evs[SCHED_EVENTS];
    int stopping = 0;
    for (;;) {
        int n = epoll_wait(th->epfd, evs, SCHED_EVENTS, sched_timeout_ms(th));
        if (n == -1) {
            if (errno != EINTR)
                log_error("call scheduler: epoll_wait: %s", strerror(errno));
            n = 0;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                sched_take_inbox(th, &stopping);
            else
                sched_queue(th, evs[i].data.ptr);
        }
        uint64_t now = sched_now_us();
        while (th->heap_n > 0 && th->heap[0]->deadline_us <= now) {
            struct sched_task *t = th->heap[0];
            heap_remove(th, t);
            sched_queue(th, t);
        }
        /* This pass runs what is queued now; a loop that asks to run again goes to the next
         * pass, after a look at the epoll set, so it cannot starve the others. */
        struct sched_task *t = th->run_head;
        th->run_head = th->run_tail = NULL;
        while (t) {
            struct sched_task *next = t->next;
            t->queued = 0;
            sched_run(th, t);
            t = next;
        }
        if (stopping && th->live == 0) {
            pthread_mutex_lock(&th->lock);
            int empty = th->inbox == NULL;
            pthread_mutex_unlock(&th->lock);
            if (empty)
                return NULL;
        }
    }
}

/* ---- set-up and hand-over ------------------------------------------------------------------- */

static void sched_thread_free(struct sched_thread *th)
{
    if (th->epfd >= 0)
        close(th->epfd);
    if (th->wakefd >= 0)
        close(th->wakefd);
    free(th->heap);
    pthread_mutex_destroy(&th->lock);
}

static int sched_thread_init(struct sched_thread *th, struct call_sched *s)
{
    th->sched = s;
    th->epfd = th->wakefd = -1;
    atomic_init(&th->load, 0);
    int rc = -pthread_mutex_init(&th->lock, NULL);
    if (rc != 0)
        return rc;
    rc = -ENOMEM;
    if ((th->heap = calloc(s->max_tasks, sizeof *th->heap)) == NULL)
        goto fail;
    if ((th->epfd = epoll_create1(EPOLL_CLOEXEC)) == -1 ||
        (th->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) == -1) {
        rc = -errno;
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(th->epfd, EPOLL_CTL_ADD, th->wakefd, &ev) == -1) {
        rc = -errno;
        goto fail;
    }
    return 0;
fail:
    sched_thread_free(th);
    return rc;
}

static void sched_wake(struct sched_thread *th)
{
    uint64_t one = 1;
    /* EAGAIN only if the counter is about to overflow: it is readable already, which suffices */
    while (write(th->wakefd, &one, sizeof one) == -1 && errno == EINTR)
        ;
}

int call_sched_create(unsigned n_threads, unsigned max_tasks, struct call_sched **out)
{
    if (n_threads == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = cpus > 0 ? (unsigned)cpus : 1;
    }
    if (n_threads > SCHED_THREADS_MAX)
        n_threads = SCHED_THREADS_MAX;
    if (max_tasks == 0)
        return -EINVAL;
    struct call_sched *s = calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    s->max_tasks = max_tasks;
    if ((s->th = calloc(n_threads, sizeof *s->th)) == NULL) {
        free(s);
        return -ENOMEM;
    }
    int rc = 0;
    for (; s->n < n_threads; s->n++) {
        struct sched_thread *th = &s->th[s->n];
        if ((rc = sched_thread_init(th, s)) != 0)
            break;
        if ((rc = -pthread_create(&th->tid, NULL, sched_main, th)) != 0) {
            sched_thread_free(th);
            break;
        }
    }
    if (rc != 0) {
        call_sched_destroy(s); /* the threads started so far */
        return rc;
    }
    *out = s;
    return 0;
}

int call_sched_submit(struct call_sched *s, struct sched_task *t)
{
    struct sched_thread *best = &s->th[0];
    unsigned best_load = atomic_load_explicit(&best->load, memory_order_relaxed);
    for (unsigned i = 1; i < s->n; i++) {
        unsigned l = atomic_load_explicit(&s->th[i].load, memory_order_relaxed);
        if (l < best_load) {
            best = &s->th[i];
            best_load = l;
        }
    }
    pthread_mutex_lock(&best->lock);
    if (best->stopping) {
        pthread_mutex_unlock(&best->lock);
        return -EPIPE;
    }
    if (atomic_load_explicit(&best->load, memory_order_relaxed) >= s->max_tasks) {
        pthread_mutex_unlock(&best->lock);
        return -ENOBUFS;
    }
    atomic_fetch_add_explicit(&best->load, 1, memory_order_relaxed);
    t->next = NULL;
    if (best->inbox_tail)
        best->inbox_tail->next = t;
    else
        best->inbox = t;
    best->inbox_tail = t;
    pthread_mutex_unlock(&best->lock);
    sched_wake(best);
    return 0;
}

unsigned call_sched_threads(const struct call_sched *s)
{
    return s->n;
}

void call_sched_destroy(struct call_sched *s)
{
    if (s == NULL)
        return;
    for (unsigned i = 0; i < s->n; i++) {
        pthread_mutex_lock(&s->th[i].lock);
        s->th[i].stopping = 1;
        pthread_mutex_unlock(&s->th[i].lock);
        sched_wake(&s->th[i]);
    }
    for (unsigned i = 0; i < s->n; i++) {
        pthread_join(s->th[i].tid, NULL);
        sched_thread_free(&s->th[i]);
    }
    free(s->th);
    free(s);
}
