/*  cask_graph.h - the broker's task graph: pure scheduling logic, no sockets.

    The graph holds every task the broker knows, keyed by its key: the
    function and arguments to run it (payload frames kept by reference, so
    forwarding them to a worker copies nothing), its dependencies and
    dependents, its state, the worker that runs or holds it, and the clients
    holding it. It decides when a task is ready, which worker runs it (data
    locality first, then load), what a failure takes down with it, and when
    a result is no longer needed.

    It speaks only through a sink: "send task T to worker W", "tell client C
    the state of T", "tell worker W to free key K". The broker turns these
    into batched messages; the unit tests record them.

    Lifecycle of a task: waiting (some dependency not in memory) -> ready
    (queued in the broker until a worker has room) -> processing (sent to a
    worker) -> memory | erred. A task
    nobody needs any more is released (its result freed on its worker) and
    forgotten once no other task refers to it. A task keeps a need on each of
    its dependencies while it is waiting or processing.

    Holders are clients (ids from 1), plus two holders that are not clients
    and are never told anything: CASK_GRAPH_FIRE holds fire-and-forget tasks
    until they finish, and CASK_GRAPH_PUBLISHED holds a task once per name
    it is published under. A scattered task has no function: it is
    processing on the worker the client uploads it to until that worker's
    DONE, and is erred when that worker is lost, for it cannot be computed.

    Scheduling. A worker has room while it runs fewer tasks than it has
    threads, or while the work queued on it (the functions' measured mean
    durations) is under a couple of milliseconds per thread: enough that it
    never waits for the broker between fast tasks, little enough that slow
    tasks stay in the broker's queue, where any worker that frees up or
    joins can take them. Placement is data locality first, then load: the
    worker where a task would start soonest (bytes to fetch, then the queue
    to drain). A worker that is idle while another has tasks queued takes
    some over (work stealing, STEAL) when the move costs less than the wait.

    Restrictions: a task may be restricted to named workers and need
    resources that workers declare; a worker runs it only while what its
    running tasks use leaves room. A task no connected worker could ever
    run is erred at once.

    Retiring a worker (scale down): it gets no new task, its queued tasks
    are stolen back, its running tasks finish, and each result there that
    is still wanted is copied to a worker that stays (COPY); then the graph
    tells the sink it retired and forgets it.
*/
#ifndef CASK_GRAPH_H_INCLUDED
#define CASK_GRAPH_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>
#include "cask_proto.h"

//  Holders that are not clients (client ids start from 1).
#define CASK_GRAPH_FIRE 0
#define CASK_GRAPH_PUBLISHED UINT32_MAX

typedef struct _cask_graph_t cask_graph_t;
//  A task as the sink sees it: borrowed, valid during the callback.
typedef struct _cask_gtask_t cask_gtask_t;

//  What the graph asks its owner to do.
typedef struct {
    //  Send task to worker; it is processing there from now on.
    void (*dispatch) (void *arg, uint32_t worker, const cask_gtask_t *task);
    //  Tell client, a holder of task, its state (memory, erred, or waiting
    //  again because the worker holding its result was lost).
    void (*state) (void *arg, uint32_t client, const cask_gtask_t *task);
    //  Tell worker to drop its result of key.
    void (*free) (void *arg, uint32_t worker, cask_str_t key);
    //  Tell client it holds key no more: cancelled, for the reason message.
    void (*cancelled) (void *arg, uint32_t client, cask_str_t key, const char *message);
    //  Ask worker to give key back if it has not started it (STEAL).
    void (*steal) (void *arg, uint32_t worker, cask_str_t key);
    //  Ask worker to copy key from the worker at holder (COPY).
    void (*copy) (void *arg, uint32_t worker, cask_str_t key, cask_str_t holder);
    //  worker, retiring, has handed over all it must: the graph has
    //  forgotten it (and calls nothing else about it).
    void (*retired) (void *arg, uint32_t worker);
    //  Optional (NULL: not called): task, processing on worker, finished
    //  or failed as rec says, before the graph acts on it (the task
    //  stream's record).
    void (*finished) (void *arg, uint32_t worker, const cask_gtask_t *task,
                      const cask_done_t *rec);
} cask_graph_sink_t;

//  Counts of tasks, as cask_graph_counts fills them.
typedef struct {
    size_t waiting;             //  waiting for dependencies, or for a worker
    size_t processing;
    size_t memory;
    size_t erred;
    size_t released;            //  result dropped, kept for its dependents
    size_t total;
} cask_graph_counts_t;

