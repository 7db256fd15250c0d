/*  cask_client.h - the client: submit work to a cask cluster, get futures.

    A client connects to a broker, registers task libraries, and submits
    functions by name. Submitting returns a future at once; futures can be
    arguments of later submits, which builds a graph the cluster runs as
    soon as the inputs are ready. Results stay on the workers until asked
    for; asking fetches them straight from the worker that holds them.

    A client and its futures belong to one thread at a time (use a client
    per thread, or lock around it). Blocking calls take a timeout in
    milliseconds: -1 waits for ever, 0 does not wait.

    Errors: calls return NULL or -1 and cask_client_error() says why.
*/
#ifndef CASK_CLIENT_H_INCLUDED
#define CASK_CLIENT_H_INCLUDED

#include "cask/cask_value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct _cask_client_t cask_client_t;
typedef struct _cask_future_t cask_future_t;

typedef enum {
    CASK_PENDING = 0,           //  waiting or running
    CASK_FINISHED = 1,          //  result in memory on a worker
    CASK_ERROR = 2,             //  the task or a dependency failed
    CASK_CANCELLED = 3          //  cancelled, or lost with its client
} cask_status_t;

//  Name of a status ("pending", "finished", "error", "cancelled").
const char *cask_status_name (cask_status_t status);

//  Connects to the broker at address ("tcp://host:port" or "host:port")
//  and waits up to timeout_ms for its welcome. NULL address means
//  $CASK_BROKER; when that is unset too, starts a local cluster of the
//  default size instead (cask_client_new_local (0, 0, timeout_ms)), as
//  Dask's Client() does. With $CASK_CURVE_CERT set (and a broker address),
//  connects as cask_client_new_secure does, with $CASK_CURVE_CERT,
//  $CASK_CURVE_BROKER_KEY and $CASK_CURVE_WORKERS_KEY. Returns the client,
//  or NULL (cask_client_last_error says why).
cask_client_t *cask_client_new (const char *address, int timeout_ms);
//  Connects to a cluster that uses CurveZMQ (cask-broker --curve-cert):
//  all traffic, to the broker and to the workers, is encrypted, and the
//  broker and the workers let in only the keys they allow. cert is this
//  client's certificate as cask-keygen makes it (cert holds the public key,
//  cert_secret beside it the secret one); broker_key the broker's public
//  key and workers_key the one that every worker of the cluster shares
//  (cask-worker --curve-cert), each as its certificate file (the public
//  one is enough) or its 40 characters of Z85 text; workers_key NULL means
//  broker_key (a cluster whose broker and workers share one pair). NULL
//  address means $CASK_BROKER. Returns the client, or NULL when a key
//  cannot be read or the broker does not welcome it within timeout_ms:
//  cask_client_last_error says which, and says when the broker refused
//  this client's key ("the server refused this CURVE key ...: it is not
//  among the keys the server allows").
cask_client_t *cask_client_new_secure (const char *address, const char *cert,
                                       const char *broker_key, const char *workers_key,
                                       int timeout_ms);
