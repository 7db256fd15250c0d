/*  cask_broker.c - the cask broker loop (see cask_broker.h, proto/PROTOCOL.md).

    One ROUTER socket. Each wake-up drains every message that is ready,
    feeding the graph, then flushes what the graph decided: per worker one
    FREE and one TASK batch, per client one STATE batch, in that order (a
    FREE never overtakes a TASK that computes the same key again). A FREE
    that follows a TASK batched in the same wake-up sends both batches
    first, so the worker sees FREEs and TASKs in the order they were made.
    Greetings, libraries, worker events, reports and errors are sent at once.

    Peers are known by routing id once they said HELLO, and by their id
    (clients and workers counted apart, from 1) in the graph.

    Workers and the broker heartbeat each other (PROTOCOL.md): a worker
    silent for CASK_HEARTBEAT_LIVENESS of its intervals (hung, its host
    gone, its link cut) is treated as if it said BYE.

    A worker that dies may have been killed by a task it ran: its nanny
    starts it again and the new worker's HELLO says which worker it
    replaces, how that one died and what its executors were running then;
    the broker counts the death against those tasks (cask_graph_killed):
    one that killed 3 workers fails. Queued tasks are not blamed.

    A peer whose connection closes is treated as if it said BYE. ZeroMQ
    hides connections, so the broker watches them through a socket monitor:
    each peer's file descriptor is taken from its HELLO (ZMQ_SRCFD), and a
    DISCONNECTED event names the descriptor that closed.

    Scaling down: RETIRE from a client makes the graph retire workers
    (steal back their queued tasks, copy their needed results elsewhere);
    when the graph says one retired, it gets RETIRE, the clients hear it
    left, and its peer record stays, ignored, until its BYE or its
    connection closes. The client gets RETIRED once all it asked for left.

    RESTART forgets the graph at once and sends RESTART to every worker;
    until a worker answers RESTARTED, its DONEs are for tasks from before
    (the pipe keeps order), so they are ignored. The client that asked gets
    RESTARTED when every worker answered or left, or after S_RESTART_MSECS.
*/
#include <czmq.h>
#include <cjson/cJSON.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "cask_broker.h"
#include "cask_dashboard.h"
#include "cask_graph.h"
#include "cask_log.h"
#include "cask_proto.h"
#include "cask_stream.h"
#include "cask_views.h"

//  How long a wait may last before the stop flag is looked at again.
#define S_POLL_MSECS 500
//  Messages taken per wake-up before flushing, so a flood cannot starve
//  the batches that are waiting to go out.
#define S_DRAIN_MAX 10000
//  A batch body past this size goes out before another record is added.
#define S_BATCH_BYTES (16u << 20)
#define S_ID_KEY 9                   //  hex of a peer id
//  Longest wait for workers to answer RESTART before the client is told.
#define S_RESTART_MSECS 10000
//  Memory is handed back to the system once the graph holds less than
//  1/S_TRIM_RATIO of the most tasks it held, if that was S_TRIM_MIN or more.
#define S_TRIM_RATIO 8
#define S_TRIM_MIN 65536
#define S_MONITOR_ENDPOINT "inproc://cask-broker-monitor"
#define S_ROUTING_KEY (2 * 255 + 1)  //  hex of a routing id
//  Most functions a library may list: no worker reads a longer export
//  table (worker/cask_library.c), and each costs the broker 280 bytes.
#define S_MAX_FUNCTIONS 65536

//  Records of one command bound for one peer, sent as one message.
typedef struct {
    cask_batch_t records;
    cask_message_t frames;      //  payload frames of the records
} s_batch_t;

typedef struct {
    zmq_msg_t routing;
    uint8_t role;               //  CASK_ROLE_*
    uint32_t id;
    char name [CASK_MAX_KEY + 1];
    char endpoint [CASK_MAX_KEY + 1];   //  workers: peer endpoint
    uint32_t nthreads;
    uint64_t memory_limit;
    cJSON *resources;           //  workers: what it declared, for REPORT
    int fd;                     //  its connection's descriptor, or -1
    int64_t heard_at;           //  zclock_mono of its last message
    uint32_t heartbeat_ms;      //  workers: how often it heartbeats
    uint32_t restarts_owed;     //  workers: RESTARTs not answered yet
    bool retired;               //  workers: told to leave, forgotten by the graph
    bool paused;                //  workers: memory nearly full (PAUSE)
    cask_heartbeat_t figures;   //  workers: from their last HEARTBEAT
    bool dirty;                 //  has batches to flush
    s_batch_t frees;
    s_batch_t tasks;
    s_batch_t steals;
    s_batch_t copies;
    s_batch_t states;
} s_peer_t;

typedef struct {
    uint32_t id;
    char name [CASK_MAX_KEY + 1];
    char *doc;
    size_t doc_len;
} s_function_t;

typedef struct {
    char name [CASK_MAX_KEY + 1];
    char hash [CASK_MAX_KEY + 1];       //  lower-case hex SHA-1
    uint32_t owner;             //  client that registered it
    uint32_t nfuncs;
    s_function_t *functions;
    zmq_msg_t bytes;            //  the shared object, copied by reference
} s_library_t;

//  A client waiting for RESTARTED.
typedef struct {
    uint32_t client;
    int64_t deadline;           //  zclock_mono
} s_restart_t;

//  A client waiting for RETIRED: ids [0, pending) have not left yet.
typedef struct {
    uint32_t client;
    uint32_t nids;
    uint32_t pending;
    uint32_t *ids;
} s_retire_t;

struct _cask_broker_t {
    void *context;
    void *socket;
    void *monitor;              //  PAIR: the ROUTER's connection events
    char endpoint [256];
    cask_log_t *log;
    cask_graph_t *graph;
    zhashx_t *peers;            //  by hex routing id, owns the peers
    zhashx_t *clients;          //  by id
    zhashx_t *workers;          //  by id
    uint32_t next_client;
    uint32_t next_worker;
    uint32_t next_function;
    s_library_t **libraries;
    size_t nlibraries;
    s_peer_t **dirty;           //  peers with batches to flush
    size_t ndirty;
    size_t capdirty;
    size_t tasks_peak;          //  most tasks since memory was last trimmed
    s_restart_t *restarts;      //  clients waiting for RESTARTED
    size_t nrestarts;
    s_retire_t *retires;        //  clients waiting for RETIRED
    size_t nretires;
    cask_message_t msg;         //  the message being handled
    cask_buf_t out;             //  body of the message being sent at once
    int64_t now;                //  zclock_mono at this wake-up
    int64_t started_at;         //  zclock_mono when made
    cask_stream_t *stream;      //  the last tasks that finished
    cask_dashboard_t *dashboard;        //  or NULL
    uint32_t heartbeat_ms;
    int64_t heartbeat_at;       //  when the next heartbeats go out
};

static const char *
s_role_name (uint8_t role)
{
    return role == CASK_ROLE_CLIENT ? "client" : role == CASK_ROLE_WORKER ? "worker" : "peer";
}

//  ---------------------------------------------------------------------
//  Peers and their batches

static void
s_batch_init (s_batch_t *self)
{
    cask_batch_init (&self->records);
    cask_message_init (&self->frames);
}

static void
s_batch_free (s_batch_t *self)
{
    cask_batch_free (&self->records);
    cask_message_close (&self->frames);
}

static void
s_peer_destroy (s_peer_t **self_p)
{
    s_peer_t *self = *self_p;
    if (!self)
        return;
    zmq_msg_close (&self->routing);
    cJSON_Delete (self->resources);
    s_batch_free (&self->frees);
    s_batch_free (&self->tasks);
    s_batch_free (&self->steals);
    s_batch_free (&self->copies);
    s_batch_free (&self->states);
    free (self);
    *self_p = NULL;
}

static void
s_routing_key (const zmq_msg_t *routing, char *key)
{
    static const char hex [] = "0123456789abcdef";
    const uint8_t *data = zmq_msg_data ((zmq_msg_t *) routing);
    size_t size = zmq_msg_size ((zmq_msg_t *) routing);
    if (size > 255)
        size = 255;
    for (size_t i = 0; i < size; i++) {
        key [2 * i] = hex [data [i] >> 4];
        key [2 * i + 1] = hex [data [i] & 15];
    }
    key [2 * size] = 0;
}

//  The key of a peer id in the maps: hex digits, without printf, which
//  cost a tenth of the broker's time when every sink call formatted one.
static void
s_id_key (uint32_t id, char *key)
{
    static const char hex [] = "0123456789abcdef";
    for (int i = 0; i < 8; i++)
        key [i] = hex [(id >> (28 - 4 * i)) & 15];
    key [8] = 0;
}

static s_peer_t *
s_peer_by_routing (cask_broker_t *self, const zmq_msg_t *routing)
{
    char key [S_ROUTING_KEY];
    s_routing_key (routing, key);
    return (s_peer_t *) zhashx_lookup (self->peers, key);
}

static s_peer_t *
s_peer_by_id (zhashx_t *map, uint32_t id)
{
    char key [S_ID_KEY];
    s_id_key (id, key);
    return (s_peer_t *) zhashx_lookup (map, key);
}

