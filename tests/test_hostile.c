/*  test_hostile.c - the broker and the workers' peer sockets under bad
    input from raw ZeroMQ sockets: garbage, short or foreign headers, other
    protocol versions, unknown commands, commands out of turn, truncated and
    oversized records, lying counts, too many frames. Each gets the ERROR
    (or erred STATE) PROTOCOL.md promises, and afterwards a normal client
    still gets correct results. Well-formed messages are built with the
    codec; the deliberately bad parts are raw bytes.
*/
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>
#include "cask_harness.h"
#include "cask_report.h"
#include "cask_testutil.h"

#define REPLY_TIMEOUT 10000

static cask_harness_t *harness;
static void *ctx;

//  Each test gets one worker of two threads, and a context for its raw
//  sockets.
static void s_setup (void)
{
    cask_harness_test_start (&harness, 1, 2, NULL, NULL);
    ctx = zmq_ctx_new ();
    ck_assert_ptr_nonnull (ctx);
}

static void s_teardown (void)
{
    zmq_ctx_term (ctx);
    cask_harness_test_stop (&harness, NULL);
}

static void *s_dealer (const char *endpoint)
{
    void *socket = zmq_socket (ctx, ZMQ_DEALER);
    ck_assert_ptr_nonnull (socket);
    int linger = 0;
    zmq_setsockopt (socket, ZMQ_LINGER, &linger, sizeof linger);
    ck_assert_int_eq (zmq_connect (socket, endpoint), 0);
    return socket;
}

static void *s_worker_dealer (void)
{
    char endpoint [256];
    ck_assert_int_eq (cask_harness_worker_endpoint (harness, 0, endpoint, sizeof endpoint), 0);
    return s_dealer (endpoint);
}

//  Sends the given frames as one message.
static void s_send_frames (void *socket, const void *const *data,
                           const size_t *size, size_t n)
{
    for (size_t i = 0; i < n; i++)
        ck_assert_int_ge (zmq_send (socket, data [i], size [i],
                                    i + 1 < n ? ZMQ_SNDMORE : 0), 0);
}

//  A header frame and a body frame, raw.
static void s_send_raw (void *socket, uint8_t version, uint8_t command,
                        const void *body, size_t size)
{
    uint8_t header [4] = { CASK_SIG0, CASK_SIG1, version, command };
    const void *data [2] = { header, body ? body : "" };
    size_t sizes [2] = { 4, size };
    s_send_frames (socket, data, sizes, 2);
}

static void s_send_buf (void *socket, uint8_t command, cask_buf_t *body)
{
    ck_assert_int_eq (cask_send (socket, NULL, command, body, NULL), 0);
    cask_buf_reset (body);
}

//  Receives the next message of command want, skipping WORKER news;
//  anything else fails the test (saying what came instead).
static void s_expect (void *socket, uint8_t want, cask_message_t *msg,
                      const char *context)
{
    int64_t deadline = cask_harness_now_ms () + REPLY_TIMEOUT;
    for (;;) {
        zmq_pollitem_t item = { socket, 0, ZMQ_POLLIN, 0 };
        long left = (long) (deadline - cask_harness_now_ms ());
        ck_assert_msg (left > 0 && zmq_poll (&item, 1, left) == 1,
                       "%s: no %s came within %d ms", context, cask_command_name (want),
                       REPLY_TIMEOUT);
        cask_message_init (msg);
        const char *why = NULL;
        cask_recv_t rc = cask_message_recv (msg, socket, false, ZMQ_DONTWAIT, &why);
        ck_assert_msg (rc == CASK_RECV_OK, "%s: expected %s, received a bad message (%s)",
                       context, cask_command_name (want), why ? why : "?");
        if (msg->command == want)
            return;
        if (msg->command == CASK_MSG_WORKER) {
            cask_message_close (msg);
            continue;
        }
        char text [512] = "";
        if (msg->command == CASK_MSG_ERROR) {
            cask_rd_t rd;
            cask_error_t error;
            cask_rd_init (&rd, zmq_msg_data (&msg->body), zmq_msg_size (&msg->body));
            cask_error_get (&rd, &error);
            snprintf (text, sizeof text, " (code %u: %.*s)", error.code,
                      (int) error.message.len, error.message.ptr);
        }
        ck_abort_msg ("%s: expected %s, got %s%s", context, cask_command_name (want),
                      cask_command_name (msg->command), text);
    }
}