//  Starts a local cluster and connects to it: cask-broker on a free
//  loopback port and nworkers cask-worker processes of nthreads threads
//  each, all child processes of the caller, logging into a fresh temp dir
//  (under $TMPDIR, else /tmp) that also holds the workers' dirs. 0 means
//  the default (Dask's): up to 4 cores, a worker of 1 thread per core;
//  above, as many workers as the smallest divisor of the core count that
//  is at least its square root, their threads covering the cores; one of
//  the two given, the other covers the cores (at least 1).
//  The binaries are $CASK_BROKER_BIN and $CASK_WORKER_BIN, else
//  cask-broker and cask-worker in $CASK_BIN_DIR, else in the install
//  bindir, else on $PATH.
//  Returns when the broker is bound, the client connected and every worker
//  joined, all within timeout_ms (-1: no limit); else returns NULL, with
//  every process it started stopped and its temp dir removed
//  (cask_client_last_error says why: a missing binary, a process that
//  died with the last line of its log, a timeout).
//  cask_client_destroy stops the cluster (workers, then broker: SIGTERM, a
//  few seconds' grace, SIGKILL) and removes the temp dir. The processes
//  also die when the process that started them dies, even by SIGKILL; and,
//  as the kernel ties this to a thread (PR_SET_PDEATHSIG), when the thread
//  that called this function exits: start it from a thread that outlives
//  the client. Children are reaped by pid, never by waiting for any child.
cask_client_t *cask_client_new_local (size_t nworkers, int nthreads, int timeout_ms);
//  Says goodbye (the broker releases this client's tasks), closes sockets,
//  destroys any futures still held, stops the local cluster the client
//  started (if it did) and nulls *self_p. Safe twice.
void cask_client_destroy (cask_client_t **self_p);
//  Why the last call on this client failed; never NULL.
const char *cask_client_error (cask_client_t *self);
//  Why the last cask_client_new failed (per thread); never NULL.
const char *cask_client_last_error (void);
//  The broker's address (for a local cluster, its "tcp://127.0.0.1:PORT",
//  usable by other clients while this one lives).
const char *cask_client_address (cask_client_t *self);

//  Number of workers the broker has announced.
size_t cask_client_nworkers (cask_client_t *self);
//  Blocks until the cluster has at least n workers or timeout_ms passes.
//  Returns 0 or -1.
int cask_client_wait_for_workers (cask_client_t *self, size_t n, int timeout_ms);

//  Retires the workers whose ids (cask_cluster_worker_t.id) are ids[0..n),
//  gracefully, like Dask's retire_workers: they get no new task, their
//  queued tasks go elsewhere, their running ones finish, and the results
//  they hold that are still needed are copied to workers that stay before
//  they leave; no future is lost. When no worker stays, their results are
//  lost and computed again when workers join. Ids the broker does not know
//  are skipped; n 0 does nothing. Blocks until the broker says the workers
//  have left (RETIRED), or timeout_ms passes (they may still leave later).
//  For a local cluster (cask_client_new_local), the retired worker
//  processes are then reaped (SIGKILL after a few seconds for any that did
//  not exit). Returns 0 or -1.
int cask_client_retire_workers (cask_client_t *self, const uint32_t *ids, size_t n,
                                int timeout_ms);
//  Makes the cluster nworkers workers strong, counting the workers the
//  broker has announced (cask_client_nworkers), like Dask's
//  cluster.scale(n). Down: retires the workers it takes, those holding the
//  fewest result bytes first, as cask_client_retire_workers does (0 is
//  allowed: results then cannot move and are computed again when workers
//  join). Up: only for a local cluster this client started; it starts the
//  missing cask-worker processes alike (threads, memory limit, logs), as
//  children of the calling thread (PR_SET_PDEATHSIG: start it from a
//  thread that outlives the client), and waits until the broker has
//  announced nworkers workers. For a cluster it did not start, scaling up
//  fails: start workers with scripts/cask-cluster add (or cask-ssh-workers).
//  nworkers equal to the count: returns 0 at once. Blocks up to timeout_ms
//  (-1: no limit) in all, plus a few seconds of grace for retired local
//  workers to exit. Returns 0, or -1 (timeout, a local worker that died,
//  a refusal by the broker: cask_client_error says which).
int cask_client_scale (cask_client_t *self, size_t nworkers, int timeout_ms);

//  Uploads the task library at path (a .so built against cask_task.h) to
//  the cluster; its functions can be submitted as soon as this returns.
//  Blocks until the broker confirms or timeout_ms. Fails with a clear
//  message if the file is not a loadable shared object or exports no
//  cask_exports table. Returns 0 or -1.
int cask_client_register (cask_client_t *self, const char *path, int timeout_ms);
//  True when function name is known to the cluster.
bool cask_client_has_function (cask_client_t *self, const char *name);

