/*  cask_graph.c - the broker's task graph (see cask_graph.h).

    One allocation per task holds the record, its dependency links, its
    payload frames, its arguments and its key. Tasks live in a cask_keymap
    that reads their keys in place.
    Dependents are kept as (task, slot) links with back-indices, so a link is
    removed in O(1) whatever the fan-out.

    Every change that may make a task unwanted, forgettable or wanted again
    "touches" it; settling pops touched tasks and releases, forgets or
    revives them, iteratively, so cascades over long chains never recurse.

    Memory goes back when tasks go: the task map is rebuilt smaller once it
    holds far fewer tasks than it did, and scratch stacks are dropped when
    a cascade left them large.
*/
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cask_graph.h"
#include "cask_keymap.h"

//  Placement cost model: seconds to move a byte, and to fetch at all.
#define S_BANDWIDTH 100e6
#define S_FETCH_LATENCY 100e-6
//  A worker with all threads busy has room while its queue holds less than
//  this much work per thread, in seconds: fast tasks never wait for a
//  round trip to the broker, slow ones stay where any worker can take them.
#define S_PREFETCH 2e-3
//  Mean duration of a function never seen to finish, in seconds: as long as
//  the prefetch, so a worker takes no more of them than it has threads.
#define S_DEFAULT_DURATION S_PREFETCH
//  What a worker spends on a task besides its function, in seconds.
#define S_TASK_OVERHEAD 2e-6
//  What moving a queued task costs beyond its data: the STEAL round trip.
#define S_STEAL_COST 300e-6
//  Distinct resource names a cluster may declare.
#define S_MAX_RESOURCE_NAMES 64
//  Workers a task may kill before it fails (Dask's allowed-failures).
#define S_ALLOWED_FAILURES 3
//  The mean duration follows the last S_DURATION_WINDOW runs.
#define S_DURATION_WINDOW 16
//  The task map is rebuilt when it holds less than 1/S_SHRINK_RATIO of
//  its high-water mark, if that was at least S_SHRINK_MIN tasks.
#define S_SHRINK_RATIO 8
#define S_SHRINK_MIN 4096
//  Scratch stacks larger than this are freed once empty.
#define S_VEC_KEEP 4096

typedef enum {
    S_WAITING,                  //  some dependency not in memory
    S_READY,                    //  all dependencies in memory, no worker yet
    S_PROCESSING,               //  sent to a worker
    S_MEMORY,                   //  result held by its worker
    S_ERRED,                    //  failed, or a dependency failed
    S_RELEASED,                 //  no result anywhere; kept for its dependents
    S_NSTATES
} s_state_t;

//  Tasks in a list through prev/next.
typedef struct {
    cask_gtask_t *head;
    cask_gtask_t *tail;
} s_list_t;

//  A resource a worker declares: total, and what its running tasks use.
typedef struct {
    uint16_t id;                //  index in the graph's resource names
    double total;
    double used;
} s_supply_t;

typedef struct {
    uint32_t id;
    uint32_t nthreads;
    uint32_t inflight;
    uint32_t stealing;          //  STEALs asked and not answered
    uint32_t copies;            //  COPYs of its results not done (retiring)
    bool retiring;
    bool paused;                //  memory nearly full: no new task
    double occupancy;           //  estimated seconds of its tasks in flight
    s_list_t flight;            //  its tasks in flight, oldest first
    uint64_t tasks_done;
    uint64_t nbytes;            //  bytes of results held
    uint64_t incoming;          //  bytes being copied to it
    uint64_t local_bytes;       //  scratch: bytes of a task's deps held here
    uint32_t local_deps;        //  scratch: how many of its deps are here
    uint8_t nsupplies;
    s_supply_t supplies [CASK_MAX_RESOURCES];
    size_t endpoint_len;
    char endpoint [CASK_MAX_KEY + 1];
    size_t name_len;
    char name [CASK_MAX_KEY + 1];
} s_worker_t;

//  Where a task may run (see cask_restrictions_t): one allocation.
typedef struct {
    uint8_t nnames;
    uint8_t nresources;
    cask_str_t names [CASK_MAX_RESOURCES];      //  workers; views into text
    cask_str_t resource [CASK_MAX_RESOURCES];   //  resource names; the same
    double amount [CASK_MAX_RESOURCES];
    char text [];
} s_restrict_t;

//  Scheduling marks of a processing task (sched).
#define S_STEALING 0x01         //  a STEAL is on its way
#define S_STEAL_REFUSED 0x02    //  started already: never ask again
#define S_COPY_FAILED 0x04      //  memory: a copy of it failed, do not retry

//  A failure, shared by the task that failed and every task it took down.
typedef struct {
    unsigned refs;
    uint32_t worker;
    cask_str_t cause;
    cask_str_t function;
    cask_str_t message;
} s_error_t;

typedef struct {
    uint32_t client;
    uint32_t count;
} s_hold_t;

//  task->deps [i]: the dependency, and where this link sits in its dependents.
typedef struct {
    cask_gtask_t *task;
    uint32_t pos;
} s_dep_t;

//  task->dependents [j]: the dependent, and which of its deps slots is us.
typedef struct {
    cask_gtask_t *task;
    uint32_t slot;
} s_dependent_t;

struct _cask_gtask_t {
    uint8_t state;              //  s_state_t
    uint8_t flags;
    bool touched;               //  on the settle stack
    uint8_t type;               //  memory: cask_type_t of the result
    uint8_t retries;            //  runs left after a failure
    bool scattered;             //  uploaded by a client: no function, no lineage
    uint8_t sched;              //  S_STEALING, S_STEAL_REFUSED, S_COPY_FAILED
    uint8_t kills;              //  workers that died while running it
    float estimate;             //  processing: seconds it adds to its worker
    uint32_t mark;              //  walk that last visited it (cancel)
    uint32_t fn;
    int32_t priority;
    uint32_t timeout_ms;        //  time limit (CASK_TASK_TIMED), or 0
    uint32_t ndeps;
    uint32_t nwaiting;          //  deps not in memory, while waiting
    uint32_t nneeded;           //  dependents waiting or processing
    uint32_t ndependents;
    uint32_t capdependents;
    uint32_t nholds;
    uint32_t capholds;
    uint32_t nframes;
    uint32_t args_size;
    uint32_t key_len;
    uint64_t nbytes;            //  memory: size of the result
    s_worker_t *worker;         //  processing: runs it; memory: holds it
    s_worker_t *copy_to;        //  memory: where a COPY of it is being made
    s_restrict_t *restrictions; //  NULL: any worker
    char *killed;               //  the workers it killed and how, or NULL
    s_error_t *error;           //  erred: why
    s_dependent_t *dependents;
    s_hold_t *holds;            //  hold_inline, or heap when more clients
    s_hold_t hold_inline;
    cask_gtask_t *prev, *next;  //  ready: its queue; processing: its worker's list
    s_dep_t *deps;              //  these four point into this allocation
    zmq_msg_t *frames;
    uint8_t *args;
    char *key;
};

typedef struct {
    cask_gtask_t **items;
    size_t size;
    size_t cap;
} s_vec_t;

//  The live states: waiting, ready and processing (see s_function_track).
#define S_NLIVE (S_PROCESSING + 1)

typedef struct {
    char *name;
    size_t name_len;
    double mean_duration;       //  seconds
    uint32_t runs;
    //  Progress of its tasks (cask_graph_progress)
    uint32_t live [S_NLIVE];    //  tasks in each live state now
    uint64_t done;              //  times one of its tasks finished
    uint64_t erred;             //  times one of its tasks erred
} s_function_t;

//  A published name and the task it holds.
typedef struct {
    cask_gtask_t *task;
    size_t name_len;
    char name [CASK_MAX_KEY + 1];
} s_name_t;

struct _cask_graph_t {
    cask_graph_sink_t sink;
    void *arg;
    cask_keymap_t *tasks;       //  by key
    size_t peak_tasks;          //  most tasks since the map was made
    cask_keymap_t *names;       //  published names (s_name_t)
    uint32_t walk;              //  the latest walk's mark
    size_t counts [S_NSTATES];
    s_worker_t **workers;
    size_t nworkers;
    size_t capworkers;
    s_function_t *functions;    //  indexed by id
    size_t nfunctions;
    s_list_t ready;             //  ready tasks waiting for room, by priority
    s_list_t restricted;        //  the same, of restricted tasks
    uint32_t steals;            //  STEALs asked and not answered
    unsigned allowed_failures;  //  kills before a task fails
    char *resources [S_MAX_RESOURCE_NAMES];     //  names workers declared
    size_t nresources;
    s_vec_t touched;            //  to settle
    s_vec_t stack;              //  walks over dependents (failure, cancel)
};

//  ---------------------------------------------------------------------
//  Small helpers

static void *
s_alloc_or_die (void *ptr)
{
    //  Bookkeeping that cannot fail half-way: like Redis, give up on OOM.
    if (!ptr) {
        fprintf (stderr, "E: cask graph: out of memory\n");
        abort ();
    }
    return ptr;
}

static void
s_vec_push (s_vec_t *vec, cask_gtask_t *task)
{
    if (vec->size == vec->cap) {
        vec->cap = vec->cap ? vec->cap * 2 : 64;
        vec->items = s_alloc_or_die (realloc (vec->items, vec->cap * sizeof (cask_gtask_t *)));
    }
    vec->items [vec->size++] = task;
}

static cask_gtask_t *
s_vec_pop (s_vec_t *vec)
{
    return vec->size ? vec->items [--vec->size] : NULL;
}

static cask_str_t
s_view (const char *ptr, size_t len)
{
    cask_str_t view = { ptr, len };
    return view;
}

static bool
s_wanted (const cask_gtask_t *task)
{
    return task->nholds > 0 || task->nneeded > 0;
}

static bool
s_holds_needs (uint8_t state)
{
    return state == S_WAITING || state == S_READY || state == S_PROCESSING;
}

static bool
s_is_client (uint32_t holder)
{
    return holder != CASK_GRAPH_FIRE && holder != CASK_GRAPH_PUBLISHED;
}

