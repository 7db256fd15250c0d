/*  cask_client.c - the client's connection to a cask cluster.

    One DEALER talks to the broker: HELLO, REGISTER, SUBMIT, RELEASE,
    CANCEL, RESTART, FIRE, SCATTER, PUBLISH, LOOKUP, UNPUBLISH, RETIRE and
    BYE go out; WELCOME, STATE, WORKER, REGISTERED, RESTARTED, DATASET,
    RETIRED and ERROR come in. One DEALER per worker, made on first use,
    fetches results straight from the worker that holds them (GET/DATA) and
    uploads scattered values to it (PUT/STORED). There is no background thread: each
    blocking call, and each status query, pumps the sockets.

    Task keys are deterministic, as with Dask's pure=True: the function name
    and a 128-bit hash of the encoded arguments, the dependency keys, the
    bytes of any payload frames and the restrictions block, if any. Equal
    submits share one key, and the client keeps one record per key whatever
    the number of futures pointing at it.

    Restrictions (workers, resources) are parsed from the submit options
    once per submit or map and encoded once into the wire's block, which
    each task record then carries as is and its key hashes.
*/
#include "cask_client_internal.h"
#include "cask_curve.h"
#include "cask_hash.h"
#include "cask_keymap.h"
#include "cask_local.h"
#include "cask/cask_task.h"

#include <czmq.h>
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

//  How long BYE may take to leave when the client is destroyed
#define S_BROKER_LINGER_MS 1000
//  Keys per GET, so a DATA answer stays well under the payload frame limit
#define S_GET_BATCH 4096
//  A SUBMIT or RELEASE body that grows past this is sent at once, so map
//  over millions of inputs stays under the body limit
#define S_BATCH_BYTES (8u << 20)
//  Payload frames per SUBMIT before it is sent at once
#define S_BATCH_FRAMES (CASK_MAX_FRAMES / 2)
//  Worker ids one RETIRE can carry (u32 keep, u32 count, u32 per id)
#define S_RETIRE_MAX_IDS ((CASK_MAX_BODY - 8) / 4)
//  Grace for retired local workers to exit by themselves before SIGKILL
#define S_REAP_GRACE_MS 5000

//  A function the cluster knows
typedef struct {
    uint32_t id;
} s_function_t;

//  A worker the broker announced
typedef struct {
    uint32_t id;
    char endpoint [CASK_MAX_KEY + 1];
    void *socket;               //  DEALER to its peer endpoint, made on first use
    cask_batch_t gets;          //  GET batch being built
    cask_batch_t puts;          //  PUT batch being built (scatter)
    cask_message_t put_frames;  //  its payload frames
} s_worker_t;

struct _cask_client_t {
    void *context;
    void *broker;               //  DEALER to the broker
    cask_curve_t *curve;        //  CurveZMQ (cask_client_new_secure), or NULL
    char *address;
    bool welcomed;
    char *broker_error;         //  last ERROR that was about no key we hold
    char error [1024];
    zhashx_t *functions;        //  name -> s_function_t
    s_worker_t *workers;
    size_t nworkers;
    size_t capworkers;
    cask_keymap_t *records;     //  by key
    cask_future_t *futures;     //  every live handle
    cask_buf_t body;            //  body of a message sent at once, reused
    cask_batch_t submits;       //  SUBMIT batch being built
    cask_message_t out;         //  outgoing payload frames
    cask_buf_t args;            //  one task's encoded arguments
    cask_message_t frames;      //  one task's payload frames
    cask_record_t **deps;       //  one task's dependencies
    size_t ndeps;
    size_t capdeps;
    cask_buf_t restrictions;    //  the submit's restrictions block; empty: none
    uint64_t serial;            //  counts encoded tasks, to dedupe their deps
    cask_batch_t releases;      //  RELEASE batch being built
    cask_message_t in;          //  incoming message
    zmq_pollitem_t *items;
    size_t capitems;
    const char *register_hash;  //  a REGISTER waiting for its REGISTERED
    bool registered;
    cask_as_completed_t *iterators; //  live as_completed iterators
    uint64_t done_seq;          //  counts records that left pending
    cask_batch_t keys;          //  CANCEL, FIRE or SCATTER batch, sent at once
    cask_record_t **stack;      //  records to visit when cancelling
    size_t capstack;
    size_t scatter_next;        //  round-robin cursor over the workers
    const char *asked_name;     //  a PUBLISH, LOOKUP or UNPUBLISH waiting
    uint8_t asked_command;      //  which of the three
    bool answered;              //  its DATASET or ERROR came
    char *answer_error;         //  the ERROR's message
    cask_record_t *answer_record;   //  LOOKUP: the dataset's record
    bool restarted;             //  RESTARTED came
    uint32_t retires_due;       //  RETIRE sent whose RETIRED has not come
    cask_cluster_info_t *retiring;  //  while a local cluster's retire waits: its
                                    //  workers before, to know them by id
    uint32_t reports_due;       //  STATUS sent whose REPORT has not come
    bool report_wanted;         //  cask_client_status waits for a REPORT
    char *report;               //  the REPORT it waits for, once here
    cask_local_t *local;        //  the local cluster this client started, or NULL
};

static __thread char s_last_error [512];

//  ---------------------------------------------------------------------
//  Task keys: the 128-bit cask_hash of the pieces of a task, hashed where
//  they lie. It costs about 40 ns for a small task (SHA-1 costs six times
//  that).

//  Seeds that keep a task's key and a scattered value's key apart
enum { S_SEED_TASK = 0, S_SEED_DATA = 1 };

//  "<name>-<32 hex>", the name cut short if the key would pass the wire's
//  255 bytes
static void
s_key_print (const char *name, const uint64_t digest [2], char key [CASK_MAX_KEY + 1])
{
    size_t length = strlen (name);
    int namelen = (int) (length < CASK_MAX_KEY - 33 ? length : CASK_MAX_KEY - 33);
    snprintf (key, CASK_MAX_KEY + 1, "%.*s-%016llx%016llx", namelen, name,
              (unsigned long long) digest [0], (unsigned long long) digest [1]);
}

//  "<fn>-<32 hex>" for the task (seed S_SEED_TASK) or value (S_SEED_DATA)
//  just encoded into self->args/frames/deps, under restrictions (an encoded
//  block, the last field hashed; NULL or empty: none)
static void
s_task_key (cask_client_t *self, const char *fn, uint64_t seed,
            const cask_buf_t *restrictions, char key [CASK_MAX_KEY + 1])
{
    cask_hash_t hash;
    cask_hash_init (&hash, seed);
    size_t fnlen = strlen (fn);
    cask_hash_field (&hash, fn, fnlen);
    cask_hash_field (&hash, self->args.data, self->args.size);
    for (size_t index = 0; index < self->ndeps; index++)
        cask_hash_field (&hash, self->deps [index]->key, strlen (self->deps [index]->key));
    for (size_t index = 0; index < self->frames.nframes; index++)
        cask_hash_field (&hash, zmq_msg_data (&self->frames.frames [index]),
                         zmq_msg_size (&self->frames.frames [index]));
    if (restrictions && restrictions->size)
        cask_hash_field (&hash, restrictions->data, restrictions->size);
    uint64_t digest [2];
    cask_hash_final (&hash, digest);
    s_key_print (fn, digest, key);
}

//  "<fn>-<32 random hex>": a task of its own even when equal to another
static int
s_unique_key (cask_client_t *self, const char *fn, char key [CASK_MAX_KEY + 1])
{
    uint64_t digest [2];
    if (getrandom (digest, sizeof digest, 0) != (ssize_t) sizeof digest)
        return cask_client_set_error (self, "%s: no random bytes for a unique key: %s",
                                      fn, strerror (errno));
    s_key_print (fn, digest, key);
    return 0;
}

//  ---------------------------------------------------------------------
//  Errors

int
cask_client_set_error (cask_client_t *self, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (self->error, sizeof self->error, format, args);
    va_end (args);
    return -1;
}

static void
s_set_last_error (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    vsnprintf (s_last_error, sizeof s_last_error, format, args);
    va_end (args);
}

static void
s_record_vset_error (cask_record_t *record, const char *format, va_list args)
{
    char *error = zsys_vprintf (format, args);
    free (record->error);
    record->error = error;
}

//  Replaces the record's error message (printf style)
static void
s_record_set_error (cask_record_t *record, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    s_record_vset_error (record, format, args);
    va_end (args);
}

static void
s_record_clear_error (cask_record_t *record)
{
    free (record->error);
    record->error = NULL;
}

//  ---------------------------------------------------------------------
//  Functions and workers the broker told us about

static void
s_function_set (cask_client_t *self, cask_str_t name, uint32_t id)
{
    char key [CASK_MAX_KEY + 1];
    cask_str_copy (name, key, sizeof key);
    s_function_t *function = (s_function_t *) zhashx_lookup (self->functions, key);
    if (!function) {
        function = (s_function_t *) malloc (sizeof (s_function_t));
        if (!function)
            return;
        zhashx_insert (self->functions, key, function);
    }
    function->id = id;
}

static void
s_function_destroy (void **item)
{
    free (*item);
    *item = NULL;
}

static s_function_t *
s_function_find (cask_client_t *self, const char *name)
{
    s_function_t *function = (s_function_t *) zhashx_lookup (self->functions, name);
    if (!function) {
        //  Another client may have just registered it
        cask_client_pump (self);
        function = (s_function_t *) zhashx_lookup (self->functions, name);
    }
    return function;
}

static s_worker_t *
s_worker_find (cask_client_t *self, uint32_t id)
{
    for (size_t index = 0; index < self->nworkers; index++)
        if (self->workers [index].id == id)
            return &self->workers [index];
    return NULL;
}

static void
s_worker_join (cask_client_t *self, uint32_t id, cask_str_t endpoint)
{
    s_worker_t *worker = s_worker_find (self, id);
    if (!worker) {
        if (self->nworkers == self->capworkers) {
            size_t cap = self->capworkers ? self->capworkers * 2 : 8;
            s_worker_t *workers = (s_worker_t *) realloc (self->workers, cap * sizeof (s_worker_t));
            if (!workers)
                return;
            self->workers = workers;
            self->capworkers = cap;
        }
        worker = &self->workers [self->nworkers++];
        memset (worker, 0, sizeof *worker);
        worker->id = id;
        cask_batch_init (&worker->gets);
        cask_batch_init (&worker->puts);
        cask_message_init (&worker->put_frames);
    }
    cask_str_copy (endpoint, worker->endpoint, sizeof worker->endpoint);
}