//  Submits fn with the arguments that follow, ending at NULL. Each argument
//  is a value (cask_int64 (1), cask_list (...)), or a future
//  (cask_future_arg (f)), or a list holding futures; ownership of each is
//  taken. Returns at once with a new future the caller owns, or NULL (an
//  unknown function, a bad argument, a lost connection).
cask_future_t *cask_submit (cask_client_t *self, const char *fn, ...);
//  The same with an array of nargs arguments (ownership of each taken).
cask_future_t *cask_submitv (cask_client_t *self, const char *fn,
                             cask_value_t **args, size_t nargs);
//  A value that stands for future f as an argument of a submit. f must
//  stay alive until the submit that takes it returns.
cask_value_t *cask_future_arg (cask_future_t *f);

//  Submits fn once for each item of inputs (a list value of plain values
//  or cask_future_arg references), as fn(item), in one message. Takes
//  ownership of inputs. Fills futures[0..n) with new futures, n being
//  cask_value_size (inputs). Returns 0 or -1 (then no future was made).
int cask_map (cask_client_t *self, const char *fn, cask_value_t *inputs,
              cask_future_t **futures);

//  Blocks until every future is finished, erred or cancelled, fetches the
//  finished results from their workers, or timeout_ms passes. Returns 0
//  when all finished, -1 otherwise (cask_client_error names the first
//  future that did not).
int cask_gather (cask_client_t *self, cask_future_t **futures, size_t n,
                 int timeout_ms);

//  Options of a submit. Zero-initialised (CASK_SUBMIT_DEFAULT) means: a key
//  derived from function and arguments, so equal submits share one task
//  (Dask's pure=True); no retries; priority 0; any worker.
//
//  Restrictions, as Dask's workers= and resources=: a task runs only on one
//  of the workers named in `workers`, and only on a worker that declares
//  every resource in `resources` (cask-worker --resources GPU=2), while the
//  tasks running there leave room for its amounts. `workers` is a
//  comma-separated list of worker names (cask-worker --name) or peer
//  endpoints, "w1,tcp://10.0.0.5:40001"; `resources` a comma-separated list
//  of NAME=AMOUNT, "GPU=1" or "GPU=1,MEM=2e9". Blanks around items are
//  ignored; NULL or "" means no restriction. At most 16 (CASK_MAX_RESOURCES)
//  entries in each, each name 1 to 255 bytes, each resource named once,
//  each amount a positive finite number (at most 1e300). A task no
//  connected worker could ever run is erred by the broker (its message says
//  what it asked for). Restrictions are part of a task's derived key: equal
//  submits with different restrictions are different tasks.
typedef struct {
    const char *key;            //  custom key (at most 255 bytes, no NUL), or NULL
    bool unique;                //  a fresh key even for equal submits (pure=False)
    int32_t priority;           //  higher runs first among ready tasks
    uint8_t retries;            //  run again up to this many times after a failure
    const char *workers;        //  where it may run: names or endpoints, or NULL
    const char *resources;      //  what it uses while it runs, "GPU=1", or NULL
    uint32_t timeout_ms;        //  time limit of a run, or 0: past it the task fails
                                //  ("ran past its time limit"); a function that will
                                //  not return costs its worker a restart by its nanny
} cask_submit_opts_t;
#define CASK_SUBMIT_DEFAULT ((cask_submit_opts_t) { .key = NULL, .unique = false, \
    .priority = 0, .retries = 0, .workers = NULL, .resources = NULL })

//  cask_submitv with options (opts NULL: the defaults). Bad options (a
//  custom key too long, restrictions that do not parse: the error says
//  which entry and why) make it return NULL having sent nothing; the
//  arguments are taken all the same.
cask_future_t *cask_submit_opts (cask_client_t *self, const char *fn,
                                 const cask_submit_opts_t *opts,
                                 cask_value_t **args, size_t nargs);