static void
s_touch (cask_graph_t *self, cask_gtask_t *task)
{
    if (!task->touched) {
        task->touched = true;
        s_vec_push (&self->touched, task);
    }
}

static void
s_list_unlink (s_list_t *list, cask_gtask_t *task)
{
    if (task->prev)
        task->prev->next = task->next;
    else
        list->head = task->next;
    if (task->next)
        task->next->prev = task->prev;
    else
        list->tail = task->prev;
    task->prev = task->next = NULL;
}

//  Inserts task after after (NULL: at the head).
static void
s_list_insert (s_list_t *list, cask_gtask_t *after, cask_gtask_t *task)
{
    task->prev = after;
    task->next = after ? after->next : list->head;
    if (task->next)
        task->next->prev = task;
    else
        list->tail = task;
    if (after)
        after->next = task;
    else
        list->head = task;
}

//  ---------------------------------------------------------------------
//  Tasks by key

static const void *
s_task_key (const void *item, size_t *size)
{
    const cask_gtask_t *task = (const cask_gtask_t *) item;
    *size = task->key_len;
    return task->key;
}

static cask_gtask_t *
s_find (cask_graph_t *self, cask_str_t key)
{
    return (cask_gtask_t *) cask_keymap_lookup (self->tasks, key.ptr, key.len);
}

static const void *
s_name_key (const void *item, size_t *size)
{
    const s_name_t *name = (const s_name_t *) item;
    *size = name->name_len;
    return name->name;
}

//  ---------------------------------------------------------------------
//  Functions and workers

static s_function_t *
s_function (cask_graph_t *self, uint32_t id)
{
    if (id < self->nfunctions && self->functions [id].name)
        return &self->functions [id];
    return NULL;
}

static cask_str_t
s_function_name (cask_graph_t *self, uint32_t id)
{
    s_function_t *function = s_function (self, id);
    return function ? s_view (function->name, function->name_len) : s_view ("", 0);
}

static void
s_function_learn (cask_graph_t *self, uint32_t id, uint32_t duration_us)
{
    s_function_t *function = s_function (self, id);
    if (!function)
        return;
    double seconds = duration_us / 1e6;
    if (function->runs < S_DURATION_WINDOW)
        function->runs++;
    if (function->runs == 1)
        function->mean_duration = seconds;
    else
        function->mean_duration += (seconds - function->mean_duration) / function->runs;
}

static s_worker_t *
s_worker (cask_graph_t *self, uint32_t id)
{
    for (size_t i = 0; i < self->nworkers; i++)
        if (self->workers [i]->id == id)
            return self->workers [i];
    return NULL;
}

//  What task adds to its worker's queue, in seconds.
static double
s_estimate (cask_graph_t *self, const cask_gtask_t *task)
{
    s_function_t *function = s_function (self, task->fn);
    double duration = function && function->runs ? function->mean_duration : S_DEFAULT_DURATION;
    return (task->scattered ? 0 : duration) + S_TASK_OVERHEAD;
}

//  Seconds of work queued per thread of worker.
static double
s_load (const s_worker_t *worker)
{
    return worker->occupancy / worker->nthreads;
}

//  Seconds before a new task could start on worker: none while a thread
//  is free, else until its queue drained.
static double
s_queue_wait (const s_worker_t *worker)
{
    return worker->inflight < worker->nthreads ? 0 : s_load (worker);
}

static bool
s_has_room (const s_worker_t *worker)
{
    return !worker->paused && !worker->retiring && (worker->inflight < worker->nthreads
        || worker->occupancy < worker->nthreads * S_PREFETCH);
}


//  What worker declares of resource name, or NULL. Names are compared, not
//  made ids, so what clients ask for cannot fill the table of names.
static s_supply_t *
s_supply (cask_graph_t *self, s_worker_t *worker, cask_str_t name)
{
    for (uint8_t i = 0; i < worker->nsupplies; i++)
        if (cask_str_eq (name, self->resources [worker->supplies [i].id]))
            return &worker->supplies [i];
    return NULL;
}

static bool
s_named (const s_worker_t *worker, const s_restrict_t *restrictions)
{
    for (uint8_t i = 0; i < restrictions->nnames; i++) {
        cask_str_t name = restrictions->names [i];
        if ((name.len == worker->name_len && memcmp (name.ptr, worker->name, name.len) == 0)
        ||  (name.len == worker->endpoint_len && memcmp (name.ptr, worker->endpoint, name.len) == 0))
            return true;
    }
    return restrictions->nnames == 0;
}

//  True when worker may run a task of these restrictions: now (its free
//  resources suffice), or ever (what it declares suffices).
static bool
s_fits (cask_graph_t *self, s_worker_t *worker, const s_restrict_t *restrictions, bool now)
{
    if (worker->retiring || (now && worker->paused))
        return false;
    if (!restrictions)
        return true;
    if (!s_named (worker, restrictions))
        return false;
    for (uint8_t i = 0; i < restrictions->nresources; i++) {
        s_supply_t *supply = s_supply (self, worker, restrictions->resource [i]);
        double free = supply ? supply->total - (now ? supply->used : 0) : 0;
        if (free < restrictions->amount [i] * (1 - 1e-9))
            return false;
    }
    return true;
}

//  The resources a task of these restrictions holds on worker while it
//  runs: taken (sign 1) or given back (-1).
static void
s_supplies_use (cask_graph_t *self, s_worker_t *worker, const s_restrict_t *restrictions,
                int sign)
{
    for (uint8_t i = 0; restrictions && i < restrictions->nresources; i++) {
        s_supply_t *supply = s_supply (self, worker, restrictions->resource [i]);
        if (supply)
            supply->used += sign * restrictions->amount [i];
    }
}

//  Seconds to bring the dependencies of task that worker lacks.
static double
s_transfer_cost (const cask_gtask_t *task, const s_worker_t *worker)
{
    double cost = 0;
    for (uint32_t i = 0; i < task->ndeps; i++) {
        const cask_gtask_t *dep = task->deps [i].task;
        if (dep->worker != worker)
            cost += dep->nbytes / S_BANDWIDTH + S_FETCH_LATENCY;
    }
    return cost;
}

//  The worker that may run task now where it would start soonest: the time
//  to fetch the dependency bytes it lacks, plus the time its queue takes to
//  drain; NULL when none may. *room says whether any such worker has room.
//  avoid (may be NULL) is taken only when no other worker may run it.
static s_worker_t *
s_place (cask_graph_t *self, cask_gtask_t *task, s_worker_t *avoid, bool *room)
{
    uint64_t total_bytes = 0;
    for (size_t i = 0; i < self->nworkers; i++) {
        self->workers [i]->local_bytes = 0;
        self->workers [i]->local_deps = 0;
    }
    for (uint32_t i = 0; i < task->ndeps; i++) {
        cask_gtask_t *dep = task->deps [i].task;
        total_bytes += dep->nbytes;
        if (dep->worker) {
            dep->worker->local_bytes += dep->nbytes;
            dep->worker->local_deps++;
        }
    }
    s_worker_t *best = NULL, *fallback = NULL;
    double best_start = 0;
    *room = false;
    for (size_t i = 0; i < self->nworkers; i++) {
        s_worker_t *worker = self->workers [i];
        if (!s_fits (self, worker, task->restrictions, true))
            continue;
        if (worker == avoid) {
            fallback = worker;
            continue;
        }
        *room |= s_has_room (worker);
        double start = (total_bytes - worker->local_bytes) / S_BANDWIDTH
                     + (task->ndeps - worker->local_deps) * S_FETCH_LATENCY
                     + s_queue_wait (worker);
        //  Equal starts (free threads on both): the less loaded
        if (!best || start < best_start
        ||  (start == best_start && s_load (worker) < s_load (best))) {
            best = worker;
            best_start = start;
        }
    }
    if (!best && fallback) {
        best = fallback;
        *room = s_has_room (fallback);
    }
    return best;
}

//  Workers that do not retire.
static size_t
s_staying (cask_graph_t *self)
{
    size_t count = 0;
    for (size_t i = 0; i < self->nworkers; i++)
        count += !self->workers [i]->retiring;
    return count;
}

//  True when workers are connected but none of them could ever run task.
static bool
s_unrunnable (cask_graph_t *self, cask_gtask_t *task)
{
    if (!task->restrictions || s_staying (self) == 0)
        return false;
    for (size_t i = 0; i < self->nworkers; i++)
        if (s_fits (self, self->workers [i], task->restrictions, false))
            return false;
    return true;
}

//  task is processing on worker from now on.
static void
s_assign (cask_graph_t *self, cask_gtask_t *task, s_worker_t *worker)
{
    task->worker = worker;
    task->estimate = (float) s_estimate (self, task);
    worker->inflight++;
    worker->occupancy += task->estimate;
    s_list_insert (&worker->flight, worker->flight.tail, task);
    s_supplies_use (self, worker, task->restrictions, 1);
}

//  task, processing, is no longer on its worker (done, dropped, stolen).
static void
s_unassign (cask_graph_t *self, cask_gtask_t *task)
{
    s_worker_t *worker = task->worker;
    s_list_unlink (&worker->flight, task);
    worker->inflight--;
    worker->occupancy = worker->inflight ? worker->occupancy - task->estimate : 0;
    s_supplies_use (self, worker, task->restrictions, -1);
    if (task->sched & S_STEALING) {
        worker->stealing--;
        self->steals--;
    }
    task->sched = 0;
    task->worker = NULL;
}

//  ---------------------------------------------------------------------
//  Errors

static s_error_t *
s_error_new (cask_str_t cause, cask_str_t function, uint32_t worker, const char *message,
             size_t message_len)
{
    if (message_len > UINT16_MAX)
        message_len = UINT16_MAX;
    s_error_t *error = s_alloc_or_die (malloc (sizeof (s_error_t) + cause.len
                                               + function.len + message_len + 3));
    char *text = (char *) (error + 1);
    error->refs = 1;
    error->worker = worker;
    error->cause = s_view (text, cause.len);
    memcpy (text, cause.ptr, cause.len);
    text [cause.len] = 0;
    text += cause.len + 1;
    error->function = s_view (text, function.len);
    memcpy (text, function.ptr, function.len);
    text [function.len] = 0;
    text += function.len + 1;
    error->message = s_view (text, message_len);
    memcpy (text, message, message_len);
    text [message_len] = 0;
    return error;
}