//  Creates an empty graph that reports to sink (copied) with arg.
cask_graph_t *cask_graph_new (const cask_graph_sink_t *sink, void *arg);
//  Frees the graph and every task; safe on NULL and twice.
void cask_graph_destroy (cask_graph_t **self_p);

//  Makes function id known under name (for error causes). 0 or -1.
int cask_graph_function_add (cask_graph_t *self, uint32_t id, cask_str_t name);

//  A worker joined, as its HELLO describes it (endpoint, name, nthreads,
//  resources; more than 64 distinct resource names in the cluster are
//  refused): queued tasks go out to it now. 0 or -1.
int cask_graph_worker_add (cask_graph_t *self, uint32_t id, const cask_hello_t *hello);
//  A worker left: its running tasks are scheduled again, its results that
//  are still needed are computed again, the rest are forgotten.
void cask_graph_worker_remove (cask_graph_t *self, uint32_t id);
//  A worker died while it ran key (how: "worker 3 (w0): signal 11 ..."):
//  a task not finished yet counts one more kill, and fails once it has
//  killed allowed_failures workers, with a message that lists them.
//  Returns 1 when it failed now, else 0.
int cask_graph_killed (cask_graph_t *self, cask_str_t key, const char *how);
//  Kills a task may cause before it fails (default 3, at least 1).
void cask_graph_set_allowed_failures (cask_graph_t *self, unsigned count);
//  Starts retiring worker (see the top of this file); the sink's retired
//  says when it is done. -1 when there is no such worker or it retires
//  already.
int cask_graph_worker_retire (cask_graph_t *self, uint32_t id);
//  A worker pauses (its memory is nearly full: no new task for it) or
//  resumes. -1 when there is no such worker.
int cask_graph_worker_pause (cask_graph_t *self, uint32_t id, bool paused);
//  Workers that retire (not yet retired).
size_t cask_graph_retiring (cask_graph_t *self);
//  Steals queued tasks from busy workers for idle ones, when the move is
//  cheaper than the wait. Cheap when nothing is idle; call it once per
//  batch of events.
void cask_graph_balance (cask_graph_t *self);
//  A worker answers a steal of key (STOLEN): given up, the task is placed
//  again; kept, it runs there and is never asked for again. -1 when key
//  was not being stolen from that worker (the answer is ignored).
int cask_graph_stolen (cask_graph_t *self, uint32_t worker, cask_str_t key, bool given_up);

//  A client submits a task record (SUBMIT). frames are the record's
//  rec->nframes payload frames; a new task takes them (moved), an existing
//  key leaves them. An existing key gains client as a holder (the state is
//  told at once if the task is in memory or erred). A new task with an
//  unknown function or dependency, or an erred dependency, is erred at once.
//  Returns 0, or -1 when the key is empty or memory ran out.
int cask_graph_submit (cask_graph_t *self, uint32_t client,
                       const cask_task_t *rec, zmq_msg_t *frames);
//  A client submits key, but its record could not be read: the task is
//  erred with message (or, if the key exists, client simply holds it).
int cask_graph_submit_erred (cask_graph_t *self, uint32_t client, cask_str_t key,
                             const char *message);
//  A client holds key once less. -1 when it did not hold it.
int cask_graph_release (cask_graph_t *self, uint32_t client, cask_str_t key);
//  A client left: it holds nothing any more.
void cask_graph_client_gone (cask_graph_t *self, uint32_t client);
//  A worker reports a task finished (DONE record), or a copy made (COPY).
//  -1 when the key is not processing or being copied on that worker (the
//  report is ignored). A failed task with retries left is sent again (to
//  another worker if there is one).
int cask_graph_done (cask_graph_t *self, uint32_t worker, const cask_done_t *rec);

//  A client cancels key (CANCEL): its holds on key and on every task that
//  depends on key, transitively, which it holds, are dropped, and it is
//  told cancelled for each. -1 when it did not hold key.
int cask_graph_cancel (cask_graph_t *self, uint32_t client, cask_str_t key);
//  Forgets every task and published name; every holder is told cancelled
//  with reason. Workers are expected to drop everything (RESTART).
void cask_graph_restart (cask_graph_t *self, const char *reason);
//  Fire and forget: key runs to the end even if nobody holds it, and is
//  forgotten then if nobody does. -1 when the key is unknown.
int cask_graph_fire (cask_graph_t *self, cask_str_t key);
//  A client uploads key to worker (SCATTER): a new task, processing there
//  until its DONE; an existing key just gains client as a holder. An
//  unknown worker makes the task erred. -1 when key is not a valid key.
int cask_graph_scatter (cask_graph_t *self, uint32_t client, cask_str_t key,
                        uint32_t worker);
