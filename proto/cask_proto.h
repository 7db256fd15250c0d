/*  cask_proto.h - the codec of the cask wire protocol (proto/PROTOCOL.md).

    This is the only code that touches raw frames. A message is
    [routing id] header body [payload frame ...]: the header is four bytes
    (signature 0xCA 0x5C, version, command), the body a packed little-endian
    record, and payload frames carry bytes values, never copied.

    Writing: put the body into a cask_buf_t with the cask_put_* functions and
    the records' put functions, add payload frames to a cask_message_t, send.
    Reading: receive a cask_message_t, open a cask_rd_t on its body, read the
    records with the get functions. A reader never reads past its end: any
    overrun or malformed field sets rd->failed and yields zeros/empty views,
    so the caller checks rd->failed once per record.

    Views (cask_str_t) point into the received body and live as long as the
    message does.
*/
#ifndef CASK_PROTO_H_INCLUDED
#define CASK_PROTO_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>
#include "cask/cask_value.h"

#define CASK_SIG0 0xCA
#define CASK_SIG1 0x5C
#define CASK_PROTO_VERSION 1

//  Limits a peer must respect; anything larger is rejected as malformed.
#define CASK_MAX_FRAMES 65536           //  payload frames per message
#define CASK_MAX_BODY (64u << 20)       //  body frame bytes
#define CASK_MAX_KEY 255                //  key, name, endpoint bytes (str8)
#define CASK_MAX_DEPTH 64               //  nesting of lists in a value
#define CASK_MAX_RESOURCES 16           //  resources, or worker names, in a list

//  Task record flags.
#define CASK_TASK_RESTRICTED 0x01       //  a restrictions block follows the args
#define CASK_TASK_TIMED 0x02            //  then a u32 time limit in ms

//  Commands (the fourth header byte).
typedef enum {
    CASK_MSG_HELLO = 0x01,          //  client/worker -> broker
    CASK_MSG_REGISTER = 0x02,       //  client -> broker
    CASK_MSG_SUBMIT = 0x03,         //  client -> broker
    CASK_MSG_RELEASE = 0x04,        //  client -> broker
    CASK_MSG_BYE = 0x05,            //  client/worker -> broker
    CASK_MSG_STATUS = 0x06,         //  anyone -> broker or worker peer socket
    CASK_MSG_CANCEL = 0x07,         //  client -> broker
    CASK_MSG_RESTART = 0x08,        //  client -> broker, broker -> worker
    CASK_MSG_FIRE = 0x09,           //  client -> broker: fire and forget
    CASK_MSG_SCATTER = 0x0A,        //  client -> broker
    CASK_MSG_PUBLISH = 0x0B,        //  client -> broker
    CASK_MSG_LOOKUP = 0x0C,         //  client -> broker
    CASK_MSG_UNPUBLISH = 0x0D,      //  client -> broker
    CASK_MSG_RETIRE = 0x0E,         //  client -> broker, broker -> worker
    CASK_MSG_HEARTBEAT = 0x0F,      //  worker <-> broker
    CASK_MSG_WELCOME = 0x11,        //  broker -> client/worker
    CASK_MSG_REGISTERED = 0x12,     //  broker -> client
    CASK_MSG_STATE = 0x13,          //  broker -> client
    CASK_MSG_WORKER = 0x14,         //  broker -> client
    CASK_MSG_REPORT = 0x15,         //  reply to STATUS: a JSON body
    CASK_MSG_RESTARTED = 0x16,      //  broker -> client, worker -> broker
    CASK_MSG_DATASET = 0x17,        //  broker -> client: reply to LOOKUP
    CASK_MSG_RETIRED = 0x18,        //  broker -> client: reply to RETIRE
    CASK_MSG_ERROR = 0x1F,          //  anyone -> the sender of a bad message
    CASK_MSG_LIBRARY = 0x21,        //  broker -> worker
    CASK_MSG_TASK = 0x22,           //  broker -> worker
    CASK_MSG_FREE = 0x23,           //  broker -> worker
    CASK_MSG_STEAL = 0x24,          //  broker -> worker
    CASK_MSG_COPY = 0x25,           //  broker -> worker
    CASK_MSG_DONE = 0x31,           //  worker -> broker
    CASK_MSG_LIBFAIL = 0x32,        //  worker -> broker
    CASK_MSG_STOLEN = 0x33,         //  worker -> broker: reply to STEAL
    CASK_MSG_PAUSE = 0x34,          //  worker -> broker: u8 paused
    CASK_MSG_GET = 0x41,            //  client/worker -> worker's peer socket
    CASK_MSG_DATA = 0x42,           //  worker -> whoever sent GET
    CASK_MSG_PUT = 0x43,            //  client -> worker's peer socket (scatter)
    CASK_MSG_STORED = 0x44          //  worker -> client: reply to PUT
} cask_command_t;

