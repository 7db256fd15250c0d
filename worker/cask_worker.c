/*  cask_worker.c - a cask worker: runs tasks the broker sends, keeps their
    results and serves them to peers.

    The main thread owns every socket and every data structure; executor
    threads only see a job while they run it, taken from a mutex-guarded
    priority queue (higher priority first, first come first among equals)
    and handed back as a pointer over an inproc PUSH socket of their own. Each wake-up of zmq_poll drains every ready socket, then sends
    what it gathered in one go: one DONE batch to the broker, one GET batch
    per peer, one hand-over of ready jobs to the executors.

    A task whose dependencies are all here is decoded straight from the
    TASK message. One that lacks some keeps a copy of its arguments and its
    payload frames and waits on one fetch per missing key; fetches are
    shared between the tasks that need the same key, and a fetched value
    lives only as long as the tasks that use it (the broker does not know
    this worker has it, so it could never free it; COPY, below, is how the
    broker has a value kept here).

    A peer that stays silent for fetch_timeout_ms while we wait on it is
    given up: its fetches fail and its socket is closed, so a later task
    that needs it connects afresh.

    RESTART starts a new epoch: results, queued jobs, fetches and peer
    connections of the old one go at once, and the jobs still running are
    recognised by their epoch when they come back, their results dropped
    with no DONE. Peer sockets are closed so that no answer to a GET of the
    old epoch can complete a fetch of the new one.

    Once it holds no result and runs no task, a worker gives the memory
    of the last burst back to the system (at most once a tick).

    The worker and the broker heartbeat each other. A broker silent for
    CASK_HEARTBEAT_LIVENESS of its intervals, or one that answers ERROR
    "HELLO first" (it restarted, or took this worker for dead), belongs to
    a cluster that is gone: the worker starts a new epoch as at RESTART and
    says HELLO on a new connection.

    A task with a time limit that runs past it is failed at once and its
    result dropped when it comes; one that does not return 2 s later ends
    the worker (cask_worker_stuck), for its nanny to start it again.

    Clients scatter data with PUT on the peer socket: each value is kept
    (when it fits under the memory limit) like a result, and the broker
    learns of it through DONE as if a task had made it.

    FREE of a task not finished here, and STEAL, drop jobs: a dropped job
    is never run (an executor that takes it skips it), is released when it
    comes back or when its fetches end, and no DONE is sent for it. STEAL
    drops only the jobs no executor has taken, decided under the pool's
    lock, under which executors take jobs, and answers STOLEN at once with
    what it gave up. Both look their keys up in one walk of the jobs.

    COPY is a job with no function whose one dependency is the key: it
    shares fetches with tasks, FREE and RESTART drop it as they drop a
    task, and once its value is here it is kept as a result of this
    worker's own, with DONE as if a task had made it.

    RETIRE ends the loop as a signal does, once the batches of that
    wake-up are sent: the worker says BYE and stops.
*/
#include "cask_worker.h"
#include "cask_call.h"
#include "cask_keymap.h"
#include "cask_library.h"
#include "cask_log.h"
#include "cask_store.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define S_DRAIN_MAX 100000              //  messages per socket per wake-up
#define S_BATCH_MAX (1u << 20)          //  a DONE or GET body this big goes at once
#define S_TICK_MS 1000                  //  poll timeout: fetch timeouts, interrupts
#define S_STOP_GRACE_MS 2000            //  for running tasks at exit
#define S_BYE_LINGER_MS 1000

typedef struct _s_job_t s_job_t;
typedef struct _s_fetch_t s_fetch_t;
typedef struct _s_peer_t s_peer_t;

//  One task, from TASK to DONE. Jobs are reused: a worker allocates as
//  many as it ever has in flight at once.
struct _s_job_t {
    char key [CASK_MAX_KEY + 1];
    cask_fn_t *fn;
    const char *function;               //  name, owned by the libraries
    uint32_t ndeps;
    uint32_t capdeps;
    cask_value_t **refs;                //  [ndeps] dependency values
    s_fetch_t **fetching;               //  [ndeps] what will fill refs [i]
    uint32_t nwaiting;                  //  fetches this job waits on
    bool failed;                        //  DONE already sent
    bool live;                          //  in use, not on the free list
    bool dropped;                       //  FREE or STEAL came first: no run, no DONE
    bool ran;                           //  the executor ran it
    bool running;                       //  an executor runs it now (pool lock)
    uint32_t timeout_ms;                //  its time limit, or 0
    int64_t started_us;                 //  when an executor took it
    int64_t timed_out_us;               //  when it ran past its limit, or 0
    bool copy;                          //  COPY: keep refs [0] under key, run nothing
    uint32_t epoch;                     //  the worker's when the TASK came
    int32_t priority;                   //  higher runs first
    uint64_t sequence;                  //  order of readiness, among equals
    uint8_t *args_data;                 //  encoded arguments kept while waiting
    size_t args_size;
    size_t args_cap;
    cask_message_t frames;              //  their payload frames
    cask_value_t *args;                 //  decoded, for the executor
    bool ok;                            //  outcome of the run
    cask_value_t *result;
    char *error;
    uint32_t duration_us;
    //  For the task stream (DONE): wall clock in microseconds
    uint64_t start_wall_us;             //  when the function started
    uint64_t fetch_start_us;            //  when its first fetch started, or 0
    uint32_t fetch_us;                  //  how long its fetches took
    uint16_t thread;                    //  the executor that ran it
    s_job_t *next;                      //  ready list, free list
    s_job_t *every;                     //  all jobs ever made, for destroy
};

//  A dependency being fetched from a peer, and the jobs that wait on it.
struct _s_fetch_t {
    char key [CASK_MAX_KEY + 1];
    s_peer_t *peer;
    s_job_t **waiters;
    size_t nwaiters;
    size_t capwaiters;
};

//  Another worker we fetch from.
struct _s_peer_t {
    char endpoint [CASK_MAX_KEY + 1];
    void *socket;                       //  DEALER
    cask_batch_t get;                   //  GET batch being built
    size_t waiting;                     //  fetches outstanding
    int64_t progress_at;                //  last answer, or when waiting began
    bool dead;                          //  given up, closed at the next flush
    uint32_t epoch;                     //  the worker's when connected
};

//  The executors and their queue.
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;                //  a job was queued, or stopping
    pthread_cond_t gone;                //  an executor ended
    s_job_t **queue;                    //  binary heap, first to run at 0
    size_t queued;
    size_t capqueue;
    bool stopping;
    size_t alive;                       //  executors not yet ended
    size_t busy;                        //  jobs being run
    size_t indexed;                     //  executors that took their index
    pthread_t *threads;
    size_t nthreads;                    //  started
    char endpoint [64];                 //  inproc, for finished jobs
} s_pool_t;

struct _cask_worker_t {
    cask_worker_config_t config;        //  strings copied below
    char *broker_endpoint;
    char *name;
    char *death;                        //  config.death, copied
    char *running;                      //  config.running, copied
    char resource_names [CASK_MAX_RESOURCES][CASK_MAX_KEY + 1];
    char endpoint [CASK_MAX_KEY + 1];   //  as peers connect to it
    uint32_t id;                        //  from WELCOME
    void *ctx;
    void *broker;                       //  DEALER
    void *router;                       //  ROUTER, peer endpoint
    void *finished;                     //  PULL from the executors
    cask_log_t *log;
    cask_store_t *store;
    cask_libraries_t *libraries;
    s_pool_t pool;
    bool pool_ready;                    //  lock and condvars initialised
    s_peer_t **peers;
    size_t npeers;
    size_t cappeers;
    zmq_pollitem_t *items;
    size_t capitems;
    cask_keymap_t *fetches;             //  s_fetch_t by key
    s_job_t *free_jobs;
    s_job_t *every_job;
    size_t jobs_in_flight;
    s_job_t *ready_head;                //  decoded, to hand to the pool
    s_job_t *ready_tail;
    uint64_t next_sequence;             //  for the next job made ready
    uint32_t epoch;                     //  RESTARTs so far
    cask_batch_t done;                  //  DONE batch being built
    cask_batch_t stored;                //  STORED reply being built
    bool trim_due;                      //  results freed since the last trim
    cask_buf_t scratch;                 //  for one-off messages
    cask_message_t msg;                 //  last received
    int64_t next_tick;
    bool retired;                       //  RETIRE came: the loop ends
    bool failed;                        //  could not connect again: the loop ends
    const char *reconnect_due;          //  why to start afresh after this wake-up
    int64_t broker_heard_at;            //  s_now_us of its last message
    uint32_t broker_heartbeat_ms;       //  how often it heartbeats
    int64_t heartbeat_at;               //  when ours is due
    int64_t cpu_used_us;                //  CPU time at the last heartbeat
    int64_t cpu_taken_at;               //  when it was taken
    uint64_t tasks_run;
    uint64_t tasks_failed;
    uint64_t tasks_abandoned;           //  running at a RESTART or FREE
    uint64_t tasks_timed_out;           //  ran past their time limits
    size_t timed;                       //  jobs in flight with a time limit
    int64_t limits_at;                  //  when to look at time limits next
    bool stuck;                         //  a task will not stop: the loop ends
    bool over_memory;                   //  past the memory limit: the loop ends
    bool paused;                        //  told the broker PAUSE 1
    uint64_t rss_base;                  //  resident bytes when it started
    uint64_t tasks_stolen;              //  given up on a STEAL
    uint64_t copies;                    //  COPY records received
    uint64_t values_put;                //  kept from PUT
    uint64_t values_refused;            //  refused from PUT
    uint64_t fetches_from_peers;
    uint64_t bytes_fetched_from_peers;
};

static void s_job_fetched (cask_worker_t *self, s_job_t *job);
static uint64_t s_rss_bytes (void);

