/*  fuzz_common.c - input framing, sockets and promises shared by the
    libFuzzer targets (see fuzz_common.h; the decoder is fuzz_decode.c).

    Every wait is bounded: a peer that does not answer within
    FUZZ_REPLY_MSECS fails the run, which is how a hang or a dead broker or
    worker shows up as a crash with its input saved.
*/
#include "fuzz_common.h"

#include <czmq.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  The stderr the process started with (libFuzzer may close fd 2).
static FILE *s_stderr;

void
fuzz_keep_stderr (void)
{
    int fd = dup (2);
    s_stderr = fd >= 0 ? fdopen (fd, "w") : NULL;
}

void
fuzz_fail (const char *format, ...)
{
    FILE *stream = s_stderr ? s_stderr : stderr;
    va_list args;
    va_start (args, format);
    fprintf (stream, "FUZZ FAILURE: ");
    vfprintf (stream, format, args);
    fprintf (stream, "\n");
    va_end (args);
    fflush (stream);
    abort ();
}

//  ---------------------------------------------------------------------
//  Input framing

void
fuzz_input_init (fuzz_input_t *self, const uint8_t *data, size_t size)
{
    self->ptr = data;
    self->end = data + size;
}

bool
fuzz_input_done (const fuzz_input_t *self)
{
    return self->ptr >= self->end;
}

uint8_t
fuzz_input_byte (fuzz_input_t *self)
{
    return fuzz_input_done (self) ? 0 : *self->ptr++;
}

size_t
fuzz_input_message (fuzz_input_t *self, fuzz_frame_t *frames)
{
    size_t count = 0;
    bool last = false;
    //  A lone byte left cannot hold a frame word: it ends the input
    while (!last && count < FUZZ_MAX_FRAMES && self->end - self->ptr >= 2) {
        uint16_t word = (uint16_t) (self->ptr [0] | self->ptr [1] << 8);
        self->ptr += 2;
        size_t left = (size_t) (self->end - self->ptr);
        size_t size = word & ~FUZZ_LAST_FRAME;
        last = (word & FUZZ_LAST_FRAME) || size >= left;
        frames [count].data = self->ptr;
        frames [count].size = size < left ? size : left;
        self->ptr += frames [count++].size;
    }
    if (self->end - self->ptr == 1)
        self->ptr = self->end;
    return count;
}

//  ---------------------------------------------------------------------
//  Sockets

void
fuzz_send (void *socket, const zmq_msg_t *routing, const fuzz_frame_t *frames,
           size_t count)
{
    int rc = 0;
    if (routing)
        rc = zmq_send (socket, zmq_msg_data ((zmq_msg_t *) routing),
                       zmq_msg_size ((zmq_msg_t *) routing), ZMQ_SNDMORE);
    for (size_t index = 0; index < count && rc != -1; index++)
        rc = zmq_send (socket, frames [index].data, frames [index].size,
                       index + 1 < count ? ZMQ_SNDMORE : 0);
    if (rc == -1)
        fuzz_fail ("cannot send a fuzzed message: %s", zmq_strerror (errno));
}

void
fuzz_send_built (void *socket, const zmq_msg_t *routing, uint8_t command,
                 const cask_buf_t *body)
{
    if (cask_send (socket, routing, command, body, NULL))
        fuzz_fail ("cannot send %s: %s", cask_command_name (command), zmq_strerror (errno));
}

bool
fuzz_recv (void *socket, bool routed, cask_message_t *msg, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (true) {
        const char *why = NULL;
        cask_recv_t rc = cask_message_recv (msg, socket, routed, ZMQ_DONTWAIT, &why);
        if (rc == CASK_RECV_OK)
            return true;
        if (rc == CASK_RECV_BAD)
            fuzz_fail ("received a message that is not framed as PROTOCOL.md says: %s", why);
        if (rc == CASK_RECV_TERM)
            fuzz_fail ("socket failed: %s", zmq_strerror (errno));
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            return false;
        zmq_pollitem_t item = { socket, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll (&item, 1, (long) left) == -1 && errno != EINTR)
            fuzz_fail ("poll failed: %s", zmq_strerror (errno));
    }
}

//  ---------------------------------------------------------------------
//  Promises

uint16_t
fuzz_framing_error (const fuzz_frame_t *frames, size_t count, bool (*known) (uint8_t command))
{
    const fuzz_frame_t *header = &frames [0];
    if (header->size < 3 || header->data [0] != CASK_SIG0 || header->data [1] != CASK_SIG1)
        return CASK_ERR_MALFORMED;
    if (header->data [2] != CASK_PROTO_VERSION)
        return CASK_ERR_VERSION;
    if (header->size != 4 || count < 2 || count - 2 > CASK_MAX_FRAMES
    ||  frames [1].size > CASK_MAX_BODY)
        return CASK_ERR_MALFORMED;
    return known (header->data [3]) ? 0 : CASK_ERR_COMMAND;
}

