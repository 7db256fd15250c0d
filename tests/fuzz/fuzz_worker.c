/*  fuzz_worker.c - libFuzzer target: a real worker, in this process, fed
    hostile messages from its broker, on its peer socket, and from a peer
    it fetches from.

    Input (frames as in fuzz_common.h): messages, each after a route byte
    whose bits 0-1 say where it goes:
        0   from the broker (this target's ROUTER, which the worker joined)
        1,3 to the worker's peer socket (GET, PUT, STATUS from a DEALER)
        2   from the fake peer: an answer to the last GET the worker sent
            it (dropped when the worker asked nothing since the input
            began; it may wait S_GET_WAIT_MSECS for a GET after a TASK or
            COPY)
    A RETIRE from the broker is not sent: it ends the worker, as it should.

    Every endpoint is an abstract unix socket whose name ends in this
    process's id, and fuzz_sandbox lets the process connect nowhere else,
    whatever endpoints fuzzed TASKs and COPYs name. Seeds write the fake
    peer as S_PEER_TOKEN and the worker's own endpoint as S_SELF_TOKEN,
    replaced by the real names (of the same length) before an input is
    read.

    The worker is greeted as a broker would: WELCOME, and LIBRARY with
    fuzz_tasklib.so (ids 1 to 5: echo, probe, fail, spin, blob), at start
    and whenever it says HELLO again (after an ERROR code 8, or a silence
    longer than a fuzzed HEARTBEAT allows, it starts afresh on a new
    connection); a request in flight is then sent again. At start it runs
    one task to show the library works, and its peer socket gets the two
    messages past the limits that inputs cannot reach. Its memory limit is
    small, so results spill to disk.

    Before each input it gets RESTART, so inputs start from an empty
    worker. The channels are synchronised when the route changes and at
    the end: the broker's by a STEAL of a key never used before (answered
    STOLEN), the peer socket's by STATUS (answered REPORT), each within
    FUZZ_REPLY_MSECS; every reply must be well-formed, and what the peer
    socket must reject by its framing must have had its ERROR.
*/
#define _GNU_SOURCE                     //  memmem
#include "fuzz_common.h"
#include "fuzz_sandbox.h"
#include "cask_worker.h"

#include <czmq.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_PEER_TOKEN "ipc://@cask-fuzz-peer-000000"
#define S_SELF_TOKEN "ipc://@cask-fuzz-self-000000"
#define S_TOKEN_SIZE (sizeof S_PEER_TOKEN - 1)
//  Small, so that the worker spills results to disk (past 60%) and
//  refuses large PUTs.
#define S_MEMORY_LIMIT (256u << 10)
#define S_GET_WAIT_MSECS 20             //  for the worker's GET to the fake peer

#ifndef FUZZ_TASKLIB
#define FUZZ_TASKLIB "fuzz_tasklib.so"
#endif

typedef enum { S_BROKER, S_PEER_SOCKET, S_FAKE_PEER } s_route_t;

static void *s_ctx;
static void *s_broker;                  //  ROUTER the worker joined
static void *s_peer;                    //  fake peer: ROUTER the worker fetches from
static void *s_client;                  //  DEALER to the worker's peer socket
static zmq_msg_t s_worker_id;           //  the worker's routing id at s_broker
static zmq_msg_t s_fetcher_id;          //  the worker's DEALER at s_peer
static bool s_fetcher_known;            //  since the last RESTART
static bool s_fetch_asked;              //  a TASK or COPY went out since then
static char s_names [2][S_TOKEN_SIZE + 1];      //  real peer and self endpoints
static char s_dir [64];
static cask_worker_t *s_worker;
static pthread_t s_thread;
static volatile sig_atomic_t s_stop;
static cask_message_t s_msg;
static cask_buf_t s_body;
static cask_buf_t s_library;            //  LIBRARY body for fuzz_tasklib.so
static zchunk_t *s_tasklib;             //  its bytes
static fuzz_tally_t s_owed;             //  what the peer socket owes
static fuzz_tally_t s_got;              //  what it answered
static uint64_t s_barriers;             //  of the broker's channel, so far

static void *
s_run_worker (void *arg)
{
    (void) arg;
    cask_worker_run (s_worker);
    return NULL;
}