static void
s_worker_close (s_worker_t *worker)
{
    if (worker->socket)
        zmq_close (worker->socket);
    worker->socket = NULL;
    cask_batch_free (&worker->gets);
    cask_batch_free (&worker->puts);
    cask_message_close (&worker->put_frames);
}

//  The worker left: its results went with it. Fetches from it will never
//  be answered; the broker recomputes what is still needed and tells us
//  where the results are next.
static void
s_worker_leave (cask_client_t *self, uint32_t id)
{
    s_worker_t *worker = s_worker_find (self, id);
    if (!worker)
        return;
    s_worker_close (worker);
    *worker = self->workers [--self->nworkers];
    cask_record_t *record;
    size_t cursor = 0;
    while ((record = cask_keymap_next (self->records, &cursor)))
        if (record->worker == id)
            record->fetching = false;
}

//  The worker's endpoint for messages, or "" when it is not known
static const char *
s_worker_endpoint (cask_client_t *self, uint32_t id)
{
    s_worker_t *worker = s_worker_find (self, id);
    return worker ? worker->endpoint : "";
}

static void *
s_new_socket (cask_client_t *self, int type, int linger_ms)
{
    void *socket = zmq_socket (self->context, type);
    if (socket) {
        //  Unlimited queues: a full queue would block a send or, on the
        //  broker's side, drop news we must not lose
        int zero = 0;
        zmq_setsockopt (socket, ZMQ_SNDHWM, &zero, sizeof zero);
        zmq_setsockopt (socket, ZMQ_RCVHWM, &zero, sizeof zero);
        zmq_setsockopt (socket, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
    }
    return socket;
}

//  ---------------------------------------------------------------------
//  Records

static const void *
s_record_key (const void *item, size_t *size)
{
    const cask_record_t *record = (const cask_record_t *) item;
    *size = strlen (record->key);
    return record->key;
}

static cask_record_t *
s_record_find (cask_client_t *self, cask_str_t key)
{
    return (cask_record_t *) cask_keymap_lookup (self->records, key.ptr, key.len);
}

//  A new record for key, whose hash in the table of records is hash, with
//  room for ndeps edges to its dependencies; one allocation for it all
static cask_record_t *
s_record_new (cask_client_t *self, const char *key, uint64_t hash, size_t ndeps)
{
    size_t size = strlen (key);
    size_t edges = ndeps * sizeof (cask_edge_t);
    cask_record_t *record = (cask_record_t *) calloc (1, sizeof (cask_record_t) + edges + size + 1);
    if (!record)
        return NULL;
    record->deps = (cask_edge_t *) (record + 1);
    record->ndeps = (uint32_t) ndeps;
    record->key = (char *) record->deps + edges;
    memcpy (record->key, key, size + 1);
    record->status = CASK_PENDING;
    if (cask_keymap_insert_hashed (self->records, record, hash)) {
        free (record);
        return NULL;
    }
    return record;
}

int
cask_client_send_releases (cask_client_t *self)
{
    return cask_batch_send (&self->releases, self->broker, NULL, CASK_MSG_RELEASE, NULL);
}

//  Links record to the dependencies of the task just encoded (as many as
//  it has room for: a custom key used again for another task may have more)
static void
s_edges_link (cask_client_t *self, cask_record_t *record)
{
    size_t count = self->ndeps < record->ndeps ? self->ndeps : record->ndeps;
    for (size_t index = 0; index < count; index++) {
        cask_edge_t *edge = &record->deps [index];
        cask_record_t *dep = self->deps [index];
        edge->dep = dep;
        edge->owner = record;
        edge->prev = NULL;
        edge->next = dep->dependants;
        if (dep->dependants)
            dep->dependants->prev = edge;
        dep->dependants = edge;
    }
}

static void
s_edges_unlink (cask_record_t *record)
{
    for (uint32_t index = 0; index < record->ndeps; index++) {
        cask_edge_t *edge = &record->deps [index];
        if (!edge->dep)
            continue;
        if (edge->prev)
            edge->prev->next = edge->next;
        else
            edge->dep->dependants = edge->next;
        if (edge->next)
            edge->next->prev = edge->prev;
        edge->dep = NULL;
    }
}

//  The record goes: its dependants' edges to it are cut
static void
s_dependants_orphan (cask_record_t *record)
{
    for (cask_edge_t *edge = record->dependants; edge; edge = edge->next)
        edge->dep = NULL;
    record->dependants = NULL;
}

void
cask_client_forget (cask_client_t *self, cask_record_t *record, bool releasing)
{
    s_edges_unlink (record);
    s_dependants_orphan (record);
    //  A cancelled key is no longer held at the broker
    if (releasing && record->status != CASK_CANCELLED) {
        cask_put_str8 (cask_batch_add (&self->releases), cask_str (record->key));
        if (self->releases.body.size > S_BATCH_BYTES)
            cask_client_send_releases (self);
    }
    cask_keymap_remove (self->records, record->key, strlen (record->key));
    cask_value_destroy (&record->value);
    free (record->error);
    free (record);
}

cask_future_t **
cask_client_futures (cask_client_t *self)
{
    return &self->futures;
}

cask_as_completed_t **
cask_client_iterators (cask_client_t *self)
{
    return &self->iterators;
}

bool
cask_client_owns (cask_client_t *self, cask_future_t *future, const char *what)
{
    if (future && future->client == self)
        return true;
    if (future)
        cask_client_set_error (self, "%s: future %s belongs to another client", what,
                               future->record->key);
    else
        cask_client_set_error (self, "%s: a future is NULL", what);
    return false;
}

void
cask_client_set_status (cask_client_t *self, cask_record_t *record, cask_status_t status)
{
    bool was_pending = record->status == CASK_PENDING;
    record->status = status;
    if (was_pending && status != CASK_PENDING) {
        record->done_seq = ++self->done_seq;
        cask_as_completed_notify (record);
    }
}

//  Marks the record cancelled here (why: NULL, or what the broker said)
static void
s_record_cancel (cask_client_t *self, cask_record_t *record, const char *why, size_t whylen)
{
    cask_client_set_status (self, record, CASK_CANCELLED);
    cask_value_destroy (&record->value);
    record->fetching = false;
    record->fetch_failed = false;
    if (whylen)
        s_record_set_error (record, "%s was cancelled: %.*s", record->key, (int) whylen, why);
    else
        s_record_set_error (record, "%s was cancelled", record->key);
}

//  ---------------------------------------------------------------------
//  News from the broker

static void
s_on_welcome (cask_client_t *self, cask_rd_t *rd)
{
    cask_get_u32 (rd);          //  our id at the broker: only for its logs
    uint32_t nfuncs = cask_get_u32 (rd);
    for (uint32_t index = 0; index < nfuncs && !rd->failed; index++) {
        cask_func_t func;
        cask_func_get (rd, &func);
        if (!rd->failed)
            s_function_set (self, func.name, func.id);
    }
    uint32_t nworkers = cask_get_u32 (rd);
    for (uint32_t index = 0; index < nworkers && !rd->failed; index++) {
        cask_worker_info_t info;
        cask_worker_info_get (rd, &info);
        if (!rd->failed && info.joined)
            s_worker_join (self, info.id, info.endpoint);
    }
    self->welcomed = true;
}

static void
s_on_registered (cask_client_t *self, cask_rd_t *rd)
{
    cask_library_t library;
    cask_library_get (rd, &library);
    for (uint32_t index = 0; index < library.nfuncs && !rd->failed; index++) {
        cask_func_t func;
        cask_func_get (rd, &func);
        if (!rd->failed)
            s_function_set (self, func.name, func.id);
    }
    if (!rd->failed && self->register_hash && cask_str_eq (library.hash, self->register_hash))
        self->registered = true;
}

//  "add-1f..: dependency goes_wrong-9c.. failed in goes_wrong on worker 1
//  (tcp://127.0.0.1:40123): goes_wrong: division by zero"
static void
s_record_erred (cask_client_t *self, cask_record_t *record, const cask_state_rec_t *state)
{
    char cause [CASK_MAX_KEY + 40] = "";
    if (state->cause.len && !cask_str_eq (state->cause, record->key))
        snprintf (cause, sizeof cause, ": dependency %.*s",
                  (int) state->cause.len, state->cause.ptr);
    char function [CASK_MAX_KEY + 8] = "";
    if (state->function.len)
        snprintf (function, sizeof function, " in %.*s",
                  (int) state->function.len, state->function.ptr);
    char where [CASK_MAX_KEY + 32] = "";
    if (state->worker) {
        const char *endpoint = s_worker_endpoint (self, state->worker);
        snprintf (where, sizeof where, *endpoint ? " on worker %u (%s)" : " on worker %u%s",
                  state->worker, endpoint);
    }
    s_record_set_error (record, "%s%s failed%s%s: %.*s", record->key, cause,
                        function, where, (int) state->message.len, state->message.ptr);
}

//  After a CANCEL, news the broker sent before it read the CANCEL must not
//  bring the record back; its STATE cancelled, which the record already
//  shows, closes the account. A record submitted again meanwhile takes news
//  again, but not that cancel.
static bool
s_state_stale (cask_record_t *record, const cask_state_rec_t *state)
{
    if (record->cancels_due == 0)
        return false;
    if (state->state == CASK_STATE_CANCELLED) {
        record->cancels_due--;
        return true;
    }
    return record->status == CASK_CANCELLED;
}

static void
s_apply_state (cask_client_t *self, cask_record_t *record, const cask_state_rec_t *state)
{
    if (s_state_stale (record, state))
        return;
    switch (state->state) {
        case CASK_STATE_MEMORY:
            cask_client_set_status (self, record, CASK_FINISHED);
            record->worker = state->worker;
            record->type = state->type;
            record->fetch_failed = false;
            s_record_clear_error (record);
            break;
        case CASK_STATE_ERRED:
            cask_client_set_status (self, record, CASK_ERROR);
            cask_value_destroy (&record->value);
            s_record_erred (self, record, state);
            break;
        case CASK_STATE_CANCELLED:
            s_record_cancel (self, record, state->message.ptr, state->message.len);
            break;
        case CASK_STATE_WAITING:
        case CASK_STATE_PROCESSING:
            //  Computed again, after the worker that held it was lost
            cask_client_set_status (self, record, CASK_PENDING);
            s_record_clear_error (record);
            break;
        default:
            break;
    }
}

static void
s_on_state (cask_client_t *self, cask_rd_t *rd)
{
    uint32_t count = cask_get_u32 (rd);
    for (uint32_t index = 0; index < count && !rd->failed; index++) {
        cask_state_rec_t state;
        cask_state_get (rd, &state);
        cask_record_t *record = rd->failed ? NULL : s_record_find (self, state.key);
        if (record)
            s_apply_state (self, record, &state);
    }
}

static void
s_on_worker (cask_client_t *self, cask_rd_t *rd)
{
    cask_worker_info_t info;
    cask_worker_info_get (rd, &info);
    if (rd->failed)
        return;
    if (info.joined)
        s_worker_join (self, info.id, info.endpoint);
    else
        s_worker_leave (self, info.id);
}

//  A record's fetch failed: the worker did not have it or sent garbage
static void
s_fetch_failed (cask_record_t *record, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    s_record_vset_error (record, format, args);
    va_end (args);
    record->fetching = false;
    record->fetch_failed = true;
}

//  A scattered value's fate, from its worker
static void
s_record_stored (cask_record_t *record, bool ok, s_worker_t *worker, cask_str_t message)
{
    if (record->storing != CASK_STORE_SENT)
        return;
    record->storing = ok ? CASK_STORE_OK : CASK_STORE_REFUSED;
    if (!ok)
        s_record_set_error (record, "scatter %s: worker %u (%s) refused it: %.*s", record->key,
                            worker->id, worker->endpoint, (int) message.len, message.ptr);
}

//  The answer to the PUBLISH, LOOKUP or UNPUBLISH waiting for one
static void
s_answer (cask_client_t *self, const char *error, size_t length)
{
    self->answered = true;
    free (self->answer_error);
    self->answer_error = error ? zsys_sprintf ("%.*s", (int) length, error) : NULL;
}

//  An ERROR about a name we asked about answers that request; about a key,
//  it fails that task (from the broker), its fetch or its upload (from a
//  worker); any other is kept for whoever waits on the broker.
static void
s_on_error (cask_client_t *self, cask_rd_t *rd, s_worker_t *worker)
{
    cask_error_t error;
    cask_error_get (rd, &error);
    if (rd->failed)
        return;
    if (!worker && self->asked_name && cask_str_eq (error.about, self->asked_name)) {
        s_answer (self, error.message.ptr, error.message.len);
        return;
    }
    cask_record_t *record = error.about.len ? s_record_find (self, error.about) : NULL;
    if (record && worker && record->storing == CASK_STORE_SENT)
        s_record_stored (record, false, worker, error.message);
    else
    if (record && worker)
        s_fetch_failed (record, "%s: fetching it from worker %u (%s) failed: %.*s",
                        record->key, worker->id, worker->endpoint,
                        (int) error.message.len, error.message.ptr);
    else
    if (record) {
        cask_client_set_status (self, record, CASK_ERROR);
        s_record_set_error (record, "%s: %.*s", record->key,
                            (int) error.message.len, error.message.ptr);
    }
    else {
        free (self->broker_error);
        self->broker_error = zsys_sprintf ("%.*s", (int) error.message.len, error.message.ptr);
    }
}

static void
s_on_data (cask_client_t *self, cask_rd_t *rd, s_worker_t *worker)
{
    uint32_t count = cask_get_u32 (rd);
    size_t frame_base = 0;
    for (uint32_t index = 0; index < count && !rd->failed; index++) {
        cask_str_t key = cask_get_str8 (rd);
        uint8_t found = cask_get_u8 (rd);
        if (rd->failed)
            break;
        cask_value_t *value = NULL;
        const char *why = NULL;
        if (found) {
            uint32_t nframes = cask_get_u32 (rd);
            value = cask_value_decode (rd, &self->in, frame_base, nframes, NULL, 0, &why);
            frame_base += nframes;
        }
        cask_record_t *record = s_record_find (self, key);
        //  An answer for a record cancelled meanwhile is no news
        if (record && !record->fetching)
            record = NULL;
        if (record && !value)
            s_fetch_failed (record, "%s: worker %u (%s) %s%s", record->key, worker->id,
                            worker->endpoint, found ? "sent a malformed result: "
                                                    : "no longer holds the result",
                            found && why ? why : "");
        else
        if (record) {
            record->fetching = false;
            if (!record->value)
                record->value = cask_value_ref (value);
        }
        cask_value_destroy (&value);
    }
}

static void
s_on_stored (cask_client_t *self, cask_rd_t *rd, s_worker_t *worker)
{
    uint32_t count = cask_get_u32 (rd);
    for (uint32_t index = 0; index < count && !rd->failed; index++) {
        cask_stored_t stored;
        cask_stored_get (rd, &stored);
        cask_record_t *record = rd->failed ? NULL : s_record_find (self, stored.key);
        if (record)
            s_record_stored (record, stored.ok, worker, stored.message);
    }
}

//  The success of the PUBLISH, LOOKUP or UNPUBLISH waiting. For LOOKUP, the
//  key of the dataset: the broker made us a holder of it and its STATE
//  follows, so its record must be here before this returns
static void
s_on_dataset (cask_client_t *self, cask_rd_t *rd)
{
    cask_dataset_t dataset;
    cask_dataset_get (rd, &dataset);
    if (rd->failed || !self->asked_name || !cask_str_eq (dataset.name, self->asked_name))
        return;
    s_answer (self, NULL, 0);
    if (self->asked_command != CASK_MSG_LOOKUP || dataset.key.len == 0)
        return;
    char key [CASK_MAX_KEY + 1];
    cask_str_copy (dataset.key, key, sizeof key);
    size_t size = strlen (key);
    uint64_t hash = cask_keymap_hash (self->records, key, size);
    cask_record_t *record = cask_keymap_lookup_hashed (self->records, key, size, hash);
    if (!record)
        record = s_record_new (self, key, hash, 0);
    else
    if (record->status == CASK_CANCELLED) {
        record->status = CASK_PENDING;
        s_record_clear_error (record);
    }
    else
        //  We held it already: one record, one hold
        cask_put_str8 (cask_batch_add (&self->releases), cask_str (key));
    self->answer_record = record;
}

//  The broker answers STATUS in order: only the answer to the last one
//  sent is kept, and only while cask_client_status waits for it.
static void
s_on_report (cask_client_t *self)
{
    if (self->reports_due > 0)
        self->reports_due--;
    if (self->reports_due > 0 || !self->report_wanted || self->report)
        return;
    size_t size = zmq_msg_size (&self->in.body);
    self->report = (char *) malloc (size + 1);
    if (self->report) {
        memcpy (self->report, zmq_msg_data (&self->in.body), size);
        self->report [size] = 0;
    }
}

//  A RETIRE is answered. While a retire of the local cluster waits, the
//  processes of the workers that left are marked for it to reap; they are
//  known by the names the broker's REPORT gave their ids.
static void
s_on_retired (cask_client_t *self, cask_rd_t *rd)
{
    if (self->retires_due > 0)
        self->retires_due--;
    if (!self->retiring)
        return;
    cask_retire_t retired;
    cask_retire_get (rd, &retired);
    for (uint32_t index = 0; index < retired.nids; index++) {
        uint32_t id = cask_get_u32 (&retired.ids);
        if (retired.ids.failed)
            break;
        for (size_t known = 0; known < self->retiring->nworkers; known++)
            if (self->retiring->workers [known].id == id)
                cask_local_leaving (self->local, self->retiring->workers [known].name);
    }
}

static void
s_dispatch (cask_client_t *self, s_worker_t *worker)
{
    cask_message_t *msg = &self->in;
    if (msg->version != CASK_PROTO_VERSION)
        return;                 //  nothing we could say would help a DEALER peer
    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&msg->body), zmq_msg_size (&msg->body));
    if (worker) {
        if (msg->command == CASK_MSG_DATA)
            s_on_data (self, &rd, worker);
        else
        if (msg->command == CASK_MSG_ERROR)
            s_on_error (self, &rd, worker);
        else
        if (msg->command == CASK_MSG_STORED)
            s_on_stored (self, &rd, worker);
        return;
    }
    switch (msg->command) {
        case CASK_MSG_WELCOME: s_on_welcome (self, &rd); break;
        case CASK_MSG_REGISTERED: s_on_registered (self, &rd); break;
        case CASK_MSG_STATE: s_on_state (self, &rd); break;
        case CASK_MSG_WORKER: s_on_worker (self, &rd); break;
        case CASK_MSG_ERROR: s_on_error (self, &rd, NULL); break;
        case CASK_MSG_DATASET: s_on_dataset (self, &rd); break;
        case CASK_MSG_RESTARTED: self->restarted = true; break;
        case CASK_MSG_RETIRED: s_on_retired (self, &rd); break;
        case CASK_MSG_REPORT: s_on_report (self); break;
        default: break;
    }
}