//  cask_map with options (opts->key is not allowed: each task needs its own).
//  Every task of the map gets the same restrictions. Bad options: -1, and
//  nothing is sent.
int cask_map_opts (cask_client_t *self, const char *fn, cask_value_t *inputs,
                   const cask_submit_opts_t *opts, cask_future_t **futures);

//  Which futures cask_wait waits for.
typedef enum { CASK_WAIT_ALL = 0, CASK_WAIT_FIRST = 1 } cask_wait_t;
//  Blocks until all (or the first) of the futures are done (finished,
//  erred or cancelled), or timeout_ms passes (0: just look). Fetches no
//  result. Returns the number done, or -1 on a bad argument (a future of
//  another client) or a lost connection.
int cask_wait (cask_client_t *self, cask_future_t **futures, size_t n,
               cask_wait_t mode, int timeout_ms);

//  Draws a progress bar of the futures on stderr, like Dask's progress(),
//  "[####----] 50% 5/10 done, 1 erred, 1.2 s", redrawn in place every
//  100 ms until all are done (finished, erred or cancelled) or timeout_ms
//  passes; writes nothing when stderr is not a terminal. Blocks. Returns
//  the number done, or -1 on a bad argument or a lost connection.
int cask_progress (cask_client_t *self, cask_future_t **futures, size_t n, int timeout_ms);

//  Cancels the futures: tasks that have not run will not run, tasks that
//  depend on them are cancelled too, and cask_future_result on any of them
//  says cancelled. Cancelling a cancelled or finished-and-released future
//  does nothing. Returns 0 or -1 (a future of another client).
int cask_cancel (cask_client_t *self, cask_future_t **futures, size_t n);

//  Back to a clean state in the broker and on every worker: results
//  dropped, running tasks abandoned, every outstanding future (of every
//  client) cancelled; registered libraries stay. Blocks until the cluster
//  confirms, so it is usable at once. Returns 0 or -1.
int cask_client_restart (cask_client_t *self, int timeout_ms);

//  Puts values into the workers' memory (spread over the workers) and
//  fills futures[0..n) with finished futures for them, to use as
//  arguments. Takes ownership of each value (bytes travel without a copy).
//  Blocks until the workers hold them. Returns 0, or -1 (no worker, a
//  value larger than a worker's memory limit: then no future is made).
int cask_scatter (cask_client_t *self, cask_value_t **values, size_t n,
                  cask_future_t **futures, int timeout_ms);

//  Fire and forget: the tasks run to the end even after every handle of
//  them is destroyed. Returns 0 or -1.
int cask_fire_and_forget (cask_client_t *self, cask_future_t **futures, size_t n);

//  Publishes future under name for other clients (Dask's publish_dataset):
//  the cluster keeps it until cask_unpublish. Blocks for the broker's
//  answer. Returns 0, or -1 (name taken, unknown key).
int cask_publish (cask_client_t *self, const char *name, cask_future_t *future,
                  int timeout_ms);
//  A new future for the dataset published under name, or NULL (no such
//  name, timeout).
cask_future_t *cask_get_dataset (cask_client_t *self, const char *name, int timeout_ms);
//  Drops a published name. Returns 0 or -1 (no such name).
int cask_unpublish (cask_client_t *self, const char *name, int timeout_ms);

//  ---------------------------------------------------------------------
//  Cluster info: what the broker knows of the cluster (Dask's client repr).

//  One worker, as the broker last heard of it.
typedef struct {
    uint32_t id;                //  the broker's number for it
    char *name;                 //  its name (--name), "" when it gave none
    char *endpoint;             //  its peer endpoint, where results are fetched
    uint32_t nthreads;          //  threads running tasks
    uint64_t memory_limit;      //  bytes of results it may hold (0: no limit)
    uint32_t inflight;          //  tasks given to it that have not finished
    uint64_t bytes_cached;      //  bytes of results it holds
    uint64_t tasks_done;        //  tasks it finished since it joined
    char *resources;            //  what it declares, "GPU=2,MEM=1e+09" ("" when none)
} cask_cluster_worker_t;