//  Expects ERROR with code; returns its message in text.
static void s_expect_error (void *socket, uint16_t code, const char *context,
                            char *text, size_t size)
{
    cask_message_t msg;
    s_expect (socket, CASK_MSG_ERROR, &msg, context);
    cask_rd_t rd;
    cask_error_t error;
    cask_rd_init (&rd, zmq_msg_data (&msg.body), zmq_msg_size (&msg.body));
    cask_error_get (&rd, &error);
    ck_assert_msg (cask_rd_done (&rd), "%s: the ERROR body is malformed", context);
    char message [512];
    cask_str_copy (error.message, message, sizeof message);
    ck_assert_msg (error.code == code, "%s: ERROR code %u (\"%s\"), expected %u",
                   context, error.code, message, code);
    ck_assert_msg (*message, "%s: ERROR without a message", context);
    if (text)
        snprintf (text, size, "%s", message);
    cask_message_close (&msg);
}

//  Expects a REPORT whose body is a JSON object.
static void s_expect_report (void *socket, const char *context)
{
    cask_message_t msg;
    s_expect (socket, CASK_MSG_REPORT, &msg, context);
    cJSON *json = cJSON_ParseWithLength (zmq_msg_data (&msg.body), zmq_msg_size (&msg.body));
    ck_assert_msg (cJSON_IsObject (json), "%s: REPORT is not a JSON object", context);
    cJSON_Delete (json);
    cask_message_close (&msg);
}

//  Asks STATUS and reads up to its REPORT, accepting whatever else the
//  messages sent before it caused (the protocol leaves that open).
static void s_sync (void *socket)
{
    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_STATUS, NULL, 0);
    int64_t deadline = cask_harness_now_ms () + REPLY_TIMEOUT;
    for (;;) {
        zmq_pollitem_t item = { socket, 0, ZMQ_POLLIN, 0 };
        long left = (long) (deadline - cask_harness_now_ms ());
        ck_assert_msg (left > 0 && zmq_poll (&item, 1, left) == 1,
                       "no REPORT came within %d ms", REPLY_TIMEOUT);
        cask_message_t msg;
        cask_message_init (&msg);
        const char *why = NULL;
        cask_recv_t rc = cask_message_recv (&msg, socket, false, ZMQ_DONTWAIT, &why);
        ck_assert_msg (rc == CASK_RECV_OK, "a bad message (%s)", why ? why : "?");
        uint8_t command = msg.command;
        cask_message_close (&msg);
        if (command == CASK_MSG_REPORT)
            return;
    }
}

//  Expects a STATE record for key (skipping records of other keys) and
//  returns its state; the message, if any, goes to text.
static uint8_t s_expect_state (void *socket, const char *key, char *text, size_t size)
{
    for (;;) {
        cask_message_t msg;
        s_expect (socket, CASK_MSG_STATE, &msg, key);
        cask_rd_t rd;
        cask_rd_init (&rd, zmq_msg_data (&msg.body), zmq_msg_size (&msg.body));
        uint32_t count = cask_get_u32 (&rd);
        for (uint32_t i = 0; i < count && !rd.failed; i++) {
            cask_state_rec_t rec;
            cask_state_get (&rd, &rec);
            if (!rd.failed && cask_str_eq (rec.key, key)) {
                if (text)
                    cask_str_copy (rec.message, text, size);
                cask_message_close (&msg);
                return rec.state;
            }
        }
        ck_assert_msg (!rd.failed, "a STATE body is malformed");
        cask_message_close (&msg);
    }
}

//  A normal client still gets correct results; the processes still run.
static void s_assert_cluster_works (void)
{
    ck_assert_msg (cask_harness_broker_alive (harness), "the broker died");
    ck_assert_msg (cask_harness_worker_alive (harness, 0), "the worker died");
    cask_client_t *client = cask_harness_client (harness, cask_harness_tutorial_lib ());
    ck_assert_ptr_nonnull (client);
    cask_future_t *x = cask_submit (client, "inc", cask_int64 (1), NULL);
    cask_future_t *y = cask_submit (client, "double", cask_int64 (2), NULL);
    cask_future_t *z = cask_submit (client, "add", cask_future_arg (x),
                                    cask_future_arg (y), NULL);
    ck_assert (x && y && z);
    int64_t value = 0;
    ck_assert_msg (cask_future_int64 (z, REPLY_TIMEOUT, &value) == 0, "%s",
                   cask_future_error (z));
    ck_assert_int_eq (value, 6);
    cask_future_destroy (&x);
    cask_future_destroy (&y);
    cask_future_destroy (&z);
    cask_client_destroy (&client);
}