static int64_t
s_clock_us (clockid_t clock)
{
    struct timespec ts;
    clock_gettime (clock, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t
s_now_us (void)
{
    return s_clock_us (CLOCK_MONOTONIC);
}

//  Wall clock, for the task stream: comparable across hosts, unlike the
//  monotonic clock that times everything else.
static uint64_t
s_wall_us (void)
{
    return (uint64_t) s_clock_us (CLOCK_REALTIME);
}

//  ---------------------------------------------------------------------
//  Receiving

//  Handles the message just received into self->msg; why is NULL, or says
//  why the message is malformed. Returns false to read no more for now.
typedef bool (s_handler_fn) (cask_worker_t *self, void *arg, const char *why);

//  Hands each message waiting on socket to handle, up to S_DRAIN_MAX.
static void
s_drain (cask_worker_t *self, void *socket, bool routed, s_handler_fn *handle, void *arg)
{
    for (int count = 0; count < S_DRAIN_MAX; count++) {
        const char *why = NULL;
        cask_recv_t rc = cask_message_recv (&self->msg, socket, routed, ZMQ_DONTWAIT, &why);
        if (rc == CASK_RECV_AGAIN || rc == CASK_RECV_TERM)
            break;
        if (!handle (self, arg, rc == CASK_RECV_BAD ? why : NULL))
            break;
    }
}

//  ---------------------------------------------------------------------
//  Jobs

static s_job_t *
s_job_new (cask_worker_t *self)
{
    s_job_t *job = self->free_jobs;
    if (job)
        self->free_jobs = job->next;
    else {
        job = (s_job_t *) calloc (1, sizeof (s_job_t));
        if (!job)
            return NULL;
        cask_message_init (&job->frames);
        job->every = self->every_job;
        self->every_job = job;
    }
    job->next = NULL;
    job->epoch = self->epoch;
    job->live = true;
    self->jobs_in_flight++;
    return job;
}

//  Empties a job, keeping its arrays for the next task.
static void
s_job_clear (s_job_t *job)
{
    for (uint32_t index = 0; index < job->ndeps; index++)
        cask_value_destroy (&job->refs [index]);
    job->ndeps = 0;
    job->nwaiting = 0;
    job->failed = false;
    job->live = false;
    job->dropped = false;
    job->ran = false;
    job->running = false;
    job->timeout_ms = 0;
    job->timed_out_us = 0;
    job->start_wall_us = 0;
    job->fetch_start_us = 0;
    job->fetch_us = 0;
    job->copy = false;
    job->args_size = 0;
    cask_message_close (&job->frames);
    cask_message_init (&job->frames);
    cask_value_destroy (&job->args);
    cask_value_destroy (&job->result);
    free (job->error);
    job->error = NULL;
    job->ok = false;
}

static void
s_job_release (cask_worker_t *self, s_job_t *job)
{
    if (job->timeout_ms)
        self->timed--;
    s_job_clear (job);
    job->next = self->free_jobs;
    self->free_jobs = job;
    self->jobs_in_flight--;
}

//  Frees every job; none may be in use (all free, or the executors gone).
static void
s_free_jobs (cask_worker_t *self)
{
    while (self->every_job) {
        s_job_t *job = self->every_job;
        self->every_job = job->every;
        s_job_clear (job);
        cask_message_close (&job->frames);
        free (job->refs);
        free (job->fetching);
        free (job->args_data);
        free (job);
    }
    self->free_jobs = NULL;
}

static int
s_job_reserve_deps (s_job_t *job, uint32_t ndeps)
{
    if (ndeps > job->capdeps) {
        cask_value_t **refs = (cask_value_t **) realloc (job->refs, ndeps * sizeof (cask_value_t *));
        if (refs)
            job->refs = refs;
        s_fetch_t **fetching = (s_fetch_t **) realloc (job->fetching, ndeps * sizeof (s_fetch_t *));
        if (fetching)
            job->fetching = fetching;
        if (!refs || !fetching)
            return -1;
        job->capdeps = ndeps;
    }
    if (ndeps) {                //  memset on the NULL of a job never given deps is UB
        memset (job->refs, 0, ndeps * sizeof (cask_value_t *));
        memset (job->fetching, 0, ndeps * sizeof (s_fetch_t *));
    }
    job->ndeps = ndeps;
    return 0;
}

//  ---------------------------------------------------------------------
//  DONE records, batched until the end of the wake-up

static void
s_done_send (cask_worker_t *self)
{
    uint32_t count = self->done.count;
    if (cask_batch_send (&self->done, self->broker, NULL, CASK_MSG_DONE, NULL))
        cask_log_print (self->log, CASK_LOG_ERROR, "cannot send DONE for %u tasks: %s",
                        count, zmq_strerror (errno));
}

static void
s_done_add (cask_worker_t *self, const cask_done_t *rec)
{
    cask_done_put (cask_batch_add (&self->done), rec);
    if (self->done.body.size >= S_BATCH_MAX)
        s_done_send (self);
}

//  Adds the DONE of job, with when it fetched and ran, for the task stream.
static void
s_job_done_add (cask_worker_t *self, const s_job_t *job, cask_done_t *rec)
{
    rec->start_us = job->start_wall_us;
    rec->fetch_start_us = job->fetch_start_us;
    rec->fetch_us = job->fetch_us;
    rec->thread = job->thread;
    s_done_add (self, rec);
}

//  True while the broker waits for the job's DONE: none sent yet, and not
//  dropped (by FREE, STEAL or RESTART).
static bool
s_job_owes_done (cask_worker_t *self, const s_job_t *job)
{
    return !job->failed && !job->dropped && job->epoch == self->epoch;
}

//  Fails a task with DONE ok=0. The job itself lives on while fetches
//  still refer to it.
static void
s_job_fail (cask_worker_t *self, s_job_t *job, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
s_job_fail (cask_worker_t *self, s_job_t *job, const char *format, ...)
{
    char message [1024];
    va_list args;
    va_start (args, format);
    vsnprintf (message, sizeof message, format, args);
    va_end (args);
    cask_log_print (self->log, CASK_LOG_INFO, "task %s failed: %s", job->key, message);
    cask_done_t rec = { .key = cask_str (job->key), .message = cask_str (message) };
    s_job_done_add (self, job, &rec);
    self->tasks_failed++;
    job->failed = true;
    if (job->nwaiting == 0)
        s_job_release (self, job);
}

//  Keeps the result of a job that ran, or a copy's value, as this
//  worker's result of its key and tells the broker with DONE, or tells it
//  of the failure; releases the job.
static void
s_job_finish (cask_worker_t *self, s_job_t *job)
{
    if (job->ok) {
        cask_value_t *result = job->result ? job->result : cask_null ();
        job->result = NULL;
        cask_done_t rec = { .key = cask_str (job->key), .ok = 1, .duration_us = job->duration_us };
        if (result) {
            rec.type = (uint8_t) cask_value_type (result);
            rec.nbytes = cask_value_nbytes (result);
        }
        if (cask_store_put (self->store, cask_str (job->key), result) == 0) {
            s_job_done_add (self, job, &rec);
            s_job_release (self, job);
            return;
        }
        job->error = strdup ("worker out of memory for the result");
    }
    cask_done_t rec = { .key = cask_str (job->key), .duration_us = job->duration_us,
                        .message = cask_str (job->error ? job->error : "failed (worker out of memory)") };
    s_job_done_add (self, job, &rec);
    self->tasks_failed++;
    s_job_release (self, job);
}

//  ---------------------------------------------------------------------
//  The executors' queue, a binary heap; the caller holds the pool's lock

//  True when a runs before b: higher priority first, then the earlier.
static bool
s_job_before (const s_job_t *a, const s_job_t *b)
{
    if (a->priority != b->priority)
        return a->priority > b->priority;
    return a->sequence < b->sequence;
}

//  Makes room for one more job. Returns 0 or -1.
static int
s_queue_reserve (s_pool_t *pool)
{
    if (pool->queued == pool->capqueue) {
        size_t cap = pool->capqueue ? pool->capqueue * 2 : 64;
        s_job_t **queue = (s_job_t **) realloc (pool->queue, cap * sizeof (s_job_t *));
        if (!queue)
            return -1;
        pool->queue = queue;
        pool->capqueue = cap;
    }
    return 0;
}

//  Adds job to the queue, which has room for it.
static void
s_queue_push (s_pool_t *pool, s_job_t *job)
{
    size_t at = pool->queued++;
    while (at > 0) {
        size_t parent = (at - 1) / 2;
        if (!s_job_before (job, pool->queue [parent]))
            break;
        pool->queue [at] = pool->queue [parent];
        at = parent;
    }
    pool->queue [at] = job;
}

//  Takes the first job off the queue, which is not empty.
static s_job_t *
s_queue_pop (s_pool_t *pool)
{
    s_job_t *first = pool->queue [0];
    s_job_t *last = pool->queue [--pool->queued];
    size_t count = pool->queued;
    size_t at = 0;
    while (2 * at + 1 < count) {
        size_t child = 2 * at + 1;
        if (child + 1 < count && s_job_before (pool->queue [child + 1], pool->queue [child]))
            child++;
        if (!s_job_before (pool->queue [child], last))
            break;
        pool->queue [at] = pool->queue [child];
        at = child;
    }
    pool->queue [at] = last;
    return first;
}

//  ---------------------------------------------------------------------
//  Executors

static void
s_job_run (s_job_t *job)
{
    cask_call_t call;
    cask_call_init (&call, job->function, job->args);
    job->args = NULL;
    job->start_wall_us = s_wall_us ();
    int64_t start = s_now_us ();
    job->ok = cask_call_invoke (&call, job->fn) == 0;
    int64_t elapsed = s_now_us () - start;
    job->duration_us = elapsed > UINT32_MAX ? UINT32_MAX : (uint32_t) elapsed;
    if (job->ok)
        job->result = cask_call_take_result (&call);
    else
        job->error = strdup (cask_call_error (&call));
    cask_call_fini (&call);
}

static void *
s_executor (void *arg)
{
    cask_worker_t *self = (cask_worker_t *) arg;
    s_pool_t *pool = &self->pool;
    void *push = zmq_socket (self->ctx, ZMQ_PUSH);
    int zero = 0;
    if (push) {
        zmq_setsockopt (push, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt (push, ZMQ_SNDHWM, &zero, sizeof zero);
        if (zmq_connect (push, pool->endpoint)) {
            zmq_close (push);
            push = NULL;
        }
    }
    pthread_mutex_lock (&pool->lock);
    //  Where this executor says what it runs, for the nanny
    uint16_t index = (uint16_t) pool->indexed++;
    char *slot = self->config.slots ? self->config.slots + index * (CASK_MAX_KEY + 1) : NULL;
    while (push) {
        while (!pool->queued && !pool->stopping)
            pthread_cond_wait (&pool->wake, &pool->lock);
        if (pool->stopping)
            break;
        s_job_t *job = s_queue_pop (pool);
        job->ran = job->running = !job->dropped;
        job->started_us = s_now_us ();
        job->thread = index;
        pool->busy++;
        pthread_mutex_unlock (&pool->lock);

        if (job->ran && slot)
            strcpy (slot, job->key);
        if (job->ran)
            s_job_run (job);
        if (slot)
            slot [0] = 0;
        zmq_send (push, &job, sizeof job, 0);

        pthread_mutex_lock (&pool->lock);
        job->running = false;
        pool->busy--;
    }
    pthread_mutex_unlock (&pool->lock);
    if (push)
        zmq_close (push);

    pthread_mutex_lock (&pool->lock);
    pool->alive--;
    pthread_cond_broadcast (&pool->gone);
    pthread_mutex_unlock (&pool->lock);
    return NULL;
}

//  Starts the executors with SIGINT and SIGTERM blocked, so the signals
//  reach the main thread and interrupt its poll.
static int
s_pool_start (cask_worker_t *self)
{
    s_pool_t *pool = &self->pool;
    pool->threads = (pthread_t *) calloc (self->config.nthreads, sizeof (pthread_t));
    if (!pool->threads)
        return -1;
    sigset_t blocked, saved;
    sigemptyset (&blocked);
    sigaddset (&blocked, SIGINT);
    sigaddset (&blocked, SIGTERM);
    pthread_sigmask (SIG_BLOCK, &blocked, &saved);
    int rc = 0;
    while (pool->nthreads < self->config.nthreads && rc == 0) {
        pthread_mutex_lock (&pool->lock);
        pool->alive++;
        pthread_mutex_unlock (&pool->lock);
        rc = pthread_create (&pool->threads [pool->nthreads], NULL, s_executor, self);
        if (rc == 0)
            pool->nthreads++;
        else {
            pthread_mutex_lock (&pool->lock);
            pool->alive--;
            pthread_mutex_unlock (&pool->lock);
        }
    }
    pthread_sigmask (SIG_SETMASK, &saved, NULL);
    return rc ? -1 : 0;
}

//  Hands the jobs decoded in this wake-up to the executors.
static void
s_pool_submit (cask_worker_t *self)
{
    if (!self->ready_head)
        return;
    s_pool_t *pool = &self->pool;
    s_job_t *job = self->ready_head;
    self->ready_head = self->ready_tail = NULL;
    pthread_mutex_lock (&pool->lock);
    while (job && s_queue_reserve (pool) == 0) {
        s_job_t *next = job->next;
        s_queue_push (pool, job);
        job = next;
    }
    pthread_cond_broadcast (&pool->wake);
    pthread_mutex_unlock (&pool->lock);
    while (job) {
        s_job_t *next = job->next;
        if (s_job_owes_done (self, job))
            s_job_fail (self, job, "%s: worker out of memory", job->function);
        else
            s_job_release (self, job);
        job = next;
    }
}

//  Takes every job off the executors' queue and the ready list, and
//  releases them.
static void
s_pool_drop_queued (cask_worker_t *self)
{
    s_pool_t *pool = &self->pool;
    s_job_t *dropped = self->ready_head;
    self->ready_head = self->ready_tail = NULL;
    pthread_mutex_lock (&pool->lock);
    for (size_t index = 0; index < pool->queued; index++) {
        pool->queue [index]->next = dropped;
        dropped = pool->queue [index];
    }
    pool->queued = 0;
    pthread_mutex_unlock (&pool->lock);
    while (dropped) {
        s_job_t *next = dropped->next;
        s_job_release (self, dropped);
        dropped = next;
    }
}

//  Stops the executors: queued jobs stay queued, running ones may finish
//  within the grace period. Returns true when every executor has ended.
static bool
s_pool_stop (cask_worker_t *self)
{
    s_pool_t *pool = &self->pool;
    struct timespec deadline;
    clock_gettime (CLOCK_REALTIME, &deadline);
    deadline.tv_sec += S_STOP_GRACE_MS / 1000;
    deadline.tv_nsec += (S_STOP_GRACE_MS % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock (&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast (&pool->wake);
    int rc = 0;
    while (pool->alive && rc == 0)
        rc = pthread_cond_timedwait (&pool->gone, &pool->lock, &deadline);
    bool ended = pool->alive == 0;
    size_t busy = pool->busy;
    pthread_mutex_unlock (&pool->lock);
    if (!ended) {
        cask_log_print (self->log, CASK_LOG_WARNING, "abandoning %zu running task%s at exit",
                        busy, busy == 1 ? "" : "s");
        return false;
    }
    for (size_t index = 0; index < pool->nthreads; index++)
        pthread_join (pool->threads [index], NULL);
    pool->nthreads = 0;
    return true;
}

//  ---------------------------------------------------------------------
//  Jobs whose dependencies are all here: decode and queue

static void
s_job_ready (cask_worker_t *self, s_job_t *job)
{
    job->sequence = self->next_sequence++;
    job->next = NULL;
    if (self->ready_tail)
        self->ready_tail->next = job;
    else
        self->ready_head = job;
    self->ready_tail = job;
}

//  Decodes the arguments, whose payload frames are the nframes of msg from
//  frame_base on (refs are the dependency values in order), and queues the
//  job, or fails it.
static void
s_job_decode (cask_worker_t *self, s_job_t *job, cask_message_t *msg,
              size_t frame_base, size_t nframes, cask_str_t args)
{
    cask_rd_t rd;
    cask_rd_init (&rd, args.ptr, args.len);
    const char *why = "malformed";
    job->args = cask_value_decode (&rd, msg, frame_base, nframes, job->refs, job->ndeps, &why);
    if (job->args && !cask_rd_done (&rd))
        why = "bytes left after the arguments";
    else
    if (job->args && cask_value_type (job->args) != CASK_LIST)
        why = "the arguments are not a list";
    else
    if (job->args)
        why = NULL;
    for (uint32_t index = 0; index < job->ndeps; index++)
        cask_value_destroy (&job->refs [index]);
    if (why) {
        cask_value_destroy (&job->args);
        s_job_fail (self, job, "%s: malformed task arguments: %s", job->function, why);
    }
    else
        s_job_ready (self, job);
}

//  A job that waits for fetches keeps its arguments and payload frames,
//  which would otherwise go with the TASK message.
static int
s_job_keep_args (s_job_t *job, cask_message_t *msg, size_t frame_base,
                 uint32_t nframes, cask_str_t args)
{
    if (args.len > job->args_cap) {
        uint8_t *data = (uint8_t *) realloc (job->args_data, args.len);
        if (!data)
            return -1;
        job->args_data = data;
        job->args_cap = args.len;
    }
    if (args.len)
        memcpy (job->args_data, args.ptr, args.len);
    job->args_size = args.len;
    for (uint32_t index = 0; index < nframes; index++)
        if (cask_message_move_frame (&job->frames, &msg->frames [frame_base + index]) < 0)
            return -1;
    return 0;
}

//  A copy's value is here: it becomes a result of this worker's own.
static void
s_copy_keep (cask_worker_t *self, s_job_t *job)
{
    job->result = job->refs [0];
    job->refs [0] = NULL;
    job->ok = true;
    job->duration_us = 0;
    s_job_finish (self, job);
}

//  One of the fetches the job waited on has ended.
static void
s_job_fetched (cask_worker_t *self, s_job_t *job)
{
    if (--job->nwaiting > 0)
        return;
    job->fetch_us = (uint32_t) (s_wall_us () - job->fetch_start_us);
    if (!s_job_owes_done (self, job))
        s_job_release (self, job);
    else
    if (job->copy)
        s_copy_keep (self, job);
    else
        s_job_decode (self, job, &job->frames, 0, job->frames.nframes,
                      (cask_str_t) { (const char *) job->args_data, job->args_size });
}

//  ---------------------------------------------------------------------
//  Peers and fetches

static s_peer_t *
s_peer_find (cask_worker_t *self, cask_str_t endpoint)
{
    for (size_t index = 0; index < self->npeers; index++)
        if (self->peers [index]->epoch == self->epoch
        &&  cask_str_eq (endpoint, self->peers [index]->endpoint))
            return self->peers [index];
    return NULL;
}

static void
s_peer_destroy (s_peer_t **self_p)
{
    s_peer_t *self = *self_p;
    if (self->socket)
        zmq_close (self->socket);
    cask_batch_free (&self->get);
    free (self);
    *self_p = NULL;
}

//  The peer at endpoint, connected on first use; NULL if the endpoint is
//  not one ZeroMQ can connect to (why says so).
static s_peer_t *
s_peer_require (cask_worker_t *self, cask_str_t endpoint, const char **why)
{
    s_peer_t *peer = s_peer_find (self, endpoint);
    if (peer) {
        *why = "gave up on that peer just now";
        return peer->dead ? NULL : peer;
    }
    *why = "out of memory";
    if (self->npeers == self->cappeers) {
        size_t cap = self->cappeers ? self->cappeers * 2 : 8;
        s_peer_t **peers = (s_peer_t **) realloc (self->peers, cap * sizeof (s_peer_t *));
        if (!peers)
            return NULL;
        self->peers = peers;
        self->cappeers = cap;
    }
    peer = (s_peer_t *) calloc (1, sizeof (s_peer_t));
    if (!peer)
        return NULL;
    cask_str_copy (endpoint, peer->endpoint, sizeof peer->endpoint);
    peer->epoch = self->epoch;
    cask_batch_init (&peer->get);
    peer->socket = zmq_socket (self->ctx, ZMQ_DEALER);
    int zero = 0;
    if (peer->socket) {
        zmq_setsockopt (peer->socket, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt (peer->socket, ZMQ_SNDHWM, &zero, sizeof zero);
        zmq_setsockopt (peer->socket, ZMQ_RCVHWM, &zero, sizeof zero);
    }
    if (!peer->socket || cask_curve_to_workers (self->config.curve, peer->socket)
    ||  zmq_connect (peer->socket, peer->endpoint)) {
        *why = peer->socket ? "not an endpoint this worker can connect to" : "no socket";
        s_peer_destroy (&peer);
        return NULL;
    }
    self->peers [self->npeers++] = peer;
    cask_log_print (self->log, CASK_LOG_DEBUG, "connected to peer %s", peer->endpoint);
    return peer;
}

static void
s_peer_send_get (cask_worker_t *self, s_peer_t *peer)
{
    if (cask_batch_send (&peer->get, peer->socket, NULL, CASK_MSG_GET, NULL))
        cask_log_print (self->log, CASK_LOG_ERROR, "cannot send GET to %s: %s",
                        peer->endpoint, zmq_strerror (errno));
}

static void
s_peer_ask (cask_worker_t *self, s_peer_t *peer, const char *key)
{
    cask_put_str8 (cask_batch_add (&peer->get), cask_str (key));
    if (peer->waiting++ == 0)
        peer->progress_at = s_now_us ();
    if (peer->get.body.size >= S_BATCH_MAX)
        s_peer_send_get (self, peer);
}

static const void *
s_fetch_key (const void *item, size_t *size)
{
    const s_fetch_t *fetch = (const s_fetch_t *) item;
    *size = strlen (fetch->key);
    return fetch->key;
}

static void
s_fetch_destroy (cask_worker_t *self, s_fetch_t **fetch_p)
{
    s_fetch_t *fetch = *fetch_p;
    fetch->peer->waiting--;
    cask_keymap_remove (self->fetches, fetch->key, strlen (fetch->key));
    free (fetch->waiters);
    free (fetch);
    *fetch_p = NULL;
}

//  What a job fetches for, as its failure messages say it.
static const char *
s_job_fetch_verb (const s_job_t *job)
{
    return job->copy ? "copy" : "fetch dependency";
}

//  Fills the slots of every waiting job with value (or with nothing, when
//  value is NULL) and tells the jobs; ends the fetch.
static void
s_fetch_end (cask_worker_t *self, s_fetch_t *fetch, cask_value_t *value,
             const char *reason)
{
    for (size_t index = 0; index < fetch->nwaiters; index++) {
        s_job_t *job = fetch->waiters [index];
        for (uint32_t slot = 0; slot < job->ndeps; slot++)
            if (job->fetching [slot] == fetch) {
                job->fetching [slot] = NULL;
                if (value)
                    job->refs [slot] = cask_value_ref (value);
            }
        if (!value && s_job_owes_done (self, job))
            s_job_fail (self, job, "could not %s %s from %s: %s", s_job_fetch_verb (job),
                        fetch->key, fetch->peer->endpoint, reason);
        s_job_fetched (self, job);
    }
    s_fetch_destroy (self, &fetch);
}

//  Makes job wait for key from holder (a fetch shared with other jobs
//  that need the key). Returns 0, or -1 with the reason in why.
static int
s_fetch (cask_worker_t *self, s_job_t *job, uint32_t slot, cask_str_t key,
         cask_str_t holder, const char **why)
{
    char name [CASK_MAX_KEY + 1];
    size_t size = strlen (cask_str_copy (key, name, sizeof name));
    uint64_t hash = cask_keymap_hash (self->fetches, name, size);
    s_fetch_t *fetch = (s_fetch_t *) cask_keymap_lookup_hashed (self->fetches, name, size, hash);
    //  The broker names another holder than the fetch under way asks: the
    //  old one died or handed the result over, so the fetch asks the new
    //  one (the old one's answer, if any, is ignored: see s_on_data)
    if (fetch && holder.len && !cask_str_eq (holder, fetch->peer->endpoint)) {
        s_peer_t *peer = s_peer_require (self, holder, why);
        if (!peer)
            return -1;
        fetch->peer->waiting--;
        fetch->peer = peer;
        s_peer_ask (self, peer, name);
    }
    if (!fetch) {
        if (holder.len == 0 || cask_str_eq (holder, self->endpoint)) {
            *why = "it is not held there";
            return -1;
        }
        s_peer_t *peer = s_peer_require (self, holder, why);
        if (!peer)
            return -1;
        *why = "out of memory";
        fetch = (s_fetch_t *) calloc (1, sizeof (s_fetch_t));
        if (!fetch)
            return -1;
        strcpy (fetch->key, name);
        fetch->peer = peer;
        if (cask_keymap_insert_hashed (self->fetches, fetch, hash)) {
            free (fetch);
            return -1;
        }
        s_peer_ask (self, peer, name);
    }
    //  A job's dependencies are handled one after the other, so a job
    //  that waits on this fetch already is the last waiter
    if (fetch->nwaiters == 0 || fetch->waiters [fetch->nwaiters - 1] != job) {
        if (fetch->nwaiters == fetch->capwaiters) {
            size_t cap = fetch->capwaiters ? fetch->capwaiters * 2 : 4;
            s_job_t **waiters = (s_job_t **) realloc (fetch->waiters, cap * sizeof (s_job_t *));
            if (!waiters) {
                *why = "out of memory";
                return -1;
            }
            fetch->waiters = waiters;
            fetch->capwaiters = cap;
        }
        fetch->waiters [fetch->nwaiters++] = job;
        if (job->nwaiting++ == 0 && !job->fetch_start_us)
            job->fetch_start_us = s_wall_us ();
    }
    job->fetching [slot] = fetch;
    return 0;
}

//  Ends the fetches from peer (from every peer when NULL): the jobs that
//  wait on them fail with reason.
static void
s_fetches_fail (cask_worker_t *self, s_peer_t *peer, const char *reason)
{
    size_t count = 0;
    s_fetch_t **ended = (s_fetch_t **) malloc ((cask_keymap_size (self->fetches) + 1)
                                              * sizeof (s_fetch_t *));
    if (!ended)
        return;         //  the timeout comes back for them
    s_fetch_t *fetch;
    size_t cursor = 0;
    while ((fetch = (s_fetch_t *) cask_keymap_next (self->fetches, &cursor)))
        if (!peer || fetch->peer == peer)
            ended [count++] = fetch;
    for (size_t index = 0; index < count; index++)
        s_fetch_end (self, ended [index], NULL, reason);
    free (ended);
}

//  Gives up on a peer: its fetches fail and it is closed at the next flush.
static void
s_peer_fail (cask_worker_t *self, s_peer_t *peer, const char *reason)
{
    cask_log_print (self->log, CASK_LOG_WARNING, "giving up on peer %s: %s",
                    peer->endpoint, reason);
    peer->dead = true;
    cask_batch_reset (&peer->get);
    s_fetches_fail (self, peer, reason);
}

static void
s_peers_expire (cask_worker_t *self)
{
    int64_t now = s_now_us ();
    int64_t timeout = (int64_t) self->config.fetch_timeout_ms * 1000;
    for (size_t index = 0; index < self->npeers; index++) {
        s_peer_t *peer = self->peers [index];
        if (peer->waiting && now - peer->progress_at > timeout) {
            char reason [64];
            snprintf (reason, sizeof reason, "no answer in %d ms", self->config.fetch_timeout_ms);
            s_peer_fail (self, peer, reason);
        }
    }
}

//  Closes the peers given up on, once no poll item refers to them.
static void
s_peers_reap (cask_worker_t *self)
{
    size_t kept = 0;
    for (size_t index = 0; index < self->npeers; index++) {
        s_peer_t *peer = self->peers [index];
        if (peer->dead && peer->waiting == 0)
            s_peer_destroy (&peer);
        else
            self->peers [kept++] = peer;
    }
    self->npeers = kept;
}

//  DATA from a peer: the values we asked for.
static const char *
s_on_data (cask_worker_t *self, s_peer_t *peer, cask_message_t *msg)
{
    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&msg->body), zmq_msg_size (&msg->body));
    uint32_t count = cask_get_u32 (&rd);
    size_t frame_base = 0;
    const char *why = NULL;
    for (uint32_t index = 0; index < count && !rd.failed; index++) {
        cask_str_t key = cask_get_str8 (&rd);
        uint8_t found = cask_get_u8 (&rd);
        uint32_t nframes = found ? cask_get_u32 (&rd) : 0;
        if (rd.failed || nframes > msg->nframes - frame_base)
            return "malformed DATA record";
        cask_value_t *value = found
            ? cask_value_decode (&rd, msg, frame_base, nframes, NULL, 0, &why) : NULL;
        if (found && !value)
            return why;
        frame_base += nframes;
        s_fetch_t *fetch = (s_fetch_t *) cask_keymap_lookup (self->fetches, key.ptr, key.len);
        if (fetch && fetch->peer != peer)
            fetch = NULL;               //  asked elsewhere since
        if (fetch && value) {
            self->fetches_from_peers++;
            self->bytes_fetched_from_peers += cask_value_nbytes (value);
        }
        if (fetch)
            s_fetch_end (self, fetch, value, "it is not held there");
        cask_value_destroy (&value);
    }
    return cask_rd_done (&rd) ? NULL : "malformed DATA";
}

static void
s_on_peer_message (cask_worker_t *self, s_peer_t *peer, cask_message_t *msg)
{
    peer->progress_at = s_now_us ();
    if (msg->version != CASK_PROTO_VERSION) {
        s_peer_fail (self, peer, "it speaks another protocol version");
        return;
    }
    if (msg->command == CASK_MSG_DATA) {
        const char *why = s_on_data (self, peer, msg);
        if (why)
            s_peer_fail (self, peer, why);
    }
    else
    if (msg->command == CASK_MSG_ERROR) {
        cask_rd_t rd;
        cask_error_t rec;
        char reason [300];
        cask_rd_init (&rd, zmq_msg_data (&msg->body), zmq_msg_size (&msg->body));
        cask_error_get (&rd, &rec);
        snprintf (reason, sizeof reason, "it answered ERROR: %.*s",
                  (int) rec.message.len, rec.message.ptr);
        s_peer_fail (self, peer, reason);
    }
    else
        cask_log_print (self->log, CASK_LOG_WARNING, "ignoring %s from peer %s",
                        cask_command_name (msg->command), peer->endpoint);
}

//  s_drain's handler for a peer's DEALER: a peer that misbehaves is given
//  up, and nothing more is read from it.
static bool
s_from_peer (cask_worker_t *self, void *arg, const char *why)
{
    s_peer_t *peer = (s_peer_t *) arg;
    if (why)
        s_peer_fail (self, peer, why);
    else
        s_on_peer_message (self, peer, &self->msg);
    return !peer->dead;
}

//  ---------------------------------------------------------------------
//  From the broker

static void
s_on_welcome (cask_worker_t *self, cask_message_t *msg)
{
    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&msg->body), zmq_msg_size (&msg->body));
    uint32_t id = cask_get_u32 (&rd);
    if (rd.failed) {
        cask_log_print (self->log, CASK_LOG_WARNING, "ignoring a malformed WELCOME");
        return;
    }
    self->id = id;
    cask_log_print (self->log, CASK_LOG_INFO, "welcomed by %s as worker %u",
                    self->broker_endpoint, id);
    if (self->config.nanny_fd > 0
    &&  write (self->config.nanny_fd, &id, sizeof id) != (ssize_t) sizeof id)
        cask_log_print (self->log, CASK_LOG_WARNING, "cannot tell the nanny my id: %s",
                        strerror (errno));
}

static void
s_send_libfail (cask_worker_t *self, cask_str_t hash, const char *message)
{
    cask_error_t rec = { CASK_ERR_LIBRARY, hash, cask_str (message) };
    cask_buf_reset (&self->scratch);
    cask_error_put (&self->scratch, &rec);
    if (cask_send (self->broker, NULL, CASK_MSG_LIBFAIL, &self->scratch, NULL))
        cask_log_print (self->log, CASK_LOG_ERROR, "cannot send LIBFAIL: %s", zmq_strerror (errno));
}

static void
s_on_library (cask_worker_t *self, cask_message_t *msg)
{
    cask_rd_t rd;
    cask_library_t rec;
    cask_rd_init (&rd, zmq_msg_data (&msg->body), zmq_msg_size (&msg->body));
    cask_library_get (&rd, &rec);
    //  Every function record takes at least 7 bytes
    if (rd.failed || rec.nfuncs > (size_t) (rd.end - rd.ptr) / 7) {
        cask_log_print (self->log, CASK_LOG_WARNING, "ignoring a malformed LIBRARY");
        return;
    }
    cask_func_t *funcs = (cask_func_t *) calloc (rec.nfuncs + 1, sizeof (cask_func_t));
    char error [1024];
    if (!funcs)
        snprintf (error, sizeof error, "out of memory");
    for (uint32_t index = 0; funcs && index < rec.nfuncs; index++)
        cask_func_get (&rd, &funcs [index]);
    int rc = -1;
    if (funcs && (!cask_rd_done (&rd) || msg->nframes < 1))
        snprintf (error, sizeof error, "library %.*s could not be loaded on this worker: "
                  "the LIBRARY message is malformed", (int) rec.name.len, rec.name.ptr);
    else
    if (funcs)
        rc = cask_libraries_load (self->libraries, &rec, funcs,
                                  zmq_msg_data (&msg->frames [0]),
                                  zmq_msg_size (&msg->frames [0]), error, sizeof error);
    if (rc == 0)
        cask_log_print (self->log, CASK_LOG_INFO, "loaded library %.*s (%u functions)",
                        (int) rec.name.len, rec.name.ptr, rec.nfuncs);
    else {
        cask_log_print (self->log, CASK_LOG_WARNING, "%s", error);
        s_send_libfail (self, rec.hash, error);
    }
    free (funcs);
}

//  Fills slot of the job with key from the store, or asks holder for it.
//  Returns 0, or -1 when the job has failed.
static int
s_job_need (cask_worker_t *self, s_job_t *job, uint32_t slot, cask_str_t key,
            cask_str_t holder)
{
    cask_value_t *value = cask_store_lookup (self->store, key);
    const char *why;
    if (value)
        job->refs [slot] = cask_value_ref (value);
    else
    if (cask_store_holds (self->store, key, NULL)) {
        s_job_fail (self, job, "could not read %.*s back from disk: %s", (int) key.len, key.ptr,
                    cask_store_spill_error (self->store));
        return -1;
    }
    else
    if (s_fetch (self, job, slot, key, holder, &why)) {
        s_job_fail (self, job, "could not %s %.*s from %.*s: %s", s_job_fetch_verb (job),
                    (int) key.len, key.ptr,
                    (int) (holder.len ? holder.len : strlen (self->endpoint)),
                    holder.len ? holder.ptr : self->endpoint, why);
        return -1;
    }
    return 0;
}

//  Takes the job's dependencies from the store or asks peers for them.
//  Returns 0, or -1 when the job has failed.
static int
s_job_gather (cask_worker_t *self, s_job_t *job, cask_rd_t *deps)
{
    for (uint32_t index = 0; index < job->ndeps; index++) {
        cask_str_t key = cask_get_str8 (deps);
        cask_str_t holder = cask_get_str8 (deps);
        if (s_job_need (self, job, index, key, holder))
            return -1;
    }
    return 0;
}

//  A new job for key, or NULL when out of memory (the broker is told with
//  DONE).
static s_job_t *
s_job_start (cask_worker_t *self, cask_str_t key)
{
    s_job_t *job = s_job_new (self);
    if (job)
        cask_str_copy (key, job->key, sizeof job->key);
    else {
        cask_done_t done = { .key = key, .message = cask_str ("worker out of memory") };
        s_done_add (self, &done);
        self->tasks_failed++;
    }
    return job;
}

static void
s_on_task (cask_worker_t *self, cask_message_t *msg, cask_task_t *rec, size_t frame_base)
{
    s_job_t *job = s_job_start (self, rec->key);
    if (!job)
        return;
    job->priority = rec->priority;
    job->timeout_ms = rec->timeout_ms;
    self->timed += job->timeout_ms > 0;
    const char *error;
    job->fn = cask_libraries_function (self->libraries, rec->fn, &job->function, &error);
    if (!job->fn) {
        if (job->function)
            s_job_fail (self, job, "%s: %s", job->function, error);
        else
            s_job_fail (self, job, "unknown function id %u", rec->fn);
        return;
    }
    if (s_job_reserve_deps (job, rec->ndeps)) {
        s_job_fail (self, job, "%s: worker out of memory", job->function);
        return;
    }
    if (s_job_gather (self, job, &rec->deps))
        return;
    if (job->nwaiting == 0)
        s_job_decode (self, job, msg, frame_base, rec->nframes, rec->args);
    else
    if (s_job_keep_args (job, msg, frame_base, rec->nframes, rec->args))
        s_job_fail (self, job, "%s: worker out of memory", job->function);
}

static void
s_on_tasks (cask_worker_t *self, cask_message_t *msg)
{
    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&msg->body), zmq_msg_size (&msg->body));
    uint32_t count = cask_get_u32 (&rd);
    size_t frame_base = 0;
    for (uint32_t index = 0; index < count; index++) {
        cask_task_t rec;
        cask_task_get (&rd, &rec, true);
        if (rd.failed || rec.nframes > msg->nframes - frame_base) {
            cask_log_print (self->log, CASK_LOG_WARNING,
                            "ignoring the rest of a malformed TASK (record %u of %u)",
                            index + 1, count);
            return;
        }
        s_on_task (self, msg, &rec, frame_base);
        frame_base += rec.nframes;
    }
    if (!cask_rd_done (&rd))
        cask_log_print (self->log, CASK_LOG_WARNING, "TASK has bytes after its %u records", count);
}

//  A copy of key from holder: a job whose one dependency is the key, kept
//  at once when the key is here already.
static void
s_on_copy (cask_worker_t *self, const cask_copy_t *rec)
{
    self->copies++;
    s_job_t *job = s_job_start (self, rec->key);
    if (!job)
        return;
    job->copy = true;
    if (s_job_reserve_deps (job, 1))
        s_job_fail (self, job, "worker out of memory");
    else
    if (s_job_need (self, job, 0, rec->key, rec->holder) == 0 && job->nwaiting == 0)
        s_copy_keep (self, job);
}

static void
s_on_copies (cask_worker_t *self, cask_message_t *msg)
{
    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&msg->body), zmq_msg_size (&msg->body));
    uint32_t count = cask_get_u32 (&rd);
    for (uint32_t index = 0; index < count; index++) {
        cask_copy_t rec;
        cask_copy_get (&rd, &rec);
        if (rd.failed) {
            cask_log_print (self->log, CASK_LOG_WARNING,
                            "ignoring the rest of a malformed COPY (record %u of %u)",
                            index + 1, count);
            return;
        }
        s_on_copy (self, &rec);
    }
    if (!cask_rd_done (&rd))
        cask_log_print (self->log, CASK_LOG_WARNING, "COPY has bytes after its %u records", count);
}