static s_peer_t *
s_peer_new (cask_broker_t *self, const zmq_msg_t *routing, const cask_hello_t *hello)
{
    s_peer_t *peer = (s_peer_t *) calloc (1, sizeof (s_peer_t));
    if (!peer)
        return NULL;
    zmq_msg_init (&peer->routing);
    zmq_msg_copy (&peer->routing, (zmq_msg_t *) routing);
    peer->role = hello->role;
    peer->id = hello->role == CASK_ROLE_CLIENT ? ++self->next_client : ++self->next_worker;
    cask_str_copy (hello->name, peer->name, sizeof peer->name);
    cask_str_copy (hello->endpoint, peer->endpoint, sizeof peer->endpoint);
    peer->nthreads = hello->nthreads;
    peer->memory_limit = hello->memory_limit;
    peer->fd = -1;
    peer->heard_at = self->now;
    peer->heartbeat_ms = self->heartbeat_ms;
    if (hello->nresources) {
        peer->resources = cJSON_CreateObject ();
        for (uint8_t i = 0; peer->resources && i < hello->nresources; i++) {
            char name [CASK_MAX_KEY + 1];
            cask_str_copy (hello->resources [i].name, name, sizeof name);
            cJSON_AddNumberToObject (peer->resources, name, hello->resources [i].amount);
        }
    }
    s_batch_init (&peer->frees);
    s_batch_init (&peer->tasks);
    s_batch_init (&peer->steals);
    s_batch_init (&peer->copies);
    s_batch_init (&peer->states);

    char key [S_ROUTING_KEY];
    s_routing_key (routing, key);
    zhashx_insert (self->peers, key, peer);
    s_id_key (peer->id, key);
    zhashx_insert (peer->role == CASK_ROLE_CLIENT ? self->clients : self->workers, key, peer);
    return peer;
}

static void
s_peer_remove (cask_broker_t *self, s_peer_t *peer)
{
    for (size_t i = 0; i < self->ndirty; i++)
        if (self->dirty [i] == peer) {
            self->dirty [i] = self->dirty [--self->ndirty];
            break;
        }
    char key [S_ROUTING_KEY];
    s_id_key (peer->id, key);
    zhashx_delete (peer->role == CASK_ROLE_CLIENT ? self->clients : self->workers, key);
    s_routing_key (&peer->routing, key);
    zhashx_delete (self->peers, key);       //  destroys the peer
}

//  Logs how sending command to peer went: rc is what the send returned.
static void
s_log_send (cask_broker_t *self, s_peer_t *peer, uint8_t command, int rc)
{
    if (rc)
        cask_log_print (self->log, CASK_LOG_WARNING, "could not send %s to %s %u: %s",
                        cask_command_name (command), s_role_name (peer->role), peer->id,
                        zmq_strerror (errno));
    else
        cask_log_print (self->log, CASK_LOG_DEBUG, "sent %s to %s %u", cask_command_name (command),
                        s_role_name (peer->role), peer->id);
}

static void
s_send (cask_broker_t *self, s_peer_t *peer, uint8_t command, cask_buf_t *body,
        cask_message_t *frames)
{
    s_log_send (self, peer, command,
                cask_send (self->socket, &peer->routing, command, body, frames));
}

static void
s_batch_send (cask_broker_t *self, s_peer_t *peer, s_batch_t *batch, uint8_t command)
{
    if (batch->records.count)
        s_log_send (self, peer, command,
                    cask_batch_send (&batch->records, self->socket, &peer->routing, command,
                                     &batch->frames));
}

//  Sends what is batched for worker in the order it must see it: a FREE
//  was made before any TASK or COPY batched with it (a later one flushes
//  these first), and a STEAL follows the TASK it names.
static void
s_peer_flush_work (cask_broker_t *self, s_peer_t *peer)
{
    s_batch_send (self, peer, &peer->frees, CASK_MSG_FREE);
    s_batch_send (self, peer, &peer->tasks, CASK_MSG_TASK);
    s_batch_send (self, peer, &peer->steals, CASK_MSG_STEAL);
    s_batch_send (self, peer, &peer->copies, CASK_MSG_COPY);
}

static void
s_peer_flush (cask_broker_t *self, s_peer_t *peer)
{
    s_peer_flush_work (self, peer);
    s_batch_send (self, peer, &peer->states, CASK_MSG_STATE);
}

static void
s_flush (cask_broker_t *self)
{
    for (size_t i = 0; i < self->ndirty; i++) {
        s_peer_flush (self, self->dirty [i]);
        self->dirty [i]->dirty = false;
    }
    self->ndirty = 0;
}

//  Makes room in batch for one more record with nframes frames. Returns the
//  body to write the record to, or NULL when out of memory.
static cask_buf_t *
s_batch_add (cask_broker_t *self, s_peer_t *peer, s_batch_t *batch, uint32_t nframes)
{
    if (batch->records.count > 0
    && (batch->records.body.size > S_BATCH_BYTES
    ||  batch->frames.nframes + nframes > CASK_MAX_FRAMES))
        s_peer_flush (self, peer);
    if (!peer->dirty) {
        if (self->ndirty == self->capdirty) {
            size_t cap = self->capdirty ? self->capdirty * 2 : 16;
            s_peer_t **dirty = (s_peer_t **) realloc (self->dirty, cap * sizeof (s_peer_t *));
            if (!dirty)
                return NULL;
            self->dirty = dirty;
            self->capdirty = cap;
        }
        self->dirty [self->ndirty++] = peer;
        peer->dirty = true;
    }
    return cask_batch_add (&batch->records);
}

//  ---------------------------------------------------------------------
//  The graph's sink: records into batches

static void
s_sink_dispatch (void *arg, uint32_t worker, const cask_gtask_t *task)
{
    cask_broker_t *self = (cask_broker_t *) arg;
    s_peer_t *peer = s_peer_by_id (self->workers, worker);
    cask_task_t rec;
    cask_gtask_record (task, &rec);
    cask_buf_t *body = peer ? s_batch_add (self, peer, &peer->tasks, rec.nframes) : NULL;
    if (!body) {
        cask_log_print (self->log, CASK_LOG_ERROR, "cannot dispatch %.*s to worker %u",
                        (int) rec.key.len, rec.key.ptr, worker);
        return;
    }
    cask_task_put_head (body, &rec);
    for (uint32_t i = 0; i < rec.ndeps; i++) {
        cask_put_str8 (body, cask_gtask_dep_key (task, i));
        cask_put_str8 (body, cask_gtask_dep_holder (task, i, worker));
    }
    cask_task_put_tail (body, rec.nframes, rec.args);
    if (rec.flags & CASK_TASK_TIMED)
        cask_put_u32 (body, rec.timeout_ms);
    zmq_msg_t *frames = cask_gtask_frames (task);
    for (uint32_t i = 0; i < rec.nframes; i++) {
        zmq_msg_t copy;
        zmq_msg_init (&copy);
        zmq_msg_copy (&copy, &frames [i]);
        cask_message_move_frame (&peer->tasks.frames, &copy);
        zmq_msg_close (&copy);
    }
}

static void
s_sink_state (void *arg, uint32_t client, const cask_gtask_t *task)
{
    cask_broker_t *self = (cask_broker_t *) arg;
    s_peer_t *peer = s_peer_by_id (self->clients, client);
    cask_buf_t *body = peer ? s_batch_add (self, peer, &peer->states, 0) : NULL;
    if (!body)
        return;
    cask_state_rec_t rec;
    cask_gtask_state (task, &rec);
    cask_state_put (body, &rec);
}

static void
s_sink_cancelled (void *arg, uint32_t client, cask_str_t key, const char *message)
{
    cask_broker_t *self = (cask_broker_t *) arg;
    s_peer_t *peer = s_peer_by_id (self->clients, client);
    cask_buf_t *body = peer ? s_batch_add (self, peer, &peer->states, 0) : NULL;
    if (!body)
        return;
    cask_state_rec_t rec = { .key = key, .state = CASK_STATE_CANCELLED,
                             .message = cask_str (message) };
    cask_state_put (body, &rec);
}

//  A FREE may name a task dispatched, or a copy asked for, earlier in this
//  wake-up, whose TASK or COPY waits in a batch: what is batched goes out
//  first, so the worker sees the FREE after it.
static void
s_sink_free (void *arg, uint32_t worker, cask_str_t key)
{
    cask_broker_t *self = (cask_broker_t *) arg;
    s_peer_t *peer = s_peer_by_id (self->workers, worker);
    if (peer && (peer->tasks.records.count || peer->copies.records.count))
        s_peer_flush_work (self, peer);
    cask_buf_t *body = peer ? s_batch_add (self, peer, &peer->frees, 0) : NULL;
    if (body)
        cask_put_str8 (body, key);
}

static void
s_sink_steal (void *arg, uint32_t worker, cask_str_t key)
{
    cask_broker_t *self = (cask_broker_t *) arg;
    s_peer_t *peer = s_peer_by_id (self->workers, worker);
    cask_buf_t *body = peer ? s_batch_add (self, peer, &peer->steals, 0) : NULL;
    if (body)
        cask_put_str8 (body, key);
}

static void
s_sink_copy (void *arg, uint32_t worker, cask_str_t key, cask_str_t holder)
{
    cask_broker_t *self = (cask_broker_t *) arg;
    s_peer_t *peer = s_peer_by_id (self->workers, worker);
    cask_buf_t *body = peer ? s_batch_add (self, peer, &peer->copies, 0) : NULL;
    cask_copy_t rec = { key, holder };
    if (body)
        cask_copy_put (body, &rec);
}

//  Wall clock, microseconds since the epoch.
static uint64_t
s_wall_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static void
s_sink_finished (void *arg, uint32_t worker, const cask_gtask_t *task, const cask_done_t *rec)
{
    cask_broker_t *self = (cask_broker_t *) arg;
    cask_stream_add (self->stream, worker, cask_gtask_fn (task), rec,
                     rec->start_us ? 0 : s_wall_us ());
}

static void s_tell_clients_worker (cask_broker_t *self, s_peer_t *worker, bool joined);
static void s_retires_note (cask_broker_t *self, uint32_t worker);