//  Reads every message waiting on socket (worker NULL: the broker's)
static void
s_drain (cask_client_t *self, void *socket, s_worker_t *worker)
{
    while (true) {
        cask_recv_t rc = cask_message_recv (&self->in, socket, false, ZMQ_DONTWAIT, NULL);
        if (rc == CASK_RECV_OK)
            s_dispatch (self, worker);
        else
        if (rc != CASK_RECV_BAD)
            break;
    }
}

void
cask_client_pump (cask_client_t *self)
{
    cask_client_send_releases (self);
    s_drain (self, self->broker, NULL);
    //  Worker messages never change the list of workers
    for (size_t index = 0; index < self->nworkers; index++)
        if (self->workers [index].socket)
            s_drain (self, self->workers [index].socket, &self->workers [index]);
}

//  Waits up to timeout_ms (-1: for ever) for any socket to be readable
static void
s_poll (cask_client_t *self, long timeout_ms)
{
    size_t needed = 1 + self->nworkers;
    if (needed > self->capitems) {
        zmq_pollitem_t *items = (zmq_pollitem_t *) realloc (self->items, needed * sizeof *items);
        if (!items) {
            zclock_sleep (1);
            return;
        }
        self->items = items;
        self->capitems = needed;
    }
    size_t nitems = 0;
    self->items [nitems++] = (zmq_pollitem_t) { self->broker, 0, ZMQ_POLLIN, 0 };
    for (size_t index = 0; index < self->nworkers; index++)
        if (self->workers [index].socket)
            self->items [nitems++] = (zmq_pollitem_t) {
                self->workers [index].socket, 0, ZMQ_POLLIN, 0 };
    zmq_poll (self->items, (int) nitems, timeout_ms);
}