//  The cluster. Owned by the caller (cask_cluster_info_destroy).
typedef struct {
    char *address;              //  the broker's address
    char *dashboard;            //  its dashboard's URL ("" when it serves none)
    size_t nworkers;            //  entries in workers
    uint64_t nthreads;          //  sum of the workers' nthreads
    uint64_t memory;            //  sum of the workers' memory limits
    cask_cluster_worker_t *workers;    //  nworkers entries, in the broker's order
} cask_cluster_info_t;

//  Asks the broker for its REPORT (STATUS) and waits up to timeout_ms for
//  it. Returns a new cluster info, or NULL (timeout, a report that does not
//  parse, out of memory: cask_client_error says why).
cask_cluster_info_t *cask_client_info (cask_client_t *self, int timeout_ms);
//  Frees the info and nulls *self_p. Safe twice.
void cask_cluster_info_destroy (cask_cluster_info_t **self_p);
//  Writes a Dask-like summary into buf (truncated to size, NUL-terminated
//  when size > 0): a first line
//  "<Client: 'tcp://127.0.0.1:8786' workers=2, threads=4, memory=15.63 GiB>",
//  then "  dashboard: http://127.0.0.1:8787/status" when the broker serves
//  one, then one line per worker, "  worker 1 w0 tcp://127.0.0.1:40001 threads=2
//  memory=7.81 GiB in-flight=0 cached=1.17 KiB done=3" (a worker without a
//  name shows "-"; one that declares resources shows them after the memory,
//  "memory=7.81 GiB resources=GPU=2 in-flight=0"), each line ending in a
//  newline. Sizes are written as Dask does: "512 B", else two decimals of
//  the largest binary unit (KiB to PiB) the figure reaches 0.9 of.
//  Returns the length it wanted, like snprintf.
int cask_cluster_info_print (const cask_cluster_info_t *self, char *buf, size_t size);

//  ---------------------------------------------------------------------
//  The task stream: what ran where and when, like Dask's get_task_stream.
//  The broker keeps the last 100,000 tasks that finished.

//  One task that finished. Times are seconds since the epoch, by the clock
//  of the worker that ran it.
typedef struct {
    const char *key;
    const char *function;       //  "" for a copy between workers
    uint32_t worker;            //  the broker's number for the worker
    const char *worker_name;    //  "" once the worker left
    unsigned thread;            //  the worker's executor thread, from 0
    double start;               //  the function started
    double stop;                //  and returned
    double transfer_start;      //  fetching its dependencies from other
    double transfer_stop;       //  workers; both 0 when it fetched none
    uint64_t nbytes;            //  size of the result
    bool ok;                    //  false: it failed
} cask_task_record_t;

typedef struct _cask_task_stream_t cask_task_stream_t;

//  The wall clock, seconds since the epoch: note it before some work, then
//  pass it as since to get the record of that work.
double cask_time (void);
//  Asks the broker for the record of the tasks that finished after since
//  (seconds since the epoch; 0 for all it keeps), oldest first, and waits
//  up to timeout_ms for it. Returns a new stream the caller destroys, or
//  NULL (cask_client_error says why).
cask_task_stream_t *cask_client_task_stream (cask_client_t *self, double since,
                                             int timeout_ms);
//  Frees the stream and nulls *self_p. Safe twice.
void cask_task_stream_destroy (cask_task_stream_t **self_p);
//  Number of records.
size_t cask_task_stream_size (const cask_task_stream_t *self);
//  Record index (from 0, oldest first), owned by the stream; NULL past the end.
const cask_task_record_t *cask_task_stream_get (const cask_task_stream_t *self, size_t index);
//  The records as JSON, an array of objects with the fields above
//  ("status": "OK" or "error" for ok), owned by the stream.
const char *cask_task_stream_json (const cask_task_stream_t *self);
//  Writes cask_task_stream_json to path. Returns 0, or -1 (errno set).
int cask_task_stream_save (const cask_task_stream_t *self, const char *path);