static void
s_error_unref (s_error_t **error_p)
{
    if (*error_p && --(*error_p)->refs == 0)
        free (*error_p);
    *error_p = NULL;
}

//  ---------------------------------------------------------------------
//  Holds of clients on a task

static s_hold_t *
s_hold_find (cask_gtask_t *task, uint32_t client)
{
    for (uint32_t i = 0; i < task->nholds; i++)
        if (task->holds [i].client == client)
            return &task->holds [i];
    return NULL;
}

static void
s_hold_add (cask_gtask_t *task, uint32_t client)
{
    s_hold_t *hold = s_hold_find (task, client);
    if (hold) {
        hold->count++;
        return;
    }
    if (task->nholds == task->capholds) {
        uint32_t cap = task->capholds * 2;
        s_hold_t *holds = s_alloc_or_die (malloc (cap * sizeof (s_hold_t)));
        memcpy (holds, task->holds, task->nholds * sizeof (s_hold_t));
        if (task->holds != &task->hold_inline)
            free (task->holds);
        task->holds = holds;
        task->capholds = cap;
    }
    task->holds [task->nholds].client = client;
    task->holds [task->nholds].count = 1;
    task->nholds++;
}

static void
s_hold_drop (cask_gtask_t *task, s_hold_t *hold, bool all)
{
    if (!all && --hold->count > 0)
        return;
    *hold = task->holds [--task->nholds];
}

static void
s_notify_holders (cask_graph_t *self, cask_gtask_t *task)
{
    for (uint32_t i = 0; i < task->nholds; i++)
        if (s_is_client (task->holds [i].client))
            self->sink.state (self->arg, task->holds [i].client, task);
}

//  A fire-and-forget task finished: nobody holds it for that any more.
static void
s_drop_fire (cask_graph_t *self, cask_gtask_t *task)
{
    s_hold_t *hold = s_hold_find (task, CASK_GRAPH_FIRE);
    if (hold) {
        s_hold_drop (task, hold, true);
        s_touch (self, task);
    }
}

//  ---------------------------------------------------------------------
//  States. s_set_state keeps two invariants: a task in the ready queue is
//  exactly a task in S_READY, and a task holds a need on each dependency
//  exactly while it is waiting, ready or processing.

static s_list_t *
s_queue_of (cask_graph_t *self, cask_gtask_t *task)
{
    return task->restrictions ? &self->restricted : &self->ready;
}

//  Queues a ready task behind every task of its priority or higher. Tasks
//  mostly share one priority, so the walk from the tail is short.
static void
s_queue_append (cask_graph_t *self, cask_gtask_t *task)
{
    s_list_t *queue = s_queue_of (self, task);
    cask_gtask_t *after = queue->tail;
    while (after && after->priority < task->priority)
        after = after->prev;
    s_list_insert (queue, after, task);
}

//  Sets and returns how many dependencies of a waiting task are not in memory.
static uint32_t
s_count_missing (cask_gtask_t *task)
{
    task->nwaiting = 0;
    for (uint32_t i = 0; i < task->ndeps; i++)
        if (task->deps [i].task->state != S_MEMORY)
            task->nwaiting++;
    return task->nwaiting;
}

static void
s_acquire_needs (cask_graph_t *self, cask_gtask_t *task)
{
    s_count_missing (task);
    for (uint32_t i = 0; i < task->ndeps; i++) {
        cask_gtask_t *dep = task->deps [i].task;
        dep->nneeded++;
        if (dep->state == S_RELEASED)
            s_touch (self, dep);        //  to be computed again
    }
}

static void
s_drop_needs (cask_graph_t *self, cask_gtask_t *task)
{
    for (uint32_t i = 0; i < task->ndeps; i++) {
        cask_gtask_t *dep = task->deps [i].task;
        assert (dep->nneeded > 0);
        dep->nneeded--;
        s_touch (self, dep);
    }
}

//  Counts a task of a known function moving from old to state. A task
//  enters and leaves the live states only here, so the counts balance.
static void
s_function_track (cask_graph_t *self, const cask_gtask_t *task, s_state_t old, s_state_t state)
{
    s_function_t *function = task->scattered ? NULL : s_function (self, task->fn);
    if (!function)
        return;
    if (old < S_NLIVE)
        function->live [old]--;
    if (state < S_NLIVE)
        function->live [state]++;
    if (state == S_MEMORY)
        function->done++;
    else
    if (state == S_ERRED)
        function->erred++;
}

static void
s_set_state (cask_graph_t *self, cask_gtask_t *task, s_state_t state)
{
    s_state_t old = (s_state_t) task->state;
    s_function_track (self, task, old, state);
    if (old == S_READY)
        s_list_unlink (s_queue_of (self, task), task);
    if (state == S_READY)
        s_queue_append (self, task);
    self->counts [old]--;
    self->counts [state]++;
    task->state = state;
    if (s_holds_needs (old) && !s_holds_needs (state))
        s_drop_needs (self, task);
    else
    if (!s_holds_needs (old) && s_holds_needs (state))
        s_acquire_needs (self, task);
}

static void
s_dispatch (cask_graph_t *self, cask_gtask_t *task, s_worker_t *worker)
{
    s_set_state (self, task, S_PROCESSING);
    s_assign (self, task, worker);
    self->sink.dispatch (self->arg, worker->id, task);
}

static void s_fail_unrunnable (cask_graph_t *self, cask_gtask_t *task);

//  All dependencies are in memory: run it where it would start soonest
//  while some worker has room, else queue it (on the broker) until one has.
//  avoid (may be NULL) runs it only if no other worker may.
static void
s_make_ready (cask_graph_t *self, cask_gtask_t *task, s_worker_t *avoid)
{
    bool room;
    s_worker_t *worker = s_place (self, task, avoid, &room);
    if (worker && room)
        s_dispatch (self, task, worker);
    else
    if (!worker && s_unrunnable (self, task))
        s_fail_unrunnable (self, task);
    else
    if (task->state != S_READY)
        s_set_state (self, task, S_READY);
}

//  A copy of task's result being made for a retiring holder is dropped.
static void
s_copy_drop (cask_graph_t *self, cask_gtask_t *task)
{
    self->sink.free (self->arg, task->copy_to->id, s_view (task->key, task->key_len));
    task->copy_to->incoming -= task->nbytes;
    task->copy_to = NULL;
    task->worker->copies--;
}

static void
s_lose_result (cask_graph_t *self, cask_gtask_t *task)
{
    if (task->copy_to)
        s_copy_drop (self, task);
    task->worker->nbytes -= task->nbytes;
    task->worker = NULL;
    task->sched = 0;
    s_set_state (self, task, S_RELEASED);
}

//  Erred with error, and so is every task waiting on it, transitively.
static void
s_fail (cask_graph_t *self, cask_gtask_t *task, s_error_t *error)
{
    s_vec_push (&self->stack, task);
    while ((task = s_vec_pop (&self->stack))) {
        if (task->state == S_ERRED)
            continue;           //  reached twice through repeated deps
        task->error = error;
        error->refs++;
        task->worker = NULL;
        s_set_state (self, task, S_ERRED);
        s_notify_holders (self, task);
        s_drop_fire (self, task);
        s_touch (self, task);
        for (uint32_t i = 0; i < task->ndependents; i++) {
            cask_gtask_t *dependent = task->dependents [i].task;
            if (dependent->state == S_WAITING || dependent->state == S_READY)
                s_vec_push (&self->stack, dependent);
        }
    }
    s_error_unref (&error);
}

static s_error_t *
s_error_printf (cask_str_t cause, cask_str_t function, uint32_t worker, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));

//  An error whose message is formatted (at most 511 bytes).
static s_error_t *
s_error_printf (cask_str_t cause, cask_str_t function, uint32_t worker, const char *format, ...)
{
    char message [512];
    va_list args;
    va_start (args, format);
    int len = vsnprintf (message, sizeof message, format, args);
    va_end (args);
    size_t size = len < 0 ? 0 : (size_t) len < sizeof message ? (size_t) len : sizeof message - 1;
    return s_error_new (cause, function, worker, message, size);
}

//  Writes what restrictions ask for into text: "worker a or b, GPU=1".
static void
s_restrictions_describe (const s_restrict_t *restrictions, char *text, size_t size)
{
    size_t len = 0;
    text [0] = 0;
    for (uint8_t i = 0; i < restrictions->nnames && len < size; i++)
        len += (size_t) snprintf (text + len, size - len, "%s%.*s", i ? " or " : "worker ",
                                  (int) restrictions->names [i].len, restrictions->names [i].ptr);
    for (uint8_t i = 0; i < restrictions->nresources && len < size; i++)
        len += (size_t) snprintf (text + len, size - len, "%s%.*s=%g", len ? ", " : "",
                                  (int) restrictions->resource [i].len,
                                  restrictions->resource [i].ptr, restrictions->amount [i]);
}

//  No worker connected could ever run task: it fails rather than wait.
static void
s_fail_unrunnable (cask_graph_t *self, cask_gtask_t *task)
{
    char wants [512];
    s_restrictions_describe (task->restrictions, wants, sizeof wants);
    s_fail (self, task, s_error_printf (s_view (task->key, task->key_len),
                                        s_function_name (self, task->fn), 0,
                                        "no worker can run it: it asks for %s, which none of "
                                        "the %zu workers connected has", wants,
                                        s_staying (self)));
}

//  A released task is wanted again: compute it again, with its dependencies.
static void
s_revive (cask_graph_t *self, cask_gtask_t *task)
{
    if (task->scattered) {
        s_fail (self, task, s_error_printf (s_view (task->key, task->key_len), s_view ("", 0), 0,
                                            "scattered data was released: no lineage to compute it again"));
        return;
    }
    for (uint32_t i = 0; i < task->ndeps; i++) {
        s_error_t *error = task->deps [i].task->error;
        if (error) {
            error->refs++;
            s_fail (self, task, error);
            return;
        }
    }
    s_set_state (self, task, S_WAITING);
    if (task->nwaiting == 0)
        s_make_ready (self, task, NULL);
}