void
fuzz_trace (const cask_message_t *msg, const char *from_whom)
{
    static int s_verbose = -1;
    if (s_verbose < 0)
        s_verbose = getenv ("CASK_FUZZ_VERBOSE") != NULL;
    if (!s_verbose)
        return;
    FILE *stream = s_stderr ? s_stderr : stderr;
    size_t size = zmq_msg_size ((zmq_msg_t *) &msg->body);
    const uint8_t *body = (const uint8_t *) zmq_msg_data ((zmq_msg_t *) &msg->body);
    fprintf (stream, "fuzz: %s sent %s, %zu bytes, %zu frames:", from_whom,
             cask_command_name (msg->command), size, msg->nframes);
    for (size_t index = 0; index < size && index < 48; index++)
        fprintf (stream, " %02x", body [index]);
    fprintf (stream, "%s\n", size > 48 ? " ..." : "");
    fflush (stream);
}

void
fuzz_tally_sent (fuzz_tally_t *owed, const fuzz_frame_t *frames, size_t count,
                 bool (*known) (uint8_t command))
{
    uint16_t code = fuzz_framing_error (frames, count, known);
    if (code)
        owed->errors [code]++;
    else
    if (frames [0].data [3] == CASK_MSG_STATUS)
        owed->reports++;
}

static void
s_send_part (void *socket, const void *data, size_t size, bool more)
{
    if (zmq_send (socket, data, size, more ? ZMQ_SNDMORE : 0) == -1)
        fuzz_fail ("cannot send an oversized message: %s", zmq_strerror (errno));
}

void
fuzz_send_oversized (void *socket, fuzz_tally_t *owed)
{
    static const uint8_t header [4] = { CASK_SIG0, CASK_SIG1, CASK_PROTO_VERSION, CASK_MSG_PUT };
    uint8_t *body = (uint8_t *) calloc (1, CASK_MAX_BODY + 1);
    if (!body)
        fuzz_fail ("out of memory for an oversized body");
    s_send_part (socket, header, sizeof header, true);
    s_send_part (socket, body, CASK_MAX_BODY + 1, false);
    free (body);
    s_send_part (socket, header, sizeof header, true);
    s_send_part (socket, "", 0, true);
    for (size_t index = 0; index <= CASK_MAX_FRAMES; index++)
        s_send_part (socket, "", 0, index < CASK_MAX_FRAMES);
    owed->errors [CASK_ERR_MALFORMED] += 2;
}

void
fuzz_check_reply (cask_message_t *msg, fuzz_tally_t *got, const char *from_whom)
{
    fuzz_trace (msg, from_whom);
    uint8_t command = msg->command;
    if (msg->version != CASK_PROTO_VERSION || fuzz_decode (msg))
        fuzz_fail ("%s sent a malformed %s (0x%02x, version %u, %zu bytes, %zu frames)",
                   from_whom, cask_command_name (command), command, msg->version,
                   zmq_msg_size (&msg->body), msg->nframes);
    if (command == CASK_MSG_REPORT)
        got->reports++;
    if (command != CASK_MSG_ERROR)
        return;
    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&msg->body), zmq_msg_size (&msg->body));
    uint16_t code = cask_get_u16 (&rd);
    if (code >= 1 && code <= FUZZ_MAX_CODE)
        got->errors [code]++;
}

void
fuzz_settle (fuzz_tally_t *owed, fuzz_tally_t *got, const char *from_whom)
{
    for (int code = 1; code <= FUZZ_MAX_CODE; code++)
        if (got->errors [code] < owed->errors [code])
            fuzz_fail ("%s answered %u ERROR code %d where the framing of the messages "
                       "promised %u", from_whom, got->errors [code], code,
                       owed->errors [code]);
    memset (owed, 0, sizeof *owed);
    memset (got, 0, sizeof *got);
}

void
fuzz_sha1 (const void *data, size_t size, char *hex)
{
    zdigest_t *digest = zdigest_new ();
    if (!digest)
        fuzz_fail ("out of memory for a digest");
    zdigest_update (digest, (const byte *) data, size);
    snprintf (hex, 41, "%s", zdigest_string (digest));
    for (char *at = hex; *at; at++)
        *at = (char) tolower ((unsigned char) *at);
    zdigest_destroy (&digest);
}