//  Roles in HELLO.
enum { CASK_ROLE_CLIENT = 1, CASK_ROLE_WORKER = 2 };

//  Task states as the broker reports them in STATE.
typedef enum {
    CASK_STATE_WAITING = 0,     //  dependencies not all in memory yet
    CASK_STATE_PROCESSING = 1,  //  sent to a worker
    CASK_STATE_MEMORY = 2,      //  result held by a worker
    CASK_STATE_ERRED = 3,       //  failed, or a dependency failed
    CASK_STATE_CANCELLED = 4,   //  cancelled or forgotten before it finished
    CASK_STATE_RELEASED = 5     //  broker-internal: forgotten
} cask_state_t;

//  Error codes in ERROR.
typedef enum {
    CASK_ERR_MALFORMED = 1,     //  could not decode the message
    CASK_ERR_VERSION = 2,       //  protocol version not spoken here
    CASK_ERR_COMMAND = 3,       //  unknown command, or not valid from this peer
    CASK_ERR_LIBRARY = 4,       //  library rejected
    CASK_ERR_FUNCTION = 5,      //  unknown function id
    CASK_ERR_NOT_FOUND = 6,     //  no such key or name
    CASK_ERR_EXISTS = 7,        //  name already published
    CASK_ERR_HELLO = 8          //  the broker does not know this peer: HELLO first
} cask_errcode_t;

//  Heartbeats: each side sends HEARTBEAT (body: u32 its interval in ms)
//  every interval, and takes the other for dead after this many of the
//  other's intervals without a message.
#define CASK_HEARTBEAT_MS 1000
#define CASK_HEARTBEAT_LIVENESS 4

//  A borrowed view of bytes inside a message body (not NUL-terminated).
typedef struct {
    const char *ptr;
    size_t len;
} cask_str_t;

//  Makes a view of a C string.
cask_str_t cask_str (const char *s);
//  True when the view equals the C string s.
bool cask_str_eq (cask_str_t view, const char *s);
//  Copies the view into buf as a C string, truncating to size-1; returns buf.
char *cask_str_copy (cask_str_t view, char *buf, size_t size);

//  ---------------------------------------------------------------------
//  Growable body buffer for writing. Allocation failure sets failed; the
//  send functions refuse a failed buffer.
typedef struct {
    uint8_t *data;
    size_t size;
    size_t cap;
    bool failed;
} cask_buf_t;

void cask_buf_init (cask_buf_t *self);
void cask_buf_reset (cask_buf_t *self);     //  size = 0, keeps memory
void cask_buf_free (cask_buf_t *self);
void cask_put_u8 (cask_buf_t *self, uint8_t v);
void cask_put_u16 (cask_buf_t *self, uint16_t v);
void cask_put_u32 (cask_buf_t *self, uint32_t v);
void cask_put_u64 (cask_buf_t *self, uint64_t v);
void cask_put_raw (cask_buf_t *self, const void *data, size_t size);
//  str8: u8 length + bytes (at most 255, longer sets failed).
void cask_put_str8 (cask_buf_t *self, cask_str_t s);
//  str16: u16 length + bytes (longer is truncated to 65535).
void cask_put_str16 (cask_buf_t *self, cask_str_t s);
//  Patches a u32 written earlier at offset (for counts known afterwards).
void cask_buf_patch_u32 (cask_buf_t *self, size_t offset, uint32_t v);

//  Bounded reader over a body.
typedef struct {
    const uint8_t *ptr;
    const uint8_t *end;
    bool failed;
} cask_rd_t;

void cask_rd_init (cask_rd_t *self, const void *data, size_t size);
uint8_t cask_get_u8 (cask_rd_t *self);
uint16_t cask_get_u16 (cask_rd_t *self);
uint32_t cask_get_u32 (cask_rd_t *self);
uint64_t cask_get_u64 (cask_rd_t *self);
cask_str_t cask_get_raw (cask_rd_t *self, size_t size);
cask_str_t cask_get_str8 (cask_rd_t *self);
cask_str_t cask_get_str16 (cask_rd_t *self);
//  True when every byte was read and nothing failed.
bool cask_rd_done (const cask_rd_t *self);