int
cask_client_wait (cask_client_t *self, cask_client_ready_fn *ready, void *arg, int timeout_ms)
{
    int64_t deadline = timeout_ms >= 0 ? zclock_mono () + timeout_ms : -1;
    while (true) {
        cask_client_pump (self);
        if (ready (arg))
            return 0;
        long remaining = -1;
        if (deadline >= 0) {
            remaining = (long) (deadline - zclock_mono ());
            if (remaining <= 0)
                return -1;
        }
        s_poll (self, remaining);
    }
}

//  ---------------------------------------------------------------------
//  Fetching results from workers

static void
s_send_gets (cask_client_t *self, s_worker_t *worker)
{
    if (cask_batch_send (&worker->gets, worker->socket, NULL, CASK_MSG_GET, NULL))
        cask_client_set_error (self, "cannot send GET to worker %u (%s): %s",
                               worker->id, worker->endpoint, zmq_strerror (errno));
}

//  Connects to the worker's peer socket if not yet done. Returns 0 or -1.
static int
s_worker_connect (cask_client_t *self, s_worker_t *worker)
{
    if (worker->socket)
        return 0;
    worker->socket = s_new_socket (self, ZMQ_DEALER, 0);
    if (worker->socket && cask_curve_to_workers (self->curve, worker->socket) == 0
    &&  zmq_connect (worker->socket, worker->endpoint) == 0)
        return 0;
    if (worker->socket)
        zmq_close (worker->socket);
    worker->socket = NULL;
    return -1;
}

static void
s_queue_get (cask_client_t *self, cask_record_t *record)
{
    s_worker_t *worker = s_worker_find (self, record->worker);
    if (!worker) {
        s_fetch_failed (record, "%s: finished on worker %u, which has left",
                        record->key, record->worker);
        return;
    }
    if (s_worker_connect (self, worker)) {
        s_fetch_failed (record, "%s: cannot connect to worker %u at %s: %s", record->key,
                        worker->id, worker->endpoint, zmq_strerror (errno));
        return;
    }
    cask_put_str8 (cask_batch_add (&worker->gets), cask_str (record->key));
    record->fetching = true;
    if (worker->gets.count >= S_GET_BATCH)
        s_send_gets (self, worker);
}

bool
cask_client_settle (cask_client_t *self, cask_record_t *record)
{
    if (record->status == CASK_ERROR || record->status == CASK_CANCELLED)
        return true;
    if (record->status == CASK_PENDING)
        return false;
    if (record->value || record->fetch_failed)
        return true;
    if (!record->fetching)
        s_queue_get (self, record);
    return record->fetch_failed;
}

void
cask_client_flush_gets (cask_client_t *self)
{
    for (size_t index = 0; index < self->nworkers; index++)
        s_send_gets (self, &self->workers [index]);
}

//  ---------------------------------------------------------------------
//  Connecting and leaving

static bool
s_welcomed (void *arg)
{
    cask_client_t *self = (cask_client_t *) arg;
    return self->welcomed || self->broker_error;
}

static int
s_send_hello (cask_client_t *self)
{
    char name [64];
    snprintf (name, sizeof name, "client %d", (int) getpid ());
    cask_hello_t hello = { .role = CASK_ROLE_CLIENT, .name = cask_str (name), .endpoint = cask_str ("") };
    cask_buf_reset (&self->body);
    cask_hello_put (&self->body, &hello);
    return cask_send (self->broker, NULL, CASK_MSG_HELLO, &self->body, NULL);
}

static cask_client_t *
s_client_new (const char *address)
{
    cask_client_t *self = (cask_client_t *) calloc (1, sizeof (cask_client_t));
    if (!self)
        return NULL;
    self->address = strstr (address, "://") ? strdup (address)
                                            : zsys_sprintf ("tcp://%s", address);
    self->context = zmq_ctx_new ();
    cask_batch_init (&self->keys);
    self->functions = zhashx_new ();
    self->records = cask_keymap_new (s_record_key);
    cask_buf_init (&self->body);
    cask_batch_init (&self->submits);
    cask_buf_init (&self->args);
    cask_buf_init (&self->restrictions);
    cask_batch_init (&self->releases);
    cask_message_init (&self->out);
    cask_message_init (&self->frames);
    cask_message_init (&self->in);
    if (!self->address || !self->context || !self->functions || !self->records) {
        cask_client_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->functions, s_function_destroy);
    self->broker = s_new_socket (self, ZMQ_DEALER, S_BROKER_LINGER_MS);
    self->serial = 1;
    return self;
}

//  Connects to the broker at address, with CurveZMQ when curve is not
//  NULL (the client takes it), and waits for its welcome
static cask_client_t *
s_client_connect (const char *address, cask_curve_t *curve, int timeout_ms)
{
    cask_client_t *self = s_client_new (address);
    if (!self) {
        cask_curve_destroy (&curve);
        s_set_last_error ("out of memory");
        return NULL;
    }
    self->curve = curve;
    if (self->broker && (cask_curve_to_broker (curve, self->broker)
                     ||  cask_curve_watch (curve, self->context, self->broker))) {
        s_set_last_error ("CurveZMQ: %s", cask_curve_error (curve));
        cask_client_destroy (&self);
        return NULL;
    }
    if (!self->broker || zmq_connect (self->broker, self->address)) {
        s_set_last_error ("cannot connect to %s: %s", self->address, zmq_strerror (errno));
        cask_client_destroy (&self);
        return NULL;
    }
    int waited = s_send_hello (self) ? -1 : cask_client_wait (self, s_welcomed, self, timeout_ms);
    //  What the handshakes said, with CurveZMQ (a refused key); stops watching
    const char *refusal = cask_curve_refusal (curve);
    if (waited) {
        if (refusal)
            s_set_last_error ("the broker at %s did not let this client in: %s",
                              self->address, refusal);
        else
            s_set_last_error ("no broker answered at %s within %d ms%s", self->address,
                              timeout_ms, curve ? "" : " (a broker that uses CurveZMQ "
                              "answers only cask_client_new_secure)");
        cask_client_destroy (&self);
        return NULL;
    }
    if (!self->welcomed) {
        s_set_last_error ("the broker at %s refused us: %s", self->address, self->broker_error);
        cask_client_destroy (&self);
        return NULL;
    }
    return self;
}

cask_client_t *
cask_client_new (const char *address, int timeout_ms)
{
    if (!address || !*address)
        address = getenv ("CASK_BROKER");
    if (!address || !*address)
        return cask_client_new_local (0, 0, timeout_ms);
    const char *cert = getenv ("CASK_CURVE_CERT");
    if (cert && *cert)
        return cask_client_new_secure (address, cert, getenv ("CASK_CURVE_BROKER_KEY"),
                                       getenv ("CASK_CURVE_WORKERS_KEY"), timeout_ms);
    return s_client_connect (address, NULL, timeout_ms);
}

cask_client_t *
cask_client_new_secure (const char *address, const char *cert, const char *broker_key,
                        const char *workers_key, int timeout_ms)
{
    if (!address || !*address)
        address = getenv ("CASK_BROKER");
    if (!address || !*address) {
        s_set_last_error ("a secure client needs the broker's address (or $CASK_BROKER)");
        return NULL;
    }
    cask_curve_t *curve = cask_curve_new (NULL);
    if (!curve) {
        s_set_last_error ("out of memory");
        return NULL;
    }
    if (cask_curve_load (curve, cert) || cask_curve_set_broker_key (curve, broker_key)
    ||  cask_curve_set_workers_key (curve, workers_key ? workers_key : broker_key)) {
        s_set_last_error ("CurveZMQ: %s", cask_curve_error (curve));
        cask_curve_destroy (&curve);
        return NULL;
    }
    return s_client_connect (address, curve, timeout_ms);
}

//  The deadline of a call that may take timeout_ms (-1: none)
static int64_t
s_deadline (int timeout_ms)
{
    return timeout_ms < 0 ? -1 : zclock_mono () + timeout_ms;
}

//  What is left until deadline in ms, 0 once passed; -1 without a deadline
static int
s_remaining (int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - zclock_mono ();
    return left > 0 ? (int) left : 0;
}

//  Waits until the broker has announced n workers, while the local
//  cluster's processes live, until deadline (made from timeout_ms). Returns
//  0, or -1 with the reason in error.
static int
s_local_join (cask_client_t *self, size_t n, int64_t deadline, int timeout_ms,
              char *error, size_t error_size)
{
    while (cask_client_wait_for_workers (self, n, 50)) {
        if (cask_local_check (self->local, error, error_size))
            return -1;
        if (s_remaining (deadline) == 0) {
            snprintf (error, error_size, "local cluster: %zu of %zu workers joined within %d ms",
                      self->nworkers, n, timeout_ms);
            return -1;
        }
    }
    return 0;
}

cask_client_t *
cask_client_new_local (size_t nworkers, int nthreads, int timeout_ms)
{
    cask_local_defaults (sysconf (_SC_NPROCESSORS_ONLN), &nworkers, &nthreads);
    int64_t deadline = s_deadline (timeout_ms);
    char error [sizeof s_last_error];
    cask_local_t *local = cask_local_new (nworkers, nthreads, timeout_ms, error, sizeof error);
    if (!local) {
        s_set_last_error ("%s", error);
        return NULL;
    }
    cask_client_t *self = s_client_connect (cask_local_address (local), NULL,
                                            s_remaining (deadline));
    if (!self) {
        //  the broker's own words say more than a timeout
        if (cask_local_check (local, error, sizeof error) == 0)
            snprintf (error, sizeof error, "%s", s_last_error);
        s_set_last_error ("%s", error);
        cask_local_destroy (&local);
        return NULL;
    }
    self->local = local;
    if (s_local_join (self, nworkers, deadline, timeout_ms, error, sizeof error)) {
        s_set_last_error ("%s", error);
        cask_client_destroy (&self);
        return NULL;
    }
    return self;
}