//  ---------------------------------------------------------------------
//  as_completed: futures handed back in the order they finish.

typedef struct _cask_as_completed_t cask_as_completed_t;
enum { CASK_WITH_RESULTS = 1 };     //  flags: fetch each result before handing it out

//  A new iterator over futures[0..n) (n may be 0). It keeps handles of its
//  own: the caller's stay the caller's. flags: 0 or CASK_WITH_RESULTS.
//  Returns NULL when out of memory or a future is of another client.
cask_as_completed_t *cask_as_completed_new (cask_client_t *client,
                                            cask_future_t **futures, size_t n,
                                            int flags);
//  Destroys the iterator and its handles; nulls *self_p. Safe twice.
void cask_as_completed_destroy (cask_as_completed_t **self_p);
//  Adds a future while iterating (the iterator takes a handle of its own).
//  Returns 0 or -1.
int cask_as_completed_add (cask_as_completed_t *self, cask_future_t *future);
//  Blocks until one of the futures not yet handed out is done (finished,
//  erred or cancelled) and returns a new handle of it, which the caller
//  owns; in completion order. NULL when none is left or timeout_ms passed
//  (cask_client_error says which).
cask_future_t *cask_as_completed_next (cask_as_completed_t *self, int timeout_ms);
//  Number of futures not yet handed out.
size_t cask_as_completed_count (cask_as_completed_t *self);

//  ---------------------------------------------------------------------
//  Futures
//
//  The accessors below also take NULL, the future a failed submit hands
//  back, so an unchecked failure reads as an error instead of a crash:
//  status CASK_ERROR, key "", result NULL, and cask_future_error says "no
//  future: the call that should have made it failed".

//  A new handle of the same future (the key stays held while any is).
cask_future_t *cask_future_dup (cask_future_t *self);

//  Destroys the handle and nulls *self_p; safe twice. The last handle of a
//  key releases it at once (a RELEASE goes to the broker before this
//  returns): the cluster forgets the task once no client and no
//  waiting task needs it, and the worker frees the result.
void cask_future_destroy (cask_future_t **self_p);
//  Destroys the n handles futures[0..n) as cask_future_destroy does (NULL
//  entries are skipped) and nulls each; the keys released go to the broker
//  in one RELEASE message (split only when it would pass the batch limit).
void cask_futures_destroy (cask_future_t **futures, size_t n);
//  The task's key, as the cluster knows it.
const char *cask_future_key (cask_future_t *self);
//  Current status, after reading any news from the broker (non-blocking).
cask_status_t cask_future_status (cask_future_t *self);
//  Blocks until the future is done or timeout_ms passes, fetching the
//  result from the worker that holds it. Returns the result (borrowed,
//  owned by the future), or NULL on error, cancellation or timeout: then
//  cask_future_error says which, with the function's message, the
//  function, the task key and the worker.
const cask_value_t *cask_future_result (cask_future_t *self, int timeout_ms);
//  cask_future_result for an int64 result. Returns 0 or -1.
int cask_future_int64 (cask_future_t *self, int timeout_ms, int64_t *out);
//  Why the future erred or was cancelled, or why the last result call on it
//  failed (a timeout, a failed fetch); "" otherwise. Borrowed.
const char *cask_future_error (cask_future_t *self);
//  Writes a Dask-style repr, "<Future: finished, type: int64, key: inc-3fe2...>"
//  or "<Future: pending, key: ...>", into buf (truncated to size); returns
//  the length it wanted, like snprintf.
int cask_future_print (cask_future_t *self, char *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif
