/* Call scheduler: many libuv loops on a few threads. Each task's loop ping-pongs messages through
 * a socketpair (readiness through the loop's backend fd), runs a repeating timer (the deadline
 * heap) and waits for a uv_async sent from the test thread (how control commands reach a call);
 * it must see all three, on one thread, and end exactly once. Run under ThreadSanitizer by
 * `make test` ("concurrent" in the name). */
#include "worker/call_sched.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/testing.h"

#define PINGS 40
#define TICKS 8

struct job {
    struct sched_task task;
    uv_loop_t loop;
    uv_pipe_t a, b;
    uv_timer_t timer;
    uv_async_t async;
    int fds[2];
    char rbuf[64];
    char ping;
    uv_write_t wreq;
    unsigned interval_ms;

    /* the scheduler thread's, read by the test after done (under done_lock) */
    pthread_t thread;
    int wrong_thread; /* a callback ran on another thread than start */
    int started, done;
    int pings, ticks, asyncs;
    int closing, open_handles;

    atomic_int ready; /* start ran: the async may be sent */
};

static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static unsigned done_count;

static struct job *job_of(struct sched_task *t)
{
    return (struct job *)((char *)t - offsetof(struct job, task));
}

static void job_here(struct job *j)
{
    if (!pthread_equal(j->thread, pthread_self()))
        j->wrong_thread = 1;
}

static void on_closed(uv_handle_t *h)
{
    struct job *j = h->data;
    j->open_handles--;
}

static void job_maybe_close(struct job *j)
{
    if (j->closing || j->pings < PINGS || j->ticks < TICKS || j->asyncs < 1)
        return;
    j->closing = 1;
    uv_close((uv_handle_t *)&j->a, on_closed);
    uv_close((uv_handle_t *)&j->b, on_closed);
    uv_close((uv_handle_t *)&j->timer, on_closed);
    uv_close((uv_handle_t *)&j->async, on_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    struct job *j = h->data;
    (void)hint;
    *buf = uv_buf_init(j->rbuf, sizeof j->rbuf);
}

static void send_ping(struct job *j, uv_pipe_t *to);

static void on_written(uv_write_t *req, int status)
{
    struct job *j = req->data;
    job_here(j);
    CHECK_EQ(status, 0);
}

/* Whatever one end reads, it answers on its own end: a ball bounced PINGS times. */
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct job *j = s->data;
    (void)buf;
    job_here(j);
    if (n <= 0 || j->closing)
        return;
    if (++j->pings < PINGS)
        send_ping(j, (uv_pipe_t *)s);
    job_maybe_close(j);
}

static void send_ping(struct job *j, uv_pipe_t *from)
{
    uv_buf_t b = uv_buf_init(&j->ping, 1);
    j->wreq.data = j;
    CHECK_EQ(uv_write(&j->wreq, (uv_stream_t *)from, &b, 1, on_written), 0);
}

static void on_tick(uv_timer_t *t)
{
    struct job *j = t->data;
    job_here(j);
    if (++j->ticks >= TICKS)
        uv_timer_stop(t);
    job_maybe_close(j);
}

static void on_async(uv_async_t *a)
{
    struct job *j = a->data;
    job_here(j);
    j->asyncs++;
    job_maybe_close(j);
}

static int job_start(struct sched_task *t)
{
    struct job *j = job_of(t);
    j->thread = pthread_self();
    j->started++;
    CHECK_EQ(uv_loop_init(&j->loop), 0);
    CHECK_EQ(uv_pipe_init(&j->loop, &j->a, 0), 0);
    CHECK_EQ(uv_pipe_init(&j->loop, &j->b, 0), 0);
    CHECK_EQ(uv_pipe_open(&j->a, j->fds[0]), 0);
    CHECK_EQ(uv_pipe_open(&j->b, j->fds[1]), 0);
    CHECK_EQ(uv_timer_init(&j->loop, &j->timer), 0);
    CHECK_EQ(uv_async_init(&j->loop, &j->async, on_async), 0);
    j->a.data = j->b.data = j->timer.data = j->async.data = j;
    j->open_handles = 4;
    CHECK_EQ(uv_read_start((uv_stream_t *)&j->a, on_alloc, on_read), 0);
    CHECK_EQ(uv_read_start((uv_stream_t *)&j->b, on_alloc, on_read), 0);
    CHECK_EQ(uv_timer_start(&j->timer, on_tick, j->interval_ms, j->interval_ms), 0);
    j->ping = 'p';
    send_ping(j, &j->a);
    atomic_store(&j->ready, 1);
    return 0;
}