void
cask_client_destroy (cask_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cask_client_t *self = *self_p;
    *self_p = NULL;
    //  BYE releases every key we hold, so the futures go without RELEASE
    cask_as_completed_detach_all (self);
    cask_future_drop_all (self);
    if (self->broker) {
        if (self->welcomed) {
            cask_buf_reset (&self->body);
            cask_send (self->broker, NULL, CASK_MSG_BYE, &self->body, NULL);
        }
        else {
            int zero = 0;
            zmq_setsockopt (self->broker, ZMQ_LINGER, &zero, sizeof zero);
        }
        zmq_close (self->broker);
    }
    for (size_t index = 0; index < self->nworkers; index++)
        s_worker_close (&self->workers [index]);
    cask_curve_destroy (&self->curve);
    if (self->context)
        zmq_ctx_term (self->context);
    //  After the sockets closed, so that BYE reached the broker
    cask_local_destroy (&self->local);
    zhashx_destroy (&self->functions);
    cask_keymap_destroy (&self->records);
    cask_buf_free (&self->body);
    cask_batch_free (&self->submits);
    cask_buf_free (&self->args);
    cask_buf_free (&self->restrictions);
    cask_batch_free (&self->releases);
    cask_batch_free (&self->keys);
    cask_message_close (&self->out);
    cask_message_close (&self->frames);
    cask_message_close (&self->in);
    free (self->workers);
    free (self->deps);
    free (self->items);
    free (self->broker_error);
    free (self->answer_error);
    free (self->stack);
    free (self->address);
    free (self);
}

const char *
cask_client_error (cask_client_t *self)
{
    return self ? self->error : "no client";
}

const char *
cask_client_last_error (void)
{
    return s_last_error;
}

const char *
cask_client_address (cask_client_t *self)
{
    return self->address;
}

size_t
cask_client_nworkers (cask_client_t *self)
{
    cask_client_pump (self);
    return self->nworkers;
}

typedef struct {
    cask_client_t *client;
    size_t nworkers;
} s_workers_wait_t;

static bool
s_enough_workers (void *arg)
{
    s_workers_wait_t *wait = (s_workers_wait_t *) arg;
    return wait->client->nworkers >= wait->nworkers;
}

int
cask_client_wait_for_workers (cask_client_t *self, size_t n, int timeout_ms)
{
    s_workers_wait_t wait = { self, n };
    if (cask_client_wait (self, s_enough_workers, &wait, timeout_ms))
        return cask_client_set_error (self, "%zu of %zu workers after %d ms",
                                      self->nworkers, n, timeout_ms);
    return 0;
}

//  ---------------------------------------------------------------------
//  Registering task libraries

//  Reads the whole file into a new buffer
static void *
s_read_file (const char *path, size_t *size)
{
    FILE *file = fopen (path, "rb");
    if (!file)
        return NULL;
    void *data = NULL;
    if (fseek (file, 0, SEEK_END) == 0) {
        long length = ftell (file);
        if (length >= 0 && fseek (file, 0, SEEK_SET) == 0) {
            data = malloc (length ? (size_t) length : 1);
            if (data && fread (data, 1, (size_t) length, file) != (size_t) length) {
                free (data);
                data = NULL;
            }
            *size = (size_t) length;
        }
    }
    fclose (file);
    return data;
}

//  Loads the library here to read its table; the same checks a worker
//  makes, so a bad library fails with a clear message before it travels
static void *
s_library_open (cask_client_t *self, const char *path, const cask_export_t **exports)
{
    //  A bare name would send dlopen searching the library path
    char *local = strchr (path, '/') ? strdup (path) : zsys_sprintf ("./%s", path);
    void *handle = local ? dlopen (local, RTLD_LAZY | RTLD_LOCAL) : NULL;
    free (local);
    if (!handle) {
        cask_client_set_error (self, "%s: not a loadable shared object: %s", path, dlerror ());
        return NULL;
    }
    const int *abi = (const int *) dlsym (handle, "cask_abi_version");
    *exports = (const cask_export_t *) dlsym (handle, "cask_exports");
    if (!*exports || !abi)
        cask_client_set_error (self, "%s: exports no cask_exports table (build it with CASK_LIBRARY)",
                               path);
    else
    if (*abi != CASK_ABI_VERSION)
        cask_client_set_error (self, "%s: built for cask ABI %d, this client speaks %d",
                               path, *abi, CASK_ABI_VERSION);
    else
    if (!(*exports) [0].name)
        cask_client_set_error (self, "%s: its cask_exports table is empty", path);
    else
        return handle;
    dlclose (handle);
    return NULL;
}

static int
s_put_register (cask_client_t *self, const char *path, const cask_export_t *exports,
                const char *hash)
{
    uint32_t nfuncs = 0;
    for (; exports [nfuncs].name; nfuncs++)
        if (strlen (exports [nfuncs].name) > CASK_MAX_KEY)
            return cask_client_set_error (self, "%s: function name '%.40s...' is over %d bytes",
                                          path, exports [nfuncs].name, CASK_MAX_KEY);
    const char *slash = strrchr (path, '/');
    cask_library_t library = { cask_str (slash ? slash + 1 : path), cask_str (hash), nfuncs };
    cask_buf_reset (&self->body);
    cask_library_put (&self->body, &library);
    for (uint32_t index = 0; index < nfuncs; index++) {
        cask_func_t func = { 0, cask_str (exports [index].name),
                             cask_str (exports [index].doc ? exports [index].doc : "") };
        cask_func_put (&self->body, &func);
    }
    return 0;
}

static void
s_sha1_hex (const void *data, size_t size, char hex [41])
{
    zdigest_t *digest = zdigest_new ();
    zdigest_update (digest, (const byte *) data, size);
    const byte *bytes = zdigest_data (digest);
    for (int index = 0; index < 20; index++)
        snprintf (hex + 2 * index, 3, "%02x", bytes [index]);
    zdigest_destroy (&digest);
}

static void
s_free_data (void *data, void *hint)
{
    (void) hint;
    free (data);
}

static bool
s_registered (void *arg)
{
    cask_client_t *self = (cask_client_t *) arg;
    return self->registered || self->broker_error;
}

//  Sends REGISTER with the library's bytes and waits for the answer
static int
s_register (cask_client_t *self, const char *path, const cask_export_t *exports,
            void *data, size_t size, int timeout_ms)
{
    char hash [41];
    s_sha1_hex (data, size, hash);
    cask_value_t *bytes = cask_bytes_take (data, size, s_free_data, NULL);
    if (!bytes) {
        free (data);
        return cask_client_set_error (self, "%s: out of memory", path);
    }
    int rc = s_put_register (self, path, exports, hash);
    if (rc == 0 && cask_message_add_value_frame (&self->out, bytes) < 0)
        rc = cask_client_set_error (self, "%s: out of memory", path);
    cask_value_destroy (&bytes);
    if (rc)
        return rc;
    cask_client_send_releases (self);
    free (self->broker_error);
    self->broker_error = NULL;
    self->registered = false;
    self->register_hash = hash;
    if (cask_send (self->broker, NULL, CASK_MSG_REGISTER, &self->body, &self->out))
        rc = cask_client_set_error (self, "%s: cannot send to the broker: %s",
                                    path, zmq_strerror (errno));
    else
    if (cask_client_wait (self, s_registered, self, timeout_ms))
        rc = cask_client_set_error (self, "%s: the broker did not confirm the registration within %d ms",
                                    path, timeout_ms);
    else
    if (!self->registered)
        rc = cask_client_set_error (self, "%s: %s", path, self->broker_error);
    self->register_hash = NULL;
    return rc;
}

int
cask_client_register (cask_client_t *self, const char *path, int timeout_ms)
{
    size_t size = 0;
    void *data = s_read_file (path, &size);
    if (!data)
        return cask_client_set_error (self, "%s: cannot read: %s", path, strerror (errno));
    const cask_export_t *exports = NULL;
    void *handle = s_library_open (self, path, &exports);
    if (!handle) {
        free (data);
        return -1;
    }
    int rc = s_register (self, path, exports, data, size, timeout_ms);
    dlclose (handle);
    return rc;
}

bool
cask_client_has_function (cask_client_t *self, const char *name)
{
    return name && s_function_find (self, name) != NULL;
}

//  ---------------------------------------------------------------------
//  Submitting

//  The dependency index of a future used as an argument, the same index
//  each time the same task is used again in one submit
static int
s_ref_index (void *arg, const cask_value_t *ref)
{
    cask_client_t *self = (cask_client_t *) arg;
    cask_future_t *future = (cask_future_t *) cask_value_ref_target (ref);
    if (!future || future->client != self)
        return -1;
    cask_record_t *record = future->record;
    if (record->dep_serial == self->serial)
        return (int) record->dep_index;
    if (self->ndeps == self->capdeps) {
        size_t cap = self->capdeps ? self->capdeps * 2 : 16;
        cask_record_t **deps = (cask_record_t **) realloc (self->deps, cap * sizeof *deps);
        if (!deps)
            return -1;
        self->deps = deps;
        self->capdeps = cap;
    }
    record->dep_serial = self->serial;
    record->dep_index = (uint32_t) self->ndeps;
    self->deps [self->ndeps++] = record;
    return (int) record->dep_index;
}

static void
s_batch_begin (cask_client_t *self)
{
    //  A RELEASE queued before must reach the broker before a SUBMIT that
    //  may hold the same key again
    cask_client_send_releases (self);
    cask_batch_reset (&self->submits);
}

static int
s_batch_send (cask_client_t *self)
{
    if (self->submits.count == 0)
        return 0;
    int rc = cask_batch_send (&self->submits, self->broker, NULL, CASK_MSG_SUBMIT, &self->out);
    if (rc)
        cask_client_set_error (self, "cannot send to the broker at %s: %s",
                               self->address, zmq_strerror (errno));
    s_batch_begin (self);
    return rc;
}

static bool
s_batch_full (cask_client_t *self)
{
    return self->submits.body.size > S_BATCH_BYTES || self->out.nframes > S_BATCH_FRAMES;
}

