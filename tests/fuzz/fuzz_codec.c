/*  fuzz_codec.c - libFuzzer target: the codec of proto/cask_proto.c on one
    message, as a receiver meets it.

    Input: a byte whose bit 0 says whether the message arrives on a ROUTER
    (1, from a DEALER: a routing id comes first) or on a PAIR (0), then the
    frames of one message (fuzz_common.h). The frames go through ZeroMQ
    over inproc and cask_message_recv takes them; its verdict must match
    what PROTOCOL.md says of the framing. A message it accepts is decoded
    by the layout of its command, every record and value written back and
    compared (fuzz_decode). The body is also read as text by the parsers of
    resource and name lists, whose results must fit the wire.

    Nothing may crash, read out of bounds or leak: each input's memory is
    freed before the next, so libFuzzer's leak check applies per input.
*/
#include "fuzz_common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *s_ctx;
static void *s_pair_in;                 //  PAIR, receives
static void *s_pair_out;                //  PAIR, sends
static void *s_router;                  //  ROUTER, receives
static void *s_dealer;                  //  DEALER, sends

static void *
s_socket (int type, const char *endpoint, bool bind)
{
    void *socket = zmq_socket (s_ctx, type);
    int zero = 0;
    int timeout = FUZZ_REPLY_MSECS;
    if (socket) {
        zmq_setsockopt (socket, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt (socket, ZMQ_SNDHWM, &zero, sizeof zero);
        zmq_setsockopt (socket, ZMQ_RCVHWM, &zero, sizeof zero);
        zmq_setsockopt (socket, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    }
    if (!socket || (bind ? zmq_bind (socket, endpoint) : zmq_connect (socket, endpoint)))
        fuzz_fail ("cannot set up %s: %s", endpoint, zmq_strerror (errno));
    return socket;
}

static void
s_shutdown (void)
{
    zmq_close (s_pair_in);
    zmq_close (s_pair_out);
    zmq_close (s_router);
    zmq_close (s_dealer);
    zmq_ctx_term (s_ctx);
}

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    fuzz_keep_stderr ();
    s_ctx = zmq_ctx_new ();
    if (!s_ctx)
        fuzz_fail ("no ZeroMQ context");
    s_pair_in = s_socket (ZMQ_PAIR, "inproc://fuzz-codec-pair", true);
    s_pair_out = s_socket (ZMQ_PAIR, "inproc://fuzz-codec-pair", false);
    s_router = s_socket (ZMQ_ROUTER, "inproc://fuzz-codec-router", true);
    s_dealer = s_socket (ZMQ_DEALER, "inproc://fuzz-codec-router", false);
    atexit (s_shutdown);
    return 0;
}

//  The codec checks framing only: every command is "known" to it.
static bool
s_any_command (uint8_t command)
{
    (void) command;
    return true;
}

//  cask_message_recv must take a message exactly when PROTOCOL.md's
//  framing rules do.
static void
s_check_verdict (cask_recv_t rc, const cask_message_t *msg, uint16_t framing, const char *why)
{
    if (rc == CASK_RECV_AGAIN || rc == CASK_RECV_TERM)
        fuzz_fail ("a message sent over inproc did not arrive (%d)", rc);
    if (framing == CASK_ERR_MALFORMED && rc != CASK_RECV_BAD)
        fuzz_fail ("cask_message_recv took a message PROTOCOL.md calls malformed");
    if (framing != CASK_ERR_MALFORMED && rc != CASK_RECV_OK)
        fuzz_fail ("cask_message_recv refused a well-framed message: %s", why);
    if (rc == CASK_RECV_OK && (msg->version == CASK_PROTO_VERSION) != (framing != CASK_ERR_VERSION))
        fuzz_fail ("cask_message_recv read version %u", msg->version);
}

//  What the text parsers accept must be what the wire takes.
static void
s_check_parsers (const cask_message_t *msg)
{
    size_t size = zmq_msg_size ((zmq_msg_t *) &msg->body);
    char *text = (char *) malloc (size + 1);
    if (!text)
        fuzz_fail ("out of memory for %zu bytes", size);
    if (size)
        memcpy (text, zmq_msg_data ((zmq_msg_t *) &msg->body), size);
    text [size] = 0;

    char error [256];
    cask_restrictions_t restrictions = { 0 };
    bool resources = cask_resources_parse (text, restrictions.resources,
                                           &restrictions.nresources, error, sizeof error) == 0;
    bool names = cask_names_parse (text, restrictions.workers, &restrictions.nworkers,
                                   error, sizeof error) == 0;
    //  After a failure the count is unspecified
    restrictions.nresources = resources ? restrictions.nresources : 0;
    restrictions.nworkers = names ? restrictions.nworkers : 0;
    if (resources || names) {
        cask_buf_t buf;
        cask_buf_init (&buf);
        cask_restrictions_put (&buf, &restrictions);
        cask_rd_t rd;
        cask_rd_init (&rd, buf.data, buf.size);
        cask_restrictions_t again;
        cask_restrictions_get (&rd, &again);
        if (buf.failed || !cask_rd_done (&rd))
            fuzz_fail ("parsed names or resources the wire does not take");
        cask_buf_free (&buf);
    }
    free (text);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    fuzz_input_t input;
    fuzz_input_init (&input, data, size);
    bool routed = fuzz_input_byte (&input) & 1;
    fuzz_frame_t frames [FUZZ_MAX_FRAMES];
    size_t count = fuzz_input_message (&input, frames);
    if (count == 0)
        return 0;
    fuzz_send (routed ? s_dealer : s_pair_out, NULL, frames, count);

    cask_message_t msg;
    cask_message_init (&msg);
    const char *why = NULL;
    cask_recv_t rc = cask_message_recv (&msg, routed ? s_router : s_pair_in, routed, 0, &why);
    s_check_verdict (rc, &msg, fuzz_framing_error (frames, count, s_any_command), why);
    if (rc == CASK_RECV_OK && msg.version == CASK_PROTO_VERSION) {
        s_check_parsers (&msg);
        fuzz_decode (&msg);
    }
    cask_message_close (&msg);
    return 0;
}