//  ---------------------------------------------------------------------
//  A whole message: routing id (ROUTER side), header, body, payload frames.
typedef struct {
    zmq_msg_t routing;
    bool routed;                //  routing is valid
    uint8_t version;
    uint8_t command;
    zmq_msg_t body;
    zmq_msg_t *frames;          //  payload frames
    size_t nframes;
    size_t capframes;
} cask_message_t;

//  Result of cask_message_recv.
typedef enum {
    CASK_RECV_OK = 0,           //  a well-framed message
    CASK_RECV_AGAIN = 1,        //  nothing to read (non-blocking) or timeout
    CASK_RECV_BAD = 2,          //  a message arrived but is not ours: msg->
                                //  routing is set (if routed) so the caller
                                //  can reply ERROR; reason in *why
    CASK_RECV_TERM = 3          //  context terminated / socket error
} cask_recv_t;

void cask_message_init (cask_message_t *self);
//  Closes all frames; the message can be reused after cask_message_init.
void cask_message_close (cask_message_t *self);
//  Receives one whole message from socket (ZMQ_DONTWAIT in flags for
//  non-blocking). routed: the socket is a ROUTER, expect a routing frame.
//  On CASK_RECV_BAD, *why says what was wrong (static string). A message
//  from a newer protocol version is CASK_RECV_OK with version set: the
//  caller answers CASK_ERR_VERSION.
cask_recv_t cask_message_recv (cask_message_t *self, void *socket, bool routed,
                               int flags, const char **why);
//  Adds a payload frame that refers to value's bytes without copying (the
//  value is kept alive until ZeroMQ has sent it; bytes of 32 or fewer are
//  copied, which is cheaper). Returns the frame index or -1.
int cask_message_add_value_frame (cask_message_t *self, cask_value_t *bytes_value);
//  Adds a payload frame copied from data. Returns the frame index or -1.
int cask_message_add_frame (cask_message_t *self, const void *data, size_t size);
//  Moves a received payload frame into this message. Returns index or -1.
int cask_message_move_frame (cask_message_t *self, zmq_msg_t *frame);

//  Sends [routing] header body [frames]. routing may be NULL (DEALER side).
//  The body is copied out of buf (small); payload frames are moved out of
//  msg (msg may be NULL when there are none) and msg is left empty.
//  Returns 0 or -1 (errno from ZeroMQ).
int cask_send (void *socket, const zmq_msg_t *routing, uint8_t command,
               const cask_buf_t *body, cask_message_t *msg);
//  Replies ERROR (code, text) to the sender of request (routed or not).
int cask_send_error (void *socket, cask_message_t *request, uint16_t code,
                     const char *text);

//  ---------------------------------------------------------------------
//  A batch being built: a body of u32 count then count records, for one
//  command to one peer. The count is patched in when the batch is sent.
typedef struct {
    cask_buf_t body;
    uint32_t count;             //  records in body; 0: empty
} cask_batch_t;

void cask_batch_init (cask_batch_t *self);
void cask_batch_reset (cask_batch_t *self); //  drops the records, keeps memory
void cask_batch_free (cask_batch_t *self);
//  Counts one more record (opening the body when the batch is empty) and
//  returns the body to write the record to.
cask_buf_t *cask_batch_add (cask_batch_t *self);
//  Sends the batch as command (routing and msg as cask_send takes them)
//  if it has records, and empties it either way. Returns 0, or -1 when the
//  send failed (errno from ZeroMQ).
int cask_batch_send (cask_batch_t *self, void *socket, const zmq_msg_t *routing,
                     uint8_t command, cask_message_t *msg);

//  ---------------------------------------------------------------------
//  Values on the wire (tags in PROTOCOL.md). Bytes values become payload
//  frames of msg (by reference); a REF value is written as the dependency
//  index that ref_index returns for it (or the encode fails if ref_index is
//  NULL or returns < 0). Frame indices are written relative to the frames
//  msg held when the call began: a record's frames are those of its one
//  value, so that is the record's first frame, and the record's nframes is
//  how many msg gained. Returns 0 or -1; on -1 the body and msg are as they
//  were before the call.
typedef int (cask_ref_index_fn) (void *arg, const cask_value_t *ref);
int cask_value_encode (const cask_value_t *value, cask_buf_t *body,
                       cask_message_t *msg, cask_ref_index_fn *ref_index,
                       void *ref_arg);