//  Appends the task's record to the batch, its frames to the message
static void
s_batch_add (cask_client_t *self, const char *key, uint32_t fn,
             const cask_submit_opts_t *opts)
{
    cask_buf_t *body = cask_batch_add (&self->submits);
    bool restricted = self->restrictions.size > 0;
    uint8_t flags = (restricted ? CASK_TASK_RESTRICTED : 0)
                  | (opts->timeout_ms ? CASK_TASK_TIMED : 0);
    cask_task_t head = { .key = cask_str (key), .fn = fn, .flags = flags,
                         .retries = opts->retries, .priority = opts->priority,
                         .ndeps = (uint32_t) self->ndeps };
    cask_task_put_head (body, &head);
    for (size_t index = 0; index < self->ndeps; index++)
        cask_put_str8 (body, cask_str (self->deps [index]->key));
    cask_str_t args = { (const char *) self->args.data, self->args.size };
    cask_task_put_tail (body, (uint32_t) self->frames.nframes, args);
    if (restricted)
        cask_put_raw (body, self->restrictions.data, self->restrictions.size);
    if (opts->timeout_ms)
        cask_put_u32 (body, opts->timeout_ms);
    for (size_t index = 0; index < self->frames.nframes; index++)
        cask_message_move_frame (&self->out, &self->frames.frames [index]);
    self->frames.nframes = 0;   //  all moved out, nothing left to close
}

//  The key of the task just encoded: the caller's, a fresh one, or the
//  hash of the task. Returns 0 or -1.
static int
s_key_choose (cask_client_t *self, const char *fn, const cask_submit_opts_t *opts,
              char key [CASK_MAX_KEY + 1])
{
    if (opts->key) {
        snprintf (key, CASK_MAX_KEY + 1, "%s", opts->key);
        return 0;
    }
    if (opts->unique)
        return s_unique_key (self, fn, key);
    s_task_key (self, fn, S_SEED_TASK, &self->restrictions, key);
    return 0;
}

//  A future for the task just encoded, under key: a new handle on the
//  record of an equal task we hold, or a new record added to the batch
static cask_future_t *
s_task_future (cask_client_t *self, const char *fn, uint32_t fn_id, const char *key,
               const cask_submit_opts_t *opts)
{
    size_t size = strlen (key);
    uint64_t hash = cask_keymap_hash (self->records, key, size);
    cask_record_t *record = cask_keymap_lookup_hashed (self->records, key, size, hash);
    //  Cancelled means the broker let go of it: submit it again
    bool fresh = !record || record->status == CASK_CANCELLED;
    if (!record)
        record = s_record_new (self, key, hash, self->ndeps);
    cask_future_t *future = record ? cask_future_new (self, record) : NULL;
    if (!future) {
        if (record && record->handles == 0)
            cask_client_forget (self, record, false);
        cask_client_set_error (self, "%s: out of memory", fn);
    }
    else
    if (fresh) {
        record->status = CASK_PENDING;
        s_record_clear_error (record);
        s_edges_unlink (record);
        s_edges_link (self, record);
        s_batch_add (self, key, fn_id, opts);
    }
    return future;
}

//  A future for fn(args). Does not take args.
static cask_future_t *
s_task_add (cask_client_t *self, const char *fn, uint32_t fn_id, const cask_value_t *args,
            const cask_submit_opts_t *opts)
{
    self->serial++;
    self->ndeps = 0;
    cask_buf_reset (&self->args);
    cask_future_t *future = NULL;
    char key [CASK_MAX_KEY + 1];
    if (cask_value_encode (args, &self->args, &self->frames, s_ref_index, self)
    ||  self->args.failed)
        cask_client_set_error (self, "%s: an argument cannot be sent (a future of another "
                               "client or a destroyed one, or a list nested too deep)", fn);
    else
    if (s_key_choose (self, fn, opts, key) == 0)
        future = s_task_future (self, fn, fn_id, key, opts);
    if (self->frames.nframes) {
        cask_message_close (&self->frames);
        cask_message_init (&self->frames);
    }
    return future;
}

//  Parses opts' restrictions and encodes them into self->restrictions
//  (left empty when there are none). Returns 0, or -1 with the error set
//  ("what: ..."): then nothing must be sent.
static int
s_restrictions_encode (cask_client_t *self, const char *what, const cask_submit_opts_t *opts)
{
    cask_buf_reset (&self->restrictions);
    cask_restrictions_t rec = { 0 };
    char why [300];
    if (opts->workers && *opts->workers
    &&  cask_names_parse (opts->workers, rec.workers, &rec.nworkers, why, sizeof why))
        return cask_client_set_error (self, "%s: workers \"%s\": %s", what, opts->workers, why);
    if (opts->resources && *opts->resources
    &&  cask_resources_parse (opts->resources, rec.resources, &rec.nresources, why, sizeof why))
        return cask_client_set_error (self, "%s: resources \"%s\": %s", what, opts->resources,
                                      why);
    if (rec.nworkers || rec.nresources)
        cask_restrictions_put (&self->restrictions, &rec);
    if (self->restrictions.failed) {
        cask_buf_reset (&self->restrictions);
        return cask_client_set_error (self, "%s: out of memory", what);
    }
    return 0;
}

static s_function_t *
s_function_check (cask_client_t *self, const char *fn)
{
    s_function_t *function = fn ? s_function_find (self, fn) : NULL;
    if (!function)
        cask_client_set_error (self, "unknown function '%s': the cluster has no such function; "
                               "register the library that exports it", fn ? fn : "(null)");
    return function;
}

//  A custom key must fit the wire (a C string holds no NUL), and the
//  restrictions must parse (encoded into self->restrictions)
static bool
s_opts_check (cask_client_t *self, const char *fn, const cask_submit_opts_t *opts)
{
    size_t length = opts->key ? strlen (opts->key) : 1;
    if (length < 1 || length > CASK_MAX_KEY) {
        cask_client_set_error (self, "%s: a custom key must be 1 to %d bytes, not %zu",
                               fn ? fn : "(null)", CASK_MAX_KEY, length);
        return false;
    }
    return s_restrictions_encode (self, fn ? fn : "(null)", opts) == 0;
}

//  Submits fn with args, a list value (taken)
static cask_future_t *
s_submit_list (cask_client_t *self, const char *fn, cask_value_t *args,
               const cask_submit_opts_t *opts)
{
    s_function_t *function = s_opts_check (self, fn, opts) ? s_function_check (self, fn) : NULL;
    cask_future_t *future = NULL;
    if (function) {
        s_batch_begin (self);
        future = s_task_add (self, fn, function->id, args, opts);
        if (future && s_batch_send (self))
            cask_future_destroy (&future);
    }
    cask_value_destroy (&args);
    return future;
}

cask_future_t *
cask_submit_opts (cask_client_t *self, const char *fn, const cask_submit_opts_t *opts,
                  cask_value_t **args, size_t nargs)
{
    cask_submit_opts_t defaults = CASK_SUBMIT_DEFAULT;
    cask_value_t *list = cask_list_new (nargs);
    for (size_t index = 0; index < nargs; index++) {
        if (!list || cask_list_append (list, args [index]))
            cask_value_destroy (list ? &list : &args [index]);
    }
    if (!list) {
        cask_client_set_error (self, "%s: out of memory, or a NULL argument", fn);
        return NULL;
    }
    return s_submit_list (self, fn, list, opts ? opts : &defaults);
}

cask_future_t *
cask_submitv (cask_client_t *self, const char *fn, cask_value_t **args, size_t nargs)
{
    return cask_submit_opts (self, fn, NULL, args, nargs);
}

cask_future_t *
cask_submit (cask_client_t *self, const char *fn, ...)
{
    cask_value_t *list = cask_list_new (4);
    va_list args;
    va_start (args, fn);
    for (cask_value_t *arg = va_arg (args, cask_value_t *); arg;
         arg = va_arg (args, cask_value_t *)) {
        if (!list || cask_list_append (list, arg))
            cask_value_destroy (list ? &list : &arg);
    }
    va_end (args);
    if (!list) {
        cask_client_set_error (self, "%s: out of memory", fn);
        return NULL;
    }
    return s_submit_list (self, fn, list, &CASK_SUBMIT_DEFAULT);
}

//  A future for fn(item)
static cask_future_t *
s_map_one (cask_client_t *self, const char *fn, uint32_t fn_id, const cask_value_t *item,
           const cask_submit_opts_t *opts)
{
    cask_value_t *args = cask_list_new (1);
    if (!args || cask_list_append (args, cask_value_ref ((cask_value_t *) item))) {
        cask_value_destroy (&args);
        cask_client_set_error (self, "map %s: out of memory", fn);
        return NULL;
    }
    cask_future_t *future = s_task_add (self, fn, fn_id, args, opts);
    cask_value_destroy (&args);
    return future;
}

static int
s_map (cask_client_t *self, const char *fn, uint32_t fn_id, const cask_value_t *inputs,
       const cask_submit_opts_t *opts, cask_future_t **futures)
{
    size_t count = cask_value_size (inputs);
    size_t made = 0;
    s_batch_begin (self);
    for (; made < count; made++) {
        futures [made] = s_map_one (self, fn, fn_id, cask_value_item (inputs, made), opts);
        if (!futures [made]
        ||  (s_batch_full (self) && s_batch_send (self)))
            break;
    }
    if (s_batch_send (self) == 0 && made == count)
        return 0;
    //  What was made went out; its futures go, and with them the keys
    //  nobody else holds
    cask_futures_destroy (futures, made < count ? made + 1 : count);
    return -1;
}

int
cask_map_opts (cask_client_t *self, const char *fn, cask_value_t *inputs,
               const cask_submit_opts_t *opts, cask_future_t **futures)
{
    cask_submit_opts_t defaults = CASK_SUBMIT_DEFAULT;
    if (!opts)
        opts = &defaults;
    s_function_t *function = NULL;
    char what [CASK_MAX_KEY + 8];
    snprintf (what, sizeof what, "map %s", fn ? fn : "(null)");
    if (opts->key)
        cask_client_set_error (self, "%s: a custom key is not allowed (each task "
                               "needs its own)", what);
    else
    if (s_restrictions_encode (self, what, opts) == 0)
        function = s_function_check (self, fn);
    if (function && cask_value_type (inputs) != CASK_LIST) {
        cask_client_set_error (self, "map %s: the inputs are not a list", fn);
        function = NULL;
    }
    int rc = function ? s_map (self, fn, function->id, inputs, opts, futures) : -1;
    cask_value_destroy (&inputs);
    return rc;
}

int
cask_map (cask_client_t *self, const char *fn, cask_value_t *inputs, cask_future_t **futures)
{
    return cask_map_opts (self, fn, inputs, NULL, futures);
}