//  A key that a FREE or a STEAL names, and what became of its jobs.
typedef struct {
    cask_str_t key;                     //  into the message
    uint32_t dropped;                   //  jobs given up
    uint32_t started;                   //  jobs kept: an executor had taken them
} s_claim_t;

static const void *
s_claim_key (const void *item, size_t *size)
{
    const s_claim_t *claim = (const s_claim_t *) item;
    *size = claim->key.len;
    return claim->key.ptr;
}

//  Reads the str8 keys of a FREE or STEAL into a new array of claims (a
//  key is a view into msg). Returns it with *count_p set, or NULL when the
//  message is malformed or memory is short (logged).
static s_claim_t *
s_claims_read (cask_worker_t *self, cask_message_t *msg, uint32_t *count_p)
{
    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&msg->body), zmq_msg_size (&msg->body));
    uint32_t count = cask_get_u32 (&rd);
    //  Every key takes at least its length byte
    bool plausible = !rd.failed && count <= (size_t) (rd.end - rd.ptr);
    s_claim_t *claims = plausible
                      ? (s_claim_t *) calloc (count + 1, sizeof (s_claim_t)) : NULL;
    for (uint32_t index = 0; claims && index < count; index++)
        claims [index].key = cask_get_str8 (&rd);
    if (claims && cask_rd_done (&rd)) {
        *count_p = count;
        return claims;
    }
    if (plausible && !claims)
        cask_log_print (self->log, CASK_LOG_ERROR, "out of memory for a %s of %u keys",
                        cask_command_name (msg->command), count);
    else
        cask_log_print (self->log, CASK_LOG_WARNING, "ignoring a malformed %s",
                        cask_command_name (msg->command));
    free (claims);
    return NULL;
}