//  Says HELLO as role on socket; returns the id of function fn_name from
//  WELCOME (UINT32_MAX when it is not there).
static uint32_t s_hello (void *socket, uint8_t role, const char *fn_name)
{
    cask_buf_t body;
    cask_buf_init (&body);
    cask_hello_t hello = {
        .role = role, .name = cask_str ("hostile"), .nthreads = role == CASK_ROLE_WORKER,
        .memory_limit = 0,
        .endpoint = cask_str (role == CASK_ROLE_WORKER ? "tcp://127.0.0.1:1" : "")
    };
    cask_hello_put (&body, &hello);
    s_send_buf (socket, CASK_MSG_HELLO, &body);
    cask_buf_free (&body);

    cask_message_t msg;
    s_expect (socket, CASK_MSG_WELCOME, &msg, "HELLO");
    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&msg.body), zmq_msg_size (&msg.body));
    cask_get_u32 (&rd);
    uint32_t nfuncs = cask_get_u32 (&rd);
    uint32_t id = UINT32_MAX;
    for (uint32_t i = 0; i < nfuncs && !rd.failed; i++) {
        cask_func_t func;
        cask_func_get (&rd, &func);
        if (fn_name && cask_str_eq (func.name, fn_name))
            id = func.id;
    }
    ck_assert_msg (!rd.failed, "WELCOME is malformed");
    cask_message_close (&msg);
    return id;
}

//  A SUBMIT of one task record with raw args bytes and nframes (no
//  payload frames sent) and no dependencies.
static void s_submit_raw (void *socket, const char *key, uint32_t fn,
                          const void *args, size_t args_size, uint32_t nframes)
{
    cask_buf_t body;
    cask_buf_init (&body);
    cask_put_u32 (&body, 1);
    cask_task_put_head (&body, &(cask_task_t) { .key = cask_str (key), .fn = fn });
    cask_task_put_tail (&body, nframes, (cask_str_t) { (const char *) args, args_size });
    s_send_buf (socket, CASK_MSG_SUBMIT, &body);
    cask_buf_free (&body);
}

//  A SUBMIT of fn (x) with deps extra dependency keys.
static void s_submit_value (void *socket, const char *key, uint32_t fn, int64_t x,
                            const char *dep)
{
    cask_buf_t args, body;
    cask_buf_init (&args);
    cask_buf_init (&body);
    cask_value_t *list = cask_list (cask_int64 (x), NULL);
    ck_assert_int_eq (cask_value_encode (list, &args, NULL, NULL, NULL), 0);
    cask_value_destroy (&list);
    cask_put_u32 (&body, 1);
    cask_task_put_head (&body, &(cask_task_t) { .key = cask_str (key), .fn = fn, .ndeps = dep ? 1 : 0 });
    if (dep)
        cask_put_str8 (&body, cask_str (dep));
    cask_task_put_tail (&body, 0, (cask_str_t) { (const char *) args.data, args.size });
    s_send_buf (socket, CASK_MSG_SUBMIT, &body);
    cask_buf_free (&body);
    cask_buf_free (&args);
}

static void s_expect_erred (void *socket, const char *key, const char *why)
{
    char text [512] = "";
    uint8_t state = s_expect_state (socket, key, text, sizeof text);
    ck_assert_msg (state == CASK_STATE_ERRED, "%s (%s): state %u, expected erred",
                   key, why, state);
    ck_assert_msg (*text, "%s (%s): erred without a message", key, why);
}