//  ---------------------------------------------------------------------
//  Cancelling, and restarting the cluster

//  Sends the keys batch as command, after any RELEASE queued before it
static int
s_keys_send (cask_client_t *self, uint8_t command, const char *what)
{
    cask_client_send_releases (self);
    if (cask_batch_send (&self->keys, self->broker, NULL, command, NULL))
        return cask_client_set_error (self, "%s: cannot send to the broker at %s: %s", what,
                                      self->address, zmq_strerror (errno));
    return 0;
}

//  Adds key to the keys batch, sending it first when it is full
static int
s_keys_add (cask_client_t *self, uint8_t command, const char *what, const char *key)
{
    if (self->keys.body.size > S_BATCH_BYTES && s_keys_send (self, command, what))
        return -1;
    cask_put_str8 (cask_batch_add (&self->keys), cask_str (key));
    return 0;
}

static int
s_stack_push (cask_client_t *self, size_t depth, cask_record_t *record)
{
    if (depth == self->capstack) {
        size_t cap = self->capstack ? self->capstack * 2 : 64;
        cask_record_t **stack = (cask_record_t **) realloc (self->stack, cap * sizeof *stack);
        if (!stack)
            return -1;
        self->stack = stack;
        self->capstack = cap;
    }
    self->stack [depth] = record;
    return 0;
}

//  Cancels record and every record here that depends on it, as the broker
//  will: each then owes us one STATE cancelled. When out of memory for the
//  walk, the broker's STATE still cancels the rest.
static void
s_cancel_tree (cask_client_t *self, cask_record_t *root)
{
    size_t depth = 0;
    if (s_stack_push (self, depth, root) == 0)
        depth++;
    while (depth > 0) {
        cask_record_t *record = self->stack [--depth];
        if (record->status == CASK_CANCELLED)
            continue;
        s_record_cancel (self, record, NULL, 0);
        record->cancels_due++;
        for (cask_edge_t *edge = record->dependants; edge; edge = edge->next)
            if (s_stack_push (self, depth, edge->owner) == 0)
                depth++;
    }
}

int
cask_cancel (cask_client_t *self, cask_future_t **futures, size_t n)
{
    for (size_t index = 0; index < n; index++)
        if (!cask_client_owns (self, futures [index], "cancel"))
            return -1;
    cask_batch_reset (&self->keys);
    for (size_t index = 0; index < n; index++) {
        cask_record_t *record = futures [index]->record;
        if (record->status == CASK_CANCELLED)
            continue;
        if (s_keys_add (self, CASK_MSG_CANCEL, "cancel", record->key))
            return -1;
        s_cancel_tree (self, record);
    }
    return s_keys_send (self, CASK_MSG_CANCEL, "cancel");
}

static bool
s_restarted (void *arg)
{
    return ((cask_client_t *) arg)->restarted;
}

int
cask_client_restart (cask_client_t *self, int timeout_ms)
{
    cask_client_send_releases (self);
    self->restarted = false;
    cask_buf_reset (&self->body);
    if (cask_send (self->broker, NULL, CASK_MSG_RESTART, &self->body, NULL))
        return cask_client_set_error (self, "restart: cannot send to the broker at %s: %s",
                                      self->address, zmq_strerror (errno));
    int rc = 0;
    if (cask_client_wait (self, s_restarted, self, timeout_ms))
        rc = cask_client_set_error (self, "restart: the cluster did not confirm within %d ms",
                                    timeout_ms);
    //  The broker forgot every task. Its STATE cancelled for each should
    //  come before RESTARTED, but may trail it: a record not cancelled yet
    //  owes one, which must not cancel it once submitted again. What an
    //  earlier CANCEL owes came before the restart.
    const char *why = "cluster restarted";
    cask_record_t *record;
    size_t cursor = 0;
    while ((record = cask_keymap_next (self->records, &cursor))) {
        record->cancels_due = record->status != CASK_CANCELLED;
        if (record->status != CASK_CANCELLED)
            s_record_cancel (self, record, why, strlen (why));
    }
    return rc;
}

//  ---------------------------------------------------------------------
//  Retiring workers and scaling the cluster

static bool
s_retired (void *arg)
{
    cask_client_t *self = (cask_client_t *) arg;
    return self->retires_due == 0 || self->broker_error;
}

//  Sends RETIRE (keep, ids) and waits for its RETIRED, or an ERROR (a
//  broker that does not take RETIRE). The broker answers every RETIRE once,
//  maybe out of order: when none is due, ours was answered, and the late
//  answer of one that timed out cannot pass for ours. A local cluster's
//  workers that left are then reaped. Returns 0 or -1.
static int
s_retire (cask_client_t *self, uint32_t keep, const uint32_t *ids, uint32_t nids,
          int timeout_ms)
{
    int64_t deadline = s_deadline (timeout_ms);
    //  The REPORT gives the workers' names by id: how a local cluster knows
    //  which of its processes the ids in RETIRED are
    if (self->local) {
        self->retiring = cask_client_info (self, timeout_ms);
        if (!self->retiring)
            return -1;
    }
    cask_client_send_releases (self);
    free (self->broker_error);
    self->broker_error = NULL;
    cask_buf_reset (&self->body);
    cask_retire_put (&self->body, keep, ids, nids);
    int rc = 0;
    if (cask_send (self->broker, NULL, CASK_MSG_RETIRE, &self->body, NULL))
        rc = cask_client_set_error (self, "retire: cannot send to the broker at %s: %s",
                                    self->address, zmq_strerror (errno));
    else {
        self->retires_due++;
        if (cask_client_wait (self, s_retired, self, s_remaining (deadline)))
            rc = cask_client_set_error (self, "retire: the broker did not confirm within %d ms "
                                        "(the workers may still leave)", timeout_ms);
        else
        if (self->retires_due > 0) {
            self->retires_due--;    //  the ERROR answered it
            rc = cask_client_set_error (self, "retire: the broker at %s refused: %s",
                                        self->address, self->broker_error);
        }
    }
    if (self->local)
        cask_local_reap (self->local, S_REAP_GRACE_MS);
    cask_cluster_info_destroy (&self->retiring);
    return rc;
}

int
cask_client_retire_workers (cask_client_t *self, const uint32_t *ids, size_t n, int timeout_ms)
{
    if (n == 0)
        return 0;
    if (!ids || n > S_RETIRE_MAX_IDS)
        return cask_client_set_error (self, "retire: %s", ids ? "too many ids for one RETIRE"
                                                              : "ids is NULL");
    return s_retire (self, 0, ids, (uint32_t) n, timeout_ms);
}

//  Starts the local workers that make the cluster nworkers strong and waits
//  for the broker to announce them. Returns 0 or -1.
static int
s_scale_up (cask_client_t *self, size_t nworkers, int timeout_ms)
{
    int64_t deadline = s_deadline (timeout_ms);
    char error [512];
    for (size_t count = self->nworkers; count < nworkers; count++)
        if (cask_local_add_worker (self->local, error, sizeof error))
            return cask_client_set_error (self, "scale: %s", error);
    if (s_local_join (self, nworkers, deadline, timeout_ms, error, sizeof error))
        return cask_client_set_error (self, "scale: %s", error);
    return 0;
}

int
cask_client_scale (cask_client_t *self, size_t nworkers, int timeout_ms)
{
    size_t current = cask_client_nworkers (self);
    if (nworkers < current)
        return s_retire (self, (uint32_t) nworkers, NULL, 0, timeout_ms);
    if (nworkers == current)
        return 0;
    if (!self->local)
        return cask_client_set_error (self, "scale: this client did not start the cluster at %s, "
                                      "so it cannot start workers for it: start %zu more with "
                                      "`scripts/cask-cluster add --broker %s --workers %zu` "
                                      "(or cask-ssh-workers)", self->address,
                                      nworkers - current, self->address, nworkers - current);
    return s_scale_up (self, nworkers, timeout_ms);
}

//  ---------------------------------------------------------------------
//  The broker's REPORT

static bool
s_reported (void *arg)
{
    return ((cask_client_t *) arg)->report != NULL;
}

char *
cask_client_status (cask_client_t *self, int timeout_ms)
{
    return cask_client_view (self, NULL, timeout_ms);
}

char *
cask_client_view (cask_client_t *self, const cask_view_t *view, int timeout_ms)
{
    cask_client_send_releases (self);
    cask_buf_reset (&self->body);
    if (view)
        cask_view_put (&self->body, view);
    if (cask_send (self->broker, NULL, CASK_MSG_STATUS, &self->body, NULL)) {
        cask_client_set_error (self, "status: cannot send to the broker at %s: %s",
                               self->address, zmq_strerror (errno));
        return NULL;
    }
    self->reports_due++;
    self->report_wanted = true;
    int rc = cask_client_wait (self, s_reported, self, timeout_ms);
    self->report_wanted = false;
    char *report = self->report;
    self->report = NULL;
    if (rc)
        cask_client_set_error (self, "status: no REPORT from the broker at %s within %d ms",
                               self->address, timeout_ms);
    return report;
}

//  ---------------------------------------------------------------------
//  Fire and forget

int
cask_fire_and_forget (cask_client_t *self, cask_future_t **futures, size_t n)
{
    for (size_t index = 0; index < n; index++)
        if (!cask_client_owns (self, futures [index], "fire_and_forget"))
            return -1;
    cask_batch_reset (&self->keys);
    for (size_t index = 0; index < n; index++)
        if (s_keys_add (self, CASK_MSG_FIRE, "fire_and_forget", futures [index]->record->key))
            return -1;
    return s_keys_send (self, CASK_MSG_FIRE, "fire_and_forget");
}

//  ---------------------------------------------------------------------
//  Published datasets. PUBLISH, LOOKUP and UNPUBLISH are answered DATASET
//  about the name when they succeed, ERROR about the name when they fail.

static bool
s_answered (void *arg)
{
    return ((cask_client_t *) arg)->answered;
}