//  Drops the jobs of the keys claimed that owe a DONE (of a key named twice,
//  the first claim gets the counts, and the others a copy): every such job,
//  or when unstarted_only (STEAL), only those no executor has taken. One
//  walk of the jobs, under the pool's lock: an executor takes a job under
//  it, so each job is either dropped before any executor takes it, or
//  counted as started. A dropped job is never run, is released when it
//  comes back from the executors or when its fetches end, and has no DONE.
//  Returns how many jobs were dropped.
static size_t
s_jobs_drop (cask_worker_t *self, s_claim_t *claims, uint32_t count, bool unstarted_only)
{
    cask_keymap_t *map = count ? cask_keymap_new (s_claim_key) : NULL;
    uint32_t indexed = 0;
    for (; map && indexed < count; indexed++) {
        s_claim_t *claim = &claims [indexed];
        if (!cask_keymap_lookup (map, claim->key.ptr, claim->key.len)
        &&  cask_keymap_insert (map, claim))
            break;
    }
    if (indexed < count)        //  those jobs run, and their DONEs follow
        cask_log_print (self->log, CASK_LOG_ERROR, "out of memory: %u tasks not dropped",
                        count - indexed);
    size_t dropped = 0;
    pthread_mutex_lock (&self->pool.lock);
    for (s_job_t *job = map ? self->every_job : NULL; job; job = job->every) {
        s_claim_t *claim = job->live && s_job_owes_done (self, job)
            ? (s_claim_t *) cask_keymap_lookup (map, job->key, strlen (job->key)) : NULL;
        if (claim && unstarted_only && job->ran)
            claim->started++;
        else
        if (claim) {
            job->dropped = true;
            claim->dropped++;
            dropped++;
        }
    }
    pthread_mutex_unlock (&self->pool.lock);
    for (uint32_t index = 0; index < indexed; index++)
        claims [index] = *(s_claim_t *) cask_keymap_lookup (map, claims [index].key.ptr,
                                                             claims [index].key.len);
    cask_keymap_destroy (&map);
    return dropped;
}