//  Decodes one value, the value of a record whose payload frames are the
//  nframes frames of msg from frame_base on. Payload frame indices in the
//  encoding are relative to frame_base and must be below nframes, so a
//  record cannot reach the frames of another; the bytes values take their
//  frames out of msg without a copy (each frame can be taken once). A REF i
//  decodes as a new reference to refs[i] (i < nrefs), anything else is
//  malformed. Returns the new value, or NULL with rd->failed set (and *why
//  says why, when not NULL); frames past the end of msg are malformed too.
cask_value_t *cask_value_decode (cask_rd_t *rd, cask_message_t *msg,
                                 size_t frame_base, size_t nframes,
                                 cask_value_t **refs, size_t nrefs,
                                 const char **why);

//  REF values (client side): a value that stands for target (a future).
cask_value_t *cask_value_new_ref (void *target);
//  The target of a REF value, or NULL for any other value.
void *cask_value_ref_target (const cask_value_t *self);
//  Takes a zmq frame into a new bytes value without copying (frames of up
//  to 8 KiB are copied: ZeroMQ may hold them in a shared receive buffer
//  that keeping the frame would pin). frame is left empty; on failure
//  (NULL) it is untouched.
cask_value_t *cask_value_from_frame (zmq_msg_t *frame);

//  ---------------------------------------------------------------------
//  Records. Each get fills the struct with views into the body; check
//  rd->failed afterwards. Counts of batches are u32 before the records.

//  A resource: a name and an amount (a worker declares what it has, a
//  task what it uses while it runs, like Dask's resources).
typedef struct {
    cask_str_t name;
    double amount;
} cask_resource_t;

//  HELLO
typedef struct {
    uint8_t role;               //  CASK_ROLE_*
    cask_str_t name;            //  workers: the name tasks may ask for; else free text
    uint32_t nthreads;          //  workers only
    uint64_t memory_limit;      //  workers only, bytes
    cask_str_t endpoint;        //  workers only: peer endpoint
    uint8_t nresources;         //  workers only: what it declares (--resources)
    cask_resource_t resources [CASK_MAX_RESOURCES];
    uint32_t replaces;          //  workers only: the id of the worker whose process
                                //  died before this one took its place (0: none)
    cask_str_t death;           //  how it died ("signal 11 (Segmentation fault)")
    uint16_t nrunning;          //  the keys of the tasks it was running then:
    cask_str_t running;         //  nrunning str8 entries, back to back
} cask_hello_t;
void cask_hello_put (cask_buf_t *buf, const cask_hello_t *rec);
void cask_hello_get (cask_rd_t *rd, cask_hello_t *rec);

//  A function of a library: id given by the broker, name, one-line doc.
typedef struct {
    uint32_t id;
    cask_str_t name;
    cask_str_t doc;
} cask_func_t;
void cask_func_put (cask_buf_t *buf, const cask_func_t *rec);
void cask_func_get (cask_rd_t *rd, cask_func_t *rec);

//  A worker as the broker announces it (WELCOME lists, WORKER events).
typedef struct {
    uint32_t id;
    cask_str_t endpoint;
    uint32_t nthreads;
    uint8_t joined;             //  1 joined, 0 left
} cask_worker_info_t;
void cask_worker_info_put (cask_buf_t *buf, const cask_worker_info_t *rec);
void cask_worker_info_get (cask_rd_t *rd, cask_worker_info_t *rec);

//  REGISTER head: name, hash; then u32 nfuncs and nfuncs cask_func_t (ids
//  0, the broker assigns them); payload frame 0 holds the .so bytes.
//  LIBRARY (broker -> worker) and REGISTERED (broker -> client) have the
//  same layout, with the ids assigned.
typedef struct {
    cask_str_t name;
    cask_str_t hash;            //  hex SHA-1 of the .so bytes
    uint32_t nfuncs;
} cask_library_t;
void cask_library_put (cask_buf_t *buf, const cask_library_t *rec);
void cask_library_get (cask_rd_t *rd, cask_library_t *rec);

//  Parses text, "NAME=AMOUNT[,NAME=AMOUNT...]" (blanks around items and
//  around '=' are ignored), appending to resources from *count on: views
//  into text, which must outlive them. Each name 1 to 255 bytes and given
//  once, each amount a positive number up to 1e300 (what the wire takes),
//  at most CASK_MAX_RESOURCES in all. Returns 0, or -1 with what is wrong
//  written into error (size bytes; *count is then unspecified).
int cask_resources_parse (const char *text, cask_resource_t *resources, uint8_t *count,
                          char *error, size_t size);