//  The graph is done with a retiring worker: it is told to leave, after
//  what is batched for it, and the clients hear it left after where its
//  results went (STATE), so none of them looks lost.
static void
s_sink_retired (void *arg, uint32_t worker)
{
    cask_broker_t *self = (cask_broker_t *) arg;
    s_peer_t *peer = s_peer_by_id (self->workers, worker);
    if (!peer)
        return;
    cask_log_print (self->log, CASK_LOG_INFO, "worker %u retired: %s", peer->id, peer->name);
    s_flush (self);
    cask_buf_reset (&self->out);
    s_send (self, peer, CASK_MSG_RETIRE, &self->out, NULL);
    peer->retired = true;
    char key [S_ID_KEY];
    s_id_key (peer->id, key);
    zhashx_delete (self->workers, key);
    s_tell_clients_worker (self, peer, false);
    s_retires_note (self, peer->id);
}

//  ---------------------------------------------------------------------
//  Libraries

static void
s_library_destroy (s_library_t **self_p)
{
    s_library_t *self = *self_p;
    if (!self)
        return;
    for (uint32_t i = 0; i < self->nfuncs; i++)
        free (self->functions [i].doc);
    free (self->functions);
    zmq_msg_close (&self->bytes);
    free (self);
    *self_p = NULL;
}

static s_library_t *
s_library_by_hash (cask_broker_t *self, cask_str_t hash)
{
    for (size_t i = 0; i < self->nlibraries; i++)
        if (strlen (self->libraries [i]->hash) == hash.len
        &&  strncasecmp (self->libraries [i]->hash, hash.ptr, hash.len) == 0)
            return self->libraries [i];
    return NULL;
}

//  Writes the REGISTERED / LIBRARY body of library into self->out.
static void
s_library_put (cask_broker_t *self, s_library_t *library)
{
    cask_buf_reset (&self->out);
    cask_library_t head = { cask_str (library->name), cask_str (library->hash), library->nfuncs };
    cask_library_put (&self->out, &head);
    for (uint32_t i = 0; i < library->nfuncs; i++) {
        s_function_t *function = &library->functions [i];
        cask_func_t rec = { function->id, cask_str (function->name),
                            { function->doc, function->doc_len } };
        cask_func_put (&self->out, &rec);
    }
}

static void
s_library_send (cask_broker_t *self, s_library_t *library, s_peer_t *worker)
{
    cask_message_t frames;
    cask_message_init (&frames);
    zmq_msg_t copy;
    zmq_msg_init (&copy);
    zmq_msg_copy (&copy, &library->bytes);
    cask_message_move_frame (&frames, &copy);
    zmq_msg_close (&copy);
    s_library_put (self, library);
    s_send (self, worker, CASK_MSG_LIBRARY, &self->out, &frames);
    cask_message_close (&frames);
}

//  ---------------------------------------------------------------------
//  Answers

static void
s_reply_error (cask_broker_t *self, uint16_t code, const char *format, ...)
{
    char text [512];
    va_list args;
    va_start (args, format);
    vsnprintf (text, sizeof text, format, args);
    va_end (args);
    cask_log_print (self->log, CASK_LOG_DEBUG, "ERROR %u to sender of %s: %s", code,
                    cask_command_name (self->msg.command), text);
    cask_send_error (self->socket, &self->msg, code, text);
}

static void
s_put_worker_info (cask_buf_t *body, s_peer_t *worker, bool joined)
{
    cask_worker_info_t rec = { worker->id, cask_str (worker->endpoint), worker->nthreads, joined };
    cask_worker_info_put (body, &rec);
}

static void
s_send_welcome (cask_broker_t *self, s_peer_t *peer)
{
    cask_buf_reset (&self->out);
    cask_put_u32 (&self->out, peer->id);
    uint32_t nfuncs = 0;
    for (size_t i = 0; i < self->nlibraries; i++)
        nfuncs += self->libraries [i]->nfuncs;
    cask_put_u32 (&self->out, nfuncs);
    for (size_t i = 0; i < self->nlibraries; i++)
        for (uint32_t f = 0; f < self->libraries [i]->nfuncs; f++) {
            s_function_t *function = &self->libraries [i]->functions [f];
            cask_func_t rec = { function->id, cask_str (function->name),
                                { function->doc, function->doc_len } };
            cask_func_put (&self->out, &rec);
        }
    cask_put_u32 (&self->out, (uint32_t) zhashx_size (self->workers));
    for (s_peer_t *worker = zhashx_first (self->workers); worker; worker = zhashx_next (self->workers))
        s_put_worker_info (&self->out, worker, true);
    s_send (self, peer, CASK_MSG_WELCOME, &self->out, NULL);
}

static void
s_tell_clients_worker (cask_broker_t *self, s_peer_t *worker, bool joined)
{
    cask_buf_reset (&self->out);
    s_put_worker_info (&self->out, worker, joined);
    for (s_peer_t *client = zhashx_first (self->clients); client; client = zhashx_next (self->clients))
        s_send (self, client, CASK_MSG_WORKER, &self->out, NULL);
}

//  ---------------------------------------------------------------------
//  Restarts

static bool
s_workers_restarting (cask_broker_t *self)
{
    for (s_peer_t *worker = zhashx_first (self->workers); worker; worker = zhashx_next (self->workers))
        if (worker->restarts_owed)
            return true;
    return false;
}

//  Answers RESTARTED to the clients whose restart is complete or waited
//  long enough.
static void
s_restarts_check (cask_broker_t *self)
{
    if (self->nrestarts == 0)
        return;
    bool complete = !s_workers_restarting (self);
    int64_t now = zclock_mono ();
    size_t kept = 0;
    for (size_t i = 0; i < self->nrestarts; i++) {
        s_restart_t *restart = &self->restarts [i];
        if (!complete && now < restart->deadline) {
            self->restarts [kept++] = *restart;
            continue;
        }
        s_peer_t *client = s_peer_by_id (self->clients, restart->client);
        if (!client)
            continue;
        if (!complete)
            cask_log_print (self->log, CASK_LOG_WARNING,
                            "restart of client %u: not every worker answered in %d ms",
                            client->id, S_RESTART_MSECS);
        s_peer_flush (self, client);        //  its STATE cancelled come first
        cask_buf_reset (&self->out);
        s_send (self, client, CASK_MSG_RESTARTED, &self->out, NULL);
    }
    self->nrestarts = kept;
}

static void
s_on_restart (cask_broker_t *self, s_peer_t *client)
{
    s_restart_t *restarts = (s_restart_t *) realloc (self->restarts,
        (self->nrestarts + 1) * sizeof (s_restart_t));
    if (!restarts) {
        cask_log_print (self->log, CASK_LOG_ERROR, "out of memory for a restart");
        return;
    }
    self->restarts = restarts;
    self->restarts [self->nrestarts++] = (s_restart_t) { client->id,
                                                         zclock_mono () + S_RESTART_MSECS };
    cask_log_print (self->log, CASK_LOG_INFO, "client %u restarts the cluster", client->id);
    //  What was decided before goes out before RESTART, which drops it
    s_flush (self);
    cask_graph_restart (self->graph, "cluster restarted");
    cask_buf_reset (&self->out);
    for (s_peer_t *worker = zhashx_first (self->workers); worker; worker = zhashx_next (self->workers)) {
        worker->restarts_owed++;
        s_send (self, worker, CASK_MSG_RESTART, &self->out, NULL);
    }
    s_restarts_check (self);
}

static void
s_on_restarted (cask_broker_t *self, s_peer_t *worker)
{
    if (worker->restarts_owed)
        worker->restarts_owed--;
    s_restarts_check (self);
}

//  ---------------------------------------------------------------------
//  Connections that close

static s_peer_t *
s_peer_by_fd (cask_broker_t *self, int fd)
{
    for (s_peer_t *peer = zhashx_first (self->peers); peer; peer = zhashx_next (self->peers))
        if (peer->fd == fd)
            return peer;
    return NULL;
}

static void s_peer_gone (cask_broker_t *self, s_peer_t *peer, const char *how);

//  Reads one monitor event: its number and value. -1 when none is ready.
static int
s_monitor_event (cask_broker_t *self, uint16_t *event, uint32_t *value)
{
    zmq_msg_t frame;
    zmq_msg_init (&frame);
    if (zmq_msg_recv (&frame, self->monitor, ZMQ_DONTWAIT) == -1) {
        zmq_msg_close (&frame);
        return -1;
    }
    bool valid = zmq_msg_size (&frame) == 6;
    if (valid) {
        const uint8_t *data = (const uint8_t *) zmq_msg_data (&frame);
        memcpy (event, data, sizeof *event);
        memcpy (value, data + 2, sizeof *value);
    }
    //  The second frame is the endpoint, which says nothing about the peer
    while (zmq_msg_more (&frame) && zmq_msg_recv (&frame, self->monitor, 0) != -1)
        ;
    zmq_msg_close (&frame);
    if (!valid)
        *event = 0;
    return 0;
}

//  Treats the peers whose connections closed as gone. A descriptor is
//  reused by the next connection accepted, so a DISCONNECTED event must be
//  read before the HELLO of a connection that got the same number: this
//  runs before the ROUTER is read on each wake-up, and again before each
//  HELLO is recorded. An event is queued before its descriptor is closed,
//  hence before any connection can reuse it, so the HELLO of a reused
//  descriptor always finds the old event queued. What remains: a peer
//  that reconnects on its own (a ZeroMQ reconnect after a network error)
//  comes back with a new routing id, unknown until it says HELLO again, and
//  libzmq drops monitor events when the monitor's pipe is full (its queue
//  is made unlimited here, so only memory bounds it).
static void
s_drain_monitor (cask_broker_t *self)
{
    uint16_t event;
    uint32_t fd;
    while (s_monitor_event (self, &event, &fd) == 0) {
        s_peer_t *peer = event == ZMQ_EVENT_DISCONNECTED ? s_peer_by_fd (self, (int) fd) : NULL;
        if (peer)
            s_peer_gone (self, peer, "lost its connection");
    }
}