//  FREE names results, usually; a key not held here is a task not finished
//  here, whose jobs are dropped wherever they are.
static void
s_on_free (cask_worker_t *self, cask_message_t *msg)
{
    uint32_t count;
    s_claim_t *claims = s_claims_read (self, msg, &count);
    if (!claims)
        return;
    uint32_t unfinished = 0;
    for (uint32_t index = 0; index < count; index++)
        if (cask_store_remove (self->store, claims [index].key))
            claims [unfinished++] = claims [index];
    s_jobs_drop (self, claims, unfinished, false);
    free (claims);
    self->trim_due = true;
}

//  STEAL: gives up the tasks of these keys that have not started, and
//  answers STOLEN with a record per key, in order.
static void
s_on_steal (cask_worker_t *self, cask_message_t *msg)
{
    uint32_t count;
    s_claim_t *claims = s_claims_read (self, msg, &count);
    if (!claims)
        return;
    self->tasks_stolen += s_jobs_drop (self, claims, count, true);
    cask_buf_reset (&self->scratch);
    cask_put_u32 (&self->scratch, count);
    for (uint32_t index = 0; index < count; index++) {
        s_claim_t *claim = &claims [index];
        cask_stolen_t rec = { claim->key, claim->dropped > 0 && claim->started == 0 };
        cask_stolen_put (&self->scratch, &rec);
    }
    free (claims);
    if (cask_send (self->broker, NULL, CASK_MSG_STOLEN, &self->scratch, NULL))
        cask_log_print (self->log, CASK_LOG_ERROR, "cannot send STOLEN for %u tasks: %s",
                        count, zmq_strerror (errno));
}

//  Back to a clean state, in a new epoch; libraries stay loaded.
//  A new epoch: results, queued jobs, fetches and peer connections of the
//  old one go at once; running jobs are dropped when they come back.
static void
s_new_epoch (cask_worker_t *self, const char *why)
{
    self->epoch++;
    cask_batch_reset (&self->done);     //  all of the old epoch
    size_t in_flight = self->jobs_in_flight;
    s_pool_drop_queued (self);
    for (size_t index = 0; index < self->npeers; index++) {
        self->peers [index]->dead = true;
        cask_batch_reset (&self->peers [index]->get);
    }
    s_fetches_fail (self, NULL, "the worker restarted");
    size_t results = cask_store_size (self->store);
    cask_store_clear (self->store);
    self->trim_due = true;
    cask_log_print (self->log, CASK_LOG_INFO, "%s: dropped %zu results and %zu tasks, "
                    "%zu running tasks abandoned", why, results, in_flight - self->jobs_in_flight,
                    self->jobs_in_flight);
}

static void
s_on_restart (cask_worker_t *self)
{
    s_new_epoch (self, "restarted");
    if (cask_send (self->broker, NULL, CASK_MSG_RESTARTED, NULL, NULL))
        cask_log_print (self->log, CASK_LOG_ERROR, "cannot send RESTARTED: %s",
                        zmq_strerror (errno));
}

//  RETIRE: the broker has taken what it needed from here. The loop ends
//  after this wake-up's batches are sent, and the worker stops as on a
//  signal.
static void
s_on_retire (cask_worker_t *self)
{
    cask_log_print (self->log, CASK_LOG_INFO, "retired by the broker");
    self->retired = true;
}

static int s_connect_broker (cask_worker_t *self);

//  The broker forgot this worker (it restarted, or took it for dead), or
//  has been silent too long: everything here belongs to a cluster that
//  is gone, so the worker starts afresh and says HELLO on a new connection.
static void
s_reconnect (cask_worker_t *self, const char *why)
{
    const char *refusal = cask_curve_refusal (self->config.curve);
    cask_log_print (self->log, CASK_LOG_WARNING, "%s%s%s%s: connecting to the broker again",
                    why, refusal ? " (" : "", refusal ? refusal : "", refusal ? ")" : "");
    s_new_epoch (self, why);
    int zero = 0;
    zmq_setsockopt (self->broker, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close (self->broker);
    self->broker = NULL;
    self->id = 0;
    self->broker_heard_at = s_now_us ();
    if (s_connect_broker (self))
        self->failed = true;
}

static void
s_on_broker_error (cask_worker_t *self, cask_message_t *msg)
{
    cask_rd_t rd;
    cask_error_t rec;
    cask_rd_init (&rd, zmq_msg_data (&msg->body), zmq_msg_size (&msg->body));
    cask_error_get (&rd, &rec);
    cask_log_print (self->log, CASK_LOG_WARNING, "broker says ERROR %u (%.*s): %.*s", rec.code,
                    (int) rec.about.len, rec.about.ptr, (int) rec.message.len, rec.message.ptr);
    if (rec.code == CASK_ERR_HELLO)
        self->reconnect_due = "the broker does not know this worker";
}

static void
s_on_heartbeat (cask_worker_t *self, cask_message_t *msg)
{
    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&msg->body), zmq_msg_size (&msg->body));
    uint32_t interval = cask_get_u32 (&rd);
    if (cask_rd_done (&rd) && interval >= 10 && interval <= 600000)
        self->broker_heartbeat_ms = interval;
}