static void job_enter(struct sched_task *t)
{
    job_here(job_of(t));
}

static void job_done(struct sched_task *t)
{
    struct job *j = job_of(t);
    job_here(j);
    CHECK_EQ(j->open_handles, 0);
    CHECK_EQ(uv_loop_close(&j->loop), 0);
    pthread_mutex_lock(&done_lock);
    j->done++;
    done_count++;
    pthread_cond_broadcast(&done_cond);
    pthread_mutex_unlock(&done_lock);
}

/* Waits until n tasks are done; fails (rather than hangs) after a generous 30 s. */
static int wait_done(unsigned n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    pthread_mutex_lock(&done_lock);
    int rc = 0;
    while (done_count < n && rc == 0)
        rc = pthread_cond_timedwait(&done_cond, &done_lock, &until);
    unsigned got = done_count;
    pthread_mutex_unlock(&done_lock);
    return got >= n;
}

static void run_jobs(unsigned n_threads, unsigned n_jobs)
{
    struct call_sched *s;
    CHECK_EQ(call_sched_create(n_threads, n_jobs / n_threads, &s), 0);
    CHECK_EQ(call_sched_threads(s), n_threads);
    struct job *jobs = calloc(n_jobs, sizeof *jobs);
    CHECK(jobs != NULL);
    for (unsigned i = 0; i < n_jobs; i++) {
        struct job *j = &jobs[i];
        CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, j->fds), 0);
        j->interval_ms = 1 + i % 5; /* deadlines interleave in the heap */
        j->task = (struct sched_task){
            .loop = &j->loop, .start = job_start, .enter = job_enter, .done = job_done};
        CHECK_EQ(call_sched_submit(s, &j->task), 0);
    }
    /* Every thread now holds its n_jobs / n_threads (none can end before its async arrives). */
    CHECK_EQ(call_sched_submit(s, &(struct job){0}.task), -ENOBUFS);
    for (unsigned i = 0; i < n_jobs; i++) {
        while (!atomic_load(&jobs[i].ready))
            usleep(100);
        CHECK_EQ(uv_async_send(&jobs[i].async), 0);
    }
    CHECK_MSG(wait_done(n_jobs), "only %u of %u tasks ended", done_count, n_jobs);
    call_sched_destroy(s);
    unsigned per_thread[8] = {0};
    pthread_t seen[8];
    unsigned n_seen = 0;
    for (unsigned i = 0; i < n_jobs; i++) {
        struct job *j = &jobs[i];
        CHECK_EQ(j->started, 1);
        CHECK_EQ(j->done, 1);
        CHECK_EQ(j->wrong_thread, 0);
        CHECK_EQ(j->pings, PINGS);
        CHECK_EQ(j->ticks, TICKS);
        CHECK_EQ(j->asyncs, 1);
        CHECK(!pthread_equal(j->thread, pthread_self()));
        unsigned k = 0;
        while (k < n_seen && !pthread_equal(seen[k], j->thread))
            k++;
        if (k == n_seen && n_seen < 8)
            seen[n_seen++] = j->thread;
        per_thread[k]++;
    }
    CHECK_EQ(n_seen, n_threads);
    for (unsigned k = 0; k < n_seen; k++)
        CHECK_EQ(per_thread[k], n_jobs / n_threads);
    free(jobs);
}

TEST(call_sched_runs_loops_to_the_end)
{
    run_jobs(1, 5);
}

TEST(call_sched_concurrent_many_loops)
{
    run_jobs(2, 200);
}

static int refuse_start(struct sched_task *t)
{
    (void)t;
    pthread_mutex_lock(&done_lock);
    done_count++; /* the owner's clean-up would go here; the task is dropped */
    pthread_cond_broadcast(&done_cond);
    pthread_mutex_unlock(&done_lock);
    return -EIO;
}

static void never_done(struct sched_task *t)
{
    (void)t;
    CHECK_MSG(0, "done called for a task whose start failed");
}

TEST(call_sched_concurrent_failed_start_is_dropped)
{
    struct call_sched *s;
    CHECK_EQ(call_sched_create(2, 1, &s), 0);
    struct sched_task t[3];
    for (int i = 0; i < 3; i++) {
        t[i] = (struct sched_task){.start = refuse_start, .done = never_done};
        int rc;
        while ((rc = call_sched_submit(s, &t[i])) == -ENOBUFS)
            usleep(100); /* both threads full for a moment: the failed start frees its place */
        CHECK_EQ(rc, 0);
    }
    CHECK(wait_done(3));
    call_sched_destroy(s); /* returns: nothing is left to run */
}