START_TEST (test_broker_rejects_bad_framing)
{
    void *socket = s_dealer (cask_harness_broker (harness));
    char text [512];

    const char *http = "GET / HTTP/1.1\r\nHost: cask\r\n\r\n";
    s_send_frames (socket, (const void *[]) { http }, (size_t []) { strlen (http) }, 1);
    s_expect_error (socket, CASK_ERR_MALFORMED, "garbage frame", NULL, 0);

    s_send_frames (socket, (const void *[]) { "" }, (size_t []) { 0 }, 1);
    s_expect_error (socket, CASK_ERR_MALFORMED, "empty frame", NULL, 0);

    const uint8_t short_header [2] = { CASK_SIG0, CASK_SIG1 };
    s_send_frames (socket, (const void *[]) { short_header, "" }, (size_t []) { 2, 0 }, 2);
    s_expect_error (socket, CASK_ERR_MALFORMED, "short header", NULL, 0);

    const uint8_t bad_sig [4] = { CASK_SIG0, CASK_SIG1 + 1, CASK_PROTO_VERSION, CASK_MSG_STATUS };
    s_send_frames (socket, (const void *[]) { bad_sig, "" }, (size_t []) { 4, 0 }, 2);
    s_expect_error (socket, CASK_ERR_MALFORMED, "wrong signature", NULL, 0);

    const uint8_t header_only [4] = { CASK_SIG0, CASK_SIG1, CASK_PROTO_VERSION, CASK_MSG_STATUS };
    s_send_frames (socket, (const void *[]) { header_only }, (size_t []) { 4 }, 1);
    s_expect_error (socket, CASK_ERR_MALFORMED, "no body frame", NULL, 0);

    s_send_raw (socket, CASK_PROTO_VERSION + 1, CASK_MSG_STATUS, NULL, 0);
    s_expect_error (socket, CASK_ERR_VERSION, "newer version", text, sizeof text);
    ck_assert_msg (strstr (text, "version 2"), "version error: \"%s\"", text);

    s_send_raw (socket, CASK_PROTO_VERSION, 0x7E, NULL, 0);
    s_expect_error (socket, CASK_ERR_COMMAND, "unknown command", NULL, 0);

    //  Before HELLO only HELLO and STATUS are allowed.
    const uint8_t empty_batch [4] = { 0, 0, 0, 0 };
    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_SUBMIT, empty_batch, 4);
    s_expect_error (socket, CASK_ERR_HELLO, "SUBMIT before HELLO", NULL, 0);
    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_DONE, empty_batch, 4);
    s_expect_error (socket, CASK_ERR_HELLO, "DONE before HELLO", NULL, 0);
    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_STATUS, NULL, 0);
    s_expect_report (socket, "STATUS before HELLO");

    //  A HELLO that ends early.
    const uint8_t short_hello [3] = { CASK_ROLE_CLIENT, 10, 'x' };
    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_HELLO, short_hello, 3);
    s_expect_error (socket, CASK_ERR_MALFORMED, "truncated HELLO", NULL, 0);

    //  More payload frames than any message may have: header, body and
    //  one frame over the limit.
    size_t nframes = 2 + CASK_MAX_FRAMES + 1;
    const void **data = calloc (nframes, sizeof *data);
    size_t *sizes = calloc (nframes, sizeof *sizes);
    ck_assert (data && sizes);
    data [0] = header_only;
    sizes [0] = 4;
    for (size_t i = 1; i < nframes; i++)
        data [i] = "";
    s_send_frames (socket, data, sizes, nframes);
    free (data);
    free (sizes);
    s_expect_error (socket, CASK_ERR_MALFORMED, "too many frames", NULL, 0);

    //  A body over the limit.
    size_t huge = (size_t) CASK_MAX_BODY + 1;
    uint8_t *body = calloc (huge, 1);
    ck_assert_ptr_nonnull (body);
    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_STATUS, body, huge);
    free (body);
    s_expect_error (socket, CASK_ERR_MALFORMED, "body over 64 MiB", NULL, 0);

    //  Still answering on the same connection.
    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_STATUS, NULL, 0);
    s_expect_report (socket, "peer: STATUS");
    zmq_close (socket);
    s_assert_cluster_works ();
}
END_TEST