//  Sends command (name, key) and waits for its answer. Returns 0 or -1.
static int
s_dataset_ask (cask_client_t *self, uint8_t command, const char *name, const char *key,
               int timeout_ms)
{
    const char *what = cask_command_name (command);
    if (!name || !*name || strlen (name) > CASK_MAX_KEY)
        return cask_client_set_error (self, "%s: a name must be 1 to %d bytes", what, CASK_MAX_KEY);
    cask_client_send_releases (self);
    cask_buf_reset (&self->body);
    cask_dataset_put (&self->body, &(cask_dataset_t) { cask_str (name), cask_str (key) });
    self->asked_name = name;
    self->asked_command = command;
    self->answered = false;
    self->answer_record = NULL;
    free (self->answer_error);
    self->answer_error = NULL;
    int rc = cask_send (self->broker, NULL, command, &self->body, NULL);
    if (rc)
        rc = cask_client_set_error (self, "%s %s: cannot send to the broker at %s: %s", what,
                                    name, self->address, zmq_strerror (errno));
    else
    if (cask_client_wait (self, s_answered, self, timeout_ms))
        rc = cask_client_set_error (self, "%s %s: no answer from the broker within %d ms",
                                    what, name, timeout_ms);
    else
    if (self->answer_error)
        rc = cask_client_set_error (self, "%s %s: %s", what, name, self->answer_error);
    self->asked_name = NULL;
    return rc;
}

int
cask_publish (cask_client_t *self, const char *name, cask_future_t *future, int timeout_ms)
{
    if (!cask_client_owns (self, future, "publish"))
        return -1;
    return s_dataset_ask (self, CASK_MSG_PUBLISH, name, future->record->key, timeout_ms);
}

int
cask_unpublish (cask_client_t *self, const char *name, int timeout_ms)
{
    return s_dataset_ask (self, CASK_MSG_UNPUBLISH, name, "", timeout_ms);
}

cask_future_t *
cask_get_dataset (cask_client_t *self, const char *name, int timeout_ms)
{
    if (s_dataset_ask (self, CASK_MSG_LOOKUP, name, "", timeout_ms))
        return NULL;
    if (!self->answer_record) {
        cask_client_set_error (self, "get_dataset: no dataset named '%s'", name);
        return NULL;
    }
    cask_future_t *future = cask_future_new (self, self->answer_record);
    if (!future) {
        if (self->answer_record->handles == 0)
            cask_client_forget (self, self->answer_record, true);
        cask_client_set_error (self, "get_dataset %s: out of memory", name);
    }
    self->answer_record = NULL;
    return future;
}

//  ---------------------------------------------------------------------
//  Scattering values into the workers' memory. Each value is encoded once
//  and keyed by its type and a hash of its content, so scattering equal
//  values shares one key. The broker hears of the keys first (SCATTER, and
//  has processed it), then each worker gets its values on its peer socket (PUT) and answers
//  STORED; the worker's DONE makes the broker send STATE memory.

//  How long a scatter waits for the broker to have taken its SCATTER.
#define S_SCATTER_BARRIER_MS 30000

//  Sends the SCATTER batch, waits until the broker has processed it, then
//  sends every worker's PUT batch. The wait matters: a worker's DONE for a
//  PUT reaches the broker on another connection, which ZeroMQ does not
//  order against ours, and a DONE that overtook its SCATTER would be
//  ignored, leaving the scatter unfinished for ever. The broker answers
//  STATUS in the order our messages came, so its REPORT is the barrier.
static int
s_scatter_flush (cask_client_t *self)
{
    int rc = s_keys_send (self, CASK_MSG_SCATTER, "scatter");
    if (rc == 0) {
        char *report = cask_client_status (self, S_SCATTER_BARRIER_MS);
        if (report)
            free (report);
        else
            rc = -1;
    }
    for (size_t index = 0; index < self->nworkers && rc == 0; index++) {
        s_worker_t *worker = &self->workers [index];
        if (cask_batch_send (&worker->puts, worker->socket, NULL, CASK_MSG_PUT,
                             &worker->put_frames))
            rc = cask_client_set_error (self, "scatter: cannot send to worker %u (%s): %s",
                                        worker->id, worker->endpoint, zmq_strerror (errno));
    }
    return rc;
}

static bool
s_scatter_full (cask_client_t *self, s_worker_t *worker)
{
    return self->keys.body.size > S_BATCH_BYTES || worker->puts.body.size > S_BATCH_BYTES
        || worker->put_frames.nframes > S_BATCH_FRAMES;
}

//  Queues the value just encoded into self->args/frames, under record's
//  key, for the next worker in turn. Returns 0 or -1.
static int
s_scatter_queue (cask_client_t *self, cask_record_t *record)
{
    s_worker_t *worker = &self->workers [self->scatter_next++ % self->nworkers];
    if (s_worker_connect (self, worker))
        return cask_client_set_error (self, "scatter: cannot connect to worker %u at %s: %s",
                                      worker->id, worker->endpoint, zmq_strerror (errno));
    if (s_scatter_full (self, worker) && s_scatter_flush (self))
        return -1;
    cask_scatter_t scatter = { cask_str (record->key), worker->id };
    cask_scatter_put (cask_batch_add (&self->keys), &scatter);
    cask_buf_t *body = cask_batch_add (&worker->puts);
    cask_put_str8 (body, cask_str (record->key));
    cask_put_u32 (body, (uint32_t) self->frames.nframes);
    cask_put_raw (body, self->args.data, self->args.size);
    for (size_t index = 0; index < self->frames.nframes; index++)
        cask_message_move_frame (&worker->put_frames, &self->frames.frames [index]);
    self->frames.nframes = 0;
    record->storing = CASK_STORE_SENT;
    record->status = CASK_PENDING;
    s_record_clear_error (record);
    return 0;
}

//  A future for value: a new handle on the record of an equal value held
//  here, or a new record whose value is queued for a worker
static cask_future_t *
s_scatter_one (cask_client_t *self, const cask_value_t *value, size_t index)
{
    self->ndeps = 0;
    cask_buf_reset (&self->args);
    cask_future_t *future = NULL;
    if (cask_value_encode (value, &self->args, &self->frames, NULL, NULL) || self->args.failed)
        cask_client_set_error (self, "scatter: value %zu cannot be sent (a future inside, "
                               "or a list nested too deep)", index);
    else {
        char key [CASK_MAX_KEY + 1];
        s_task_key (self, cask_type_name (cask_value_type (value)), S_SEED_DATA, NULL, key);
        size_t size = strlen (key);
        uint64_t hash = cask_keymap_hash (self->records, key, size);
        cask_record_t *record = cask_keymap_lookup_hashed (self->records, key, size, hash);
        bool fresh = !record || record->status == CASK_CANCELLED;
        if (!record)
            record = s_record_new (self, key, hash, 0);
        future = record ? cask_future_new (self, record) : NULL;
        if (!future) {
            if (record && record->handles == 0)
                cask_client_forget (self, record, false);
            cask_client_set_error (self, "scatter: out of memory");
        }
        else
        if (fresh && s_scatter_queue (self, record))
            cask_future_destroy (&future);
    }
    if (self->frames.nframes) {
        cask_message_close (&self->frames);
        cask_message_init (&self->frames);
    }
    return future;
}

typedef struct {
    cask_future_t **futures;
    size_t count;
    size_t next;                //  futures before this one are through the phase
    bool storing;               //  first phase: STORED; second: STATE
} s_scatter_wait_t;

static bool
s_scatter_ready (void *arg)
{
    s_scatter_wait_t *self = (s_scatter_wait_t *) arg;
    for (; self->next < self->count; self->next++) {
        cask_record_t *record = self->futures [self->next]->record;
        if (self->storing ? record->storing == CASK_STORE_SENT
                          : record->status == CASK_PENDING)
            break;
    }
    return self->next == self->count;
}

static int
s_scatter_wait (cask_client_t *self, s_scatter_wait_t *wait, int64_t deadline)
{
    int64_t remaining = deadline < 0 ? -1 : deadline - zclock_mono ();
    wait->next = 0;
    return cask_client_wait (self, s_scatter_ready, wait,
                             (int) (deadline >= 0 && remaining < 0 ? 0 : remaining));
}

//  Why the first of the futures that is not in memory is not, or NULL
static const char *
s_scatter_failure (cask_future_t **futures, size_t n)
{
    for (size_t index = 0; index < n; index++) {
        cask_record_t *record = futures [index]->record;
        if (record->storing == CASK_STORE_REFUSED || record->status != CASK_FINISHED)
            return record->error ? record->error : record->key;
    }
    return NULL;
}

//  Waits for every STORED and then every STATE. Returns 0 or -1.
static int
s_scatter_confirm (cask_client_t *self, cask_future_t **futures, size_t n, int timeout_ms)
{
    int64_t deadline = timeout_ms >= 0 ? zclock_mono () + timeout_ms : -1;
    s_scatter_wait_t wait = { futures, n, 0, true };
    if (s_scatter_wait (self, &wait, deadline))
        return cask_client_set_error (self, "scatter: %s: no worker confirmed it within %d ms",
                                      futures [wait.next]->record->key, timeout_ms);
    for (size_t index = 0; index < n; index++)
        if (futures [index]->record->storing == CASK_STORE_REFUSED)
            return cask_client_set_error (self, "%s", futures [index]->record->error);
    wait.storing = false;
    if (s_scatter_wait (self, &wait, deadline))
        return cask_client_set_error (self, "scatter: %s: the broker did not confirm it "
                                      "within %d ms", futures [wait.next]->record->key,
                                      timeout_ms);
    const char *failure = s_scatter_failure (futures, n);
    return failure ? cask_client_set_error (self, "scatter: %s", failure) : 0;
}

int
cask_scatter (cask_client_t *self, cask_value_t **values, size_t n, cask_future_t **futures,
              int timeout_ms)
{
    cask_client_pump (self);
    size_t made = 0;
    int rc = 0;
    if (n && self->nworkers == 0)
        rc = cask_client_set_error (self, "scatter: the cluster has no worker");
    cask_batch_reset (&self->keys);
    while (made < n && rc == 0) {
        futures [made] = s_scatter_one (self, values [made], made);
        if (futures [made])
            made++;
        else
            rc = -1;
    }
    for (size_t index = 0; index < n; index++) {
        cask_value_destroy (&values [index]);
        if (index >= made)
            futures [index] = NULL;
    }
    //  What was queued goes out either way, so every key made is known to
    //  the broker and its release below means what it says
    if (s_scatter_flush (self))
        rc = -1;
    if (rc == 0 && n)
        rc = s_scatter_confirm (self, futures, n, timeout_ms);
    for (size_t index = 0; index < made; index++)
        futures [index]->record->storing = CASK_STORE_NONE;
    if (rc)
        cask_futures_destroy (futures, made);
    return rc;
}