//  CPU time this process used since the last call, per mille of the time
//  that passed (1000: one core busy all along).
static uint32_t
s_cpu_permille (cask_worker_t *self, int64_t now)
{
    struct rusage usage;
    if (getrusage (RUSAGE_SELF, &usage))
        return 0;
    int64_t used = (int64_t) (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1000000
                 + usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
    int64_t cpu = used - self->cpu_used_us, wall = now - self->cpu_taken_at;
    bool first = self->cpu_taken_at == 0;
    self->cpu_used_us = used;
    self->cpu_taken_at = now;
    return first || wall <= 0 || cpu < 0 ? 0 : (uint32_t) (cpu * 1000 / wall);
}

//  Heartbeats the broker when due, and starts afresh when it has been
//  silent for CASK_HEARTBEAT_LIVENESS of its intervals.
static void
s_heartbeat (cask_worker_t *self, int64_t now)
{
    if (now - self->broker_heard_at
        > (int64_t) CASK_HEARTBEAT_LIVENESS * self->broker_heartbeat_ms * 1000)
        s_reconnect (self, "the broker is silent");
    if (now < self->heartbeat_at)
        return;
    self->heartbeat_at = now + (int64_t) self->config.heartbeat_ms * 1000;
    cask_heartbeat_t heartbeat = { self->config.heartbeat_ms, s_rss_bytes (),
                                   s_cpu_permille (self, now), 0 };
    cask_store_spill_stats_t spill;
    cask_store_spill_stats (self->store, &spill);
    uint64_t held = cask_store_bytes (self->store);
    heartbeat.spilled_bytes = held > spill.bytes_in_memory ? held - spill.bytes_in_memory : 0;
    cask_buf_reset (&self->scratch);
    cask_heartbeat_put (&self->scratch, &heartbeat);
    if (cask_send (self->broker, NULL, CASK_MSG_HEARTBEAT, &self->scratch, NULL))
        cask_log_print (self->log, CASK_LOG_WARNING, "cannot send HEARTBEAT: %s",
                        zmq_strerror (errno));
}

static void
s_on_broker_message (cask_worker_t *self, cask_message_t *msg)
{
    if (msg->version != CASK_PROTO_VERSION) {
        cask_log_print (self->log, CASK_LOG_WARNING,
                        "ignoring a message of protocol version %u from the broker", msg->version);
        return;
    }
    switch (msg->command) {
        case CASK_MSG_WELCOME: s_on_welcome (self, msg); break;
        case CASK_MSG_LIBRARY: s_on_library (self, msg); break;
        case CASK_MSG_TASK: s_on_tasks (self, msg); break;
        case CASK_MSG_FREE: s_on_free (self, msg); break;
        case CASK_MSG_RESTART: s_on_restart (self); break;
        case CASK_MSG_STEAL: s_on_steal (self, msg); break;
        case CASK_MSG_HEARTBEAT: s_on_heartbeat (self, msg); break;
        case CASK_MSG_COPY: s_on_copies (self, msg); break;
        case CASK_MSG_RETIRE: s_on_retire (self); break;
        case CASK_MSG_ERROR: s_on_broker_error (self, msg); break;
        default:
            cask_log_print (self->log, CASK_LOG_WARNING, "ignoring %s (0x%02x) from the broker",
                            cask_command_name (msg->command), msg->command);
    }
}

//  s_drain's handler for the broker's DEALER: nothing is read after
//  RETIRE.
static bool
s_from_broker (cask_worker_t *self, void *arg, const char *why)
{
    (void) arg;
    self->broker_heard_at = s_now_us ();
    if (why)
        cask_log_print (self->log, CASK_LOG_WARNING,
                        "ignoring a bad message from the broker: %s", why);
    else
        s_on_broker_message (self, &self->msg);
    //  What follows a retirement or a reason to reconnect is not read
    return !self->retired && !self->reconnect_due;
}

//  ---------------------------------------------------------------------
//  The peer socket: GET, PUT and STATUS

//  Resident memory of this process, from /proc/self/statm; 0 if unknown.
static uint64_t
s_rss_bytes (void)
{
    unsigned long long size = 0, resident = 0;
    FILE *file = fopen ("/proc/self/statm", "r");
    if (file) {
        if (fscanf (file, "%llu %llu", &size, &resident) != 2)
            resident = 0;
        fclose (file);
    }
    long page = sysconf (_SC_PAGESIZE);
    return page > 0 ? resident * (uint64_t) page : 0;
}

static void
s_send_report (cask_worker_t *self, cask_message_t *request)
{
    cJSON *report = cJSON_CreateObject ();
    if (!report)
        return;
    cJSON_AddNumberToObject (report, "id", self->id);
    cJSON_AddStringToObject (report, "name", self->name);
    cJSON_AddStringToObject (report, "endpoint", self->endpoint);
    cJSON_AddNumberToObject (report, "nthreads", self->config.nthreads);
    cJSON_AddNumberToObject (report, "memory_limit", (double) self->config.memory_limit);
    cJSON *resources = cJSON_AddObjectToObject (report, "resources");
    for (uint8_t index = 0; resources && index < self->config.nresources; index++)
        cJSON_AddNumberToObject (resources, self->resource_names [index],
                                 self->config.resources [index].amount);
    cJSON_AddNumberToObject (report, "tasks_run", (double) self->tasks_run);
    cJSON_AddNumberToObject (report, "tasks_failed", (double) self->tasks_failed);
    cJSON_AddNumberToObject (report, "tasks_in_flight", (double) self->jobs_in_flight);
    cJSON_AddNumberToObject (report, "results_held", (double) cask_store_size (self->store));
    cJSON_AddNumberToObject (report, "tasks_timed_out", (double) self->tasks_timed_out);
    cJSON_AddBoolToObject (report, "paused", self->paused);
    cJSON_AddNumberToObject (report, "bytes_held", (double) cask_store_bytes (self->store));
    cask_store_spill_stats_t spill;
    cask_store_spill_stats (self->store, &spill);
    cJSON_AddNumberToObject (report, "bytes_in_memory", (double) spill.bytes_in_memory);
    cJSON_AddNumberToObject (report, "values_on_disk", (double) spill.values_on_disk);
    cJSON_AddNumberToObject (report, "bytes_on_disk", (double) spill.bytes_on_disk);
    cJSON_AddNumberToObject (report, "spills", (double) spill.spills);
    cJSON_AddNumberToObject (report, "unspills", (double) spill.unspills);
    cJSON_AddNumberToObject (report, "spill_errors", (double) (spill.spill_errors
                                                              + spill.unspill_errors));
    cJSON_AddNumberToObject (report, "rss_bytes", (double) s_rss_bytes ());
    cJSON_AddNumberToObject (report, "tasks_abandoned", (double) self->tasks_abandoned);
    cJSON_AddNumberToObject (report, "tasks_stolen", (double) self->tasks_stolen);
    cJSON_AddNumberToObject (report, "copies", (double) self->copies);
    cJSON_AddNumberToObject (report, "values_put", (double) self->values_put);
    cJSON_AddNumberToObject (report, "values_refused", (double) self->values_refused);
    cJSON_AddNumberToObject (report, "fetches_from_peers", (double) self->fetches_from_peers);
    cJSON_AddNumberToObject (report, "bytes_fetched_from_peers",
                             (double) self->bytes_fetched_from_peers);
    cJSON_AddNumberToObject (report, "gets_served", (double) cask_store_gets_served (self->store));
    cJSON_AddNumberToObject (report, "bytes_served", (double) cask_store_bytes_served (self->store));
    cJSON_AddNumberToObject (report, "gets_missed", (double) cask_store_gets_missed (self->store));
    cJSON_AddNumberToObject (report, "libraries", (double) cask_libraries_loaded (self->libraries));
    cJSON_AddNumberToObject (report, "libraries_failed",
                             (double) cask_libraries_failed (self->libraries));
    char *text = cJSON_PrintUnformatted (report);
    cJSON_Delete (report);
    if (!text)
        return;
    cask_buf_reset (&self->scratch);
    cask_put_raw (&self->scratch, text, strlen (text));
    free (text);
    cask_send (self->router, &request->routing, CASK_MSG_REPORT, &self->scratch, NULL);
}

//  A value of a PUT. All are decoded before any is kept, so that a
//  malformed PUT is refused whole.
typedef struct {
    cask_str_t key;
    cask_value_t *value;
} s_put_t;

static void
s_puts_destroy (s_put_t **puts_p, uint32_t count)
{
    for (uint32_t index = 0; index < count; index++)
        cask_value_destroy (&(*puts_p) [index].value);
    free (*puts_p);
    *puts_p = NULL;
}

//  Decodes the records of a PUT into a new array of count (bytes values
//  keep their frames). Returns the array, or NULL with why set.
static s_put_t *
s_puts_decode (cask_message_t *msg, uint32_t *count_p, const char **why)
{
    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&msg->body), zmq_msg_size (&msg->body));
    uint32_t count = cask_get_u32 (&rd);
    //  Every record takes at least 7 bytes (a key is never empty)
    *why = "malformed PUT";
    if (rd.failed || count > (size_t) (rd.end - rd.ptr) / 7)
        return NULL;
    s_put_t *puts = (s_put_t *) calloc (count + 1, sizeof (s_put_t));
    if (!puts) {
        *why = "worker out of memory";
        return NULL;
    }
    size_t frame_base = 0;
    uint32_t index;
    for (index = 0; index < count; index++) {
        s_put_t *put = &puts [index];
        put->key = cask_get_str8 (&rd);
        uint32_t nframes = cask_get_u32 (&rd);
        if (rd.failed || put->key.len == 0 || memchr (put->key.ptr, 0, put->key.len)
        ||  nframes > msg->nframes - frame_base)
            break;
        put->value = cask_value_decode (&rd, msg, frame_base, nframes, NULL, 0, why);
        if (!put->value)
            break;
        frame_base += nframes;
    }
    if (index == count && (!cask_rd_done (&rd) || frame_base != msg->nframes))
        *why = "malformed PUT: bytes or frames after its records";
    else
    if (index == count) {
        *count_p = count;
        return puts;
    }
    s_puts_destroy (&puts, count);
    return NULL;
}

static void
s_stored_send (cask_worker_t *self, cask_message_t *request)
{
    uint32_t count = self->stored.count;
    if (cask_batch_send (&self->stored, self->router, &request->routing, CASK_MSG_STORED, NULL))
        cask_log_print (self->log, CASK_LOG_ERROR, "cannot send STORED for %u values: %s",
                        count, zmq_strerror (errno));
}

//  Why value, of nbytes, may not be kept under key; NULL when it may.
static const char *
s_put_refusal (cask_worker_t *self, cask_str_t key, uint64_t nbytes,
               char *text, size_t size)
{
    //  What does not fit in memory at once is refused; the rest fits,
    //  as the store spills older results to disk to make room
    (void) key;
    uint64_t limit = self->config.memory_limit;
    if (nbytes <= limit)
        return NULL;
    snprintf (text, size, "value of %" PRIu64 " bytes is larger than this worker's "
              "memory limit of %" PRIu64 " bytes", nbytes, limit);
    return text;
}