static void *
s_socket (int type, const char *endpoint, bool bind)
{
    void *socket = zmq_socket (s_ctx, type);
    int zero = 0;
    if (socket) {
        zmq_setsockopt (socket, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt (socket, ZMQ_SNDHWM, &zero, sizeof zero);
        zmq_setsockopt (socket, ZMQ_RCVHWM, &zero, sizeof zero);
    }
    if (!socket || (bind ? zmq_bind (socket, endpoint) : zmq_connect (socket, endpoint)))
        fuzz_fail ("cannot set up %s: %s", endpoint, zmq_strerror (errno));
    return socket;
}

static void
s_send_broker (uint8_t command, const cask_buf_t *body, cask_message_t *frames)
{
    if (cask_send (s_broker, &s_worker_id, command, body, frames))
        fuzz_fail ("cannot send %s: %s", cask_command_name (command), zmq_strerror (errno));
}

//  A worker that said HELLO (at start, or again after it took its broker
//  for gone) gets WELCOME and the library, as from a real broker.
static void
s_greet (void)
{
    zmq_msg_copy (&s_worker_id, &s_msg.routing);
    cask_buf_t welcome;                 //  s_body may hold a request to send again
    cask_buf_init (&welcome);
    cask_put_u32 (&welcome, 1);         //  its id; no functions, no workers
    cask_put_u32 (&welcome, 0);
    cask_put_u32 (&welcome, 0);
    s_send_broker (CASK_MSG_WELCOME, &welcome, NULL);
    cask_buf_free (&welcome);
    cask_message_t frames;
    cask_message_init (&frames);
    cask_message_add_frame (&frames, zchunk_data (s_tasklib), zchunk_size (s_tasklib));
    s_send_broker (CASK_MSG_LIBRARY, &s_library, &frames);
    cask_message_close (&frames);
}

//  True when the message received is a batch whose first record has key.
static bool
s_first_key_is (const char *key)
{
    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&s_msg.body), zmq_msg_size (&s_msg.body));
    return cask_get_u32 (&rd) > 0 && cask_str_eq (cask_get_str8 (&rd), key);
}

//  Receives the worker's messages to its broker, checking each, until one
//  of command about key (the first record's). Returns false when the
//  worker said HELLO first (it was greeted, and has forgotten what it was
//  asked).
static bool
s_expect (uint8_t command, const char *key)
{
    fuzz_tally_t ignored;
    while (true) {
        if (!fuzz_recv (s_broker, true, &s_msg, FUZZ_REPLY_MSECS))
            fuzz_fail ("no %s from the worker in %d ms: it hangs or died",
                       cask_command_name (command), FUZZ_REPLY_MSECS);
        fuzz_check_reply (&s_msg, &ignored, "the worker (to its broker)");
        if (s_msg.command == CASK_MSG_HELLO && command != CASK_MSG_HELLO) {
            s_greet ();
            return false;
        }
        if (s_msg.command == command && (!key || s_first_key_is (key)))
            return true;
    }
}

//  Sends command and waits for answer about key, again after a HELLO.
static void
s_ask (uint8_t command, const cask_buf_t *body, uint8_t answer, const char *key)
{
    do
        s_send_broker (command, body, NULL);
    while (!s_expect (answer, key));
}

//  The broker's channel is in sync once a STEAL of a key of its own is
//  answered (fuzzed STEALs get theirs first).
static void
s_sync_broker (void)
{
    char key [32];
    snprintf (key, sizeof key, "fuzz-barrier-%" PRIu64, ++s_barriers);
    cask_buf_t body;
    cask_buf_init (&body);
    cask_put_u32 (&body, 1);
    cask_put_str8 (&body, cask_str (key));
    s_ask (CASK_MSG_STEAL, &body, CASK_MSG_STOLEN, key);
    cask_buf_free (&body);
}

//  The peer socket's, once STATUS is answered (fuzzed STATUSes are
//  answered first); its ERRORs are due by then.
static void
s_sync_peer_socket (void)
{
    fuzz_send_built (s_client, NULL, CASK_MSG_STATUS, NULL);
    s_owed.reports++;
    while (s_got.reports < s_owed.reports) {
        if (!fuzz_recv (s_client, false, &s_msg, FUZZ_REPLY_MSECS))
            fuzz_fail ("no REPORT from the worker's peer socket in %d ms: it hangs or died",
                       FUZZ_REPLY_MSECS);
        fuzz_check_reply (&s_msg, &s_got, "the worker's peer socket");
    }
    fuzz_settle (&s_owed, &s_got, "the worker's peer socket");
}

//  Takes what the worker sent the fake peer (GETs), checking each and
//  keeping the sender's routing id, for up to wait_ms.
static void
s_drain_fake_peer (int wait_ms)
{
    fuzz_tally_t ignored;
    while (fuzz_recv (s_peer, true, &s_msg, wait_ms)) {
        fuzz_check_reply (&s_msg, &ignored, "the worker (to a peer)");
        zmq_msg_copy (&s_fetcher_id, &s_msg.routing);
        s_fetcher_known = true;
        wait_ms = 0;
    }
}

