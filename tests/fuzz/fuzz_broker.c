/*  fuzz_broker.c - libFuzzer target: a real broker, in this process, under
    three hostile peers.

    Input (frames as in fuzz_common.h): a setup byte, then messages, each
    after a route byte. Setup bits 0-1 say what connection A says first,
    bits 2-3 connection B, bits 4-5 connection C: 0 nothing, 1 or 3 a
    client HELLO, 2 a worker HELLO (worker "fuzz-a", "fuzz-b" or "fuzz-c",
    2 threads, GPU=2), so that the handlers past HELLO are reached. Setup
    bit 6 (7) makes connection A (B) leave at the end by closing, as a
    killed process would, instead of saying BYE. Route bits 0-1 pick the
    connection: A 0, B 1, C 2 or 3.

    The broker runs in a thread for the whole run, bound to a free loopback
    port. At start an admin client registers a library of five functions
    (ids 1 to 5: echo, probe, fail, spin, blob; the broker never loads it),
    connection A sends the two messages past the limits that inputs cannot
    reach (fuzz_send_oversized), and before each input the admin sends
    RESTART, so each input starts from an empty graph. A connection that was used is synchronised when the route
    changes and at the end (A always): STATUS must be answered by REPORT
    within FUZZ_REPLY_MSECS (else the broker hangs or died), every reply
    must be well-formed (fuzz_decode), and every message whose framing
    PROTOCOL.md rejects must have had its ERROR. Then it says BYE, or
    closes and connects again.
*/
#include "fuzz_common.h"
#include "cask_broker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_BLOB "not a shared object: the broker only hashes it"

typedef struct {
    void *socket;               //  DEALER to the broker
    const char *name;           //  for failures
    fuzz_tally_t owed;          //  what the framing of what was sent promises
    fuzz_tally_t got;           //  what came back
    bool used;                  //  in this input
} s_conn_t;

#define S_CONNS 3

static void *s_ctx;
static cask_broker_t *s_broker;
static pthread_t s_thread;
static volatile sig_atomic_t s_stop;
static s_conn_t s_admin = { .name = "the admin client" };
static s_conn_t s_conns [S_CONNS] = {
    { .name = "connection A" }, { .name = "connection B" }, { .name = "connection C" }
};
static cask_message_t s_msg;            //  the last reply
static cask_buf_t s_body;

static void *
s_run_broker (void *arg)
{
    (void) arg;
    cask_broker_run (s_broker, &s_stop);
    return NULL;
}