//  Publishes key under name. Returns 0, CASK_ERR_NOT_FOUND (no such key)
//  or CASK_ERR_EXISTS (name in use).
int cask_graph_publish (cask_graph_t *self, cask_str_t name, cask_str_t key);
//  The key published under name (empty when none); client then holds it
//  and is told its state.
cask_str_t cask_graph_lookup (cask_graph_t *self, uint32_t client, cask_str_t name);
//  Drops name. Returns 0 or CASK_ERR_NOT_FOUND.
int cask_graph_unpublish (cask_graph_t *self, cask_str_t name);

//  The task of key, or NULL.
const cask_gtask_t *cask_graph_find (cask_graph_t *self, cask_str_t key);
void cask_graph_counts (cask_graph_t *self, cask_graph_counts_t *counts);
//  Tasks in flight on worker, tasks it finished and bytes of results it
//  holds; -1 if no such worker (or it retired).
int cask_graph_worker_load (cask_graph_t *self, uint32_t id, uint32_t *inflight,
                            uint64_t *tasks_done, uint64_t *nbytes);

//  Progress of one function's tasks (cask_graph_progress).
typedef struct {
    cask_str_t name;
    uint32_t waiting;           //  now waiting for dependencies or a worker
    uint32_t processing;        //  now on workers
    uint64_t done;              //  finished since the graph began (or restarted)
    uint64_t erred;             //  failed since then
} cask_graph_progress_t;
typedef void (cask_graph_progress_fn) (void *arg, const cask_graph_progress_t *progress);
//  Calls fn with the progress of each function that has had tasks, in id
//  order. The counts are kept as tasks change state: this costs no walk.
void cask_graph_progress (cask_graph_t *self, cask_graph_progress_fn *fn, void *arg);
//  Calls fn with every task, in no order, until it returns false. The
//  graph must not change during the walk.
typedef bool (cask_graph_visit_fn) (void *arg, const cask_gtask_t *task);
void cask_graph_each (cask_graph_t *self, cask_graph_visit_fn *fn, void *arg);
//  Name of function id (empty when unknown), a view into the graph.
cask_str_t cask_graph_function_name (cask_graph_t *self, uint32_t id);

//  Checks the graph's invariants (needs, waiting counts, links, states,
//  loads). Returns NULL when all hold, else what is wrong. For tests.
const char *cask_graph_verify (cask_graph_t *self);

//  Task accessors, for sinks and tests.
//  Fills rec with the task's head: key, fn, flags, retries left, priority, ndeps, nframes
//  and args (rec->deps is left empty: use cask_gtask_dep_key).
void cask_gtask_record (const cask_gtask_t *self, cask_task_t *rec);
cask_str_t cask_gtask_dep_key (const cask_gtask_t *self, uint32_t index);
//  Peer endpoint of the worker holding dependency index, or empty when that
//  is worker itself.
cask_str_t cask_gtask_dep_holder (const cask_gtask_t *self, uint32_t index,
                                  uint32_t worker);
//  The task's payload frames (nframes of them), to be zmq_msg_copy'd.
zmq_msg_t *cask_gtask_frames (const cask_gtask_t *self);
//  Fills rec as the STATE record for this task (views into the task).
void cask_gtask_state (const cask_gtask_t *self, cask_state_rec_t *rec);
//  Total holds of all clients on the task.
uint32_t cask_gtask_holds (const cask_gtask_t *self);
//  "waiting" (for dependencies or a worker), "processing", "memory",
//  "erred" or "released".
const char *cask_gtask_state_name (const cask_gtask_t *self);
cask_str_t cask_gtask_key (const cask_gtask_t *self);
//  Function id; 0 for scattered data.
uint32_t cask_gtask_fn (const cask_gtask_t *self);
uint32_t cask_gtask_ndeps (const cask_gtask_t *self);
const cask_gtask_t *cask_gtask_dep (const cask_gtask_t *self, uint32_t index);

#endif
