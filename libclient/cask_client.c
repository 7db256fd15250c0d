/*  cask_client.c - the client's connection to a cask cluster.

    One DEALER talks to the broker: HELLO and WELCOME, REGISTER, SUBMIT,
    RELEASE and BYE go out; STATE, WORKER, REGISTERED and ERROR come in. One
    DEALER per worker, made on the first GET to it, fetches results straight
    from the worker that holds them. There is no background thread: each
    blocking call, and each status query, pumps the sockets.

    Task keys are deterministic, as with Dask's pure=True: the function name
    and a 128-bit hash of the encoded arguments, the dependency keys and the
    bytes of any payload frames. Equal submits share one key, and the client
    keeps one record per key whatever the number of futures pointing at it.
*/
#include "cask_client_internal.h"
#include "cask_hash.h"
#include "cask_keymap.h"
#include "cask/cask_task.h"

#include <czmq.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_DEFAULT_BROKER "tcp://127.0.0.1:8786"
//  How long BYE may take to leave when the client is destroyed
#define S_BROKER_LINGER_MS 1000
//  Keys per GET, so a DATA answer stays well under the payload frame limit
#define S_GET_BATCH 4096
//  A SUBMIT or RELEASE body that grows past this is sent at once, so map
//  over millions of inputs stays under the body limit
#define S_BATCH_BYTES (8u << 20)
//  Payload frames per SUBMIT before it is sent at once
#define S_BATCH_FRAMES (CASK_MAX_FRAMES / 2)

//  A function the cluster knows
typedef struct {
    uint32_t id;
} s_function_t;

//  A worker the broker announced
typedef struct {
    uint32_t id;
    char endpoint [CASK_MAX_KEY + 1];
    void *socket;               //  DEALER to its peer endpoint, made on first GET
    cask_batch_t gets;          //  GET batch being built
} s_worker_t;

struct _cask_client_t {
    void *context;
    void *broker;               //  DEALER to the broker
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
    uint64_t serial;            //  counts encoded tasks, to dedupe their deps
    cask_batch_t releases;      //  RELEASE batch being built
    cask_message_t in;          //  incoming message
    zmq_pollitem_t *items;
    size_t capitems;
    const char *register_hash;  //  a REGISTER waiting for its REGISTERED
    bool registered;
};

static __thread char s_last_error [512];

//  ---------------------------------------------------------------------
//  Task keys: the 128-bit cask_hash of the pieces of a task, hashed where
//  they lie. It costs about 40 ns for a small task (SHA-1 costs six times
//  that).