static void
s_connect (s_conn_t *conn)
{
    conn->socket = zmq_socket (s_ctx, ZMQ_DEALER);
    int zero = 0;
    if (conn->socket) {
        zmq_setsockopt (conn->socket, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt (conn->socket, ZMQ_SNDHWM, &zero, sizeof zero);
        zmq_setsockopt (conn->socket, ZMQ_RCVHWM, &zero, sizeof zero);
    }
    if (!conn->socket || zmq_connect (conn->socket, cask_broker_endpoint (s_broker)))
        fuzz_fail ("%s cannot connect: %s", conn->name, zmq_strerror (errno));
}

//  Receives one reply on conn and checks it.
static void
s_receive (s_conn_t *conn, const char *what)
{
    if (!fuzz_recv (conn->socket, false, &s_msg, FUZZ_REPLY_MSECS))
        fuzz_fail ("%s: no %s from the broker in %d ms: it hangs or died", conn->name, what,
                   FUZZ_REPLY_MSECS);
    fuzz_check_reply (&s_msg, &conn->got, "the broker");
}

//  Receives replies on conn until one of command.
static void
s_expect (s_conn_t *conn, uint8_t command)
{
    do
        s_receive (conn, cask_command_name (command));
    while (s_msg.command != command);
}

//  STATUS, and every reply until its REPORT (fuzzed STATUSes get theirs
//  first): the broker must be alive and must have answered every badly
//  framed message with its ERROR.
static void
s_sync (s_conn_t *conn)
{
    fuzz_send_built (conn->socket, NULL, CASK_MSG_STATUS, NULL);
    conn->owed.reports++;
    while (conn->got.reports < conn->owed.reports)
        s_receive (conn, "REPORT");
    fuzz_settle (&conn->owed, &conn->got, "the broker");
}

static void
s_hello (s_conn_t *conn, uint8_t role, const char *name)
{
    cask_hello_t hello = { .role = role, .name = cask_str (name) };
    if (role == CASK_ROLE_WORKER) {
        hello.nthreads = 2;
        hello.endpoint = cask_str ("tcp://127.0.0.1:1");
        hello.nresources = 1;
        hello.resources [0] = (cask_resource_t) { cask_str ("GPU"), 2 };
    }
    cask_buf_reset (&s_body);
    cask_hello_put (&s_body, &hello);
    fuzz_send_built (conn->socket, NULL, CASK_MSG_HELLO, &s_body);
    s_expect (conn, CASK_MSG_WELCOME);
}

//  The admin registers the functions of fuzz_tasklib.c; only their names
//  matter to the broker.
static void
s_register (void)
{
    static const char *names [] = { "echo", "probe", "fail", "spin", "blob" };
    char hash [41];
    fuzz_sha1 (S_BLOB, strlen (S_BLOB), hash);
    cask_library_t head = { cask_str ("fuzzlib"), cask_str (hash), 5 };
    cask_buf_reset (&s_body);
    cask_library_put (&s_body, &head);
    for (size_t index = 0; index < 5; index++) {
        cask_func_t func = { 0, cask_str (names [index]), cask_str ("") };
        cask_func_put (&s_body, &func);
    }
    cask_message_t frames;
    cask_message_init (&frames);
    cask_message_add_frame (&frames, S_BLOB, strlen (S_BLOB));
    if (cask_send (s_admin.socket, NULL, CASK_MSG_REGISTER, &s_body, &frames))
        fuzz_fail ("cannot send REGISTER: %s", zmq_strerror (errno));
    cask_message_close (&frames);
    s_expect (&s_admin, CASK_MSG_REGISTERED);
}

static void
s_shutdown (void)
{
    s_stop = 1;
    pthread_join (s_thread, NULL);
    zmq_close (s_admin.socket);
    for (size_t index = 0; index < S_CONNS; index++)
        zmq_close (s_conns [index].socket);
    zmq_ctx_term (s_ctx);
    cask_broker_destroy (&s_broker);
    cask_message_close (&s_msg);
    cask_buf_free (&s_body);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    fuzz_keep_stderr ();
    cask_message_init (&s_msg);
    cask_buf_init (&s_body);
    s_ctx = zmq_ctx_new ();
    s_broker = cask_broker_new ("tcp://127.0.0.1:*", getenv ("CASK_FUZZ_VERBOSE") != NULL);
    if (!s_ctx || !s_broker || pthread_create (&s_thread, NULL, s_run_broker, NULL))
        fuzz_fail ("cannot start the broker");
    atexit (s_shutdown);
    s_connect (&s_admin);
    for (size_t index = 0; index < S_CONNS; index++)
        s_connect (&s_conns [index]);
    s_hello (&s_admin, CASK_ROLE_CLIENT, "fuzz-admin");
    s_register ();
    fuzz_send_oversized (s_conns [0].socket, &s_conns [0].owed);
    s_sync (&s_conns [0]);
    return 0;
}

static bool
s_known_command (uint8_t command)
{
    return strcmp (cask_command_name (command), "unknown") != 0;
}

//  Each connection greets as the setup byte says.
static void
s_greet (uint8_t setup)
{
    static const char *names [] = { "fuzz-a", "fuzz-b", "fuzz-c" };
    for (size_t index = 0; index < S_CONNS; index++) {
        uint8_t say = (setup >> (2 * index)) & 3;
        s_conns [index].used = say != 0 || index == 0;
        if (say)
            s_hello (&s_conns [index], say == 2 ? CASK_ROLE_WORKER : CASK_ROLE_CLIENT,
                     names [index]);
    }
}

//  A used connection is checked, then says BYE, or leaves by closing.
static void
s_leave (s_conn_t *conn, bool closing)
{
    s_sync (conn);
    if (closing) {
        zmq_close (conn->socket);
        s_connect (conn);
    }
    else {
        fuzz_send_built (conn->socket, NULL, CASK_MSG_BYE, NULL);
        s_sync (conn);
    }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    fuzz_send_built (s_admin.socket, NULL, CASK_MSG_RESTART, NULL);
    s_expect (&s_admin, CASK_MSG_RESTARTED);

    fuzz_input_t input;
    fuzz_input_init (&input, data, size);
    uint8_t setup = fuzz_input_byte (&input);
    s_greet (setup);
    s_conn_t *current = NULL;
    while (!fuzz_input_done (&input)) {
        uint8_t route = fuzz_input_byte (&input) & 3;
        s_conn_t *conn = &s_conns [route < S_CONNS ? route : S_CONNS - 1];
        fuzz_frame_t frames [FUZZ_MAX_FRAMES];
        size_t count = fuzz_input_message (&input, frames);
        if (count == 0)
            break;
        //  The broker reads each connection in order, not all together
        if (current && current != conn)
            s_sync (current);
        current = conn;
        conn->used = true;
        fuzz_tally_sent (&conn->owed, frames, count, s_known_command);
        fuzz_send (conn->socket, NULL, frames, count);
    }
    for (size_t index = 0; index < S_CONNS; index++)
        if (s_conns [index].used)
            s_leave (&s_conns [index], index < 2 && (setup & (0x40 << index)));
    return 0;
}