//  RESTART, done once the barrier behind it is passed.
static void
s_restart (void)
{
    s_send_broker (CASK_MSG_RESTART, NULL, NULL);
    s_sync_broker ();
    s_drain_fake_peer (0);
    s_fetcher_known = false;
    s_fetch_asked = false;
}

//  ---------------------------------------------------------------------
//  Setting up

//  Reads fuzz_tasklib.so and makes its LIBRARY body.
static void
s_read_library (void)
{
    static const char *names [] = { "echo", "probe", "fail", "spin", "blob" };
    const char *path = getenv ("CASK_FUZZ_TASKLIB") ? getenv ("CASK_FUZZ_TASKLIB") : FUZZ_TASKLIB;
    s_tasklib = zchunk_slurp (path, 0);
    if (!s_tasklib)
        fuzz_fail ("cannot read the task library %s (set CASK_FUZZ_TASKLIB)", path);
    char hash [41];
    fuzz_sha1 (zchunk_data (s_tasklib), zchunk_size (s_tasklib), hash);
    cask_library_t head = { cask_str ("fuzztasks"), cask_str (hash), 5 };
    cask_library_put (&s_library, &head);
    for (uint32_t index = 0; index < 5; index++) {
        cask_func_t func = { index + 1, cask_str (names [index]), cask_str ("") };
        cask_func_put (&s_library, &func);
    }
}

//  echo (7) must succeed: the library works.
static void
s_probe (void)
{
    cask_value_t *args = cask_list (cask_int64 (7), NULL);
    cask_buf_t encoded;
    cask_buf_init (&encoded);
    cask_value_encode (args, &encoded, NULL, NULL, NULL);
    cask_task_t task = { .key = cask_str ("fuzz-probe"), .fn = 1 };
    cask_buf_reset (&s_body);
    cask_put_u32 (&s_body, 1);
    cask_task_put_head (&s_body, &task);
    cask_task_put_tail (&s_body, 0, (cask_str_t) { (const char *) encoded.data, encoded.size });
    s_ask (CASK_MSG_TASK, &s_body, CASK_MSG_DONE, "fuzz-probe");
    cask_buf_free (&encoded);
    cask_value_destroy (&args);
    cask_rd_t rd;
    cask_done_t done;
    cask_rd_init (&rd, zmq_msg_data (&s_msg.body), zmq_msg_size (&s_msg.body));
    cask_get_u32 (&rd);
    cask_done_get (&rd, &done);
    if (!done.ok)
        fuzz_fail ("the task library does not work: %.*s", (int) done.message.len,
                   done.message.ptr);
}

//  The worker joins: HELLO, and it is greeted.
static void
s_start_worker (void)
{
    cask_worker_config_t config = {
        .broker = "", .listen = s_names [1], .dir = s_dir, .name = "fuzz-worker",
        .nthreads = 2, .memory_limit = S_MEMORY_LIMIT, .fetch_timeout_ms = 200,
        .nresources = 1, .interrupted = &s_stop, .verbose = getenv ("CASK_FUZZ_VERBOSE") != NULL
    };
    char broker [S_TOKEN_SIZE + 1];
    snprintf (broker, sizeof broker, "ipc://@cask-fuzz-brok-%06x", (unsigned) getpid () & 0xffffff);
    fuzz_sandbox_allow (broker);
    s_broker = s_socket (ZMQ_ROUTER, broker, true);
    config.broker = broker;
    config.resources [0] = (cask_resource_t) { cask_str ("GPU"), 2 };
    s_worker = cask_worker_new (&config);
    if (!s_worker || pthread_create (&s_thread, NULL, s_run_worker, NULL))
        fuzz_fail ("cannot start the worker");
    s_expect (CASK_MSG_HELLO, NULL);
    s_greet ();
}

static int
s_remove_entry (const char *path, const struct stat *info, int type, struct FTW *walk)
{
    (void) info;
    (void) type;
    (void) walk;
    remove (path);
    return 0;
}