//  ---------------------------------------------------------------------
//  Task records

static size_t
s_align (size_t size)
{
    return (size + 15) & ~(size_t) 15;
}

//  A new task under key (whose hash in the map is hash), in the map.
static cask_gtask_t *
s_task_new (cask_graph_t *self, cask_str_t key, uint64_t hash, uint32_t ndeps,
            uint32_t nframes, uint32_t args_size)
{
    size_t deps_at = s_align (sizeof (cask_gtask_t));
    size_t frames_at = deps_at + s_align (ndeps * sizeof (s_dep_t));
    size_t args_at = frames_at + nframes * sizeof (zmq_msg_t);
    size_t key_at = args_at + args_size;
    uint8_t *block = malloc (key_at + key.len + 1);
    if (!block)
        return NULL;
    cask_gtask_t *task = (cask_gtask_t *) block;
    memset (task, 0, sizeof (cask_gtask_t));
    task->deps = (s_dep_t *) (block + deps_at);
    task->frames = (zmq_msg_t *) (block + frames_at);
    task->args = block + args_at;
    task->key = (char *) block + key_at;
    memcpy (task->key, key.ptr, key.len);
    task->key [key.len] = 0;
    task->key_len = (uint32_t) key.len;
    task->holds = &task->hold_inline;
    task->capholds = 1;
    task->state = S_RELEASED;       //  holds nothing yet
    if (cask_keymap_insert_hashed (self->tasks, task, hash)) {
        free (block);
        return NULL;
    }
    self->counts [S_RELEASED]++;
    return task;
}

static void
s_link (cask_gtask_t *task, uint32_t slot, cask_gtask_t *dep)
{
    if (dep->ndependents == dep->capdependents) {
        dep->capdependents = dep->capdependents ? dep->capdependents * 2 : 4;
        dep->dependents = s_alloc_or_die (realloc (dep->dependents,
            dep->capdependents * sizeof (s_dependent_t)));
    }
    dep->dependents [dep->ndependents].task = task;
    dep->dependents [dep->ndependents].slot = slot;
    task->deps [slot].task = dep;
    task->deps [slot].pos = dep->ndependents++;
}

static void
s_unlink (cask_gtask_t *task, uint32_t slot)
{
    cask_gtask_t *dep = task->deps [slot].task;
    uint32_t pos = task->deps [slot].pos;
    s_dependent_t last = dep->dependents [--dep->ndependents];
    dep->dependents [pos] = last;
    last.task->deps [last.slot].pos = pos;
}

//  Restrictions read from a record's block (checked well-formed by the
//  codec), in one allocation; NULL when out of memory.
static s_restrict_t *
s_restrict_new (cask_str_t block)
{
    cask_restrictions_t rec;
    cask_rd_t rd;
    cask_rd_init (&rd, block.ptr, block.len);
    cask_restrictions_get (&rd, &rec);
    s_restrict_t *self = malloc (sizeof (s_restrict_t) + block.len);
    if (!self || rd.failed) {
        free (self);
        return NULL;
    }
    //  The views point into the copy of the block, at the same offsets
    memcpy (self->text, block.ptr, block.len);
    self->nnames = rec.nworkers;
    self->nresources = rec.nresources;
    for (uint8_t i = 0; i < rec.nworkers; i++)
        self->names [i] = s_view (self->text + (rec.workers [i].ptr - block.ptr),
                                  rec.workers [i].len);
    for (uint8_t i = 0; i < rec.nresources; i++) {
        cask_str_t name = rec.resources [i].name;
        self->resource [i] = s_view (self->text + (name.ptr - block.ptr), name.len);
        self->amount [i] = rec.resources [i].amount;
    }
    return self;
}

static void
s_task_free (cask_gtask_t *task)
{
    free (task->restrictions);
    free (task->killed);
    for (uint32_t i = 0; i < task->ndeps; i++)
        s_unlink (task, i);
    for (uint32_t i = 0; i < task->nframes; i++)
        zmq_msg_close (&task->frames [i]);
    if (task->holds != &task->hold_inline)
        free (task->holds);
    s_error_unref (&task->error);
    free (task->dependents);
    free (task);
}

static void
s_forget (cask_graph_t *self, cask_gtask_t *task)
{
    assert (task->state != S_READY);
    for (uint32_t i = 0; i < task->ndeps; i++)
        s_touch (self, task->deps [i].task);
    cask_keymap_remove (self->tasks, task->key, task->key_len);
    self->counts [task->state]--;
    s_task_free (task);
}

static void
s_vec_trim (s_vec_t *vec)
{
    if (vec->size == 0 && vec->cap > S_VEC_KEEP) {
        free (vec->items);
        memset (vec, 0, sizeof (s_vec_t));
    }
}

//  An open-addressing map never shrinks: after a flood of tasks has gone,
//  move the few left to a fresh map so the big slot array is freed.
static void
s_compact (cask_graph_t *self)
{
    size_t size = cask_keymap_size (self->tasks);
    if (size > self->peak_tasks)
        self->peak_tasks = size;
    s_vec_trim (&self->touched);
    s_vec_trim (&self->stack);
    if (self->peak_tasks < S_SHRINK_MIN || size * S_SHRINK_RATIO >= self->peak_tasks)
        return;
    cask_keymap_t *tasks = cask_keymap_new (s_task_key);
    cask_gtask_t *task;
    size_t cursor = 0;
    while (tasks && (task = cask_keymap_next (self->tasks, &cursor)))
        if (cask_keymap_insert (tasks, task))
            cask_keymap_destroy (&tasks);   //  out of memory: keep the old map
    if (!tasks)
        return;
    cask_keymap_destroy (&self->tasks);
    self->tasks = tasks;
    self->peak_tasks = size;
}

//  Nobody wants a task its worker has not finished: the worker drops it at
//  once (FREE), and its DONE, if one is already on the way, is ignored. A
//  scattered task waits for its DONE instead, for the upload may reach the
//  worker after the FREE and would then be held there for ever.
static void
s_abandon (cask_graph_t *self, cask_gtask_t *task)
{
    self->sink.free (self->arg, task->worker->id, s_view (task->key, task->key_len));
    s_unassign (self, task);
    s_set_state (self, task, S_RELEASED);
}

//  Queued tasks go to the workers that have room: restricted ones first
//  (few, each looked at), then the others in order while any room is left.
static void
s_drain (cask_graph_t *self)
{
    for (cask_gtask_t *task = self->restricted.head, *next; task; task = next) {
        next = task->next;
        s_make_ready (self, task, NULL);
    }
    cask_gtask_t *task;
    while ((task = self->ready.head)) {
        bool room;
        s_worker_t *worker = s_place (self, task, NULL, &room);
        if (!worker || !room)
            break;
        s_dispatch (self, task, worker);
    }
}

//  Queued restricted tasks that no worker connected could ever run fail.
static void
s_fail_unrunnable_queued (cask_graph_t *self)
{
    for (cask_gtask_t *task = self->restricted.head, *next; task; task = next) {
        next = task->next;
        if (s_unrunnable (self, task))
            s_fail_unrunnable (self, task);
    }
}

static void s_worker_drop (cask_graph_t *self, s_worker_t *worker);

//  The worker that takes a copy of a retiring worker's result: the one
//  that stays with the fewest bytes held and coming.
static s_worker_t *
s_copy_target (cask_graph_t *self)
{
    s_worker_t *best = NULL;
    for (size_t i = 0; i < self->nworkers; i++) {
        s_worker_t *worker = self->workers [i];
        if (!worker->retiring
        &&  (!best || worker->nbytes + worker->incoming < best->nbytes + best->incoming))
            best = worker;
    }
    return best;
}

//  Copies the result of task to a worker that stays. -1 when none does.
static int
s_copy_start (cask_graph_t *self, cask_gtask_t *task)
{
    s_worker_t *target = s_copy_target (self);
    if (!target)
        return -1;
    task->copy_to = target;
    target->incoming += task->nbytes;
    task->worker->copies++;
    self->sink.copy (self->arg, target->id, s_view (task->key, task->key_len),
                     s_view (task->worker->endpoint, task->worker->endpoint_len));
    return 0;
}

//  Copies every result worker holds that is wanted and not yet being
//  copied to a worker that stays. Returns how many copies it started.
static size_t
s_copy_results (cask_graph_t *self, s_worker_t *worker)
{
    size_t started = 0;
    cask_gtask_t *task;
    size_t cursor = 0;
    while ((task = cask_keymap_next (self->tasks, &cursor))) {
        if (task->worker != worker || task->state != S_MEMORY || task->copy_to
        ||  (task->sched & S_COPY_FAILED) || !s_wanted (task))
            continue;
        if (s_copy_start (self, task))
            break;
        started++;
    }
    return started;
}

//  Retiring workers that run nothing and hand nothing over any more are
//  retired, once a last look finds no result left to copy.
static void
s_retire_finished (cask_graph_t *self)
{
    for (size_t i = 0; i < self->nworkers; i++) {
        s_worker_t *worker = self->workers [i];
        if (!worker->retiring || worker->inflight || worker->stealing || worker->copies
        ||  s_copy_results (self, worker))
            continue;
        self->sink.retired (self->arg, worker->id);
        s_worker_drop (self, worker);
        i--;                    //  the last worker moved into slot i
    }
}

//  Releases what nobody wants, forgets what nothing refers to, computes
//  again what is wanted but gone, until nothing changes.
static void
s_settle_touched (cask_graph_t *self)
{
    cask_gtask_t *task;
    while ((task = s_vec_pop (&self->touched))) {
        task->touched = false;
        if (s_wanted (task)) {
            if (task->state == S_RELEASED)
                s_revive (self, task);
            continue;
        }
        if (task->state == S_WAITING || task->state == S_READY)
            s_set_state (self, task, S_RELEASED);
        else
        if (task->state == S_PROCESSING && !task->scattered)
            s_abandon (self, task);
        else
        if (task->state == S_MEMORY) {
            self->sink.free (self->arg, task->worker->id, s_view (task->key, task->key_len));
            s_lose_result (self, task);
        }
        if (task->ndependents == 0 && task->state != S_PROCESSING)
            s_forget (self, task);
    }
}