START_TEST (test_broker_rejects_bad_submits)
{
    //  The library is registered, so the raw client learns inc's id.
    cask_client_t *client = cask_harness_client (harness, cask_harness_tutorial_lib ());
    ck_assert_ptr_nonnull (client);
    void *socket = s_dealer (cask_harness_broker (harness));
    uint32_t inc = s_hello (socket, CASK_ROLE_CLIENT, "inc");
    ck_assert_msg (inc != UINT32_MAX, "WELCOME does not list inc");

    //  A well-formed raw submit works: the codec and the broker agree.
    s_submit_value (socket, "hostile-inc-5", inc, 5, NULL);
    ck_assert_int_eq (s_expect_state (socket, "hostile-inc-5", NULL, 0), CASK_STATE_MEMORY);

    //  Truncated inside the first key: nothing to blame but the message.
    const uint8_t cut_key [] = { 1, 0, 0, 0, 20, 'h', 'o', 's', 't' };
    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_SUBMIT, cut_key, sizeof cut_key);
    s_expect_error (socket, CASK_ERR_MALFORMED, "SUBMIT cut inside a key", NULL, 0);

    //  A count far beyond the bytes.
    const uint8_t huge_count [] = { 0xFF, 0xFF, 0xFF, 0xFF, 5, 'k' };
    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_SUBMIT, huge_count, sizeof huge_count);
    s_expect_error (socket, CASK_ERR_MALFORMED, "SUBMIT with a huge count", NULL, 0);

    //  Truncated after the key: that task errs.
    const uint8_t cut_record [] = { 1, 0, 0, 0, 9, 'h', 'o', 's', 't', 'i', 'l', 'e', '-', 'c', 0, 0 };
    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_SUBMIT, cut_record, sizeof cut_record);
    s_expect_erred (socket, "hostile-c", "record cut after the key");

    //  Lying counts and bad references inside the arguments.
    const uint8_t huge_list [] = { 0x07, 0xF0, 0xFF, 0xFF, 0xFF };
    s_submit_raw (socket, "hostile-huge-list", inc, huge_list, sizeof huge_list, 0);
    s_expect_erred (socket, "hostile-huge-list", "list count beyond the bytes");

    const uint8_t huge_string [] = { 0x07, 1, 0, 0, 0, 0x05, 0xFF, 0xFF, 0xFF, 0x7F, 'x' };
    s_submit_raw (socket, "hostile-huge-string", inc, huge_string, sizeof huge_string, 0);
    s_expect_erred (socket, "hostile-huge-string", "string length beyond the bytes");

    const uint8_t missing_frame [] = { 0x07, 1, 0, 0, 0, 0x06, 0, 0, 0, 0 };
    s_submit_raw (socket, "hostile-frame", inc, missing_frame, sizeof missing_frame, 1);
    s_expect_erred (socket, "hostile-frame", "bytes frame that was not sent");

    const uint8_t stray_ref [] = { 0x07, 1, 0, 0, 0, 0x08, 0, 0, 0, 0 };
    s_submit_raw (socket, "hostile-ref", inc, stray_ref, sizeof stray_ref, 0);
    s_expect_erred (socket, "hostile-ref", "ref without dependencies");

    const uint8_t bad_tag [] = { 0x07, 1, 0, 0, 0, 0x42 };
    s_submit_raw (socket, "hostile-tag", inc, bad_tag, sizeof bad_tag, 0);
    s_expect_erred (socket, "hostile-tag", "unknown value tag");

    uint8_t deep [5 * 70 + 1];
    for (size_t i = 0; i < 70; i++)
        memcpy (deep + 5 * i, (const uint8_t []) { 0x07, 1, 0, 0, 0 }, 5);
    deep [5 * 70] = 0x00;
    s_submit_raw (socket, "hostile-deep", inc, deep, sizeof deep, 0);
    s_expect_erred (socket, "hostile-deep", "lists nested 70 deep");

    //  Unknown function, unknown dependency.
    s_submit_value (socket, "hostile-no-fn", 99999, 1, NULL);
    s_expect_erred (socket, "hostile-no-fn", "unknown function id");
    s_submit_value (socket, "hostile-no-dep", inc, 1, "no-such-key");
    s_expect_erred (socket, "hostile-no-dep", "unknown dependency");

    //  A library whose bytes do not match its hash, and one with no functions.
    cask_buf_t body;
    cask_buf_init (&body);
    cask_message_t payload;
    for (uint32_t nfuncs = 0; nfuncs < 2; nfuncs++) {
        cask_library_t lib = {
            cask_str ("hostile"), cask_str ("0123456789abcdef0123456789abcdef01234567"), nfuncs
        };
        cask_library_put (&body, &lib);
        if (nfuncs) {
            cask_func_t func = { 0, cask_str ("evil"), cask_str ("none") };
            cask_func_put (&body, &func);
        }
        cask_message_init (&payload);
        ck_assert_int_eq (cask_message_add_frame (&payload, "not an elf", 10), 0);
        ck_assert_int_eq (cask_send (socket, NULL, CASK_MSG_REGISTER, &body, &payload), 0);
        cask_message_close (&payload);
        cask_buf_reset (&body);
        s_expect_error (socket, CASK_ERR_LIBRARY, nfuncs ? "REGISTER with a wrong hash"
                                                         : "REGISTER of no functions", NULL, 0);
    }
    cask_buf_free (&body);

    //  RELEASE of keys nobody has is harmless; STATUS still answers.
    const uint8_t release [] = { 2, 0, 0, 0, 3, 'a', 'b', 'c', 0 };
    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_RELEASE, release, sizeof release);
    s_sync (socket);

    //  After BYE, the peer is a stranger again.
    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_BYE, NULL, 0);
    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_SUBMIT, (const uint8_t []) { 0, 0, 0, 0 }, 4);
    s_expect_error (socket, CASK_ERR_HELLO, "SUBMIT after BYE", NULL, 0);
    zmq_close (socket);
    cask_client_destroy (&client);
    s_assert_cluster_works ();
}
END_TEST