//  Removes the worker's directory: libraries, and results it spilled.
static void
s_remove_dir (void)
{
    nftw (s_dir, s_remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void
s_shutdown (void)
{
    s_stop = 1;
    pthread_join (s_thread, NULL);
    cask_worker_destroy (&s_worker);
    zmq_close (s_broker);
    zmq_close (s_peer);
    zmq_close (s_client);
    zmq_msg_close (&s_worker_id);
    zmq_msg_close (&s_fetcher_id);
    zmq_ctx_term (s_ctx);
    cask_message_close (&s_msg);
    cask_buf_free (&s_body);
    cask_buf_free (&s_library);
    zchunk_destroy (&s_tasklib);
    s_remove_dir ();
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    fuzz_keep_stderr ();
    if (!fuzz_sandbox_active ())
        fuzz_fail ("the connect() of fuzz_sandbox.c is not the one ZeroMQ calls: "
                   "fuzzed endpoints could reach the network");
    cask_message_init (&s_msg);
    cask_buf_init (&s_body);
    cask_buf_init (&s_library);
    zmq_msg_init (&s_worker_id);
    zmq_msg_init (&s_fetcher_id);
    unsigned id = (unsigned) getpid () & 0xffffff;
    snprintf (s_names [0], sizeof s_names [0], "ipc://@cask-fuzz-peer-%06x", id);
    snprintf (s_names [1], sizeof s_names [1], "ipc://@cask-fuzz-self-%06x", id);
    snprintf (s_dir, sizeof s_dir, "/tmp/cask-fuzz-worker-XXXXXX");
    s_ctx = zmq_ctx_new ();
    if (!s_ctx || !mkdtemp (s_dir))
        fuzz_fail ("cannot make a context and a directory");
    fuzz_sandbox_allow (s_names [0]);
    fuzz_sandbox_allow (s_names [1]);
    s_peer = s_socket (ZMQ_ROUTER, s_names [0], true);
    s_read_library ();
    s_start_worker ();
    atexit (s_shutdown);
    s_client = s_socket (ZMQ_DEALER, s_names [1], false);
    s_probe ();
    fuzz_send_oversized (s_client, &s_owed);
    s_sync_peer_socket ();
    return 0;
}

//  ---------------------------------------------------------------------
//  Inputs

//  Commands the peer socket serves; others get ERROR code 3.
static bool
s_served (uint8_t command)
{
    return command == CASK_MSG_GET || command == CASK_MSG_PUT || command == CASK_MSG_STATUS;
}

//  The command of a message whose header has the size and signature of
//  ours, else 0.
static uint8_t
s_command (const fuzz_frame_t *frames)
{
    bool ours = frames [0].size == 4 && frames [0].data [0] == CASK_SIG0
             && frames [0].data [1] == CASK_SIG1;
    return ours ? frames [0].data [3] : 0;
}

//  Writes the real endpoints over their tokens.
static void
s_replace_tokens (uint8_t *data, size_t size)
{
    static const char *tokens [] = { S_PEER_TOKEN, S_SELF_TOKEN };
    for (size_t index = 0; index < 2; index++) {
        uint8_t *at = data;
        while ((at = memmem (at, size - (size_t) (at - data), tokens [index], S_TOKEN_SIZE))) {
            memcpy (at, s_names [index], S_TOKEN_SIZE);
            at += S_TOKEN_SIZE;
        }
    }
}

static void
s_sync (s_route_t route)
{
    if (route == S_BROKER)
        s_sync_broker ();
    else
    if (route == S_PEER_SOCKET)
        s_sync_peer_socket ();
}

static void
s_deliver (s_route_t route, const fuzz_frame_t *frames, size_t count)
{
    uint8_t command = s_command (frames);
    if (route == S_BROKER && command != CASK_MSG_RETIRE) {
        s_fetch_asked |= command == CASK_MSG_TASK || command == CASK_MSG_COPY;
        fuzz_send (s_broker, &s_worker_id, frames, count);
    }
    else
    if (route == S_PEER_SOCKET) {
        fuzz_tally_sent (&s_owed, frames, count, s_served);
        fuzz_send (s_client, NULL, frames, count);
    }
    else
    if (route == S_FAKE_PEER) {
        //  A GET may be on its way only after a TASK or a COPY
        s_drain_fake_peer (s_fetcher_known || !s_fetch_asked ? 0 : S_GET_WAIT_MSECS);
        if (s_fetcher_known)
            fuzz_send (s_peer, &s_fetcher_id, frames, count);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    s_restart ();
    uint8_t *copy = (uint8_t *) malloc (size + 1);
    if (!copy)
        fuzz_fail ("out of memory for an input of %zu bytes", size);
    if (size)
        memcpy (copy, data, size);
    s_replace_tokens (copy, size);

    fuzz_input_t input;
    fuzz_input_init (&input, copy, size);
    int current = -1;
    while (!fuzz_input_done (&input)) {
        uint8_t byte = fuzz_input_byte (&input) & 3;
        s_route_t route = byte == 0 ? S_BROKER : byte == 2 ? S_FAKE_PEER : S_PEER_SOCKET;
        fuzz_frame_t frames [FUZZ_MAX_FRAMES];
        size_t count = fuzz_input_message (&input, frames);
        if (count == 0)
            break;
        //  The worker reads its sockets in turns, not in the order we wrote
        if (current >= 0 && current != (int) route)
            s_sync ((s_route_t) current);
        current = (int) route;
        s_deliver (route, frames, count);
    }
    s_sync_broker ();
    s_sync_peer_socket ();
    free (copy);
    return 0;
}