//  Settles what changed, retires the workers done handing over, sends
//  queued tasks to the room that opened; again while that changes more.
static void
s_settle (cask_graph_t *self)
{
    do {
        s_settle_touched (self);
        s_retire_finished (self);
        s_drain (self);
    } while (self->touched.size);
    s_compact (self);
}

//  ---------------------------------------------------------------------
//  Public API

cask_graph_t *
cask_graph_new (const cask_graph_sink_t *sink, void *arg)
{
    cask_graph_t *self = calloc (1, sizeof (cask_graph_t));
    if (!self)
        return NULL;
    self->sink = *sink;
    self->arg = arg;
    self->allowed_failures = S_ALLOWED_FAILURES;
    self->tasks = cask_keymap_new (s_task_key);
    self->names = cask_keymap_new (s_name_key);
    if (!self->tasks || !self->names) {
        cask_graph_destroy (&self);
        return NULL;
    }
    return self;
}

//  Frees every task and name, leaving both maps empty (NULL when out of
//  memory to make them again).
static void
s_clear (cask_graph_t *self)
{
    size_t cursor = 0;
    s_name_t *name;
    while (self->names && (name = cask_keymap_next (self->names, &cursor)))
        free (name);
    cask_keymap_destroy (&self->names);
    //  Links point both ways: drop them all before freeing any task.
    cask_gtask_t *task;
    cursor = 0;
    while (self->tasks && (task = cask_keymap_next (self->tasks, &cursor)))
        task->ndeps = 0;
    cursor = 0;
    while (self->tasks && (task = cask_keymap_next (self->tasks, &cursor)))
        s_task_free (task);
    cask_keymap_destroy (&self->tasks);
}

void
cask_graph_destroy (cask_graph_t **self_p)
{
    cask_graph_t *self = *self_p;
    if (!self)
        return;
    s_clear (self);
    for (size_t i = 0; i < self->nworkers; i++)
        free (self->workers [i]);
    free (self->workers);
    for (size_t i = 0; i < self->nfunctions; i++)
        free (self->functions [i].name);
    free (self->functions);
    for (size_t i = 0; i < self->nresources; i++)
        free (self->resources [i]);
    free (self->touched.items);
    free (self->stack.items);
    free (self);
    *self_p = NULL;
}

int
cask_graph_function_add (cask_graph_t *self, uint32_t id, cask_str_t name)
{
    if (id >= self->nfunctions) {
        size_t count = (size_t) id + 1 > self->nfunctions * 2 ? (size_t) id + 1
                                                              : self->nfunctions * 2;
        s_function_t *functions = realloc (self->functions, count * sizeof (s_function_t));
        if (!functions)
            return -1;
        memset (functions + self->nfunctions, 0,
                (count - self->nfunctions) * sizeof (s_function_t));
        self->functions = functions;
        self->nfunctions = count;
    }
    char *copy = malloc (name.len + 1);
    if (!copy)
        return -1;
    memcpy (copy, name.ptr, name.len);
    copy [name.len] = 0;
    s_function_t *function = &self->functions [id];
    free (function->name);
    function->name = copy;
    function->name_len = name.len;
    function->runs = 0;
    return 0;
}

//  The id of resource name, made when new; -1 when the table is full.
static int
s_resource_id (cask_graph_t *self, cask_str_t name)
{
    for (size_t i = 0; i < self->nresources; i++)
        if (cask_str_eq (name, self->resources [i]))
            return (int) i;
    if (self->nresources == S_MAX_RESOURCE_NAMES)
        return -1;
    char *copy = s_alloc_or_die (malloc (name.len + 1));
    cask_str_copy (name, copy, name.len + 1);
    self->resources [self->nresources] = copy;
    return (int) self->nresources++;
}

static s_worker_t *
s_worker_new (cask_graph_t *self, uint32_t id, const cask_hello_t *hello)
{
    if (hello->endpoint.len > CASK_MAX_KEY || hello->name.len > CASK_MAX_KEY
    ||  hello->nresources > CASK_MAX_RESOURCES)
        return NULL;
    s_worker_t *worker = calloc (1, sizeof (s_worker_t));
    if (!worker)
        return NULL;
    worker->id = id;
    worker->nthreads = hello->nthreads ? hello->nthreads : 1;
    memcpy (worker->endpoint, hello->endpoint.ptr, hello->endpoint.len);
    worker->endpoint_len = hello->endpoint.len;
    memcpy (worker->name, hello->name.ptr, hello->name.len);
    worker->name_len = hello->name.len;
    for (uint8_t i = 0; i < hello->nresources; i++) {
        int resource = s_resource_id (self, hello->resources [i].name);
        if (resource < 0) {
            free (worker);
            return NULL;
        }
        s_supply_t *supply = s_supply (self, worker, hello->resources [i].name);
        if (!supply)
            supply = &worker->supplies [worker->nsupplies++];
        supply->id = (uint16_t) resource;
        supply->total = hello->resources [i].amount;
    }
    return worker;
}

int
cask_graph_worker_add (cask_graph_t *self, uint32_t id, const cask_hello_t *hello)
{
    if (s_worker (self, id))
        return -1;
    if (self->nworkers == self->capworkers) {
        size_t cap = self->capworkers ? self->capworkers * 2 : 8;
        s_worker_t **workers = realloc (self->workers, cap * sizeof (s_worker_t *));
        if (!workers)
            return -1;
        self->workers = workers;
        self->capworkers = cap;
    }
    s_worker_t *worker = s_worker_new (self, id, hello);
    if (!worker)
        return -1;
    self->workers [self->nworkers++] = worker;
    s_fail_unrunnable_queued (self);
    s_settle (self);
    return 0;
}

//  Collects the results worker held into lost, its scattered data into
//  orphans, and puts the tasks it ran back to waiting, collected into rerun.
//  Copies of results being made on it are forgotten, to be made elsewhere.
static void
s_take_back (cask_graph_t *self, s_worker_t *worker, s_vec_t *lost, s_vec_t *orphans,
             s_vec_t *rerun)
{
    cask_gtask_t *task;
    size_t cursor = 0;
    while ((task = cask_keymap_next (self->tasks, &cursor))) {
        if (task->copy_to == worker) {
            task->copy_to = NULL;
            task->worker->copies--;
            s_copy_start (self, task);          //  on another, if one stays
        }
        if (task->worker != worker)
            continue;
        if (task->copy_to)
            s_copy_drop (self, task);
        if (task->state == S_PROCESSING)
            s_unassign (self, task);
        if (task->scattered)
            s_vec_push (orphans, task);
        else
        if (task->state == S_MEMORY)
            s_vec_push (lost, task);
        else {
            s_set_state (self, task, S_WAITING);
            s_vec_push (rerun, task);
        }
    }
}

//  task runs elsewhere but needs a result that was just lost, which its
//  worker may be fetching from the worker that is gone: that worker drops
//  it (FREE), and it waits for the result to be computed again (what it
//  misses is counted once every lost result is known: into recount).
static void
s_wait_again (cask_graph_t *self, cask_gtask_t *task, s_vec_t *recount)
{
    self->sink.free (self->arg, task->worker->id, s_view (task->key, task->key_len));
    s_unassign (self, task);
    s_set_state (self, task, S_WAITING);
    s_vec_push (recount, task);
}

//  Forgets worker: what it ran is scheduled again, what it held and is
//  still needed is computed again (settled by the caller).
static void
s_worker_drop (cask_graph_t *self, s_worker_t *worker)
{
    for (size_t i = 0; i < self->nworkers; i++)
        if (self->workers [i] == worker) {
            self->workers [i] = self->workers [--self->nworkers];
            break;
        }

    //  Running tasks go back to waiting first: the dependents of the lost
    //  results that were waiting already then count them as missing again,
    //  and the tasks to run again count what they miss afresh.
    s_vec_t lost = { 0 }, orphans = { 0 }, rerun = { 0 }, recount = { 0 };
    s_take_back (self, worker, &lost, &orphans, &rerun);
    for (size_t i = 0; i < lost.size; i++) {
        cask_gtask_t *task = lost.items [i];
        s_lose_result (self, task);
        for (uint32_t j = 0; j < task->ndependents; j++) {
            cask_gtask_t *dependent = task->dependents [j].task;
            if (dependent->state == S_READY)
                s_set_state (self, dependent, S_WAITING);
            if (dependent->state == S_WAITING)
                dependent->nwaiting++;
            else
            if (dependent->state == S_PROCESSING)
                s_wait_again (self, dependent, &recount);
        }
    }
    for (size_t i = 0; i < recount.size; i++)
        s_count_missing (recount.items [i]);
    //  Scattered data cannot be computed again: it fails, and takes down
    //  what waits on it, before anything that was running is placed again
    for (size_t i = 0; i < orphans.size; i++) {
        cask_gtask_t *task = orphans.items [i];
        if (task->state == S_MEMORY)
            worker->nbytes -= task->nbytes;
        s_fail (self, task, s_error_printf (s_view (task->key, task->key_len), s_view ("", 0),
                                            worker->id, "scattered data lost with worker %u",
                                            worker->id));
    }
    for (size_t i = 0; i < lost.size; i++) {
        s_notify_holders (self, lost.items [i]);    //  waiting again
        s_touch (self, lost.items [i]);
    }
    for (size_t i = 0; i < rerun.size; i++) {
        cask_gtask_t *task = rerun.items [i];
        if (task->state != S_WAITING)
            continue;                               //  erred with lost scattered data
        if (!s_wanted (task))
            s_touch (self, task);
        else
        if (s_count_missing (task) == 0)
            s_make_ready (self, task, NULL);
    }
    free (lost.items);
    free (orphans.items);
    free (rerun.items);
    free (recount.items);
    free (worker);
    s_fail_unrunnable_queued (self);
}

void
cask_graph_worker_remove (cask_graph_t *self, uint32_t id)
{
    s_worker_t *worker = s_worker (self, id);
    if (worker) {
        s_worker_drop (self, worker);
        s_settle (self);
    }
}