//  Keeps one value of a PUT (taking it), or refuses it; tells the broker
//  with DONE and the sender of request with STORED.
static void
s_put_keep (cask_worker_t *self, cask_message_t *request, cask_str_t key, cask_value_t *value)
{
    char text [256];
    uint64_t nbytes = cask_value_nbytes (value);
    cask_done_t done = { .key = key, .ok = 1, .type = (uint8_t) cask_value_type (value),
                         .nbytes = nbytes };
    const char *refusal = s_put_refusal (self, key, nbytes, text, sizeof text);
    if (refusal)
        cask_value_destroy (&value);
    else
    if (cask_store_put (self->store, key, value))
        refusal = "worker out of memory";
    if (refusal) {
        cask_log_print (self->log, CASK_LOG_INFO, "refused to keep %.*s: %s",
                        (int) key.len, key.ptr, refusal);
        done = (cask_done_t) { .key = key, .message = cask_str (refusal) };
        self->values_refused++;
    }
    else
        self->values_put++;
    s_done_add (self, &done);
    cask_stored_t stored = { key, done.ok, done.message };
    cask_stored_put (cask_batch_add (&self->stored), &stored);
    if (self->stored.body.size >= S_BATCH_MAX)
        s_stored_send (self, request);
}

static void
s_on_put (cask_worker_t *self, cask_message_t *msg)
{
    uint32_t count = 0;
    const char *why;
    s_put_t *puts = s_puts_decode (msg, &count, &why);
    if (!puts) {
        cask_send_error (self->router, msg, CASK_ERR_MALFORMED, why);
        return;
    }
    for (uint32_t index = 0; index < count; index++) {
        s_put_keep (self, msg, puts [index].key, puts [index].value);
        puts [index].value = NULL;
    }
    free (puts);
    s_stored_send (self, msg);
}

static void
s_on_peer_request (cask_worker_t *self, cask_message_t *msg)
{
    if (msg->version != CASK_PROTO_VERSION) {
        char text [80];
        snprintf (text, sizeof text, "protocol version %u not supported, this peer speaks %d",
                  msg->version, CASK_PROTO_VERSION);
        cask_send_error (self->router, msg, CASK_ERR_VERSION, text);
        return;
    }
    const char *why;
    if (msg->command == CASK_MSG_GET) {
        if (cask_store_serve (self->store, self->router, msg, &why))
            cask_send_error (self->router, msg, CASK_ERR_MALFORMED, why);
    }
    else
    if (msg->command == CASK_MSG_PUT)
        s_on_put (self, msg);
    else
    if (msg->command == CASK_MSG_STATUS)
        s_send_report (self, msg);
    else {
        char text [80];
        snprintf (text, sizeof text, "command 0x%02x is not served on a worker's peer socket",
                  msg->command);
        cask_send_error (self->router, msg, CASK_ERR_COMMAND, text);
    }
}

//  s_drain's handler for the peer socket (ROUTER).
static bool
s_from_router (cask_worker_t *self, void *arg, const char *why)
{
    (void) arg;
    if (why)
        cask_send_error (self->router, &self->msg, CASK_ERR_MALFORMED, why);
    else
        s_on_peer_request (self, &self->msg);
    return true;
}

//  ---------------------------------------------------------------------
//  Finished jobs

static void
s_on_finished (cask_worker_t *self, s_job_t *job)
{
    if (!s_job_owes_done (self, job)) {
        self->tasks_abandoned += job->ran;
        s_job_release (self, job);
        return;
    }
    self->tasks_run++;
    s_job_finish (self, job);
}

static void
s_drain_finished (cask_worker_t *self)
{
    for (int count = 0; count < S_DRAIN_MAX; count++) {
        s_job_t *job;
        int size = zmq_recv (self->finished, &job, sizeof job, ZMQ_DONTWAIT);
        if (size == -1)
            break;
        if (size == sizeof job)
            s_on_finished (self, job);
    }
}

//  ---------------------------------------------------------------------
//  Time limits

#define S_STUCK_GRACE_US 2000000        //  a task past its limit may take to return
#define S_TIMED_POLL_MS 50              //  how often limits are looked at

//  Fails the running tasks that passed their time limits (their results,
//  if they ever come, are dropped); a task still running S_STUCK_GRACE_US
//  after that will not stop: the worker must end (its nanny starts it
//  again), the only way to get the thread back.
static void
s_time_limits (cask_worker_t *self)
{
    int64_t now = s_now_us ();
    pthread_mutex_lock (&self->pool.lock);
    for (s_job_t *job = self->every_job; job; job = job->every) {
        if (!job->live || !job->running || !job->timeout_ms)
            continue;
        if (job->timed_out_us) {
            self->stuck |= now - job->timed_out_us > S_STUCK_GRACE_US;
            continue;
        }
        if (now - job->started_us <= (int64_t) job->timeout_ms * 1000 || !s_job_owes_done (self, job))
            continue;
        job->timed_out_us = now;
        job->dropped = true;
        char message [512];
        snprintf (message, sizeof message, "%s ran past its time limit of %u ms",
                  job->function, job->timeout_ms);
        cask_done_t rec = { .key = cask_str (job->key),
                            .duration_us = (uint32_t) (now - job->started_us),
                            .message = cask_str (message) };
        s_job_done_add (self, job, &rec);
        self->tasks_failed++;
        self->tasks_timed_out++;
    }
    pthread_mutex_unlock (&self->pool.lock);
    if (self->stuck) {
        cask_log_print (self->log, CASK_LOG_ERROR, "a task ran past its time limit and does "
                        "not return: the worker stops, to be started again");
        if (self->config.slots)         //  its nanny blames nobody for this end
            memset (self->config.slots, 0, (size_t) self->config.nthreads * (CASK_MAX_KEY + 1));
    }
}

//  ---------------------------------------------------------------------
//  Memory

//  Once a tick, with the memory the worker uses beyond what it used when it
//  started (so that a small limit means what tasks and results may use):
//  past CASK_WORKER_RESUME_FRACTION of the memory limit the store spills
//  what it can; past CASK_WORKER_PAUSE_FRACTION the worker pauses (PAUSE:
//  the broker sends it nothing new) until it is back under the first; past
//  the limit it ends, for its nanny to start it again (the tasks running
//  then are blamed, as for a crash).
static void
s_watch_memory (cask_worker_t *self)
{
    uint64_t limit = self->config.memory_limit;
    uint64_t resident = self->config.own_process ? s_rss_bytes () : 0;
    if (!limit || resident <= self->rss_base)
        return;
    uint64_t rss = resident - self->rss_base;
    if (rss > limit) {
        cask_log_print (self->log, CASK_LOG_ERROR, "using %" PRIu64 " bytes, past the memory "
                        "limit of %" PRIu64 ": the worker stops, to be started again", rss, limit);
        self->over_memory = true;
        return;
    }
    uint64_t resume = (uint64_t) (limit * CASK_WORKER_RESUME_FRACTION);
    if (rss > resume) {
        uint64_t excess = rss - resume, held = cask_store_bytes_in_memory (self->store);
        cask_store_spill (self->store, held > excess ? held - excess : 0);
        malloc_trim (0);
    }
    bool paused = rss > limit * CASK_WORKER_PAUSE_FRACTION || (self->paused && rss > resume);
    if (paused == self->paused)
        return;
    self->paused = paused;
    cask_log_print (self->log, CASK_LOG_WARNING, "%s: using %" PRIu64 " of %" PRIu64 " bytes",
                    paused ? "pausing" : "resuming", rss, limit);
    cask_buf_reset (&self->scratch);
    cask_put_u8 (&self->scratch, paused);
    if (cask_send (self->broker, NULL, CASK_MSG_PAUSE, &self->scratch, NULL))
        cask_log_print (self->log, CASK_LOG_WARNING, "cannot send PAUSE: %s", zmq_strerror (errno));
}

//  ---------------------------------------------------------------------
//  The loop

static void
s_flush (cask_worker_t *self)
{
    s_pool_submit (self);
    s_done_send (self);
    for (size_t index = 0; index < self->npeers; index++)
        s_peer_send_get (self, self->peers [index]);
}

//  Once a worker holds nothing and runs nothing, it gives back what the
//  last burst grew: the jobs kept for reuse, the store's map (clearing
//  an empty store makes it afresh), and the memory glibc keeps for reuse
//  in an arena per executor thread.
static void
s_trim_if_idle (cask_worker_t *self)
{
    if (self->trim_due && cask_store_size (self->store) == 0 && self->jobs_in_flight == 0) {
        s_free_jobs (self);
        cask_store_clear (self->store);
        malloc_trim (0);
        self->trim_due = false;
    }
}

//  Polls every socket once and handles what came. Returns -1 when the
//  context is gone.
static int
s_poll_once (cask_worker_t *self)
{
    size_t nitems = 3 + self->npeers;
    if (nitems > self->capitems) {
        zmq_pollitem_t *items = (zmq_pollitem_t *) realloc (self->items, nitems * sizeof (zmq_pollitem_t));
        if (!items)
            return -1;
        self->items = items;
        self->capitems = nitems;
    }
    zmq_pollitem_t *items = self->items;
    items [0] = (zmq_pollitem_t) { self->finished, 0, ZMQ_POLLIN, 0 };
    items [1] = (zmq_pollitem_t) { self->broker, 0, ZMQ_POLLIN, 0 };
    items [2] = (zmq_pollitem_t) { self->router, 0, ZMQ_POLLIN, 0 };
    for (size_t index = 0; index < self->npeers; index++)
        items [3 + index] = (zmq_pollitem_t) { self->peers [index]->socket, 0, ZMQ_POLLIN, 0 };

    int64_t wait_ms = (self->heartbeat_at - s_now_us ()) / 1000;
    int64_t most_ms = self->timed ? S_TIMED_POLL_MS : S_TICK_MS;
    wait_ms = wait_ms < 0 ? 0 : wait_ms < most_ms ? wait_ms : most_ms;
    if (zmq_poll (items, (int) nitems, (long) wait_ms) == -1)
        return errno == EINTR ? 0 : -1;
    if (items [0].revents & ZMQ_POLLIN)
        s_drain_finished (self);
    if (items [1].revents & ZMQ_POLLIN)
        s_drain (self, self->broker, false, s_from_broker, NULL);
    if (items [2].revents & ZMQ_POLLIN)
        s_drain (self, self->router, true, s_from_router, NULL);
    //  New peers join the list behind the ones polled
    for (size_t index = 0; index < nitems - 3; index++) {
        s_peer_t *peer = self->peers [index];
        if ((items [3 + index].revents & ZMQ_POLLIN) && !peer->dead)
            s_drain (self, peer->socket, false, s_from_peer, peer);
    }

    int64_t now = s_now_us ();
    //  The walk over the jobs takes the pool's lock: not on every wake-up
    if (self->timed && now >= self->limits_at) {
        s_time_limits (self);
        self->limits_at = now + S_TIMED_POLL_MS * 1000;
    }
    if (now >= self->next_tick) {
        s_peers_expire (self);
        s_trim_if_idle (self);
        s_watch_memory (self);
        self->next_tick = now + S_TICK_MS * 1000;
    }
    s_flush (self);
    s_peers_reap (self);
    if (self->reconnect_due) {
        s_reconnect (self, self->reconnect_due);
        self->reconnect_due = NULL;
    }
    else
    if (!self->retired)
        s_heartbeat (self, now);
    return self->failed ? -1 : 0;
}

int
cask_worker_run (cask_worker_t *self)
{
    while (!self->retired && !self->stuck && !self->over_memory
       &&  !(self->config.interrupted && *self->config.interrupted))
        if (s_poll_once (self))
            return -1;
    return 0;
}

//  ---------------------------------------------------------------------
//  Setting up