static int
s_monitor_open (cask_broker_t *self)
{
    int zero = 0;
    if (zmq_socket_monitor (self->socket, S_MONITOR_ENDPOINT, ZMQ_EVENT_DISCONNECTED))
        return -1;
    self->monitor = zmq_socket (self->context, ZMQ_PAIR);
    if (!self->monitor)
        return -1;
    zmq_setsockopt (self->monitor, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt (self->monitor, ZMQ_LINGER, &zero, sizeof zero);
    return zmq_connect (self->monitor, S_MONITOR_ENDPOINT);
}

//  ---------------------------------------------------------------------
//  Commands

//  A worker's HELLO says it replaces worker id, which died (how) while it
//  ran the tasks listed: each counts a kill (see the top of this file).
static void
s_blame (cask_broker_t *self, const cask_hello_t *hello)
{
    char how [2 * CASK_MAX_KEY + 64];
    snprintf (how, sizeof how, "worker %u (%.*s): %.*s", hello->replaces,
              (int) hello->name.len, hello->name.ptr, (int) hello->death.len, hello->death.ptr);
    cask_log_print (self->log, CASK_LOG_WARNING, "%s, while it ran %u tasks", how,
                    hello->nrunning);
    cask_rd_t running;
    cask_rd_init (&running, hello->running.ptr, hello->running.len);
    for (uint16_t index = 0; index < hello->nrunning; index++) {
        cask_str_t key = cask_get_str8 (&running);
        if (cask_graph_killed (self->graph, key, how))
            cask_log_print (self->log, CASK_LOG_WARNING, "%.*s failed: it killed too many workers",
                            (int) key.len, key.ptr);
    }
}

static void
s_on_hello (cask_broker_t *self, cask_rd_t *rd)
{
    cask_hello_t hello;
    cask_hello_get (rd, &hello);
    if (!cask_rd_done (rd)) {
        s_reply_error (self, CASK_ERR_MALFORMED, "malformed HELLO");
        return;
    }
    if (hello.role != CASK_ROLE_CLIENT && hello.role != CASK_ROLE_WORKER) {
        s_reply_error (self, CASK_ERR_MALFORMED, "HELLO with unknown role %u", hello.role);
        return;
    }
    if (hello.role == CASK_ROLE_WORKER && (hello.nthreads == 0 || hello.endpoint.len == 0)) {
        s_reply_error (self, CASK_ERR_MALFORMED, "worker HELLO needs nthreads and a peer endpoint");
        return;
    }
    //  A connection that closed before this one was accepted may have left
    //  this descriptor number free for it: its event is queued already
    s_drain_monitor (self);
    s_peer_t *peer = s_peer_new (self, &self->msg.routing, &hello);
    if (!peer) {
        cask_log_print (self->log, CASK_LOG_ERROR, "out of memory for a new peer");
        return;
    }
    peer->fd = zmq_msg_get (&self->msg.body, ZMQ_SRCFD);
    if (peer->role == CASK_ROLE_WORKER && hello.replaces)
        s_blame (self, &hello);
    cask_log_print (self->log, CASK_LOG_INFO, "%s %u joined: %s%s%s", s_role_name (peer->role),
                    peer->id, peer->name, peer->role == CASK_ROLE_WORKER ? " at " : "",
                    peer->endpoint);
    s_send_welcome (self, peer);
    if (peer->role == CASK_ROLE_WORKER) {
        for (size_t i = 0; i < self->nlibraries; i++)
            s_library_send (self, self->libraries [i], peer);
        s_tell_clients_worker (self, peer, true);
        if (cask_graph_worker_add (self->graph, peer->id, &hello))
            cask_log_print (self->log, CASK_LOG_ERROR, "graph refused worker %u", peer->id);
    }
}

//  The peer left (BYE), or its connection closed (how).
static void
s_peer_gone (cask_broker_t *self, s_peer_t *peer, const char *how)
{
    cask_log_print (self->log, CASK_LOG_INFO, "%s %u %s: %s", s_role_name (peer->role), peer->id,
                    how, peer->name);
    if (peer->role == CASK_ROLE_CLIENT)
        cask_graph_client_gone (self->graph, peer->id);
    else
    if (!peer->retired) {
        cask_graph_worker_remove (self->graph, peer->id);
        s_flush (self);         //  results lost are waiting again before it left
        s_tell_clients_worker (self, peer, false);
        s_retires_note (self, peer->id);
    }
    s_peer_remove (self, peer);
    s_restarts_check (self);
}

static void
s_on_bye (cask_broker_t *self, s_peer_t *peer)
{
    s_peer_gone (self, peer, "left");
}

//  Reads the function table of a REGISTER into a new library, or answers
//  ERROR and returns NULL.
static s_library_t *
s_library_read (cask_broker_t *self, cask_rd_t *rd, const cask_library_t *head)
{
    //  Each entry takes at least 7 bytes: check before allocating
    if (head->nfuncs > (size_t) (rd->end - rd->ptr) / 7) {
        s_reply_error (self, CASK_ERR_MALFORMED, "malformed REGISTER");
        return NULL;
    }
    if (head->nfuncs > S_MAX_FUNCTIONS) {
        s_reply_error (self, CASK_ERR_LIBRARY, "library %.*s lists %u functions, more than %d",
                       (int) head->name.len, head->name.ptr, head->nfuncs, S_MAX_FUNCTIONS);
        return NULL;
    }
    s_library_t *library = (s_library_t *) calloc (1, sizeof (s_library_t));
    if (library)
        library->functions = (s_function_t *) calloc (head->nfuncs + 1, sizeof (s_function_t));
    if (!library || !library->functions) {
        free (library);
        return NULL;
    }
    zmq_msg_init (&library->bytes);
    cask_str_copy (head->name, library->name, sizeof library->name);
    library->nfuncs = head->nfuncs;
    bool complete = true;
    for (uint32_t i = 0; i < head->nfuncs && complete; i++) {
        cask_func_t rec;
        cask_func_get (rd, &rec);
        s_function_t *function = &library->functions [i];
        function->doc = rd->failed ? NULL : (char *) malloc (rec.doc.len + 1);
        complete = function->doc != NULL;
        if (complete) {
            cask_str_copy (rec.name, function->name, sizeof function->name);
            cask_str_copy (rec.doc, function->doc, rec.doc.len + 1);
            function->doc_len = rec.doc.len;
        }
    }
    if (!complete || !cask_rd_done (rd))
        s_reply_error (self, CASK_ERR_MALFORMED, "malformed REGISTER");
    else
    if (self->msg.nframes != 1)
        s_reply_error (self, CASK_ERR_MALFORMED, "REGISTER needs the library as one payload frame");
    else
        return library;
    s_library_destroy (&library);
    return NULL;
}

//  A reason to refuse the library's function names, or NULL. One pass,
//  with a set of the names seen: comparing every pair took seconds for a
//  few tens of thousands of functions.
static const char *
s_library_check_names (s_library_t *library)
{
    if (library->nfuncs == 0)
        return "library %s exports no functions";
    zhashx_t *seen = zhashx_new ();
    const char *refusal = seen ? NULL : "library %s: out of memory";
    for (uint32_t i = 0; i < library->nfuncs && !refusal; i++) {
        char *name = library->functions [i].name;
        if (name [0] == 0)
            refusal = "library %s has a function without a name";
        else
        if (zhashx_insert (seen, name, name))
            refusal = "library %s exports a function name twice";
    }
    zhashx_destroy (&seen);
    return refusal;
}

//  A reason to refuse the library, or NULL.
static const char *
s_library_check (cask_broker_t *self, s_library_t *library, cask_str_t hash)
{
    const char *refusal = s_library_check_names (library);
    if (refusal)
        return refusal;
    zdigest_t *digest = zdigest_new ();
    zdigest_update (digest, zmq_msg_data (&self->msg.frames [0]), zmq_msg_size (&self->msg.frames [0]));
    const char *actual = zdigest_string (digest);
    bool matches = actual && strlen (actual) == hash.len && strncasecmp (actual, hash.ptr, hash.len) == 0;
    if (actual)
        for (size_t i = 0; actual [i] && i < CASK_MAX_KEY; i++)
            library->hash [i] = (char) tolower ((unsigned char) actual [i]);
    zdigest_destroy (&digest);
    return matches ? NULL : "library %s: its bytes do not match its SHA-1 hash";
}

static void
s_library_announce (cask_broker_t *self, s_library_t *library, s_peer_t *owner)
{
    for (s_peer_t *worker = zhashx_first (self->workers); worker; worker = zhashx_next (self->workers))
        s_library_send (self, library, worker);
    s_library_put (self, library);
    s_send (self, owner, CASK_MSG_REGISTERED, &self->out, NULL);
    for (s_peer_t *client = zhashx_first (self->clients); client; client = zhashx_next (self->clients))
        if (client != owner)
            s_send (self, client, CASK_MSG_REGISTERED, &self->out, NULL);
}

static int
s_library_add (cask_broker_t *self, s_library_t *library)
{
    s_library_t **libraries = (s_library_t **) realloc (self->libraries,
        (self->nlibraries + 1) * sizeof (s_library_t *));
    if (!libraries)
        return -1;
    self->libraries = libraries;
    for (uint32_t i = 0; i < library->nfuncs; i++) {
        s_function_t *function = &library->functions [i];
        function->id = ++self->next_function;
        if (cask_graph_function_add (self->graph, function->id, cask_str (function->name)))
            return -1;
    }
    zmq_msg_move (&library->bytes, &self->msg.frames [0]);
    self->libraries [self->nlibraries++] = library;
    return 0;
}

static void
s_on_register (cask_broker_t *self, s_peer_t *client, cask_rd_t *rd)
{
    cask_library_t head;
    cask_library_get (rd, &head);
    s_library_t *library = rd->failed ? NULL : s_library_read (self, rd, &head);
    if (!library)
        return;
    const char *refusal = s_library_check (self, library, head.hash);
    if (refusal) {
        s_reply_error (self, CASK_ERR_LIBRARY, refusal, library->name);
        s_library_destroy (&library);
        return;
    }
    s_library_t *known = s_library_by_hash (self, head.hash);
    if (known) {
        //  Same bytes, same functions: the ids it already has
        s_library_destroy (&library);
        s_library_put (self, known);
        s_send (self, client, CASK_MSG_REGISTERED, &self->out, NULL);
        return;
    }
    library->owner = client->id;
    if (s_library_add (self, library)) {
        cask_log_print (self->log, CASK_LOG_ERROR, "out of memory registering library %s",
                        library->name);
        s_library_destroy (&library);
        return;
    }
    cask_log_print (self->log, CASK_LOG_INFO,
                    "library %s (%s) registered by client %u, %u functions", library->name,
                    library->hash, client->id, library->nfuncs);
    s_library_announce (self, library, client);
}

static void
s_on_submit (cask_broker_t *self, s_peer_t *client, cask_rd_t *rd)
{
    uint32_t count = cask_get_u32 (rd);
    size_t frame_base = 0;
    for (uint32_t i = 0; i < count && !rd->failed; i++) {
        cask_task_t rec;
        cask_task_get (rd, &rec, false);
        bool framed = rec.nframes <= self->msg.nframes - frame_base;
        if (rd->failed || !framed) {
            //  The key is read first: when it came through, the task errs
            if (rec.key.len > 0)
                cask_graph_submit_erred (self->graph, client->id, rec.key,
                                         "malformed task record");
            if (rec.key.len == 0 || i + 1 < count)
                s_reply_error (self, CASK_ERR_MALFORMED,
                               "SUBMIT record %u is malformed: the records from it on were dropped", i);
            return;
        }
        if (rec.key.len == 0)
            s_reply_error (self, CASK_ERR_MALFORMED, "SUBMIT record %u has an empty key", i);
        else
        if (cask_graph_submit (self->graph, client->id, &rec, &self->msg.frames [frame_base]))
            cask_log_print (self->log, CASK_LOG_ERROR, "out of memory submitting %.*s",
                            (int) rec.key.len, rec.key.ptr);
        frame_base += rec.nframes;
    }
    if (!cask_rd_done (rd))
        s_reply_error (self, CASK_ERR_MALFORMED, "malformed SUBMIT");
}

//  What a batch of keys asks of the graph for client: 0, or -1 when it
//  does not apply to the key.
typedef int (s_key_fn) (cask_graph_t *graph, uint32_t client, cask_str_t key);

static int
s_fire (cask_graph_t *graph, uint32_t client, cask_str_t key)
{
    (void) client;              //  a fire hold is nobody's
    return cask_graph_fire (graph, key);
}

//  RELEASE, CANCEL and FIRE: a batch of keys, each handed to fn.
static void
s_on_keys (cask_broker_t *self, s_peer_t *client, cask_rd_t *rd, s_key_fn *fn)
{
    const char *command = cask_command_name (self->msg.command);
    uint32_t count = cask_get_u32 (rd);
    for (uint32_t i = 0; i < count && !rd->failed; i++) {
        cask_str_t key = cask_get_str8 (rd);
        if (!rd->failed && fn (self->graph, client->id, key))
            cask_log_print (self->log, CASK_LOG_DEBUG, "%s %.*s from client %u ignored: %s",
                            command, (int) key.len, key.ptr, client->id,
                            fn == s_fire ? "unknown key" : "not held");
    }
    if (!cask_rd_done (rd))
        s_reply_error (self, CASK_ERR_MALFORMED, "malformed %s", command);
}

static void
s_on_scatter (cask_broker_t *self, s_peer_t *client, cask_rd_t *rd)
{
    uint32_t count = cask_get_u32 (rd);
    for (uint32_t i = 0; i < count && !rd->failed; i++) {
        cask_scatter_t rec;
        cask_scatter_get (rd, &rec);
        if (!rd->failed && cask_graph_scatter (self->graph, client->id, rec.key, rec.worker))
            cask_log_print (self->log, CASK_LOG_DEBUG, "SCATTER of an empty key ignored");
    }
    if (!cask_rd_done (rd))
        s_reply_error (self, CASK_ERR_MALFORMED, "malformed SCATTER");
}

static void
s_send_dataset (cask_broker_t *self, s_peer_t *client, cask_str_t name, cask_str_t key)
{
    cask_dataset_t rec = { name, key };
    cask_buf_reset (&self->out);
    cask_dataset_put (&self->out, &rec);
    s_send (self, client, CASK_MSG_DATASET, &self->out, NULL);
}

//  PUBLISH, LOOKUP, UNPUBLISH. Each is answered DATASET (name, key); PUBLISH
//  and UNPUBLISH that fail are answered ERROR about the name instead.
static void
s_on_dataset (cask_broker_t *self, s_peer_t *client, cask_rd_t *rd)
{
    cask_dataset_t rec;
    cask_dataset_get (rd, &rec);
    if (!cask_rd_done (rd)) {
        s_reply_error (self, CASK_ERR_MALFORMED, "malformed %s",
                       cask_command_name (self->msg.command));
        return;
    }
    if (self->msg.command == CASK_MSG_LOOKUP) {
        s_send_dataset (self, client, rec.name,
                        cask_graph_lookup (self->graph, client->id, rec.name));
        return;
    }
    int code = self->msg.command == CASK_MSG_PUBLISH
             ? cask_graph_publish (self->graph, rec.name, rec.key)
             : cask_graph_unpublish (self->graph, rec.name);
    if (code == 0) {
        s_send_dataset (self, client, rec.name, rec.key);
        return;
    }
    char text [512];
    snprintf (text, sizeof text, code == CASK_ERR_EXISTS ? "name %.*s is published already"
              : self->msg.command == CASK_MSG_PUBLISH ? "cannot publish %.*s: unknown key"
              : "no dataset is published as %.*s", (int) rec.name.len, rec.name.ptr);
    cask_error_t error = { (uint16_t) code, rec.name, cask_str (text) };
    cask_buf_reset (&self->out);
    cask_error_put (&self->out, &error);
    s_send (self, client, CASK_MSG_ERROR, &self->out, NULL);
}

//  ---------------------------------------------------------------------
//  Retiring workers

static void
s_send_retired (cask_broker_t *self, uint32_t client_id, const uint32_t *ids, uint32_t nids)
{
    s_peer_t *client = s_peer_by_id (self->clients, client_id);
    if (!client)
        return;
    s_peer_flush (self, client);    //  its news from before come first
    cask_buf_reset (&self->out);
    cask_retire_put (&self->out, 0, ids, nids);
    s_send (self, client, CASK_MSG_RETIRED, &self->out, NULL);
}

//  worker left (retired or gone): the clients waiting for nothing else
//  hear RETIRED.
static void
s_retires_note (cask_broker_t *self, uint32_t worker)
{
    size_t kept = 0;
    for (size_t i = 0; i < self->nretires; i++) {
        s_retire_t *retire = &self->retires [i];
        for (uint32_t j = 0; j < retire->pending; j++)
            if (retire->ids [j] == worker) {
                retire->ids [j] = retire->ids [--retire->pending];
                retire->ids [retire->pending] = worker;
                break;
            }
        if (retire->pending == 0) {
            s_send_retired (self, retire->client, retire->ids, retire->nids);
            free (retire->ids);
        }
        else
            self->retires [kept++] = *retire;
    }
    self->nretires = kept;
}

//  Orders workers to retire first: fewest result bytes, then fewest
//  tasks in flight, then the youngest.
typedef struct {
    uint32_t id;
    uint32_t inflight;
    uint64_t nbytes;
} s_candidate_t;

static int
s_candidate_compare (const void *a, const void *b)
{
    const s_candidate_t *x = (const s_candidate_t *) a, *y = (const s_candidate_t *) b;
    if (x->nbytes != y->nbytes)
        return x->nbytes < y->nbytes ? -1 : 1;
    if (x->inflight != y->inflight)
        return x->inflight < y->inflight ? -1 : 1;
    return x->id > y->id ? -1 : x->id < y->id;
}

//  Fills ids with the workers to retire to leave keep (or with those of the
//  request that exist). Returns how many.
static uint32_t
s_retire_choose (cask_broker_t *self, const cask_retire_t *rec, uint32_t *ids)
{
    size_t count = 0;
    cask_rd_t listed = rec->ids;
    for (uint32_t i = 0; i < rec->nids; i++) {
        uint32_t id = cask_get_u32 (&listed);
        bool seen = false;
        for (size_t j = 0; j < count; j++)
            seen |= ids [j] == id;
        if (!seen && s_peer_by_id (self->workers, id))
            ids [count++] = id;
    }
    if (rec->nids)
        return (uint32_t) count;
    s_candidate_t *candidates = (s_candidate_t *) calloc (zhashx_size (self->workers) + 1,
                                                          sizeof (s_candidate_t));
    if (!candidates)
        return 0;
    for (s_peer_t *peer = zhashx_first (self->workers); peer; peer = zhashx_next (self->workers)) {
        s_candidate_t *candidate = &candidates [count];
        uint64_t done;
        if (cask_graph_worker_load (self->graph, peer->id, &candidate->inflight, &done,
                                    &candidate->nbytes) == 0) {
            candidate->id = peer->id;
            count++;
        }
    }
    size_t staying = count - cask_graph_retiring (self->graph);
    qsort (candidates, count, sizeof (s_candidate_t), s_candidate_compare);
    uint32_t chosen = 0;
    for (size_t i = 0; i < count && staying > rec->keep; i++)
        if (cask_graph_worker_retire (self->graph, candidates [i].id) == 0) {
            ids [chosen++] = candidates [i].id;
            staying--;
        }
    free (candidates);
    return chosen;
}

static void
s_on_retire (cask_broker_t *self, s_peer_t *client, cask_rd_t *rd)
{
    cask_retire_t rec;
    cask_retire_get (rd, &rec);
    if (!cask_rd_done (rd)) {
        s_reply_error (self, CASK_ERR_MALFORMED, "malformed RETIRE");
        return;
    }
    s_retire_t *retires = (s_retire_t *) realloc (self->retires,
        (self->nretires + 1) * sizeof (s_retire_t));
    uint32_t *ids = (uint32_t *) malloc ((zhashx_size (self->workers) + 1) * sizeof (uint32_t));
    if (retires)
        self->retires = retires;
    if (!retires || !ids) {
        free (ids);
        s_reply_error (self, CASK_ERR_MALFORMED, "out of memory for a RETIRE");
        return;
    }
    uint32_t nids = s_retire_choose (self, &rec, ids);
    if (rec.nids)
        for (uint32_t i = 0; i < nids; i++)
            cask_graph_worker_retire (self->graph, ids [i]);
    cask_log_print (self->log, CASK_LOG_INFO, "client %u retires %u workers", client->id, nids);
    //  Those that retired at once (they held nothing) go behind the others
    uint32_t pending = 0;
    for (uint32_t i = 0; i < nids; i++)
        if (s_peer_by_id (self->workers, ids [i])) {
            uint32_t id = ids [i];
            ids [i] = ids [pending];
            ids [pending++] = id;
        }
    if (pending == 0) {
        s_send_retired (self, client->id, ids, nids);
        free (ids);
        return;
    }
    self->retires [self->nretires++] = (s_retire_t) { client->id, nids, pending, ids };
}

static void
s_on_stolen (cask_broker_t *self, s_peer_t *worker, cask_rd_t *rd)
{
    uint32_t count = cask_get_u32 (rd);
    for (uint32_t i = 0; i < count && !rd->failed; i++) {
        cask_stolen_t rec;
        cask_stolen_get (rd, &rec);
        if (!rd->failed)
            cask_graph_stolen (self->graph, worker->id, rec.key, rec.given_up != 0);
    }
    if (!cask_rd_done (rd))
        s_reply_error (self, CASK_ERR_MALFORMED, "malformed STOLEN");
}

//  ---------------------------------------------------------------------
//  Heartbeats

#define S_HEARTBEAT_MIN_MS 10
#define S_HEARTBEAT_MAX_MS 600000

static void
s_on_heartbeat (cask_broker_t *self, s_peer_t *worker, cask_rd_t *rd)
{
    cask_heartbeat_t figures;
    cask_heartbeat_get (rd, &figures);
    if (!cask_rd_done (rd) || figures.interval_ms < S_HEARTBEAT_MIN_MS
    ||  figures.interval_ms > S_HEARTBEAT_MAX_MS)
        s_reply_error (self, CASK_ERR_MALFORMED, "HEARTBEAT needs an interval of %d to %d ms, "
                       "then the worker's figures", S_HEARTBEAT_MIN_MS, S_HEARTBEAT_MAX_MS);
    else {
        worker->heartbeat_ms = figures.interval_ms;
        worker->figures = figures;
    }
}

static void
s_on_pause (cask_broker_t *self, s_peer_t *worker, cask_rd_t *rd)
{
    uint8_t paused = cask_get_u8 (rd);
    if (!cask_rd_done (rd) || paused > 1) {
        s_reply_error (self, CASK_ERR_MALFORMED, "PAUSE takes one byte, 0 or 1");
        return;
    }
    cask_log_print (self->log, CASK_LOG_INFO, "worker %u %s", worker->id,
                    paused ? "pauses: its memory is nearly full" : "resumes");
    worker->paused = paused;
    cask_graph_worker_pause (self->graph, worker->id, paused);
}

//  Sends every worker a HEARTBEAT and lets go of those that stayed silent
//  too long (hung, or cut off: their connection may never close).
static void
s_heartbeat (cask_broker_t *self)
{
    self->heartbeat_at = self->now + self->heartbeat_ms;
    cask_buf_reset (&self->out);
    cask_put_u32 (&self->out, self->heartbeat_ms);
    s_peer_t *silent = NULL;
    for (s_peer_t *worker = zhashx_first (self->workers); worker; worker = zhashx_next (self->workers)) {
        if (self->now - worker->heard_at > (int64_t) CASK_HEARTBEAT_LIVENESS * worker->heartbeat_ms)
            silent = worker;
        else
            s_send (self, worker, CASK_MSG_HEARTBEAT, &self->out, NULL);
    }
    //  One at a time: letting one go changes the map being walked
    if (silent) {
        cask_log_print (self->log, CASK_LOG_WARNING, "worker %u silent for %lld ms",
                        silent->id, (long long) (self->now - silent->heard_at));
        s_peer_gone (self, silent, "missed its heartbeats");
        self->heartbeat_at = self->now;     //  the others at once
    }
}

static void
s_on_done (cask_broker_t *self, s_peer_t *worker, cask_rd_t *rd)
{
    if (worker->restarts_owed) {
        cask_log_print (self->log, CASK_LOG_DEBUG, "DONE from worker %u ignored: from before RESTART",
                        worker->id);
        return;
    }
    uint32_t count = cask_get_u32 (rd);
    for (uint32_t i = 0; i < count && !rd->failed; i++) {
        cask_done_t rec;
        cask_done_get (rd, &rec);
        if (rd->failed)
            break;
        if (cask_graph_done (self->graph, worker->id, &rec))
            cask_log_print (self->log, CASK_LOG_WARNING,
                            "DONE %.*s from worker %u ignored: not running there",
                            (int) rec.key.len, rec.key.ptr, worker->id);
        else
        if (!rec.ok)
            cask_log_print (self->log, CASK_LOG_DEBUG, "%.*s failed on worker %u: %.*s",
                            (int) rec.key.len, rec.key.ptr, worker->id, (int) rec.message.len,
                            rec.message.ptr);
    }
    if (!cask_rd_done (rd))
        s_reply_error (self, CASK_ERR_MALFORMED, "malformed DONE");
}

static void
s_on_libfail (cask_broker_t *self, s_peer_t *worker, cask_rd_t *rd)
{
    cask_error_t rec;
    cask_error_get (rd, &rec);
    if (!cask_rd_done (rd)) {
        s_reply_error (self, CASK_ERR_MALFORMED, "malformed LIBFAIL");
        return;
    }
    s_library_t *library = s_library_by_hash (self, rec.about);
    cask_log_print (self->log, CASK_LOG_WARNING, "worker %u could not load library %s (%.*s): %.*s",
                    worker->id, library ? library->name : "?", (int) rec.about.len, rec.about.ptr,
                    (int) rec.message.len, rec.message.ptr);
    s_peer_t *owner = library ? s_peer_by_id (self->clients, library->owner) : NULL;
    if (!owner)
        return;
    char text [512];
    snprintf (text, sizeof text, "worker %u could not load library %s: %.*s", worker->id,
              library->name, (int) rec.message.len, rec.message.ptr);
    cask_error_t error = { CASK_ERR_LIBRARY, rec.about, cask_str (text) };
    cask_buf_reset (&self->out);
    cask_error_put (&self->out, &error);
    s_send (self, owner, CASK_MSG_ERROR, &self->out, NULL);
}

static cJSON *
s_worker_json (cask_broker_t *self, s_peer_t *peer)
{
    uint32_t inflight = 0;
    uint64_t tasks_done = 0, nbytes = 0;
    cask_graph_worker_load (self->graph, peer->id, &inflight, &tasks_done, &nbytes);
    cJSON *worker = cJSON_CreateObject ();
    cJSON_AddNumberToObject (worker, "id", peer->id);
    cJSON_AddStringToObject (worker, "name", peer->name);
    cJSON_AddStringToObject (worker, "endpoint", peer->endpoint);
    cJSON_AddNumberToObject (worker, "nthreads", peer->nthreads);
    cJSON_AddNumberToObject (worker, "inflight", inflight);
    cJSON_AddNumberToObject (worker, "tasks_done", (double) tasks_done);
    cJSON_AddNumberToObject (worker, "memory_limit", (double) peer->memory_limit);
    cJSON_AddNumberToObject (worker, "bytes_held", (double) nbytes);
    cJSON_AddBoolToObject (worker, "paused", peer->paused);
    cJSON_AddItemToObject (worker, "resources", peer->resources
                           ? cJSON_Duplicate (peer->resources, true) : cJSON_CreateObject ());
    cJSON_AddNumberToObject (worker, "rss_bytes", (double) peer->figures.rss_bytes);
    cJSON_AddNumberToObject (worker, "cpu", peer->figures.cpu_permille / 10.0);
    cJSON_AddNumberToObject (worker, "spilled_bytes", (double) peer->figures.spilled_bytes);
    cJSON_AddNumberToObject (worker, "last_seen", (self->now - peer->heard_at) / 1000.0);
    return worker;
}

static cJSON *
s_workers_json (cask_broker_t *self)
{
    cJSON *workers = cJSON_CreateArray ();
    for (s_peer_t *peer = zhashx_first (self->workers); peer; peer = zhashx_next (self->workers))
        cJSON_AddItemToArray (workers, s_worker_json (self, peer));
    return workers;
}

//  Resident memory of this process, or 0 when /proc does not say.
static uint64_t
s_rss_bytes (void)
{
    unsigned long long size = 0, resident = 0;
    FILE *file = fopen ("/proc/self/statm", "r");
    if (!file)
        return 0;
    if (fscanf (file, "%llu %llu", &size, &resident) != 2)
        resident = 0;
    fclose (file);
    long page = sysconf (_SC_PAGESIZE);
    return page > 0 ? resident * (uint64_t) page : 0;
}

static void
s_status_json (cask_broker_t *self, cJSON *doc)
{
    cJSON_AddNumberToObject (doc, "uptime", (zclock_mono () - self->started_at) / 1000.0);
    cJSON_AddStringToObject (doc, "dashboard",
                             self->dashboard ? cask_dashboard_url (self->dashboard) : "");
    cJSON_AddItemToObject (doc, "workers", s_workers_json (self));
    cask_graph_counts_t counts;
    cask_graph_counts (self->graph, &counts);
    cJSON *tasks = cJSON_AddObjectToObject (doc, "tasks");
    cJSON_AddNumberToObject (tasks, "waiting", (double) counts.waiting);
    cJSON_AddNumberToObject (tasks, "processing", (double) counts.processing);
    cJSON_AddNumberToObject (tasks, "memory", (double) counts.memory);
    cJSON_AddNumberToObject (tasks, "erred", (double) counts.erred);
    cJSON_AddNumberToObject (tasks, "released", (double) counts.released);
    cJSON_AddNumberToObject (tasks, "total", (double) counts.total);
    cJSON_AddItemToObject (doc, "progress", cask_views_progress (self->graph));
    cJSON_AddNumberToObject (doc, "clients", (double) zhashx_size (self->clients));
    cJSON_AddNumberToObject (doc, "rss_bytes", (double) s_rss_bytes ());
    cJSON_AddNumberToObject (doc, "libraries", (double) self->nlibraries);
    cJSON *functions = cJSON_AddArrayToObject (doc, "functions");
    for (size_t i = 0; i < self->nlibraries; i++)
        for (uint32_t f = 0; f < self->libraries [i]->nfuncs; f++)
            cJSON_AddItemToArray (functions,
                                  cJSON_CreateString (self->libraries [i]->functions [f].name));
}

static const char *
s_worker_name (void *arg, uint32_t id)
{
    s_peer_t *peer = s_peer_by_id (((cask_broker_t *) arg)->workers, id);
    return peer ? peer->name : NULL;
}

//  Fills doc with the view, or with "error" (returning -1) when there is
//  no such view or its state is not a state.
static int
s_view_json (cask_broker_t *self, const cask_view_t *view, cJSON *doc)
{
    char state [CASK_MAX_KEY + 1];
    cask_str_copy (view->state, state, sizeof state);
    if (view->view.len == 0 || cask_str_eq (view->view, "status"))
        s_status_json (self, doc);
    else
    if (cask_str_eq (view->view, "workers"))
        cJSON_AddItemToObject (doc, "workers", s_workers_json (self));
    else
    if (cask_str_eq (view->view, "tasks")) {
        uint32_t limit = view->limit ? view->limit : CASK_VIEWS_TASKS;
        if (cask_views_tasks (doc, self->graph, *state ? state : NULL,
                              limit < CASK_VIEWS_TASKS_MAX ? limit : CASK_VIEWS_TASKS_MAX)) {
            cJSON_AddStringToObject (doc, "error", "unknown state: waiting, processing, "
                                     "memory, erred or released");
            return -1;
        }
    }
    else
    if (cask_str_eq (view->view, "task-stream")) {
        char *tasks = cask_views_stream (self->stream, self->graph, view->since_us,
                                         view->limit ? view->limit : CASK_VIEWS_STREAM,
                                         s_worker_name, self);
        cJSON_AddRawToObject (doc, "tasks", tasks ? tasks : "[]");
        free (tasks);
    }
    else {
        cJSON_AddStringToObject (doc, "error", "no such view: status, workers, tasks or "
                                 "task-stream");
        return -1;
    }
    return 0;
}

//  The document of view as text (the caller frees it), or NULL when out of
//  memory; *found as cask_dashboard_view_fn says.
static char *
s_view_text (void *arg, const cask_view_t *view, bool *found)
{
    cask_broker_t *self = (cask_broker_t *) arg;
    cJSON *doc = cJSON_CreateObject ();
    if (!doc)
        return NULL;
    cJSON_AddNumberToObject (doc, "time", s_wall_us () / 1e6);
    *found = s_view_json (self, view, doc) == 0;
    char *text = cJSON_PrintUnformatted (doc);
    cJSON_Delete (doc);
    return text;
}

static void
s_on_status (cask_broker_t *self, cask_rd_t *rd)
{
    cask_view_t view = { { NULL, 0 }, 0, 0, { NULL, 0 } };
    if (rd->ptr < rd->end)
        cask_view_get (rd, &view);
    //  Every STATUS gets a REPORT, a malformed one too: askers count on it
    bool found;
    char *text = cask_rd_done (rd) ? s_view_text (self, &view, &found)
               : strdup ("{\"error\": \"malformed STATUS: str8 view, u64 since_us, u32 limit, "
                         "str8 state\"}");
    if (!text) {
        cask_log_print (self->log, CASK_LOG_ERROR, "out of memory for a REPORT");
        return;
    }
    cask_buf_reset (&self->out);
    cask_put_raw (&self->out, text, strlen (text));
    free (text);
    if (cask_send (self->socket, &self->msg.routing, CASK_MSG_REPORT, &self->out, NULL))
        cask_log_print (self->log, CASK_LOG_WARNING, "could not send REPORT: %s",
                        zmq_strerror (errno));
}

//  Commands a peer that said HELLO may send, by role.
static bool
s_allowed (uint8_t command, uint8_t role)
{
    switch (command) {
        case CASK_MSG_BYE:
            return true;
        case CASK_MSG_REGISTER:
        case CASK_MSG_SUBMIT:
        case CASK_MSG_RELEASE:
        case CASK_MSG_CANCEL:
        case CASK_MSG_RESTART:
        case CASK_MSG_FIRE:
        case CASK_MSG_SCATTER:
        case CASK_MSG_PUBLISH:
        case CASK_MSG_LOOKUP:
        case CASK_MSG_UNPUBLISH:
        case CASK_MSG_RETIRE:
            return role == CASK_ROLE_CLIENT;
        case CASK_MSG_DONE:
        case CASK_MSG_LIBFAIL:
        case CASK_MSG_RESTARTED:
        case CASK_MSG_STOLEN:
        case CASK_MSG_HEARTBEAT:
        case CASK_MSG_PAUSE:
            return role == CASK_ROLE_WORKER;
        default:
            return false;
    }
}

//  Handles a command s_allowed lets peer send.
static void
s_dispatch_command (cask_broker_t *self, s_peer_t *peer, cask_rd_t *rd)
{
    switch (self->msg.command) {
        case CASK_MSG_BYE: s_on_bye (self, peer); break;
        case CASK_MSG_REGISTER: s_on_register (self, peer, rd); break;
        case CASK_MSG_SUBMIT: s_on_submit (self, peer, rd); break;
        case CASK_MSG_RELEASE: s_on_keys (self, peer, rd, cask_graph_release); break;
        case CASK_MSG_CANCEL: s_on_keys (self, peer, rd, cask_graph_cancel); break;
        case CASK_MSG_FIRE: s_on_keys (self, peer, rd, s_fire); break;
        case CASK_MSG_SCATTER: s_on_scatter (self, peer, rd); break;
        case CASK_MSG_RESTART: s_on_restart (self, peer); break;
        case CASK_MSG_PUBLISH:
        case CASK_MSG_LOOKUP:
        case CASK_MSG_UNPUBLISH: s_on_dataset (self, peer, rd); break;
        case CASK_MSG_RETIRE: s_on_retire (self, peer, rd); break;
        case CASK_MSG_DONE: s_on_done (self, peer, rd); break;
        case CASK_MSG_STOLEN: s_on_stolen (self, peer, rd); break;
        case CASK_MSG_HEARTBEAT: s_on_heartbeat (self, peer, rd); break;
        case CASK_MSG_PAUSE: s_on_pause (self, peer, rd); break;
        case CASK_MSG_RESTARTED: s_on_restarted (self, peer); break;
        default: s_on_libfail (self, peer, rd); break;
    }
}

static void
s_handle (cask_broker_t *self)
{
    cask_message_t *msg = &self->msg;
    s_peer_t *peer = s_peer_by_routing (self, &msg->routing);
    if (peer)
        peer->heard_at = self->now;
    cask_log_print (self->log, CASK_LOG_DEBUG, "received %s from %s %u",
                    cask_command_name (msg->command), peer ? s_role_name (peer->role) : "new peer",
                    peer ? peer->id : 0);
    if (msg->version != CASK_PROTO_VERSION) {
        s_reply_error (self, CASK_ERR_VERSION, "protocol version %u not supported, this peer speaks %u",
                       msg->version, CASK_PROTO_VERSION);
        return;
    }
    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&msg->body), zmq_msg_size (&msg->body));
    if (strcmp (cask_command_name (msg->command), "unknown") == 0)
        s_reply_error (self, CASK_ERR_COMMAND, "unknown command 0x%02x", msg->command);
    else
    if (msg->command == CASK_MSG_STATUS)
        s_on_status (self, &rd);
    else
    if (msg->command == CASK_MSG_HELLO && !peer)
        s_on_hello (self, &rd);
    else
    if (!peer)
        s_reply_error (self, CASK_ERR_HELLO, "%s before HELLO", cask_command_name (msg->command));
    else
    if (peer->retired && msg->command != CASK_MSG_BYE)
        cask_log_print (self->log, CASK_LOG_DEBUG, "ignoring %s from retired worker %u",
                        cask_command_name (msg->command), peer->id);
    else
    if (!s_allowed (msg->command, peer->role))
        s_reply_error (self, CASK_ERR_COMMAND, "command %s (0x%02x) is not valid from a %s",
                       cask_command_name (msg->command), msg->command, s_role_name (peer->role));
    else
        s_dispatch_command (self, peer, &rd);
}