//  Asks worker to give back task (STEAL).
static void
s_steal (cask_graph_t *self, s_worker_t *worker, cask_gtask_t *task)
{
    task->sched |= S_STEALING;
    worker->stealing++;
    self->steals++;
    self->sink.steal (self->arg, worker->id, s_view (task->key, task->key_len));
}

int
cask_graph_worker_retire (cask_graph_t *self, uint32_t id)
{
    s_worker_t *worker = s_worker (self, id);
    if (!worker || worker->retiring)
        return -1;
    worker->retiring = true;
    for (cask_gtask_t *task = worker->flight.head; task; task = task->next)
        if (!task->scattered && !(task->sched & (S_STEALING | S_STEAL_REFUSED)))
            s_steal (self, worker, task);
    //  Copies on their way to it (from another retiring worker) go elsewhere
    cask_gtask_t *task;
    size_t cursor = 0;
    while ((task = cask_keymap_next (self->tasks, &cursor)))
        if (task->copy_to == worker) {
            s_copy_drop (self, task);
            s_copy_start (self, task);
        }
    s_copy_results (self, worker);
    s_fail_unrunnable_queued (self);
    s_settle (self);
    return 0;
}

void
cask_graph_set_allowed_failures (cask_graph_t *self, unsigned count)
{
    self->allowed_failures = count ? count : 1;
}

//  Appends how to the list of workers task killed.
static void
s_killed_note (cask_gtask_t *task, const char *how)
{
    size_t old = task->killed ? strlen (task->killed) : 0;
    char *text = s_alloc_or_die (realloc (task->killed, old + strlen (how) + 3));
    sprintf (text + old, "%s%s", old ? "; " : "", how);
    task->killed = text;
}

int
cask_graph_killed (cask_graph_t *self, cask_str_t key, const char *how)
{
    cask_gtask_t *task = s_find (self, key);
    if (!task || task->scattered || (task->state != S_WAITING && task->state != S_READY
                                     && task->state != S_PROCESSING))
        return 0;
    s_killed_note (task, how);
    if (++task->kills < self->allowed_failures)
        return 0;
    if (task->state == S_PROCESSING) {
        self->sink.free (self->arg, task->worker->id, key);
        s_unassign (self, task);
    }
    s_fail (self, task, s_error_printf (key, s_function_name (self, task->fn), 0,
                                        "killed %u workers: %s", task->kills, task->killed));
    s_settle (self);
    return 1;
}

int
cask_graph_worker_pause (cask_graph_t *self, uint32_t id, bool paused)
{
    s_worker_t *worker = s_worker (self, id);
    if (!worker)
        return -1;
    worker->paused = paused;
    s_settle (self);            //  resumed: queued tasks go to it
    return 0;
}

size_t
cask_graph_retiring (cask_graph_t *self)
{
    return self->nworkers - s_staying (self);
}

//  Steals from victim's queue for thief, newest first, while the wait
//  there is longer than the move, and longer than thief's own queue.
static void
s_steal_from (cask_graph_t *self, s_worker_t *victim, s_worker_t *thief)
{
    int64_t queued = (int64_t) victim->inflight - victim->nthreads;
    double ahead = victim->occupancy;
    double thief_load = s_load (thief);
    for (cask_gtask_t *task = victim->flight.tail; task && queued > 0; task = task->prev) {
        ahead -= task->estimate;
        queued--;
        if (task->scattered || task->restrictions || (task->sched & S_STEAL_REFUSED))
            continue;
        double wait = ahead / victim->nthreads;
        if (S_STEAL_COST + s_transfer_cost (task, thief) >= wait || thief_load >= wait)
            break;              //  tasks nearer the head wait less
        s_steal (self, victim, task);
        thief_load += task->estimate / thief->nthreads;
    }
}

//  One round of steals at a time: the answers place the tasks, and the
//  next round sees where they went.
void
cask_graph_balance (cask_graph_t *self)
{
    if (self->ready.head || self->steals)
        return;                 //  workers with room take queued tasks first
    s_worker_t *thief = NULL, *victim = NULL;
    for (size_t i = 0; i < self->nworkers; i++) {
        s_worker_t *worker = self->workers [i];
        if (worker->retiring)
            continue;
        if (s_has_room (worker) && (!thief || s_load (worker) < s_load (thief)))
            thief = worker;
        if (worker->inflight > worker->nthreads && (!victim || s_load (worker) > s_load (victim)))
            victim = worker;
    }
    if (thief && victim && thief != victim)
        s_steal_from (self, victim, thief);
}

int
cask_graph_stolen (cask_graph_t *self, uint32_t id, cask_str_t key, bool given_up)
{
    s_worker_t *worker = s_worker (self, id);
    cask_gtask_t *task = s_find (self, key);
    if (!worker || !task || task->state != S_PROCESSING || task->worker != worker
    ||  !(task->sched & S_STEALING))
        return -1;
    if (!given_up) {
        task->sched &= ~S_STEALING;
        task->sched |= S_STEAL_REFUSED;
        worker->stealing--;
        self->steals--;
    }
    else {
        s_unassign (self, task);
        s_set_state (self, task, S_WAITING);
        if (s_count_missing (task) == 0)
            s_make_ready (self, task, worker);
    }
    s_settle (self);
    return 0;
}

//  Resolves the record's dependency keys: all known and none erred gives 0;
//  otherwise *error says why the task cannot run.
static int
s_resolve_deps (cask_graph_t *self, const cask_task_t *rec, s_error_t **error)
{
    cask_rd_t deps = rec->deps;
    for (uint32_t i = 0; i < rec->ndeps; i++) {
        cask_str_t dep_key = cask_get_str8 (&deps);
        cask_gtask_t *dep = s_find (self, dep_key);
        if (!dep) {
            char message [300];
            int len = snprintf (message, sizeof message, "unknown dependency %.*s",
                                (int) dep_key.len, dep_key.ptr);
            *error = s_error_new (rec->key, s_function_name (self, rec->fn), 0, message,
                                  (size_t) len);
            return -1;
        }
        if (dep->error) {
            dep->error->refs++;
            *error = dep->error;
            return -1;
        }
    }
    return 0;
}

static int
s_submit_existing (cask_graph_t *self, uint32_t client, cask_gtask_t *task)
{
    s_hold_add (task, client);
    if (task->state == S_MEMORY || task->state == S_ERRED)
        self->sink.state (self->arg, client, task);
    else
    if (task->state == S_RELEASED)
        s_touch (self, task);
    s_settle (self);
    return 0;
}

static int
s_submit_failed (cask_graph_t *self, uint32_t client, cask_str_t key, uint64_t hash,
                 s_error_t *error)
{
    cask_gtask_t *task = s_task_new (self, key, hash, 0, 0, 0);
    if (!task) {
        s_error_unref (&error);
        return -1;
    }
    s_hold_add (task, client);
    s_fail (self, task, error);
    s_settle (self);
    return 0;
}

//  A key no task may have: it is reported erred to the client instead.
static bool
s_key_malformed (cask_str_t key)
{
    return memchr (key.ptr, 0, key.len) != NULL;
}

static const char s_nul_key [] = "malformed task record: the key holds a NUL byte";

int
cask_graph_submit (cask_graph_t *self, uint32_t client, const cask_task_t *rec,
                   zmq_msg_t *frames)
{
    if (rec->key.len == 0 || rec->key.len > CASK_MAX_KEY)
        return -1;
    if (s_key_malformed (rec->key))
        return cask_graph_submit_erred (self, client, rec->key, s_nul_key);
    uint64_t hash = cask_keymap_hash (self->tasks, rec->key.ptr, rec->key.len);
    cask_gtask_t *task = cask_keymap_lookup_hashed (self->tasks, rec->key.ptr, rec->key.len,
                                                    hash);
    if (task)
        return s_submit_existing (self, client, task);

    if (!s_function (self, rec->fn)) {
        char message [64];
        int len = snprintf (message, sizeof message, "unknown function id %u", rec->fn);
        return s_submit_failed (self, client, rec->key, hash,
                                s_error_new (rec->key, s_view ("", 0), 0, message, (size_t) len));
    }
    s_error_t *error = NULL;
    if (s_resolve_deps (self, rec, &error))
        return s_submit_failed (self, client, rec->key, hash, error);

    s_restrict_t *restrictions = NULL;
    if (rec->restrictions.len && !(restrictions = s_restrict_new (rec->restrictions)))
        return -1;
    task = s_task_new (self, rec->key, hash, rec->ndeps, rec->nframes, (uint32_t) rec->args.len);
    if (!task) {
        free (restrictions);
        return -1;
    }
    task->restrictions = restrictions;
    task->fn = rec->fn;
    task->flags = rec->flags & ~CASK_TASK_RESTRICTED;     //  workers need not know
    task->timeout_ms = rec->timeout_ms;
    task->retries = rec->retries;
    task->priority = rec->priority;
    task->ndeps = rec->ndeps;
    task->nframes = rec->nframes;
    task->args_size = (uint32_t) rec->args.len;
    memcpy (task->args, rec->args.ptr, rec->args.len);
    for (uint32_t i = 0; i < rec->nframes; i++) {
        zmq_msg_init (&task->frames [i]);
        zmq_msg_move (&task->frames [i], &frames [i]);
    }
    cask_rd_t deps = rec->deps;
    for (uint32_t i = 0; i < rec->ndeps; i++) {
        cask_str_t dep_key = cask_get_str8 (&deps);
        s_link (task, i, s_find (self, dep_key));
    }
    s_hold_add (task, client);
    s_set_state (self, task, S_WAITING);
    if (task->nwaiting == 0)
        s_make_ready (self, task, NULL);
    s_settle (self);
    return 0;
}

int
cask_graph_submit_erred (cask_graph_t *self, uint32_t client, cask_str_t key,
                         const char *message)
{
    if (key.len == 0 || key.len > CASK_MAX_KEY)
        return -1;
    uint64_t hash = cask_keymap_hash (self->tasks, key.ptr, key.len);
    cask_gtask_t *task = cask_keymap_lookup_hashed (self->tasks, key.ptr, key.len, hash);
    if (task)
        return s_submit_existing (self, client, task);
    return s_submit_failed (self, client, key, hash,
                            s_error_new (key, s_view ("", 0), 0, message, strlen (message)));
}