//  Parses text, "NAME[,NAME...]", the same way into names.
int cask_names_parse (const char *text, cask_str_t *names, uint8_t *count, char *error,
                      size_t size);

//  Where a task may run: on one of the named workers (a name or a peer
//  endpoint; none: any worker), and only where the resources are free.
typedef struct {
    uint8_t nworkers;
    cask_str_t workers [CASK_MAX_RESOURCES];
    uint8_t nresources;
    cask_resource_t resources [CASK_MAX_RESOURCES];
} cask_restrictions_t;
//  u8 nworkers, str8 each, u8 nresources, (str8 name, f64 amount) each.
//  More than CASK_MAX_RESOURCES of either, or an amount that is not a
//  positive finite number, is malformed.
void cask_restrictions_put (cask_buf_t *buf, const cask_restrictions_t *rec);
void cask_restrictions_get (cask_rd_t *rd, cask_restrictions_t *rec);

//  SUBMIT record (client -> broker) and TASK record (broker -> worker)
//  share this layout. deps holds ndeps dependency entries: in SUBMIT each
//  is a str8 key; in TASK each is a str8 key and a str8 holder endpoint
//  (empty when the result is already on this worker). Payload frames of a
//  record follow those of the records before it, so a batch can be split
//  or joined without renumbering: frame indices inside args are relative
//  to the record's first frame.
typedef struct {
    cask_str_t key;
    uint32_t fn;
    uint8_t flags;              //  CASK_TASK_RESTRICTED or 0
    uint8_t retries;            //  times to run it again after a failure
    int32_t priority;           //  higher runs first among ready tasks
    uint32_t ndeps;
    cask_rd_t deps;             //  reader over the dependency entries
    uint32_t nframes;
    cask_str_t args;            //  encoded list value of the arguments
    cask_str_t restrictions;    //  the restrictions block when flagged, else empty
    uint32_t timeout_ms;        //  the time limit when CASK_TASK_TIMED, else 0
} cask_task_t;
//  Writes the head (key, fn, flags, retries, priority, ndeps of rec) up to
//  the dependency entries; the caller then writes ndeps entries
//  (cask_put_str8) and ends with cask_task_put_tail, then, when the flags
//  say CASK_TASK_RESTRICTED, cask_restrictions_put, then, when they say
//  CASK_TASK_TIMED, cask_put_u32 of the time limit (not 0).
void cask_task_put_head (cask_buf_t *buf, const cask_task_t *rec);
void cask_task_put_tail (cask_buf_t *buf, uint32_t nframes, cask_str_t args);
//  Reads one record; skips over the dependency entries (pairs when
//  with_holders), which rec->deps can then read, and over a restrictions
//  block (checked well-formed), which rec->restrictions then views; reads
//  the time limit (a flagged 0 is malformed).
void cask_task_get (cask_rd_t *rd, cask_task_t *rec, bool with_holders);

//  STATE record (broker -> client).
typedef struct {
    cask_str_t key;
    uint8_t state;              //  cask_state_t
    uint32_t worker;            //  memory: holder; erred: where it failed (0: none)
    uint8_t type;               //  memory: cask_type_t of the result
    uint64_t nbytes;            //  memory: size of the result
    cask_str_t cause;           //  erred/cancelled: key of the task that failed
    cask_str_t function;        //  erred: function of the cause
    cask_str_t message;         //  erred/cancelled: what went wrong
} cask_state_rec_t;
void cask_state_put (cask_buf_t *buf, const cask_state_rec_t *rec);
void cask_state_get (cask_rd_t *rd, cask_state_rec_t *rec);

//  DONE record (worker -> broker).
typedef struct {
    cask_str_t key;
    uint8_t ok;                 //  1 finished, 0 failed
    uint8_t type;               //  ok: cask_type_t of the result
    uint64_t nbytes;            //  ok: cask_value_nbytes of the result
    uint32_t duration_us;       //  time the function ran
    cask_str_t message;         //  failed: the function's message
    //  For the task stream: wall clock (microseconds since the epoch) when
    //  the function started (0: it never ran), when the fetches of its
    //  dependencies from peers started (0: none) and how long they took,
    //  and the executor thread that ran it.
    uint64_t start_us;
    uint64_t fetch_start_us;
    uint32_t fetch_us;
    uint16_t thread;
} cask_done_t;
void cask_done_put (cask_buf_t *buf, const cask_done_t *rec);
void cask_done_get (cask_rd_t *rd, cask_done_t *rec);