//  "<fn>-<32 hex>" for the task just encoded into self->args/frames/deps
static void
s_task_key (cask_client_t *self, const char *fn, char key [CASK_MAX_KEY + 1])
{
    cask_hash_t hash;
    cask_hash_init (&hash, 0);
    size_t fnlen = strlen (fn);
    cask_hash_field (&hash, fn, fnlen);
    cask_hash_field (&hash, self->args.data, self->args.size);
    for (size_t index = 0; index < self->ndeps; index++)
        cask_hash_field (&hash, self->deps [index]->key, strlen (self->deps [index]->key));
    for (size_t index = 0; index < self->frames.nframes; index++)
        cask_hash_field (&hash, zmq_msg_data (&self->frames.frames [index]),
                         zmq_msg_size (&self->frames.frames [index]));
    uint64_t digest [2];
    cask_hash_final (&hash, digest);
    //  The name is cut short if the key would pass the wire's 255 bytes
    int namelen = (int) (fnlen < CASK_MAX_KEY - 33 ? fnlen : CASK_MAX_KEY - 33);
    snprintf (key, CASK_MAX_KEY + 1, "%.*s-%016llx%016llx", namelen, fn,
              (unsigned long long) digest [0], (unsigned long long) digest [1]);
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

//  A new record for key, whose hash in the table of records is hash
static cask_record_t *
s_record_new (cask_client_t *self, const char *key, uint64_t hash)
{
    size_t size = strlen (key);
    cask_record_t *record = (cask_record_t *) calloc (1, sizeof (cask_record_t) + size + 1);
    if (!record)
        return NULL;
    memcpy (record->key, key, size + 1);
    record->status = CASK_PENDING;
    if (cask_keymap_insert_hashed (self->records, record, hash)) {
        free (record);
        return NULL;
    }
    return record;
}

static int
s_send_releases (cask_client_t *self)
{
    return cask_batch_send (&self->releases, self->broker, NULL, CASK_MSG_RELEASE, NULL);
}

void
cask_client_forget (cask_client_t *self, cask_record_t *record, bool releasing)
{
    if (releasing) {
        cask_put_str8 (cask_batch_add (&self->releases), cask_str (record->key));
        if (self->releases.body.size > S_BATCH_BYTES)
            s_send_releases (self);
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

static void
s_apply_state (cask_client_t *self, cask_record_t *record, const cask_state_rec_t *state)
{
    switch (state->state) {
        case CASK_STATE_MEMORY:
            record->status = CASK_FINISHED;
            record->worker = state->worker;
            record->type = state->type;
            record->fetch_failed = false;
            s_record_clear_error (record);
            break;
        case CASK_STATE_ERRED:
            record->status = CASK_ERROR;
            cask_value_destroy (&record->value);
            s_record_erred (self, record, state);
            break;
        case CASK_STATE_CANCELLED:
            record->status = CASK_CANCELLED;
            if (state->message.len)
                s_record_set_error (record, "%s was cancelled: %.*s", record->key,
                                    (int) state->message.len, state->message.ptr);
            else
                s_record_set_error (record, "%s was cancelled", record->key);
            break;
        case CASK_STATE_WAITING:
        case CASK_STATE_PROCESSING:
            //  Computed again, after the worker that held it was lost
            record->status = CASK_PENDING;
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

//  An ERROR about a key fails that task (from the broker) or its fetch
//  (from a worker); any other is kept for whoever waits on the broker.
static void
s_on_error (cask_client_t *self, cask_rd_t *rd, s_worker_t *worker)
{
    cask_error_t error;
    cask_error_get (rd, &error);
    if (rd->failed)
        return;
    cask_record_t *record = error.about.len ? s_record_find (self, error.about) : NULL;
    if (record && worker)
        s_fetch_failed (record, "%s: fetching it from worker %u (%s) failed: %.*s",
                        record->key, worker->id, worker->endpoint,
                        (int) error.message.len, error.message.ptr);
    else
    if (record) {
        record->status = CASK_ERROR;
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
        return;
    }
    switch (msg->command) {
        case CASK_MSG_WELCOME: s_on_welcome (self, &rd); break;
        case CASK_MSG_REGISTERED: s_on_registered (self, &rd); break;
        case CASK_MSG_STATE: s_on_state (self, &rd); break;
        case CASK_MSG_WORKER: s_on_worker (self, &rd); break;
        case CASK_MSG_ERROR: s_on_error (self, &rd, NULL); break;
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
    s_send_releases (self);
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

static void
s_queue_get (cask_client_t *self, cask_record_t *record)
{
    s_worker_t *worker = s_worker_find (self, record->worker);
    if (!worker) {
        s_fetch_failed (record, "%s: finished on worker %u, which has left",
                        record->key, record->worker);
        return;
    }
    if (!worker->socket) {
        worker->socket = s_new_socket (self, ZMQ_DEALER, 0);
        if (!worker->socket || zmq_connect (worker->socket, worker->endpoint)) {
            s_fetch_failed (record, "%s: cannot connect to worker %u at %s: %s", record->key,
                            worker->id, worker->endpoint, zmq_strerror (errno));
            if (worker->socket)
                zmq_close (worker->socket);
            worker->socket = NULL;
            return;
        }
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
    cask_hello_t hello = { CASK_ROLE_CLIENT, cask_str (name), 0, 0, cask_str ("") };
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
    self->functions = zhashx_new ();
    self->records = cask_keymap_new (s_record_key);
    cask_buf_init (&self->body);
    cask_batch_init (&self->submits);
    cask_buf_init (&self->args);
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

cask_client_t *
cask_client_new (const char *address, int timeout_ms)
{
    if (!address || !*address)
        address = getenv ("CASK_BROKER");
    if (!address || !*address)
        address = S_DEFAULT_BROKER;
    cask_client_t *self = s_client_new (address);
    if (!self) {
        s_set_last_error ("out of memory");
        return NULL;
    }
    if (!self->broker || zmq_connect (self->broker, self->address)) {
        s_set_last_error ("cannot connect to %s: %s", self->address, zmq_strerror (errno));
        cask_client_destroy (&self);
        return NULL;
    }
    if (s_send_hello (self)
    ||  cask_client_wait (self, s_welcomed, self, timeout_ms)) {
        s_set_last_error ("no broker answered at %s within %d ms", self->address, timeout_ms);
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

void
cask_client_destroy (cask_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cask_client_t *self = *self_p;
    *self_p = NULL;
    //  BYE releases every key we hold, so the futures go without RELEASE
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
    if (self->context)
        zmq_ctx_term (self->context);
    zhashx_destroy (&self->functions);
    cask_keymap_destroy (&self->records);
    cask_buf_free (&self->body);
    cask_batch_free (&self->submits);
    cask_buf_free (&self->args);
    cask_batch_free (&self->releases);
    cask_message_close (&self->out);
    cask_message_close (&self->frames);
    cask_message_close (&self->in);
    free (self->workers);
    free (self->deps);
    free (self->items);
    free (self->broker_error);
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
    s_send_releases (self);
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
    s_send_releases (self);
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
s_batch_add (cask_client_t *self, const char *key, uint32_t fn)
{
    cask_buf_t *body = cask_batch_add (&self->submits);
    cask_task_put_head (body, &(cask_task_t) { .key = cask_str (key), .fn = fn, .ndeps = (uint32_t) self->ndeps });
    for (size_t index = 0; index < self->ndeps; index++)
        cask_put_str8 (body, cask_str (self->deps [index]->key));
    cask_str_t args = { (const char *) self->args.data, self->args.size };
    cask_task_put_tail (body, (uint32_t) self->frames.nframes, args);
    for (size_t index = 0; index < self->frames.nframes; index++)
        cask_message_move_frame (&self->out, &self->frames.frames [index]);
    self->frames.nframes = 0;   //  all moved out, nothing left to close
}

//  A future for fn(args): a new handle on the record of an equal task we
//  hold, or a new record added to the batch. Does not take args.
static cask_future_t *
s_task_add (cask_client_t *self, const char *fn, uint32_t fn_id, const cask_value_t *args)
{
    self->serial++;
    self->ndeps = 0;
    cask_buf_reset (&self->args);
    cask_future_t *future = NULL;
    if (cask_value_encode (args, &self->args, &self->frames, s_ref_index, self)
    ||  self->args.failed)
        cask_client_set_error (self, "%s: an argument cannot be sent (a future of another "
                               "client or a destroyed one, or a list nested too deep)", fn);
    else {
        char key [CASK_MAX_KEY + 1];
        s_task_key (self, fn, key);
        size_t size = strlen (key);
        uint64_t hash = cask_keymap_hash (self->records, key, size);
        cask_record_t *record = cask_keymap_lookup_hashed (self->records, key, size, hash);
        //  Cancelled means the broker let go of it: submit it again
        bool fresh = !record || record->status == CASK_CANCELLED;
        if (!record)
            record = s_record_new (self, key, hash);
        future = record ? cask_future_new (self, record) : NULL;
        if (!future) {
            if (record && record->handles == 0)
                cask_client_forget (self, record, false);
            cask_client_set_error (self, "%s: out of memory", fn);
        }
        else
        if (fresh) {
            record->status = CASK_PENDING;
            s_record_clear_error (record);
            s_batch_add (self, key, fn_id);
        }
    }
    if (self->frames.nframes) {
        cask_message_close (&self->frames);
        cask_message_init (&self->frames);
    }
    return future;
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

//  Submits fn with args, a list value (taken)
static cask_future_t *
s_submit_list (cask_client_t *self, const char *fn, cask_value_t *args)
{
    s_function_t *function = s_function_check (self, fn);
    cask_future_t *future = NULL;
    if (function) {
        s_batch_begin (self);
        future = s_task_add (self, fn, function->id, args);
        if (future && s_batch_send (self))
            cask_future_destroy (&future);
    }
    cask_value_destroy (&args);
    return future;
}

cask_future_t *
cask_submitv (cask_client_t *self, const char *fn, cask_value_t **args, size_t nargs)
{
    cask_value_t *list = cask_list_new (nargs);
    for (size_t index = 0; index < nargs; index++) {
        if (!list || cask_list_append (list, args [index]))
            cask_value_destroy (list ? &list : &args [index]);
    }
    if (!list) {
        cask_client_set_error (self, "%s: out of memory, or a NULL argument", fn);
        return NULL;
    }
    return s_submit_list (self, fn, list);
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
    return s_submit_list (self, fn, list);
}

//  A future for fn(item)
static cask_future_t *
s_map_one (cask_client_t *self, const char *fn, uint32_t fn_id, const cask_value_t *item)
{
    cask_value_t *args = cask_list_new (1);
    if (!args || cask_list_append (args, cask_value_ref ((cask_value_t *) item))) {
        cask_value_destroy (&args);
        cask_client_set_error (self, "map %s: out of memory", fn);
        return NULL;
    }
    cask_future_t *future = s_task_add (self, fn, fn_id, args);
    cask_value_destroy (&args);
    return future;
}

static int
s_map (cask_client_t *self, const char *fn, uint32_t fn_id, const cask_value_t *inputs,
       cask_future_t **futures)
{
    size_t count = cask_value_size (inputs);
    size_t made = 0;
    s_batch_begin (self);
    for (; made < count; made++) {
        futures [made] = s_map_one (self, fn, fn_id, cask_value_item (inputs, made));
        if (!futures [made]
        ||  (s_batch_full (self) && s_batch_send (self)))
            break;
    }
    if (s_batch_send (self) == 0 && made == count)
        return 0;
    //  What was made went out; its futures go, and with them the keys
    //  nobody else holds
    for (size_t index = 0; index <= made && index < count; index++)
        cask_future_destroy (&futures [index]);
    return -1;
}

int
cask_map (cask_client_t *self, const char *fn, cask_value_t *inputs, cask_future_t **futures)
{
    s_function_t *function = s_function_check (self, fn);
    if (function && cask_value_type (inputs) != CASK_LIST) {
        cask_client_set_error (self, "map %s: the inputs are not a list", fn);
        function = NULL;
    }
    int rc = function ? s_map (self, fn, function->id, inputs, futures) : -1;
    cask_value_destroy (&inputs);
    return rc;
}