int
cask_graph_release (cask_graph_t *self, uint32_t client, cask_str_t key)
{
    cask_gtask_t *task = s_find (self, key);
    s_hold_t *hold = task ? s_hold_find (task, client) : NULL;
    if (!hold)
        return -1;
    s_hold_drop (task, hold, false);
    s_touch (self, task);
    s_settle (self);
    return 0;
}

void
cask_graph_client_gone (cask_graph_t *self, uint32_t client)
{
    cask_gtask_t *task;
    size_t cursor = 0;
    while ((task = cask_keymap_next (self->tasks, &cursor))) {
        s_hold_t *hold = s_hold_find (task, client);
        if (hold) {
            s_hold_drop (task, hold, true);
            s_touch (self, task);
        }
    }
    s_settle (self);
}

//  Runs a failed task again, elsewhere if there is another worker.
static void
s_retry (cask_graph_t *self, cask_gtask_t *task, s_worker_t *failed_on)
{
    task->retries--;
    s_set_state (self, task, S_WAITING);
    s_count_missing (task);
    s_make_ready (self, task, failed_on);
}

//  A copy of task's result was made on worker (or failed): it moves there.
static int
s_copied (cask_graph_t *self, cask_gtask_t *task, s_worker_t *worker, bool ok)
{
    s_worker_t *holder = task->worker;
    holder->copies--;
    worker->incoming -= task->nbytes;
    task->copy_to = NULL;
    if (ok) {
        self->sink.free (self->arg, holder->id, s_view (task->key, task->key_len));
        holder->nbytes -= task->nbytes;
        worker->nbytes += task->nbytes;
        task->worker = worker;
        s_notify_holders (self, task);      //  where to fetch it now
    }
    else
        task->sched |= S_COPY_FAILED;
    s_settle (self);
    return 0;
}

int
cask_graph_done (cask_graph_t *self, uint32_t id, const cask_done_t *rec)
{
    s_worker_t *worker = s_worker (self, id);
    cask_gtask_t *task = s_find (self, rec->key);
    if (worker && task && task->state == S_MEMORY && task->copy_to == worker)
        return s_copied (self, task, worker, rec->ok);
    if (!worker || !task || task->state != S_PROCESSING || task->worker != worker)
        return -1;
    if (self->sink.finished)
        self->sink.finished (self->arg, id, task, rec);
    s_unassign (self, task);
    worker->tasks_done++;
    if (!rec->ok && task->retries > 0 && s_wanted (task))
        s_retry (self, task, worker);
    else
    if (rec->ok) {
        s_function_learn (self, task->fn, rec->duration_us);
        task->type = rec->type;
        task->nbytes = rec->nbytes;
        task->worker = worker;
        worker->nbytes += rec->nbytes;
        s_set_state (self, task, S_MEMORY);
        s_notify_holders (self, task);
        s_drop_fire (self, task);
        for (uint32_t i = 0; i < task->ndependents; i++) {
            cask_gtask_t *dependent = task->dependents [i].task;
            if (dependent->state == S_WAITING && --dependent->nwaiting == 0)
                s_make_ready (self, dependent, NULL);
        }
        s_touch (self, task);
    }
    else
        s_fail (self, task, s_error_new (s_view (task->key, task->key_len),
                                         s_function_name (self, task->fn), id,
                                         rec->message.ptr, rec->message.len));
    s_settle (self);
    return 0;
}

int
cask_graph_cancel (cask_graph_t *self, uint32_t client, cask_str_t key)
{
    cask_gtask_t *task = s_find (self, key);
    if (!task || !s_hold_find (task, client))
        return -1;
    //  Every dependent is visited once: marks of an older walk do not count
    task->mark = ++self->walk;
    s_vec_push (&self->stack, task);
    while ((task = s_vec_pop (&self->stack))) {
        s_hold_t *hold = s_hold_find (task, client);
        if (hold) {
            s_hold_drop (task, hold, true);
            self->sink.cancelled (self->arg, client, s_view (task->key, task->key_len),
                                  "cancelled");
            s_touch (self, task);
        }
        for (uint32_t i = 0; i < task->ndependents; i++) {
            cask_gtask_t *dependent = task->dependents [i].task;
            if (dependent->mark != self->walk) {
                dependent->mark = self->walk;
                s_vec_push (&self->stack, dependent);
            }
        }
    }
    s_settle (self);
    return 0;
}

void
cask_graph_restart (cask_graph_t *self, const char *reason)
{
    cask_gtask_t *task;
    size_t cursor = 0;
    while ((task = cask_keymap_next (self->tasks, &cursor)))
        for (uint32_t i = 0; i < task->nholds; i++)
            if (s_is_client (task->holds [i].client))
                self->sink.cancelled (self->arg, task->holds [i].client,
                                      s_view (task->key, task->key_len), reason);
    s_clear (self);
    self->tasks = cask_keymap_new (s_task_key);
    self->names = cask_keymap_new (s_name_key);
    if (!self->tasks || !self->names)
        s_alloc_or_die (NULL);
    self->peak_tasks = 0;
    memset (self->counts, 0, sizeof self->counts);
    for (size_t i = 0; i < self->nfunctions; i++) {
        s_function_t *function = &self->functions [i];
        memset (function->live, 0, sizeof function->live);
        function->done = function->erred = 0;
    }
    memset (&self->ready, 0, sizeof self->ready);
    memset (&self->restricted, 0, sizeof self->restricted);
    self->steals = 0;
    for (size_t i = 0; i < self->nworkers; i++) {
        s_worker_t *worker = self->workers [i];
        worker->inflight = worker->stealing = worker->copies = 0;
        worker->occupancy = 0;
        worker->nbytes = worker->incoming = 0;
        memset (&worker->flight, 0, sizeof worker->flight);
        for (uint8_t j = 0; j < worker->nsupplies; j++)
            worker->supplies [j].used = 0;
    }
    s_settle (self);            //  retiring workers have nothing left to hand over
}

int
cask_graph_fire (cask_graph_t *self, cask_str_t key)
{
    cask_gtask_t *task = s_find (self, key);
    if (!task)
        return -1;
    if (task->state != S_MEMORY && task->state != S_ERRED) {
        s_hold_add (task, CASK_GRAPH_FIRE);
        s_touch (self, task);
        s_settle (self);
    }
    return 0;
}

int
cask_graph_scatter (cask_graph_t *self, uint32_t client, cask_str_t key, uint32_t id)
{
    if (key.len == 0 || key.len > CASK_MAX_KEY)
        return -1;
    if (s_key_malformed (key))
        return cask_graph_submit_erred (self, client, key, s_nul_key);
    uint64_t hash = cask_keymap_hash (self->tasks, key.ptr, key.len);
    cask_gtask_t *task = cask_keymap_lookup_hashed (self->tasks, key.ptr, key.len, hash);
    s_worker_t *worker = s_worker (self, id);
    //  Scattered data released is uploaded anew rather than failed
    bool upload_again = task && task->scattered && task->state == S_RELEASED && worker;
    if (task && !upload_again)
        return s_submit_existing (self, client, task);
    if (!worker)
        return s_submit_failed (self, client, key, hash,
                                s_error_printf (key, s_view ("", 0), 0, "no worker %u", id));
    if (!task)
        task = s_task_new (self, key, hash, 0, 0, 0);
    if (!task)
        return -1;
    task->scattered = true;
    s_hold_add (task, client);
    s_set_state (self, task, S_PROCESSING);
    s_assign (self, task, worker);
    s_settle (self);
    return 0;
}

int
cask_graph_publish (cask_graph_t *self, cask_str_t name, cask_str_t key)
{
    cask_gtask_t *task = s_find (self, key);
    if (!task || name.len > CASK_MAX_KEY)
        return CASK_ERR_NOT_FOUND;
    if (cask_keymap_lookup (self->names, name.ptr, name.len))
        return CASK_ERR_EXISTS;
    s_name_t *entry = s_alloc_or_die (malloc (sizeof (s_name_t)));
    entry->task = task;
    entry->name_len = name.len;
    memcpy (entry->name, name.ptr, name.len);
    if (cask_keymap_insert (self->names, entry))
        s_alloc_or_die (NULL);
    s_hold_add (task, CASK_GRAPH_PUBLISHED);
    s_touch (self, task);
    s_settle (self);
    return 0;
}

cask_str_t
cask_graph_lookup (cask_graph_t *self, uint32_t client, cask_str_t name)
{
    s_name_t *entry = cask_keymap_lookup (self->names, name.ptr, name.len);
    if (!entry)
        return s_view ("", 0);
    s_hold_add (entry->task, client);
    self->sink.state (self->arg, client, entry->task);
    return s_view (entry->task->key, entry->task->key_len);
}

int
cask_graph_unpublish (cask_graph_t *self, cask_str_t name)
{
    s_name_t *entry = cask_keymap_remove (self->names, name.ptr, name.len);
    if (!entry)
        return CASK_ERR_NOT_FOUND;
    cask_gtask_t *task = entry->task;
    free (entry);
    s_hold_drop (task, s_hold_find (task, CASK_GRAPH_PUBLISHED), false);
    s_touch (self, task);
    s_settle (self);
    return 0;
}

const cask_gtask_t *
cask_graph_find (cask_graph_t *self, cask_str_t key)
{
    return s_find (self, key);
}

void
cask_graph_counts (cask_graph_t *self, cask_graph_counts_t *counts)
{
    counts->waiting = self->counts [S_WAITING] + self->counts [S_READY];
    counts->processing = self->counts [S_PROCESSING];
    counts->memory = self->counts [S_MEMORY];
    counts->erred = self->counts [S_ERRED];
    counts->released = self->counts [S_RELEASED];
    counts->total = cask_keymap_size (self->tasks);
}

int
cask_graph_worker_load (cask_graph_t *self, uint32_t id, uint32_t *inflight,
                        uint64_t *tasks_done, uint64_t *nbytes)
{
    s_worker_t *worker = s_worker (self, id);
    if (!worker)
        return -1;
    *inflight = worker->inflight;
    *tasks_done = worker->tasks_done;
    *nbytes = worker->nbytes;
    return 0;
}