//  Handles every message that is ready. Returns -1 when the socket failed.
static int
s_drain (cask_broker_t *self)
{
    for (int count = 0; count < S_DRAIN_MAX; count++) {
        const char *why = NULL;
        cask_recv_t rc = cask_message_recv (&self->msg, self->socket, true, ZMQ_DONTWAIT, &why);
        if (rc == CASK_RECV_AGAIN)
            break;
        if (rc == CASK_RECV_TERM)
            return -1;
        if (rc == CASK_RECV_BAD) {
            cask_log_print (self->log, CASK_LOG_DEBUG, "bad message: %s", why);
            if (self->msg.routed)
                cask_send_error (self->socket, &self->msg, CASK_ERR_MALFORMED, why);
        }
        else
            s_handle (self);
    }
    return 0;
}

//  After a flood of tasks has gone, the freed task records lie all over
//  the heap, which malloc only gives back from its top: ask for the rest.
static void
s_trim_memory (cask_broker_t *self)
{
    cask_graph_counts_t counts;
    cask_graph_counts (self->graph, &counts);
    if (counts.total > self->tasks_peak)
        self->tasks_peak = counts.total;
    else
    if (self->tasks_peak >= S_TRIM_MIN && counts.total * S_TRIM_RATIO < self->tasks_peak) {
#ifdef __GLIBC__
        malloc_trim (0);
#endif
        self->tasks_peak = counts.total;
    }
}