//  The local address (of family, AF_INET or AF_UNSPEC) that routes to the
//  broker's host: what peers can connect to when the worker listens on
//  every interface.
static void
s_routable_address (cask_worker_t *self, int family, char *address, size_t size)
{
    snprintf (address, size, "127.0.0.1");
    const char *host = strstr (self->broker_endpoint, "://");
    host = host ? host + 3 : self->broker_endpoint;
    char name [CASK_MAX_KEY + 1];
    snprintf (name, sizeof name, "%s", host);
    char *port = strrchr (name, ':');
    if (!port)
        return;
    *port++ = 0;
    if (name [0] == '[') {
        memmove (name, name + 1, strlen (name));
        name [strcspn (name, "]")] = 0;
    }
    struct addrinfo hints = { .ai_family = family, .ai_socktype = SOCK_DGRAM };
    struct addrinfo *found = NULL;
    if (getaddrinfo (name, port, &hints, &found) || !found)
        return;
    int fd = socket (found->ai_family, SOCK_DGRAM, 0);
    struct sockaddr_storage local;
    socklen_t length = sizeof local;
    char text [INET6_ADDRSTRLEN];
    if (fd >= 0 && connect (fd, found->ai_addr, found->ai_addrlen) == 0
    &&  getsockname (fd, (struct sockaddr *) &local, &length) == 0) {
        if (local.ss_family == AF_INET
        &&  inet_ntop (AF_INET, &((struct sockaddr_in *) &local)->sin_addr, text, sizeof text))
            snprintf (address, size, "%s", text);
        else
        if (local.ss_family == AF_INET6
        &&  inet_ntop (AF_INET6, &((struct sockaddr_in6 *) &local)->sin6_addr, text, sizeof text))
            snprintf (address, size, "[%s]", text);
    }
    if (fd >= 0)
        close (fd);
    freeaddrinfo (found);
}

//  Binds the peer socket and works out the endpoint to announce.
static int
s_bind_router (cask_worker_t *self)
{
    self->router = zmq_socket (self->ctx, ZMQ_ROUTER);
    if (!self->router)
        return -1;
    int zero = 0;
    zmq_setsockopt (self->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt (self->router, ZMQ_SNDHWM, &zero, sizeof zero);
    if (cask_curve_server (self->config.curve, self->ctx, self->router)) {
        cask_log_print (self->log, CASK_LOG_ERROR, "%s", cask_curve_error (self->config.curve));
        return -1;
    }
    if (zmq_bind (self->router, self->config.listen)) {
        cask_log_print (self->log, CASK_LOG_ERROR, "cannot listen on %s: %s",
                        self->config.listen, zmq_strerror (errno));
        return -1;
    }
    char bound [CASK_MAX_KEY + 1];
    size_t size = sizeof bound;
    if (zmq_getsockopt (self->router, ZMQ_LAST_ENDPOINT, bound, &size))
        return -1;
    const char *wildcards [] = { "tcp://0.0.0.0:", "tcp://[::]:" };
    const int families [] = { AF_INET, AF_UNSPEC };
    for (size_t index = 0; index < 2; index++)
        if (strncmp (bound, wildcards [index], strlen (wildcards [index])) == 0) {
            char address [INET6_ADDRSTRLEN + 2];
            s_routable_address (self, families [index], address, sizeof address);
            snprintf (self->endpoint, sizeof self->endpoint, "tcp://%s:%s", address,
                      bound + strlen (wildcards [index]));
            return 0;
        }
    snprintf (self->endpoint, sizeof self->endpoint, "%s", bound);
    return 0;
}

static int
s_connect_broker (cask_worker_t *self)
{
    self->broker = zmq_socket (self->ctx, ZMQ_DEALER);
    if (!self->broker)
        return -1;
    //  No send may block the loop: queues are unbounded, and a send with
    //  nowhere to go gives up after the linger time
    int zero = 0;
    int linger = S_BYE_LINGER_MS;
    zmq_setsockopt (self->broker, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt (self->broker, ZMQ_SNDTIMEO, &linger, sizeof linger);
    zmq_setsockopt (self->broker, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt (self->broker, ZMQ_RCVHWM, &zero, sizeof zero);
    if (cask_curve_to_broker (self->config.curve, self->broker)
    ||  cask_curve_watch (self->config.curve, self->ctx, self->broker)
    ||  zmq_connect (self->broker, self->broker_endpoint)) {
        cask_log_print (self->log, CASK_LOG_ERROR, "cannot connect to the broker at %s: %s",
                        self->broker_endpoint, zmq_strerror (errno));
        zmq_close (self->broker);
        self->broker = NULL;
        return -1;
    }
    cask_hello_t hello = { .role = CASK_ROLE_WORKER, .name = cask_str (self->name),
                           .nthreads = self->config.nthreads,
                           .memory_limit = self->config.memory_limit,
                           .endpoint = cask_str (self->endpoint),
                           .nresources = self->config.nresources,
                           .replaces = self->config.replaces,
                           .death = cask_str (self->death),
                           .nrunning = self->config.replaces ? self->config.nrunning : 0,
                           .running = { self->running,
                                        self->config.replaces ? self->config.running.len : 0 } };
    memcpy (hello.resources, self->config.resources, sizeof hello.resources);
    self->config.replaces = 0;          //  told once
    cask_buf_reset (&self->scratch);
    cask_hello_put (&self->scratch, &hello);
    return cask_send (self->broker, NULL, CASK_MSG_HELLO, &self->scratch, NULL);
}

static int
s_bind_finished (cask_worker_t *self)
{
    self->finished = zmq_socket (self->ctx, ZMQ_PULL);
    if (!self->finished)
        return -1;
    int zero = 0;
    zmq_setsockopt (self->finished, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt (self->finished, ZMQ_RCVHWM, &zero, sizeof zero);
    snprintf (self->pool.endpoint, sizeof self->pool.endpoint, "inproc://cask-finished-%p",
              (void *) self);
    return zmq_bind (self->finished, self->pool.endpoint);
}

static int
s_pool_init (s_pool_t *pool)
{
    if (pthread_mutex_init (&pool->lock, NULL))
        return -1;
    if (pthread_cond_init (&pool->wake, NULL) == 0) {
        if (pthread_cond_init (&pool->gone, NULL) == 0)
            return 0;
        pthread_cond_destroy (&pool->wake);
    }
    pthread_mutex_destroy (&pool->lock);
    return -1;
}

//  Results past CASK_WORKER_SPILL_FRACTION of the memory limit go to disk,
//  in the directory of the libraries; without it, they stay in memory.
static void
s_spill_start (cask_worker_t *self)
{
    uint64_t target = (uint64_t) (self->config.memory_limit * CASK_WORKER_SPILL_FRACTION);
    if (target && cask_store_set_spill (self->store, self->config.dir, target))
        cask_log_print (self->log, CASK_LOG_WARNING, "results will not spill to disk: %s",
                        cask_store_spill_error (self->store));
}

cask_worker_t *
cask_worker_new (const cask_worker_config_t *config)
{
    cask_worker_t *self = (cask_worker_t *) calloc (1, sizeof (cask_worker_t));
    if (!self)
        return NULL;
    self->config = *config;
    self->broker_endpoint = strdup (config->broker);
    self->name = strdup (config->name);
    self->death = strdup (config->death ? config->death : "");
    self->running = (char *) malloc (config->running.len + 1);
    if (self->running && config->running.len)
        memcpy (self->running, config->running.ptr, config->running.len);
    for (uint8_t index = 0; index < config->nresources && index < CASK_MAX_RESOURCES; index++) {
        cask_resource_t *resource = &self->config.resources [index];
        resource->name = cask_str (cask_str_copy (resource->name, self->resource_names [index],
                                                  sizeof self->resource_names [index]));
    }
    cask_batch_init (&self->done);
    cask_batch_init (&self->stored);
    cask_buf_init (&self->scratch);
    cask_message_init (&self->msg);
    self->ctx = zmq_ctx_new ();
    self->store = cask_store_new ();
    self->libraries = cask_libraries_new (config->dir);
    //  Errors and warnings always, the rest with --verbose
    self->log = cask_log_new (config->name, config->verbose ? CASK_LOG_DEBUG : CASK_LOG_WARNING);
    self->fetches = cask_keymap_new (s_fetch_key);
    if (!self->broker_endpoint || !self->name || !self->death || !self->running || !self->ctx || !self->store
    ||  !self->libraries || !self->log || !self->fetches || config->nthreads == 0
    ||  config->nresources > CASK_MAX_RESOURCES) {
        cask_worker_destroy (&self);
        return NULL;
    }
    if (self->config.heartbeat_ms == 0)
        self->config.heartbeat_ms = CASK_HEARTBEAT_MS;
    self->broker_heartbeat_ms = CASK_HEARTBEAT_MS;
    self->broker_heard_at = self->heartbeat_at = s_now_us ();
    self->pool_ready = s_pool_init (&self->pool) == 0;
    if (!self->pool_ready || s_bind_router (self) || s_bind_finished (self)
    ||  s_pool_start (self) || s_connect_broker (self)) {
        cask_worker_destroy (&self);
        return NULL;
    }
    s_spill_start (self);
    self->rss_base = s_rss_bytes ();
    cask_log_print (self->log, CASK_LOG_INFO,
                    "serving on %s with %u executors, broker %s, libraries in %s",
                    self->endpoint, config->nthreads, self->broker_endpoint, config->dir);
    return self;
}

const char *
cask_worker_endpoint (cask_worker_t *self)
{
    return self->endpoint;
}

bool
cask_worker_stuck (cask_worker_t *self)
{
    return self->stuck;
}

bool
cask_worker_over_memory (cask_worker_t *self)
{
    return self->over_memory;
}

//  ---------------------------------------------------------------------
//  Tearing down

static void
s_close_socket (void **socket_p)
{
    if (*socket_p) {
        zmq_close (*socket_p);
        *socket_p = NULL;
    }
}

static void
s_free_fetches (cask_worker_t *self)
{
    s_fetch_t *fetch;
    size_t cursor = 0;
    while ((fetch = (s_fetch_t *) cask_keymap_next (self->fetches, &cursor))) {
        free (fetch->waiters);
        free (fetch);
    }
    cask_keymap_destroy (&self->fetches);
}

void
cask_worker_destroy (cask_worker_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cask_worker_t *self = *self_p;
    *self_p = NULL;
    if (self->broker && cask_send (self->broker, NULL, CASK_MSG_BYE, NULL, NULL) == 0)
        cask_log_print (self->log, CASK_LOG_INFO, "said BYE to the broker");
    if (self->pool_ready && !s_pool_stop (self))
        return;         //  a task still runs: leave it all to the process exit

    for (size_t index = 0; index < self->npeers; index++)
        s_peer_destroy (&self->peers [index]);
    free (self->peers);
    s_close_socket (&self->broker);
    s_close_socket (&self->router);
    s_close_socket (&self->finished);
    cask_curve_close (self->config.curve);
    if (self->ctx)
        zmq_ctx_term (self->ctx);
    if (self->fetches)
        s_free_fetches (self);
    s_free_jobs (self);
    //  Values made by task functions may hold code of their library
    cask_store_destroy (&self->store);
    cask_libraries_destroy (&self->libraries);
    if (self->pool_ready) {
        pthread_cond_destroy (&self->pool.gone);
        pthread_cond_destroy (&self->pool.wake);
        pthread_mutex_destroy (&self->pool.lock);
    }
    free (self->pool.threads);
    free (self->pool.queue);
    free (self->items);
    cask_message_close (&self->msg);
    cask_batch_free (&self->done);
    cask_batch_free (&self->stored);
    cask_buf_free (&self->scratch);
    free (self->broker_endpoint);
    free (self->name);
    free (self->death);
    free (self->running);
    cask_log_destroy (&self->log);
    free (self);
}