START_TEST (test_broker_survives_fake_worker)
{
    void *socket = s_dealer (cask_harness_broker (harness));
    s_hello (socket, CASK_ROLE_WORKER, NULL);
    //  DONE for tasks it never got, a truncated DONE, a LIBFAIL for no library.
    cask_buf_t body;
    cask_buf_init (&body);
    cask_done_t done = { .key = cask_str ("never-sent"), .ok = 1, .type = CASK_INT64, .nbytes = 8,
                         .duration_us = 10, .message = cask_str ("") };
    cask_put_u32 (&body, 1);
    cask_done_put (&body, &done);
    s_send_buf (socket, CASK_MSG_DONE, &body);
    done.ok = 0;
    done.message = cask_str ("made up");
    cask_put_u32 (&body, 1);
    cask_done_put (&body, &done);
    s_send_buf (socket, CASK_MSG_DONE, &body);
    cask_error_t libfail = { CASK_ERR_LIBRARY, cask_str ("feedface"), cask_str ("cannot") };
    cask_error_put (&body, &libfail);
    s_send_buf (socket, CASK_MSG_LIBFAIL, &body);
    cask_buf_free (&body);
    s_sync (socket);
    const uint8_t cut_done [] = { 3, 0, 0, 0, 4, 'k', 'e' };
    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_DONE, cut_done, sizeof cut_done);
    s_expect_error (socket, CASK_ERR_MALFORMED, "truncated DONE", NULL, 0);
    //  A client command from a worker.
    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_SUBMIT, (const uint8_t []) { 0, 0, 0, 0 }, 4);
    s_expect_error (socket, CASK_ERR_COMMAND, "SUBMIT from a worker", NULL, 0);
    //  It leaves before the normal client comes, so no task waits on it.
    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_BYE, NULL, 0);
    zmq_close (socket);

    int64_t deadline = cask_harness_now_ms () + REPLY_TIMEOUT;
    int64_t workers = -1;
    while (cask_harness_now_ms () < deadline) {
        cJSON *report = cask_harness_broker_report (harness, 2000);
        workers = cask_report_nworkers (report);
        cJSON_Delete (report);
        if (workers == 1)
            break;
        usleep (20000);
    }
    ck_assert_msg (workers == 1, "the broker reports %lld workers after the fake one left",
                   (long long) workers);
    s_assert_cluster_works ();
}
END_TEST

//  DATA with one record for key: returns found, and the int64 value in *x.
static bool s_expect_data (void *socket, const char *key, int64_t *x)
{
    cask_message_t msg;
    s_expect (socket, CASK_MSG_DATA, &msg, key);
    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&msg.body), zmq_msg_size (&msg.body));
    ck_assert_uint_eq (cask_get_u32 (&rd), 1);
    cask_str_t got = cask_get_str8 (&rd);
    ck_assert_msg (cask_str_eq (got, key), "DATA for another key");
    bool found = cask_get_u8 (&rd) == 1;
    if (found) {
        uint32_t nframes = cask_get_u32 (&rd);
        const char *why = NULL;
        cask_value_t *value = cask_value_decode (&rd, &msg, 0, nframes, NULL, 0, &why);
        ck_assert_msg (value != NULL, "DATA value: %s", why ? why : "?");
        ck_assert_int_eq (cask_value_int64 (value, x), 0);
        cask_value_destroy (&value);
    }
    ck_assert_msg (cask_rd_done (&rd), "DATA body is malformed");
    cask_message_close (&msg);
    return found;
}