//  What is wrong with one settled task, or NULL.
static const char *
s_verify_task (cask_graph_t *self, cask_gtask_t *task, size_t *published)
{
    uint32_t needers = 0;
    for (uint32_t i = 0; i < task->ndependents; i++) {
        s_dependent_t link = task->dependents [i];
        if (link.task->deps [link.slot].task != task || link.task->deps [link.slot].pos != i)
            return "dependent link does not point back";
        needers += s_holds_needs (link.task->state);
    }
    if (needers != task->nneeded)
        return "nneeded is not the number of waiting/processing dependents";
    if (task->state == S_WAITING && (task->nwaiting == 0 || task->nwaiting != s_count_missing (task)))
        return "a waiting task miscounts its missing dependencies";
    if (task->state == S_READY && s_count_missing (task) != 0)
        return "a queued task is not ready";
    if (task->sched && task->state != S_PROCESSING && task->sched != S_COPY_FAILED)
        return "a task that is not processing is being stolen";
    if (task->copy_to && (task->state != S_MEMORY || !task->worker->retiring
                          || task->copy_to->retiring))
        return "a copy is made of what is not a result of a retiring worker, or to one";
    if ((task->state == S_PROCESSING || task->state == S_MEMORY) != (task->worker != NULL))
        return "a task has a worker and is not processing or in memory, or the reverse";
    if (task->worker && s_worker (self, task->worker->id) != task->worker)
        return "a task refers to a worker that left";
    if ((task->state == S_ERRED) != (task->error != NULL))
        return "error set on a task that is not erred, or the reverse";
    if (task->state == S_MEMORY && !s_wanted (task))
        return "a result nobody wants is kept";
    if (task->state == S_RELEASED && s_wanted (task))
        return "a wanted task is not being computed";
    if (!s_wanted (task) && task->ndependents == 0 && task->state != S_PROCESSING)
        return "a task nothing refers to is not forgotten";
    if (task->touched)
        return "a task is left unsettled";
    if (s_hold_find (task, CASK_GRAPH_FIRE)
    &&  (task->state == S_MEMORY || task->state == S_ERRED))
        return "a finished task is still held for fire-and-forget";
    if (task->scattered && task->ndeps > 0)
        return "a scattered task has dependencies";
    if (s_hold_find (task, CASK_GRAPH_PUBLISHED))
        *published += s_hold_find (task, CASK_GRAPH_PUBLISHED)->count;
    return NULL;
}

//  What is wrong with a worker's load, or NULL.
static const char *
s_verify_worker (cask_graph_t *self, s_worker_t *worker)
{
    uint32_t inflight = 0, listed = 0, stealing = 0, copies = 0;
    uint64_t nbytes = 0;
    cask_gtask_t *task;
    for (size_t cursor = 0; (task = cask_keymap_next (self->tasks, &cursor)); ) {
        if (task->worker == worker) {
            inflight += task->state == S_PROCESSING;
            nbytes += task->state == S_MEMORY ? task->nbytes : 0;
            stealing += (task->sched & S_STEALING) != 0;
            copies += task->copy_to != NULL;
        }
    }
    for (task = worker->flight.head; task; task = task->next)
        listed += task->worker == worker && task->state == S_PROCESSING;
    if (inflight != worker->inflight || listed != inflight || nbytes != worker->nbytes)
        return "a worker's load is not that of its tasks";
    if (stealing != worker->stealing || copies != worker->copies)
        return "a worker's steals or copies are miscounted";
    if (worker->occupancy < -1e-6 || (inflight == 0 && worker->occupancy != 0))
        return "a worker's occupancy is wrong";
    return NULL;
}

const char *
cask_graph_verify (cask_graph_t *self)
{
    size_t counts [S_NSTATES] = { 0 };
    size_t ntasks = 0, published = 0, live = 0;
    cask_gtask_t *task;
    size_t cursor = 0;
    while ((task = cask_keymap_next (self->tasks, &cursor))) {
        live += task->state < S_NLIVE && !task->scattered && s_function (self, task->fn);
        if (s_find (self, s_view (task->key, task->key_len)) != task)
            return "a task cannot be found by its key";
        const char *wrong = s_verify_task (self, task, &published);
        if (wrong)
            return wrong;
        counts [task->state]++;
        ntasks++;
    }
    if (ntasks != cask_keymap_size (self->tasks)
    ||  memcmp (counts, self->counts, sizeof counts) != 0)
        return "counts by state are wrong";
    for (size_t i = 0; i < self->nfunctions; i++)
        for (int state = 0; state < S_NLIVE; state++)
            live -= self->functions [i].live [state];
    if (live != 0)
        return "the progress counts by function are wrong";
    size_t queued = 0;
    for (task = self->ready.head; task; task = task->next)
        queued += !task->restrictions;
    for (task = self->restricted.head; task; task = task->next)
        queued += task->restrictions != NULL;
    if (queued != counts [S_READY])
        return "the ready queues are not the ready tasks";
    bool room;
    if (self->ready.head && s_place (self, self->ready.head, NULL, &room) && room)
        return "a task is queued while a worker has room for it";
    if (published != cask_keymap_size (self->names))
        return "holds of published names are not the names";
    s_name_t *name;
    for (cursor = 0; (name = cask_keymap_next (self->names, &cursor)); )
        if (s_find (self, s_view (name->task->key, name->task->key_len)) != name->task)
            return "a published name refers to a forgotten task";
    uint32_t steals = 0;
    for (size_t w = 0; w < self->nworkers; w++) {
        const char *wrong = s_verify_worker (self, self->workers [w]);
        if (wrong)
            return wrong;
        steals += self->workers [w]->stealing;
    }
    return steals == self->steals ? NULL : "the steals asked are not those of the workers";
}

void
cask_gtask_record (const cask_gtask_t *self, cask_task_t *rec)
{
    memset (rec, 0, sizeof (cask_task_t));
    rec->key = s_view (self->key, self->key_len);
    rec->fn = self->fn;
    rec->flags = self->flags;
    rec->retries = self->retries;
    rec->priority = self->priority;
    rec->timeout_ms = self->timeout_ms;
    rec->ndeps = self->ndeps;
    rec->nframes = self->nframes;
    rec->args = s_view ((const char *) self->args, self->args_size);
}

cask_str_t
cask_gtask_dep_key (const cask_gtask_t *self, uint32_t index)
{
    assert (index < self->ndeps);
    const cask_gtask_t *dep = self->deps [index].task;
    return s_view (dep->key, dep->key_len);
}

cask_str_t
cask_gtask_dep_holder (const cask_gtask_t *self, uint32_t index, uint32_t worker)
{
    assert (index < self->ndeps);
    const s_worker_t *holder = self->deps [index].task->worker;
    if (!holder || holder->id == worker)
        return s_view ("", 0);
    return s_view (holder->endpoint, holder->endpoint_len);
}

zmq_msg_t *
cask_gtask_frames (const cask_gtask_t *self)
{
    return self->frames;
}

void
cask_gtask_state (const cask_gtask_t *self, cask_state_rec_t *rec)
{
    static const uint8_t wire [S_NSTATES] = {
        [S_WAITING] = CASK_STATE_WAITING, [S_READY] = CASK_STATE_WAITING,
        [S_PROCESSING] = CASK_STATE_PROCESSING, [S_MEMORY] = CASK_STATE_MEMORY,
        [S_ERRED] = CASK_STATE_ERRED, [S_RELEASED] = CASK_STATE_WAITING
    };
    memset (rec, 0, sizeof (cask_state_rec_t));
    rec->key = s_view (self->key, self->key_len);
    rec->state = wire [self->state];
    rec->worker = self->worker ? self->worker->id : 0;
    if (self->state == S_MEMORY) {
        rec->type = self->type;
        rec->nbytes = self->nbytes;
    }
    if (self->error) {
        rec->worker = self->error->worker;
        rec->cause = self->error->cause;
        rec->function = self->error->function;
        rec->message = self->error->message;
    }
}

uint32_t
cask_gtask_holds (const cask_gtask_t *self)
{
    uint32_t total = 0;
    for (uint32_t i = 0; i < self->nholds; i++)
        total += self->holds [i].count;
    return total;
}

void
cask_graph_progress (cask_graph_t *self, cask_graph_progress_fn *fn, void *arg)
{
    for (size_t i = 0; i < self->nfunctions; i++) {
        const s_function_t *function = &self->functions [i];
        cask_graph_progress_t progress = {
            s_view (function->name, function->name_len),
            function->live [S_WAITING] + function->live [S_READY],
            function->live [S_PROCESSING], function->done, function->erred
        };
        if (function->name
        &&  (progress.waiting || progress.processing || progress.done || progress.erred))
            fn (arg, &progress);
    }
}

void
cask_graph_each (cask_graph_t *self, cask_graph_visit_fn *fn, void *arg)
{
    cask_gtask_t *task;
    size_t cursor = 0;
    while ((task = cask_keymap_next (self->tasks, &cursor)))
        if (!fn (arg, task))
            break;
}

cask_str_t
cask_graph_function_name (cask_graph_t *self, uint32_t id)
{
    return s_function_name (self, id);
}

const char *
cask_gtask_state_name (const cask_gtask_t *self)
{
    static const char *names [S_NSTATES] = {
        [S_WAITING] = "waiting", [S_READY] = "waiting", [S_PROCESSING] = "processing",
        [S_MEMORY] = "memory", [S_ERRED] = "erred", [S_RELEASED] = "released"
    };
    return names [self->state];
}

cask_str_t
cask_gtask_key (const cask_gtask_t *self)
{
    return s_view (self->key, self->key_len);
}

uint32_t
cask_gtask_fn (const cask_gtask_t *self)
{
    return self->scattered ? 0 : self->fn;
}

uint32_t
cask_gtask_ndeps (const cask_gtask_t *self)
{
    return self->ndeps;
}

const cask_gtask_t *
cask_gtask_dep (const cask_gtask_t *self, uint32_t index)
{
    return self->deps [index].task;
}
