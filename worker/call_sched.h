/* The call scheduler: a few threads (one per core by default) that each drive many libuv loops,
 * one loop per call pair, instead of one thread per call. Each scheduler thread waits in one
 * epoll on the backend fds of its loops and on a min-heap of their next timer deadlines, and runs
 * whichever loop is ready with UV_RUN_NOWAIT: one wake-up serves every ready call, and a call costs
 * no stack, thread-locals or malloc arena of its own. A loop still belongs to one thread. */
#ifndef VB_WORKER_CALL_SCHED_H
#define VB_WORKER_CALL_SCHED_H

#include <stdint.h>
#include <uv.h>

struct call_sched;

/* One loop to drive, embedded in its owner (a call). The owner fills the public part and hands
 * it to call_sched_submit; the callbacks run on the scheduler thread it was given to:
 *   start  initialises *loop and its handles (the loop is created on the thread that runs it).
 *          Returns 0, or a negative errno after cleaning up everything itself: the task is then
 *          dropped and never touched again.
 *   enter  before each uv_run of the loop (the owner's log context, say); may be NULL.
 *   done   the loop ran dry (uv_run found nothing alive): it is no longer watched and the
 *          scheduler will not touch the task again; the owner closes the loop and may free it. */
struct sched_task {
    uv_loop_t *loop;
    int (*start)(struct sched_task *t);
    void (*enter)(struct sched_task *t);
    void (*done)(struct sched_task *t);

    /* private: the scheduler thread's */
    struct sched_task *next; /* inbox, then run list */
    uint64_t deadline_us;    /* when in the heap */
    unsigned heap_idx;       /* SCHED_NOT_IN_HEAP when not */
    unsigned queued : 1, no_fd : 1;
};

/* Starts n_threads scheduler threads (0: one per online CPU), each able to hold max_tasks loops.
 * *out is owned by the caller (call_sched_destroy). Returns 0 or a negative errno. */
int call_sched_create(unsigned n_threads, unsigned max_tasks, struct call_sched **out);

/* Any thread: gives t to the least-loaded scheduler thread, which calls t->start and then runs
 * the loop until it is dry. Returns 0 (t is the scheduler's until t->done, or until t->start
 * fails), -ENOBUFS (that thread holds max_tasks loops) or -EPIPE (destroy has begun); t is
 * still the caller's then. */
int call_sched_submit(struct call_sched *s, struct sched_task *t);

unsigned call_sched_threads(const struct call_sched *s);

/* Stops the threads once every task has finished (it waits for that: end the calls first) and
 * frees s. s may be NULL. Not from a scheduler thread. */
void call_sched_destroy(struct call_sched *s);

#endif