//  ---------------------------------------------------------------------
//  Public API

static int
s_bind (cask_broker_t *self, const char *endpoint, cask_curve_t *curve)
{
    int zero = 0;
    self->context = zmq_ctx_new ();
    self->socket = self->context ? zmq_socket (self->context, ZMQ_ROUTER) : NULL;
    if (!self->socket)
        return -1;
    //  Unlimited queues: a batch is never dropped for a slow peer
    zmq_setsockopt (self->socket, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt (self->socket, ZMQ_RCVHWM, &zero, sizeof zero);
    zmq_setsockopt (self->socket, ZMQ_LINGER, &zero, sizeof zero);
    if (cask_curve_server (curve, self->context, self->socket)) {
        cask_log_print (self->log, CASK_LOG_ERROR, "%s", cask_curve_error (curve));
        return -1;
    }
    if (zmq_bind (self->socket, endpoint) || s_monitor_open (self))
        return -1;
    size_t size = sizeof self->endpoint;
    return zmq_getsockopt (self->socket, ZMQ_LAST_ENDPOINT, self->endpoint, &size);
}

cask_broker_t *
cask_broker_new (const char *endpoint, bool verbose)
{
    return cask_broker_new_secure (endpoint, verbose, NULL);
}

cask_broker_t *
cask_broker_new_secure (const char *endpoint, bool verbose, cask_curve_t *curve)
{
    cask_broker_t *self = (cask_broker_t *) calloc (1, sizeof (cask_broker_t));
    if (!self)
        return NULL;
    //  Info always, every message with --verbose
    self->log = cask_log_new ("cask-broker", verbose ? CASK_LOG_DEBUG : CASK_LOG_INFO);
    self->now = zclock_mono ();
    self->heartbeat_ms = CASK_HEARTBEAT_MS;
    self->heartbeat_at = self->now + self->heartbeat_ms;
    cask_message_init (&self->msg);
    cask_buf_init (&self->out);
    cask_graph_sink_t sink = { s_sink_dispatch, s_sink_state, s_sink_free, s_sink_cancelled,
                               s_sink_steal, s_sink_copy, s_sink_retired, s_sink_finished };
    self->graph = cask_graph_new (&sink, self);
    self->stream = cask_stream_new (CASK_STREAM_DEFAULT);
    self->started_at = self->now;
    self->peers = zhashx_new ();
    self->clients = zhashx_new ();
    self->workers = zhashx_new ();
    if (!self->log || !self->graph || !self->stream || !self->peers || !self->clients
    ||  !self->workers) {
        cask_broker_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->peers, (zhashx_destructor_fn *) s_peer_destroy);
    if (s_bind (self, endpoint, curve)) {
        cask_log_print (self->log, CASK_LOG_ERROR, "cannot bind to %s: %s", endpoint,
                        zmq_strerror (errno));
        cask_broker_destroy (&self);
        return NULL;
    }
    return self;
}

void
cask_broker_destroy (cask_broker_t **self_p)
{
    cask_broker_t *self = *self_p;
    if (!self)
        return;
    if (self->monitor)
        zmq_close (self->monitor);
    if (self->socket)
        zmq_close (self->socket);
    if (self->context)
        zmq_ctx_term (self->context);
    cask_dashboard_destroy (&self->dashboard);
    cask_graph_destroy (&self->graph);
    cask_stream_destroy (&self->stream);
    zhashx_destroy (&self->clients);
    zhashx_destroy (&self->workers);
    zhashx_destroy (&self->peers);
    for (size_t i = 0; i < self->nlibraries; i++)
        s_library_destroy (&self->libraries [i]);
    free (self->libraries);
    free (self->dirty);
    free (self->restarts);
    for (size_t i = 0; i < self->nretires; i++)
        free (self->retires [i].ids);
    free (self->retires);
    cask_message_close (&self->msg);
    cask_buf_free (&self->out);
    cask_log_destroy (&self->log);
    free (self);
    *self_p = NULL;
}

void
cask_broker_set_heartbeat (cask_broker_t *self, unsigned interval_ms)
{
    self->heartbeat_ms = interval_ms < S_HEARTBEAT_MIN_MS ? S_HEARTBEAT_MIN_MS
                       : interval_ms > S_HEARTBEAT_MAX_MS ? S_HEARTBEAT_MAX_MS : interval_ms;
    self->heartbeat_at = zclock_mono () + self->heartbeat_ms;
}

void
cask_broker_set_allowed_failures (cask_broker_t *self, unsigned count)
{
    cask_graph_set_allowed_failures (self->graph, count);
}

int
cask_broker_set_dashboard (cask_broker_t *self, const char *address)
{
    cask_dashboard_destroy (&self->dashboard);
    if (!address)
        return 0;
    const char *warning = NULL;
    char error [256];
    self->dashboard = cask_dashboard_new (address, s_view_text, self, &warning, error,
                                          sizeof error);
    if (!self->dashboard) {
        cask_log_print (self->log, CASK_LOG_ERROR, "%s", error);
        return -1;
    }
    if (warning)
        cask_log_print (self->log, CASK_LOG_WARNING, "dashboard at %s: %s", address, warning);
    cask_log_print (self->log, CASK_LOG_INFO, "dashboard at %s",
                    cask_dashboard_url (self->dashboard));
    return 0;
}

const char *
cask_broker_dashboard_url (cask_broker_t *self)
{
    return self->dashboard ? cask_dashboard_url (self->dashboard) : NULL;
}

const char *
cask_broker_endpoint (cask_broker_t *self)
{
    return self->endpoint;
}

int
cask_broker_run (cask_broker_t *self, volatile sig_atomic_t *stop)
{
    while (!*stop) {
        zmq_pollitem_t items [] = {
            { self->socket, 0, ZMQ_POLLIN, 0 }, { self->monitor, 0, ZMQ_POLLIN, 0 },
            { NULL, self->dashboard ? cask_dashboard_fd (self->dashboard) : -1, ZMQ_POLLIN, 0 }
        };
        int64_t wait = self->heartbeat_at - zclock_mono ();
        int64_t dashboard_wait = self->dashboard ? cask_dashboard_timeout (self->dashboard) : -1;
        if (dashboard_wait >= 0 && dashboard_wait < wait)
            wait = dashboard_wait;
        int rc = zmq_poll (items, self->dashboard ? 3 : 2,
                           wait < 0 ? 0 : wait < S_POLL_MSECS ? wait : S_POLL_MSECS);
        self->now = zclock_mono ();
        //  The dashboard's work waits for no message: see cask_dashboard.h
        if (self->dashboard && (dashboard_wait == 0 || (rc > 0 && items [2].revents)))
            cask_dashboard_serve (self->dashboard);
        if (self->now >= self->heartbeat_at)
            s_heartbeat (self);
        if (rc == -1 && errno == EINTR)
            continue;
        //  Closed connections first: see s_drain_monitor
        if (rc != -1)
            s_drain_monitor (self);
        if (rc == -1 || s_drain (self)) {
            cask_log_print (self->log, CASK_LOG_ERROR, "socket failed: %s", zmq_strerror (errno));
            return -1;
        }
        s_restarts_check (self);
        cask_graph_balance (self->graph);
        s_flush (self);
        s_trim_memory (self);
    }
    return 0;
}