//  HEARTBEAT body from a worker: its interval, and the figures the
//  dashboard shows (the broker's HEARTBEAT carries only the interval).
typedef struct {
    uint32_t interval_ms;
    uint64_t rss_bytes;         //  resident memory of the worker process
    uint32_t cpu_permille;      //  CPU time over the last interval (1000: one core)
    uint64_t spilled_bytes;     //  results kept on disk
} cask_heartbeat_t;
void cask_heartbeat_put (cask_buf_t *buf, const cask_heartbeat_t *rec);
void cask_heartbeat_get (cask_rd_t *rd, cask_heartbeat_t *rec);

//  STATUS body to a broker: which JSON document to answer with (an empty
//  body asks for view "status"), and what to put in it.
typedef struct {
    cask_str_t view;            //  "status", "workers", "tasks", "task-stream"
    uint64_t since_us;          //  task-stream: finished after, microseconds since the epoch
    uint32_t limit;             //  most records (0: the view's default)
    cask_str_t state;           //  tasks: only those in this state (empty: all)
} cask_view_t;
void cask_view_put (cask_buf_t *buf, const cask_view_t *rec);
void cask_view_get (cask_rd_t *rd, cask_view_t *rec);

//  SCATTER record (client -> broker): key will be uploaded by the client
//  to worker `worker` (PUT); the broker holds it for the client as a task
//  processing there, which the worker's DONE completes like any task.
typedef struct {
    cask_str_t key;
    uint32_t worker;
} cask_scatter_t;
void cask_scatter_put (cask_buf_t *buf, const cask_scatter_t *rec);
void cask_scatter_get (cask_rd_t *rd, cask_scatter_t *rec);

//  STORED record (worker -> client, reply to PUT): ok, or why not.
typedef struct {
    cask_str_t key;
    uint8_t ok;
    cask_str_t message;
} cask_stored_t;
void cask_stored_put (cask_buf_t *buf, const cask_stored_t *rec);
void cask_stored_get (cask_rd_t *rd, cask_stored_t *rec);

//  PUBLISH, LOOKUP, UNPUBLISH bodies and DATASET reply: a name and a key
//  (key empty in LOOKUP and UNPUBLISH; in DATASET, empty when not found).
typedef struct {
    cask_str_t name;
    cask_str_t key;
} cask_dataset_t;
void cask_dataset_put (cask_buf_t *buf, const cask_dataset_t *rec);
void cask_dataset_get (cask_rd_t *rd, cask_dataset_t *rec);

//  STOLEN record (worker -> broker, reply to STEAL): whether the worker
//  gave up the task of key before it started (1), or keeps it (0).
typedef struct {
    cask_str_t key;
    uint8_t given_up;
} cask_stolen_t;
void cask_stolen_put (cask_buf_t *buf, const cask_stolen_t *rec);
void cask_stolen_get (cask_rd_t *rd, cask_stolen_t *rec);

//  COPY record (broker -> worker): fetch key from the worker at holder and
//  keep it as a result of this worker's own; the worker answers DONE.
typedef struct {
    cask_str_t key;
    cask_str_t holder;
} cask_copy_t;
void cask_copy_put (cask_buf_t *buf, const cask_copy_t *rec);
void cask_copy_get (cask_rd_t *rd, cask_copy_t *rec);

//  RETIRE body (client -> broker): retire the nids workers listed, or when
//  nids is 0, as many workers as it takes to leave `keep`. RETIRED
//  (broker -> client) lists the ids retired in the same layout, keep 0.
typedef struct {
    uint32_t keep;
    uint32_t nids;
    cask_rd_t ids;              //  reader over nids u32 ids
} cask_retire_t;
void cask_retire_put (cask_buf_t *buf, uint32_t keep, const uint32_t *ids, uint32_t nids);
void cask_retire_get (cask_rd_t *rd, cask_retire_t *rec);

//  ERROR body, and LIBFAIL body (hash in `about`).
typedef struct {
    uint16_t code;
    cask_str_t about;           //  LIBFAIL: hash; ERROR: key or empty
    cask_str_t message;
} cask_error_t;
void cask_error_put (cask_buf_t *buf, const cask_error_t *rec);
void cask_error_get (cask_rd_t *rd, cask_error_t *rec);

//  Name of a command for logs ("SUBMIT"), or "unknown".
const char *cask_command_name (uint8_t command);

#endif
