/*  fuzz_common.h - what the libFuzzer targets of tests/fuzz share.

    The input framing (README.md): an input is a sequence of frames, each a
    u16 little-endian word then that many bytes; bits 0-14 of the word are
    the length, bit 15 marks the last frame of a message. A frame cut short
    by the end of the input takes what is left and ends its message. The
    broker and worker targets put a route byte before each message, and a
    setup byte before everything.

    The checker decodes a message with the codec the way receivers do,
    record by record, and re-encodes every record and value it read: the
    bytes must come out the same (values: equal once decoded again), or the
    codec's reader and writer disagree.

    Failures of the harness itself and broken promises (no answer, a reply
    that does not decode) go through fuzz_fail, which aborts: libFuzzer
    then saves the input.
*/
#ifndef FUZZ_COMMON_H_INCLUDED
#define FUZZ_COMMON_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cask_proto.h"

#define FUZZ_MAX_FRAMES 64              //  frames of one fuzzed message
#define FUZZ_LAST_FRAME 0x8000          //  bit 15 of the frame word
#define FUZZ_REPLY_MSECS 5000           //  longest wait for an answer

//  One frame: a view into the input.
typedef struct {
    const uint8_t *data;
    size_t size;
} fuzz_frame_t;

//  Cursor over an input.
typedef struct {
    const uint8_t *ptr;
    const uint8_t *end;
} fuzz_input_t;

void fuzz_input_init (fuzz_input_t *self, const uint8_t *data, size_t size);
//  True when nothing is left.
bool fuzz_input_done (const fuzz_input_t *self);
//  The next byte, or 0 at the end.
uint8_t fuzz_input_byte (fuzz_input_t *self);
//  Reads the next message into frames (at most FUZZ_MAX_FRAMES: a longer
//  message is cut there). Returns the number of frames, 0 at the end.
size_t fuzz_input_message (fuzz_input_t *self, fuzz_frame_t *frames);

//  Prints what went wrong (printf style) and aborts. The text goes to the
//  stderr the process started with, even after libFuzzer's -close_fd_mask.
void fuzz_fail (const char *format, ...) __attribute__ ((format (printf, 1, 2), noreturn));
//  Keeps the original stderr for fuzz_fail; call once, first thing.
void fuzz_keep_stderr (void);

//  Sends frames as one message, after routing (a ROUTER's peer) when not
//  NULL. Fails the run when ZeroMQ refuses.
void fuzz_send (void *socket, const zmq_msg_t *routing, const fuzz_frame_t *frames,
                size_t count);
//  Sends a message built with the codec (what cask_send takes); fails the
//  run when ZeroMQ refuses.
void fuzz_send_built (void *socket, const zmq_msg_t *routing, uint8_t command,
                      const cask_buf_t *body);
//  Receives the next message into msg within timeout_ms. Returns true, or
//  false when none came.
bool fuzz_recv (void *socket, bool routed, cask_message_t *msg, int timeout_ms);

//  What a peer must answer to a message of these frames on a DEALER,
//  as PROTOCOL.md promises for the framing alone: an ERROR code
//  (CASK_ERR_MALFORMED, _VERSION or _COMMAND), or 0 when the framing
//  promises nothing. A command that known rejects (a command the peer
//  does not serve) is answered CASK_ERR_COMMAND.
uint16_t fuzz_framing_error (const fuzz_frame_t *frames, size_t count,
                             bool (*known) (uint8_t command));

//  Decodes msg (as received) the way its receiver would, and re-encodes
//  what it read (a mismatch fails the run). Returns 0 when the message is
//  well-formed by PROTOCOL.md: the body consumed exactly by records of its
//  command, the payload frames accounted for, the values decodable (except
//  task arguments, which the broker passes on unread). REPORT bodies must
//  parse as JSON. Payload frames of msg are taken by the values decoded.
int fuzz_decode (cask_message_t *msg);

//  What a peer owes for the fuzzed messages sent to it, as far as their
//  framing tells, or what it answered: ERRORs by code, and REPORTs (one
//  for each well-framed STATUS).
#define FUZZ_MAX_CODE 15
typedef struct {
    uint32_t errors [FUZZ_MAX_CODE + 1];
    uint32_t reports;
} fuzz_tally_t;
//  Adds what a peer that serves the commands known serves owes for a
//  message of these frames.
void fuzz_tally_sent (fuzz_tally_t *owed, const fuzz_frame_t *frames, size_t count,
                      bool (*known) (uint8_t command));
//  Sends two messages past PROTOCOL.md's limits, which inputs are too
//  small to reach: a body one byte over CASK_MAX_BODY, and one payload
//  frame more than CASK_MAX_FRAMES. Each is owed ERROR code 1.
void fuzz_send_oversized (void *socket, fuzz_tally_t *owed);
//  Checks a reply (fuzz_decode must accept it, from_whom names the peer in
//  the failure), traces it, and counts it into got.
void fuzz_check_reply (cask_message_t *msg, fuzz_tally_t *got, const char *from_whom);
//  With CASK_FUZZ_VERBOSE set, prints a line about msg (from whom) to the
//  original stderr: its command, sizes and the start of its body.
void fuzz_trace (const cask_message_t *msg, const char *from_whom);
//  Fails the run unless got holds at least the ERRORs owed; then empties
//  both.
void fuzz_settle (fuzz_tally_t *owed, fuzz_tally_t *got, const char *from_whom);

//  The lower-case hex SHA-1 of data into hex (41 bytes).
void fuzz_sha1 (const void *data, size_t size, char *hex);

#endif