static void s_send_get (void *socket, const char *key)
{
    cask_buf_t body;
    cask_buf_init (&body);
    cask_put_u32 (&body, 1);
    cask_put_str8 (&body, cask_str (key));
    s_send_buf (socket, CASK_MSG_GET, &body);
    cask_buf_free (&body);
}

START_TEST (test_worker_peer_socket)
{
    cask_client_t *client = cask_harness_client (harness, cask_harness_tutorial_lib ());
    ck_assert_ptr_nonnull (client);
    cask_future_t *future = cask_submit (client, "inc", cask_int64 (99), NULL);
    int64_t value = 0;
    ck_assert_int_eq (cask_future_int64 (future, REPLY_TIMEOUT, &value), 0);
    ck_assert_int_eq (value, 100);

    void *socket = s_worker_dealer ();
    const char *junk = "\x01\x02garbage";
    s_send_frames (socket, (const void *[]) { junk }, (size_t []) { strlen (junk) }, 1);
    s_expect_error (socket, CASK_ERR_MALFORMED, "peer: garbage frame", NULL, 0);

    const uint8_t short_header [3] = { CASK_SIG0, CASK_SIG1, CASK_PROTO_VERSION };
    s_send_frames (socket, (const void *[]) { short_header, "" }, (size_t []) { 3, 0 }, 2);
    s_expect_error (socket, CASK_ERR_MALFORMED, "peer: short header", NULL, 0);

    s_send_raw (socket, 9, CASK_MSG_GET, NULL, 0);
    s_expect_error (socket, CASK_ERR_VERSION, "peer: other version", NULL, 0);

    s_send_raw (socket, CASK_PROTO_VERSION, 0x7E, NULL, 0);
    s_expect_error (socket, CASK_ERR_COMMAND, "peer: unknown command", NULL, 0);

    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_SUBMIT, (const uint8_t []) { 0, 0, 0, 0 }, 4);
    s_expect_error (socket, CASK_ERR_COMMAND, "peer: SUBMIT", NULL, 0);

    const uint8_t cut_get [] = { 2, 0, 0, 0, 3, 'a', 'b', 'c' };
    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_GET, cut_get, sizeof cut_get);
    s_expect_error (socket, CASK_ERR_MALFORMED, "peer: GET with fewer keys than counted", NULL, 0);

    const uint8_t huge_get [] = { 0xFF, 0xFF, 0xFF, 0xFF };
    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_GET, huge_get, sizeof huge_get);
    s_expect_error (socket, CASK_ERR_MALFORMED, "peer: GET with a huge count", NULL, 0);

    const uint8_t trailing_get [] = { 1, 0, 0, 0, 1, 'k', 0xEE };
    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_GET, trailing_get, sizeof trailing_get);
    s_expect_error (socket, CASK_ERR_MALFORMED, "peer: GET with trailing bytes", NULL, 0);

    s_send_get (socket, "no-such-key");
    ck_assert_msg (!s_expect_data (socket, "no-such-key", &value),
                   "the worker found a key that does not exist");

    s_send_get (socket, cask_future_key (future));
    value = 0;
    ck_assert_msg (s_expect_data (socket, cask_future_key (future), &value),
                   "the worker does not have %s", cask_future_key (future));
    ck_assert_int_eq (value, 100);

    s_send_raw (socket, CASK_PROTO_VERSION, CASK_MSG_STATUS, NULL, 0);
    s_expect_report (socket, "peer: STATUS");
    zmq_close (socket);

    cJSON *report = cask_harness_worker_report (harness, 0, 5000);
    ck_assert_ptr_nonnull (report);
    ck_assert_int_ge (cask_harness_json_int (report, "gets_served", 0), 2);
    ck_assert_int_ge (cask_harness_json_int (report, "tasks_run", 0), 1);
    cJSON_Delete (report);
    cask_future_destroy (&future);
    cask_client_destroy (&client);
    s_assert_cluster_works ();
}
END_TEST

int main (void)
{
    TCase *tc = tcase_create ("hostile");
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_set_timeout (tc, 120);
    tcase_add_test (tc, test_broker_rejects_bad_framing);
    tcase_add_test (tc, test_broker_rejects_bad_submits);
    tcase_add_test (tc, test_broker_survives_fake_worker);
    tcase_add_test (tc, test_worker_peer_socket);
    return cask_test_run ("hostile", tc, NULL);
}
