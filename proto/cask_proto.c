/*  cask_proto.c - the codec of the cask wire protocol (proto/PROTOCOL.md).

    The only code that touches frames and body bytes. Writers append to a
    cask_buf_t that grows geometrically and is reused between messages;
    readers are bounds-checked cursors that turn every overrun into a sticky
    failed flag, so record decoding needs no allocation and one check.

    Nothing read from the wire is trusted: counts are compared with the
    bytes left before anything is allocated, frame and ref indices with what
    exists, nesting with CASK_MAX_DEPTH.
*/
#include "cask_proto.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Bytes values up to this size are copied into a frame of their own: a
//  small zmq message holds them inline, which costs less than the shared
//  content block a zero-copy frame needs.
#define S_COPY_MAX 32

//  ---------------------------------------------------------------------
//  Views

static const char s_empty [1] = "";

cask_str_t
cask_str (const char *s)
{
    cask_str_t view = { s ? s : s_empty, s ? strlen (s) : 0 };
    return view;
}

bool
cask_str_eq (cask_str_t view, const char *s)
{
    size_t len = s ? strlen (s) : 0;
    return view.len == len && (len == 0 || memcmp (view.ptr, s, len) == 0);
}

char *
cask_str_copy (cask_str_t view, char *buf, size_t size)
{
    if (size) {
        size_t len = view.len < size - 1 ? view.len : size - 1;
        if (len)
            memcpy (buf, view.ptr, len);
        buf [len] = 0;
    }
    return buf;
}

//  ---------------------------------------------------------------------
//  Writing

static inline void
s_store_le (uint8_t *dest, uint64_t value, size_t width)
{
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    //  One move: the compiler does not fold the loop below into one
    memcpy (dest, &value, width);
#else
    for (size_t index = 0; index < width; index++)
        dest [index] = (uint8_t) (value >> (8 * index));
#endif
}

static inline uint64_t
s_load_le (const uint8_t *src, size_t width)
{
    uint64_t value = 0;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy (&value, src, width);
#else
    for (size_t index = 0; index < width; index++)
        value |= (uint64_t) src [index] << (8 * index);
#endif
    return value;
}

void
cask_buf_init (cask_buf_t *self)
{
    self->data = NULL;
    self->size = 0;
    self->cap = 0;
    self->failed = false;
}

void
cask_buf_reset (cask_buf_t *self)
{
    self->size = 0;
    self->failed = false;
}

void
cask_buf_free (cask_buf_t *self)
{
    free (self->data);
    cask_buf_init (self);
}

//  Room for extra more bytes at the end, or false (and failed set).
static bool
s_buf_reserve (cask_buf_t *self, size_t extra)
{
    if (self->failed)
        return false;
    if (self->cap - self->size >= extra)
        return true;
    if (extra > SIZE_MAX / 4 - self->size) {
        self->failed = true;
        return false;
    }
    size_t cap = self->cap ? self->cap * 2 : 256;
    while (cap < self->size + extra)
        cap *= 2;
    uint8_t *data = (uint8_t *) realloc (self->data, cap);
    if (!data) {
        self->failed = true;
        return false;
    }
    self->data = data;
    self->cap = cap;
    return true;
}

static inline void
s_put_le (cask_buf_t *self, uint64_t value, size_t width)
{
    if (s_buf_reserve (self, width)) {
        s_store_le (self->data + self->size, value, width);
        self->size += width;
    }
}

void
cask_put_u8 (cask_buf_t *self, uint8_t v)
{
    s_put_le (self, v, 1);
}

void
cask_put_u16 (cask_buf_t *self, uint16_t v)
{
    s_put_le (self, v, 2);
}

void
cask_put_u32 (cask_buf_t *self, uint32_t v)
{
    s_put_le (self, v, 4);
}

void
cask_put_u64 (cask_buf_t *self, uint64_t v)
{
    s_put_le (self, v, 8);
}

void
cask_put_raw (cask_buf_t *self, const void *data, size_t size)
{
    if (size && s_buf_reserve (self, size)) {
        memcpy (self->data + self->size, data, size);
        self->size += size;
    }
}

void
cask_put_str8 (cask_buf_t *self, cask_str_t s)
{
    if (s.len > CASK_MAX_KEY) {
        self->failed = true;
        return;
    }
    cask_put_u8 (self, (uint8_t) s.len);
    cask_put_raw (self, s.ptr, s.len);
}

void
cask_put_str16 (cask_buf_t *self, cask_str_t s)
{
    size_t len = s.len > UINT16_MAX ? UINT16_MAX : s.len;
    cask_put_u16 (self, (uint16_t) len);
    cask_put_raw (self, s.ptr, len);
}

void
cask_buf_patch_u32 (cask_buf_t *self, size_t offset, uint32_t v)
{
    if (offset <= self->size && self->size - offset >= 4)
        s_store_le (self->data + offset, v, 4);
    else
        self->failed = true;
}

//  ---------------------------------------------------------------------
//  Reading

void
cask_rd_init (cask_rd_t *self, const void *data, size_t size)
{
    self->ptr = (const uint8_t *) data;
    self->end = self->ptr + size;
    self->failed = false;
}

static inline size_t
s_rd_left (const cask_rd_t *self)
{
    return (size_t) (self->end - self->ptr);
}

//  The next size bytes, or NULL with failed set when there are fewer.
static inline const uint8_t *
s_rd_take (cask_rd_t *self, size_t size)
{
    if (self->failed || s_rd_left (self) < size) {
        self->failed = true;
        return NULL;
    }
    const uint8_t *at = self->ptr;
    self->ptr += size;
    return at;
}

static inline uint64_t
s_get_le (cask_rd_t *self, size_t width)
{
    const uint8_t *at = s_rd_take (self, width);
    return at ? s_load_le (at, width) : 0;
}

uint8_t
cask_get_u8 (cask_rd_t *self)
{
    return (uint8_t) s_get_le (self, 1);
}

uint16_t
cask_get_u16 (cask_rd_t *self)
{
    return (uint16_t) s_get_le (self, 2);
}

uint32_t
cask_get_u32 (cask_rd_t *self)
{
    return (uint32_t) s_get_le (self, 4);
}

uint64_t
cask_get_u64 (cask_rd_t *self)
{
    return s_get_le (self, 8);
}

cask_str_t
cask_get_raw (cask_rd_t *self, size_t size)
{
    const uint8_t *at = s_rd_take (self, size);
    cask_str_t view = { at && size ? (const char *) at : s_empty, at ? size : 0 };
    return view;
}

cask_str_t
cask_get_str8 (cask_rd_t *self)
{
    size_t len = cask_get_u8 (self);
    return cask_get_raw (self, len);
}

cask_str_t
cask_get_str16 (cask_rd_t *self)
{
    size_t len = cask_get_u16 (self);
    return cask_get_raw (self, len);
}

bool
cask_rd_done (const cask_rd_t *self)
{
    return !self->failed && self->ptr == self->end;
}

//  ---------------------------------------------------------------------
//  Messages

//  A payload frame that a decoded value has taken is replaced by an empty
//  constant message pointing here, so that it cannot be confused with a
//  frame that is empty on the wire (an empty bytes value).
static char s_taken_mark;

static void
s_frame_mark_taken (zmq_msg_t *frame)
{
    zmq_msg_close (frame);
    zmq_msg_init_data (frame, &s_taken_mark, 0, NULL, NULL);
}

static bool
s_frame_is_taken (zmq_msg_t *frame)
{
    return zmq_msg_size (frame) == 0 && zmq_msg_data (frame) == &s_taken_mark;
}

void
cask_message_init (cask_message_t *self)
{
    zmq_msg_init (&self->routing);
    self->routed = false;
    self->version = 0;
    self->command = 0;
    zmq_msg_init (&self->body);
    self->frames = NULL;
    self->nframes = 0;
    self->capframes = 0;
}

//  Closes payload frames from index first on, keeping the array.
static void
s_message_truncate (cask_message_t *self, size_t first)
{
    for (size_t index = first; index < self->nframes; index++)
        zmq_msg_close (&self->frames [index]);
    if (first < self->nframes)
        self->nframes = first;
}

//  Empties the message but keeps its frame array for the next one.
static void
s_message_clear (cask_message_t *self)
{
    zmq_msg_close (&self->routing);
    zmq_msg_init (&self->routing);
    self->routed = false;
    self->version = 0;
    self->command = 0;
    zmq_msg_close (&self->body);
    zmq_msg_init (&self->body);
    s_message_truncate (self, 0);
}

void
cask_message_close (cask_message_t *self)
{
    s_message_clear (self);
    free (self->frames);
    self->frames = NULL;
    self->capframes = 0;
}

//  The slot for one more payload frame (not yet counted), or NULL.
static zmq_msg_t *
s_message_new_slot (cask_message_t *self)
{
    if (self->nframes >= CASK_MAX_FRAMES)
        return NULL;
    if (self->nframes == self->capframes) {
        size_t cap = self->capframes ? self->capframes * 2 : 4;
        if (cap > CASK_MAX_FRAMES)
            cap = CASK_MAX_FRAMES;
        zmq_msg_t *frames = (zmq_msg_t *) realloc (self->frames, cap * sizeof (zmq_msg_t));
        if (!frames)
            return NULL;
        self->frames = frames;
        self->capframes = cap;
    }
    return &self->frames [self->nframes];
}

int
cask_message_move_frame (cask_message_t *self, zmq_msg_t *frame)
{
    zmq_msg_t *slot = s_message_new_slot (self);
    if (!slot)
        return -1;
    zmq_msg_init (slot);
    zmq_msg_move (slot, frame);
    return (int) self->nframes++;
}

int
cask_message_add_frame (cask_message_t *self, const void *data, size_t size)
{
    zmq_msg_t *slot = s_message_new_slot (self);
    if (!slot || zmq_msg_init_size (slot, size))
        return -1;
    if (size)
        memcpy (zmq_msg_data (slot), data, size);
    return (int) self->nframes++;
}

//  ZeroMQ calls this once it is done with a zero-copy frame.
static void
s_frame_release_value (void *data, void *hint)
{
    (void) data;
    cask_value_t *value = (cask_value_t *) hint;
    cask_value_destroy (&value);
}

int
cask_message_add_value_frame (cask_message_t *self, cask_value_t *bytes_value)
{
    const void *data;
    size_t size;
    if (cask_value_bytes (bytes_value, &data, &size))
        return -1;
    if (size <= S_COPY_MAX)
        return cask_message_add_frame (self, data, size);

    zmq_msg_t *slot = s_message_new_slot (self);
    if (!slot)
        return -1;
    cask_value_t *held = cask_value_ref (bytes_value);
    if (zmq_msg_init_data (slot, (void *) data, size, s_frame_release_value, held)) {
        cask_value_destroy (&held);
        return -1;
    }
    return (int) self->nframes++;
}

//  Receiving: where each part of a message goes.
typedef struct {
    cask_message_t *msg;
    bool routed;
    size_t index;               //  of the part within the message
    bool have_header;
    bool have_body;
    const char *bad;            //  first thing found wrong, or NULL
} s_receiver_t;

static void
s_receive_header (s_receiver_t *self, zmq_msg_t *part)
{
    const uint8_t *data = (const uint8_t *) zmq_msg_data (part);
    size_t size = zmq_msg_size (part);
    self->have_header = true;
    if (size < 3)
        self->bad = "short header";
    else
    if (data [0] != CASK_SIG0 || data [1] != CASK_SIG1)
        self->bad = "not a cask message (bad signature)";
    else {
        self->msg->version = data [2];
        self->msg->command = size > 3 ? data [3] : 0;
        if (data [2] == CASK_PROTO_VERSION && size != 4)
            self->bad = "header is not 4 bytes";
    }
}

static void
s_receive_body (s_receiver_t *self, zmq_msg_t *part)
{
    self->have_body = true;
    if (zmq_msg_size (part) > CASK_MAX_BODY)
        self->bad = "body too large";
    else
        zmq_msg_move (&self->msg->body, part);
}

static void
s_receive_payload (s_receiver_t *self, zmq_msg_t *part)
{
    if (self->msg->nframes >= CASK_MAX_FRAMES)
        self->bad = "too many payload frames";
    else
    if (cask_message_move_frame (self->msg, part) < 0)
        self->bad = "out of memory for payload frames";
}

//  Takes one part of the message, or leaves it in part to be dropped by
//  the next receive: a bad or foreign message is drained, not kept.
static void
s_receive_part (s_receiver_t *self, zmq_msg_t *part)
{
    size_t stage = self->routed ? self->index : self->index + 1;
    self->index++;
    if (stage == 0) {
        zmq_msg_move (&self->msg->routing, part);
        self->msg->routed = true;
        return;
    }
    if (self->bad || (stage > 1 && self->msg->version != CASK_PROTO_VERSION))
        return;
    if (stage == 1)
        s_receive_header (self, part);
    else
    if (stage == 2)
        s_receive_body (self, part);
    else
        s_receive_payload (self, part);
}

//  Receives the next part, retrying interruptions inside a message (its
//  parts have all arrived, so this does not block).
static int
s_recv_next_part (zmq_msg_t *part, void *socket)
{
    int rc;
    do
        rc = zmq_msg_recv (part, socket, 0);
    while (rc == -1 && errno == EINTR);
    return rc;
}

cask_recv_t
cask_message_recv (cask_message_t *self, void *socket, bool routed,
                   int flags, const char **why)
{
    s_message_clear (self);
    zmq_msg_t part;
    zmq_msg_init (&part);
    if (zmq_msg_recv (&part, socket, flags) == -1) {
        int error = errno;
        zmq_msg_close (&part);
        return error == EAGAIN || error == EINTR ? CASK_RECV_AGAIN : CASK_RECV_TERM;
    }
    s_receiver_t receiver = { self, routed, 0, false, false, NULL };
    while (true) {
        bool more = zmq_msg_more (&part);
        s_receive_part (&receiver, &part);
        if (!more)
            break;
        if (s_recv_next_part (&part, socket) == -1) {
            zmq_msg_close (&part);
            s_message_clear (self);
            return CASK_RECV_TERM;
        }
    }
    zmq_msg_close (&part);

    if (!receiver.bad && !receiver.have_header)
        receiver.bad = "no header frame";
    if (!receiver.bad && self->version == CASK_PROTO_VERSION && !receiver.have_body)
        receiver.bad = "no body frame";
    if (receiver.bad) {
        zmq_msg_close (&self->body);
        zmq_msg_init (&self->body);
        s_message_truncate (self, 0);
        if (why)
            *why = receiver.bad;
        return CASK_RECV_BAD;
    }
    return CASK_RECV_OK;
}

static int
s_send_parts (void *socket, const zmq_msg_t *routing, uint8_t command,
              const cask_buf_t *body, cask_message_t *msg)
{
    if (body && (body->failed || body->size > CASK_MAX_BODY)) {
        errno = body->failed ? ENOMEM : EMSGSIZE;
        return -1;
    }
    size_t nframes = msg ? msg->nframes : 0;
    if (routing) {
        zmq_msg_t *id = (zmq_msg_t *) routing;
        if (zmq_send (socket, zmq_msg_data (id), zmq_msg_size (id), ZMQ_SNDMORE) == -1)
            return -1;
    }
    uint8_t header [4] = { CASK_SIG0, CASK_SIG1, CASK_PROTO_VERSION, command };
    if (zmq_send (socket, header, sizeof header, ZMQ_SNDMORE) == -1)
        return -1;
    if (zmq_send (socket, body ? body->data : NULL, body ? body->size : 0,
                  nframes ? ZMQ_SNDMORE : 0) == -1)
        return -1;
    for (size_t index = 0; index < nframes; index++)
        if (zmq_msg_send (&msg->frames [index], socket,
                          index + 1 < nframes ? ZMQ_SNDMORE : 0) == -1)
            return -1;
    return 0;
}

int
cask_send (void *socket, const zmq_msg_t *routing, uint8_t command,
           const cask_buf_t *body, cask_message_t *msg)
{
    int rc = s_send_parts (socket, routing, command, body, msg);
    //  Sent frames are already empty; close the rest so msg is always empty
    if (msg) {
        int error = errno;
        s_message_truncate (msg, 0);
        errno = error;
    }
    return rc;
}

int
cask_send_error (void *socket, cask_message_t *request, uint16_t code,
                 const char *text)
{
    cask_buf_t body;
    cask_buf_init (&body);
    cask_error_t rec = { code, cask_str (NULL), cask_str (text) };
    cask_error_put (&body, &rec);
    int rc = cask_send (socket, request && request->routed ? &request->routing : NULL,
                        CASK_MSG_ERROR, &body, NULL);
    cask_buf_free (&body);
    return rc;
}

//  ---------------------------------------------------------------------
//  Batches

void
cask_batch_init (cask_batch_t *self)
{
    cask_buf_init (&self->body);
    self->count = 0;
}

void
cask_batch_reset (cask_batch_t *self)
{
    cask_buf_reset (&self->body);
    self->count = 0;
}

void
cask_batch_free (cask_batch_t *self)
{
    cask_buf_free (&self->body);
    self->count = 0;
}

cask_buf_t *
cask_batch_add (cask_batch_t *self)
{
    if (self->count == 0) {
        cask_buf_reset (&self->body);
        cask_put_u32 (&self->body, 0);
    }
    self->count++;
    return &self->body;
}

int
cask_batch_send (cask_batch_t *self, void *socket, const zmq_msg_t *routing,
                 uint8_t command, cask_message_t *msg)
{
    if (self->count == 0)
        return 0;
    cask_buf_patch_u32 (&self->body, 0, self->count);
    int rc = cask_send (socket, routing, command, &self->body, msg);
    cask_batch_reset (self);
    return rc;
}

//  ---------------------------------------------------------------------
//  Values

enum {
    S_TAG_NULL = 0x00,
    S_TAG_FALSE = 0x01,
    S_TAG_TRUE = 0x02,
    S_TAG_INT64 = 0x03,
    S_TAG_DOUBLE = 0x04,
    S_TAG_STRING = 0x05,
    S_TAG_BYTES = 0x06,
    S_TAG_LIST = 0x07,
    S_TAG_REF = 0x08
};

typedef struct {
    cask_buf_t *body;
    cask_message_t *msg;
    size_t frame_base;
    cask_ref_index_fn *ref_index;
    void *ref_arg;
} s_encoder_t;

static int s_encode (s_encoder_t *self, const cask_value_t *value, int depth);

static int
s_encode_list (s_encoder_t *self, const cask_value_t *list, int depth)
{
    size_t count = cask_value_size (list);
    if (depth >= CASK_MAX_DEPTH || count > UINT32_MAX)
        return -1;
    cask_put_u8 (self->body, S_TAG_LIST);
    cask_put_u32 (self->body, (uint32_t) count);
    for (size_t index = 0; index < count; index++)
        if (s_encode (self, cask_value_item (list, index), depth + 1))
            return -1;
    return 0;
}

static int
s_encode_bytes (s_encoder_t *self, const cask_value_t *value)
{
    //  Only the reference count of the value changes
    int index = self->msg
              ? cask_message_add_value_frame (self->msg, (cask_value_t *) value) : -1;
    if (index < 0)
        return -1;
    cask_put_u8 (self->body, S_TAG_BYTES);
    cask_put_u32 (self->body, (uint32_t) ((size_t) index - self->frame_base));
    return 0;
}

static int
s_encode_ref (s_encoder_t *self, const cask_value_t *value)
{
    int index = self->ref_index ? self->ref_index (self->ref_arg, value) : -1;
    if (index < 0)
        return -1;
    cask_put_u8 (self->body, S_TAG_REF);
    cask_put_u32 (self->body, (uint32_t) index);
    return 0;
}

static int
s_encode (s_encoder_t *self, const cask_value_t *value, int depth)
{
    if (!value)
        return -1;
    switch (cask_value_type (value)) {
        case CASK_NULL:
            cask_put_u8 (self->body, S_TAG_NULL);
            return 0;
        case CASK_BOOL: {
            bool b = false;
            cask_value_bool (value, &b);
            cask_put_u8 (self->body, b ? S_TAG_TRUE : S_TAG_FALSE);
            return 0;
        }
        case CASK_INT64: {
            int64_t i = 0;
            cask_value_int64 (value, &i);
            cask_put_u8 (self->body, S_TAG_INT64);
            cask_put_u64 (self->body, (uint64_t) i);
            return 0;
        }
        case CASK_DOUBLE: {
            double d = 0;
            uint64_t bits;
            cask_value_double (value, &d);
            memcpy (&bits, &d, sizeof bits);
            cask_put_u8 (self->body, S_TAG_DOUBLE);
            cask_put_u64 (self->body, bits);
            return 0;
        }
        case CASK_STRING: {
            const char *s = NULL;
            size_t size = 0;
            cask_value_string (value, &s, &size);
            if (size > UINT32_MAX)
                return -1;
            cask_put_u8 (self->body, S_TAG_STRING);
            cask_put_u32 (self->body, (uint32_t) size);
            cask_put_raw (self->body, s, size);
            return 0;
        }
        case CASK_BYTES:
            return s_encode_bytes (self, value);
        case CASK_LIST:
            return s_encode_list (self, value, depth);
        case CASK_REF:
            return s_encode_ref (self, value);
    }
    return -1;
}

int
cask_value_encode (const cask_value_t *value, cask_buf_t *body,
                   cask_message_t *msg, cask_ref_index_fn *ref_index,
                   void *ref_arg)
{
    size_t body_start = body->size;
    s_encoder_t encoder = { body, msg, msg ? msg->nframes : 0, ref_index, ref_arg };
    if (s_encode (&encoder, value, 0) == 0 && !body->failed)
        return 0;
    //  Undo the partial encoding, so the body and message stay usable
    body->size = body_start;
    if (msg)
        s_message_truncate (msg, encoder.frame_base);
    return -1;
}

typedef struct {
    cask_rd_t *rd;
    cask_message_t *msg;
    size_t frame_base;
    size_t nframes;             //  the record's frames, from frame_base on
    cask_value_t **refs;
    size_t nrefs;
    const char *why;            //  first reason found
} s_decoder_t;

static cask_value_t *
s_decode_fail (s_decoder_t *self, const char *why)
{
    self->rd->failed = true;
    if (!self->why)
        self->why = why;
    return NULL;
}

//  The value just made, or a failure if making it ran out of memory.
static cask_value_t *
s_decoded (s_decoder_t *self, cask_value_t *value)
{
    return value ? value : s_decode_fail (self, "out of memory");
}

static cask_value_t *s_decode (s_decoder_t *self, int depth);

static cask_value_t *
s_decode_list (s_decoder_t *self, int depth)
{
    uint32_t count = cask_get_u32 (self->rd);
    if (self->rd->failed)
        return s_decode_fail (self, "value truncated");
    //  Every item takes at least its tag byte
    if (count > s_rd_left (self->rd))
        return s_decode_fail (self, "list count larger than the bytes left");
    if (depth >= CASK_MAX_DEPTH)
        return s_decode_fail (self, "lists nested too deep");
    cask_value_t *list = cask_list_new (count);
    if (!list)
        return s_decode_fail (self, "out of memory");
    for (uint32_t index = 0; index < count; index++) {
        cask_value_t *item = s_decode (self, depth + 1);
        if (!item || cask_list_append (list, item)) {
            cask_value_destroy (&list);
            return s_decode_fail (self, "out of memory");
        }
    }
    return list;
}

static cask_value_t *
s_decode_bytes (s_decoder_t *self)
{
    uint32_t index = cask_get_u32 (self->rd);
    if (self->rd->failed)
        return s_decode_fail (self, "value truncated");
    //  The record's own frames only: never those of the records after it
    if (index >= self->nframes)
        return s_decode_fail (self, "payload frame index out of range");
    zmq_msg_t *frame = &self->msg->frames [self->frame_base + index];
    if (s_frame_is_taken (frame))
        return s_decode_fail (self, "payload frame used twice");
    cask_value_t *value = cask_value_from_frame (frame);
    if (value)
        s_frame_mark_taken (frame);
    return s_decoded (self, value);
}

static cask_value_t *
s_decode_ref (s_decoder_t *self)
{
    uint32_t index = cask_get_u32 (self->rd);
    if (self->rd->failed)
        return s_decode_fail (self, "value truncated");
    if (!self->refs || index >= self->nrefs || !self->refs [index])
        return s_decode_fail (self, "ref outside the dependencies");
    return cask_value_ref (self->refs [index]);
}

static cask_value_t *
s_decode_string (s_decoder_t *self)
{
    uint32_t size = cask_get_u32 (self->rd);
    cask_str_t s = cask_get_raw (self->rd, size);
    if (self->rd->failed)
        return s_decode_fail (self, "value truncated");
    return s_decoded (self, cask_string_n (s.ptr, s.len));
}

static cask_value_t *
s_decode_number (s_decoder_t *self, uint8_t tag)
{
    uint64_t bits = cask_get_u64 (self->rd);
    if (self->rd->failed)
        return s_decode_fail (self, "value truncated");
    if (tag == S_TAG_INT64)
        return s_decoded (self, cask_int64 ((int64_t) bits));
    double d;
    memcpy (&d, &bits, sizeof d);
    return s_decoded (self, cask_double (d));
}

static cask_value_t *
s_decode (s_decoder_t *self, int depth)
{
    uint8_t tag = cask_get_u8 (self->rd);
    if (self->rd->failed)
        return s_decode_fail (self, "value truncated");
    switch (tag) {
        case S_TAG_NULL:
            return s_decoded (self, cask_null ());
        case S_TAG_FALSE:
        case S_TAG_TRUE:
            return s_decoded (self, cask_bool (tag == S_TAG_TRUE));
        case S_TAG_INT64:
        case S_TAG_DOUBLE:
            return s_decode_number (self, tag);
        case S_TAG_STRING:
            return s_decode_string (self);
        case S_TAG_BYTES:
            return s_decode_bytes (self);
        case S_TAG_LIST:
            return s_decode_list (self, depth);
        case S_TAG_REF:
            return s_decode_ref (self);
    }
    return s_decode_fail (self, "unknown value tag");
}

cask_value_t *
cask_value_decode (cask_rd_t *rd, cask_message_t *msg, size_t frame_base,
                   size_t nframes, cask_value_t **refs, size_t nrefs, const char **why)
{
    s_decoder_t decoder = { rd, msg, frame_base, nframes, refs, nrefs, NULL };
    size_t available = msg ? msg->nframes : 0;
    if (frame_base > available || nframes > available - frame_base) {
        rd->failed = true;
        if (why)
            *why = "the record's payload frames are not all in the message";
        return NULL;
    }
    if (rd->failed) {
        if (why)
            *why = "value truncated";
        return NULL;
    }
    cask_value_t *value = s_decode (&decoder, 0);
    if (!value && why)
        *why = decoder.why;
    return value;
}

//  ---------------------------------------------------------------------
//  Records

static void
s_put_f64 (cask_buf_t *buf, double v)
{
    uint64_t bits;
    memcpy (&bits, &v, sizeof bits);
    cask_put_u64 (buf, bits);
}

static double
s_get_f64 (cask_rd_t *rd)
{
    uint64_t bits = cask_get_u64 (rd);
    double v;
    memcpy (&v, &bits, sizeof v);
    return v;
}

static void
s_resources_put (cask_buf_t *buf, const cask_resource_t *resources, uint8_t count)
{
    if (count > CASK_MAX_RESOURCES)
        buf->failed = true;
    cask_put_u8 (buf, count);
    for (uint8_t index = 0; index < count && !buf->failed; index++) {
        cask_put_str8 (buf, resources [index].name);
        s_put_f64 (buf, resources [index].amount);
    }
}

//  A resource list: a name that is empty, or an amount that is not a
//  positive finite number, is malformed (it could never be matched).
static uint8_t
s_resources_get (cask_rd_t *rd, cask_resource_t *resources)
{
    uint8_t count = cask_get_u8 (rd);
    if (count > CASK_MAX_RESOURCES)
        rd->failed = true;
    for (uint8_t index = 0; index < count && !rd->failed; index++) {
        resources [index].name = cask_get_str8 (rd);
        resources [index].amount = s_get_f64 (rd);
        double amount = resources [index].amount;
        if (resources [index].name.len == 0 || !(amount > 0 && amount <= 1e300))
            rd->failed = true;
    }
    return rd->failed ? 0 : count;
}

//  ---------------------------------------------------------------------
//  Lists of names and resources as people write them

//  The text from start to end without the blanks around it.
static cask_str_t
s_trim (const char *start, const char *end)
{
    while (start < end && isspace ((unsigned char) *start))
        start++;
    while (end > start && isspace ((unsigned char) end [-1]))
        end--;
    cask_str_t view = { start, (size_t) (end - start) };
    return view;
}

//  The item of a comma-separated list that starts at *cursor, trimmed;
//  *cursor moves past its comma, or to NULL after the last item.
static cask_str_t
s_list_next (const char **cursor)
{
    const char *start = *cursor;
    const char *comma = strchr (start, ',');
    *cursor = comma ? comma + 1 : NULL;
    return s_trim (start, comma ? comma : start + strlen (start));
}

//  Checks name, the next of count entries. Returns 0 or -1 (error set).
static int
s_list_name (cask_str_t name, uint8_t count, char *error, size_t size)
{
    if (count == CASK_MAX_RESOURCES)
        snprintf (error, size, "more than %d entries", CASK_MAX_RESOURCES);
    else
    if (name.len == 0 || name.len > CASK_MAX_KEY)
        snprintf (error, size, "a name takes 1 to %d bytes, not %zu", CASK_MAX_KEY, name.len);
    else
        return 0;
    return -1;
}

int
cask_names_parse (const char *text, cask_str_t *names, uint8_t *count, char *error, size_t size)
{
    for (const char *cursor = text; cursor; ) {
        cask_str_t name = s_list_next (&cursor);
        if (s_list_name (name, *count, error, size))
            return -1;
        names [(*count)++] = name;
    }
    return 0;
}

//  Parses one "NAME=AMOUNT" item. Returns 0 or -1 (error set).
static int
s_resource_parse (cask_str_t item, cask_resource_t *resources, uint8_t *count, char *error,
                  size_t size)
{
    const char *equals = memchr (item.ptr, '=', item.len);
    if (!equals) {
        snprintf (error, size, "'%.*s' is not NAME=AMOUNT", (int) item.len, item.ptr);
        return -1;
    }
    cask_str_t name = s_trim (item.ptr, equals);
    if (s_list_name (name, *count, error, size))
        return -1;
    for (uint8_t index = 0; index < *count; index++)
        if (resources [index].name.len == name.len
        &&  memcmp (resources [index].name.ptr, name.ptr, name.len) == 0) {
            snprintf (error, size, "%.*s is named twice", (int) name.len, name.ptr);
            return -1;
        }
    //  strtod stops at the comma or blank after the amount, if not before
    cask_str_t text = s_trim (equals + 1, item.ptr + item.len);
    char *end = NULL;
    double amount = text.len ? strtod (text.ptr, &end) : 0;
    if (end != text.ptr + text.len || !isfinite (amount) || amount <= 0 || amount > 1e300) {
        snprintf (error, size, "the amount of %.*s must be a positive number up to 1e300, "
                  "not '%.*s'", (int) name.len, name.ptr, (int) text.len, text.ptr);
        return -1;
    }
    resources [(*count)++] = (cask_resource_t) { name, amount };
    return 0;
}

int
cask_resources_parse (const char *text, cask_resource_t *resources, uint8_t *count,
                      char *error, size_t size)
{
    for (const char *cursor = text; cursor; )
        if (s_resource_parse (s_list_next (&cursor), resources, count, error, size))
            return -1;
    return 0;
}

void
cask_hello_put (cask_buf_t *buf, const cask_hello_t *rec)
{
    cask_put_u8 (buf, rec->role);
    cask_put_str8 (buf, rec->name);
    cask_put_u32 (buf, rec->nthreads);
    cask_put_u64 (buf, rec->memory_limit);
    cask_put_str8 (buf, rec->endpoint);
    s_resources_put (buf, rec->resources, rec->nresources);
    cask_put_u32 (buf, rec->replaces);
    cask_put_str8 (buf, rec->death);
    cask_put_u16 (buf, rec->nrunning);
    cask_put_raw (buf, rec->running.ptr, rec->running.len);
}

void
cask_hello_get (cask_rd_t *rd, cask_hello_t *rec)
{
    rec->role = cask_get_u8 (rd);
    rec->name = cask_get_str8 (rd);
    rec->nthreads = cask_get_u32 (rd);
    rec->memory_limit = cask_get_u64 (rd);
    rec->endpoint = cask_get_str8 (rd);
    rec->nresources = s_resources_get (rd, rec->resources);
    rec->replaces = cask_get_u32 (rd);
    rec->death = cask_get_str8 (rd);
    rec->nrunning = cask_get_u16 (rd);
    const uint8_t *start = rd->ptr;
    for (uint16_t index = 0; index < rec->nrunning && !rd->failed; index++)
        cask_get_str8 (rd);
    rec->running = rd->failed ? (cask_str_t) { NULL, 0 }
                              : (cask_str_t) { (const char *) start, (size_t) (rd->ptr - start) };
}

void
cask_restrictions_put (cask_buf_t *buf, const cask_restrictions_t *rec)
{
    if (rec->nworkers > CASK_MAX_RESOURCES)
        buf->failed = true;
    cask_put_u8 (buf, rec->nworkers);
    for (uint8_t index = 0; index < rec->nworkers && !buf->failed; index++)
        cask_put_str8 (buf, rec->workers [index]);
    s_resources_put (buf, rec->resources, rec->nresources);
}

void
cask_restrictions_get (cask_rd_t *rd, cask_restrictions_t *rec)
{
    rec->nworkers = cask_get_u8 (rd);
    if (rec->nworkers > CASK_MAX_RESOURCES)
        rd->failed = true;
    for (uint8_t index = 0; index < rec->nworkers && !rd->failed; index++) {
        rec->workers [index] = cask_get_str8 (rd);
        if (rec->workers [index].len == 0)
            rd->failed = true;
    }
    rec->nresources = s_resources_get (rd, rec->resources);
    if (rd->failed)
        rec->nworkers = rec->nresources = 0;
}

void
cask_func_put (cask_buf_t *buf, const cask_func_t *rec)
{
    cask_put_u32 (buf, rec->id);
    cask_put_str8 (buf, rec->name);
    cask_put_str16 (buf, rec->doc);
}

void
cask_func_get (cask_rd_t *rd, cask_func_t *rec)
{
    rec->id = cask_get_u32 (rd);
    rec->name = cask_get_str8 (rd);
    rec->doc = cask_get_str16 (rd);
}

void
cask_worker_info_put (cask_buf_t *buf, const cask_worker_info_t *rec)
{
    cask_put_u32 (buf, rec->id);
    cask_put_str8 (buf, rec->endpoint);
    cask_put_u32 (buf, rec->nthreads);
    cask_put_u8 (buf, rec->joined);
}

void
cask_worker_info_get (cask_rd_t *rd, cask_worker_info_t *rec)
{
    rec->id = cask_get_u32 (rd);
    rec->endpoint = cask_get_str8 (rd);
    rec->nthreads = cask_get_u32 (rd);
    rec->joined = cask_get_u8 (rd);
}

void
cask_library_put (cask_buf_t *buf, const cask_library_t *rec)
{
    cask_put_str8 (buf, rec->name);
    cask_put_str8 (buf, rec->hash);
    cask_put_u32 (buf, rec->nfuncs);
}

void
cask_library_get (cask_rd_t *rd, cask_library_t *rec)
{
    rec->name = cask_get_str8 (rd);
    rec->hash = cask_get_str8 (rd);
    rec->nfuncs = cask_get_u32 (rd);
}

void
cask_task_put_head (cask_buf_t *buf, const cask_task_t *rec)
{
    cask_put_str8 (buf, rec->key);
    cask_put_u32 (buf, rec->fn);
    cask_put_u8 (buf, rec->flags);
    cask_put_u8 (buf, rec->retries);
    cask_put_u32 (buf, (uint32_t) rec->priority);
    cask_put_u32 (buf, rec->ndeps);
}

void
cask_task_put_tail (cask_buf_t *buf, uint32_t nframes, cask_str_t args)
{
    if (args.len > UINT32_MAX) {
        buf->failed = true;
        return;
    }
    cask_put_u32 (buf, nframes);
    cask_put_u32 (buf, (uint32_t) args.len);
    cask_put_raw (buf, args.ptr, args.len);
}

void
cask_task_get (cask_rd_t *rd, cask_task_t *rec, bool with_holders)
{
    rec->key = cask_get_str8 (rd);
    rec->fn = cask_get_u32 (rd);
    rec->flags = cask_get_u8 (rd);
    rec->retries = cask_get_u8 (rd);
    rec->priority = (int32_t) cask_get_u32 (rd);
    rec->ndeps = cask_get_u32 (rd);

    //  Each entry takes at least one length byte per string
    size_t strings_per_dep = with_holders ? 2 : 1;
    const uint8_t *deps_start = rd->ptr;
    if (rec->ndeps > s_rd_left (rd) / strings_per_dep)
        rd->failed = true;
    for (uint32_t index = 0; index < rec->ndeps && !rd->failed; index++) {
        cask_get_str8 (rd);
        if (with_holders)
            cask_get_str8 (rd);
    }
    cask_rd_init (&rec->deps, deps_start, rd->failed ? 0 : (size_t) (rd->ptr - deps_start));
    rec->deps.failed = rd->failed;

    rec->nframes = cask_get_u32 (rd);
    uint32_t args_size = cask_get_u32 (rd);
    rec->args = cask_get_raw (rd, args_size);

    rec->restrictions = (cask_str_t) { NULL, 0 };
    if (rec->flags & CASK_TASK_RESTRICTED) {
        const uint8_t *start = rd->ptr;
        cask_restrictions_t restrictions;
        cask_restrictions_get (rd, &restrictions);
        if (!rd->failed)
            rec->restrictions = (cask_str_t) { (const char *) start, (size_t) (rd->ptr - start) };
    }
    rec->timeout_ms = 0;
    if (rec->flags & CASK_TASK_TIMED) {
        rec->timeout_ms = cask_get_u32 (rd);
        if (rec->timeout_ms == 0)
            rd->failed = true;
    }
}

void
cask_state_put (cask_buf_t *buf, const cask_state_rec_t *rec)
{
    cask_put_str8 (buf, rec->key);
    cask_put_u8 (buf, rec->state);
    cask_put_u32 (buf, rec->worker);
    cask_put_u8 (buf, rec->type);
    cask_put_u64 (buf, rec->nbytes);
    cask_put_str8 (buf, rec->cause);
    cask_put_str8 (buf, rec->function);
    cask_put_str16 (buf, rec->message);
}

void
cask_state_get (cask_rd_t *rd, cask_state_rec_t *rec)
{
    rec->key = cask_get_str8 (rd);
    rec->state = cask_get_u8 (rd);
    rec->worker = cask_get_u32 (rd);
    rec->type = cask_get_u8 (rd);
    rec->nbytes = cask_get_u64 (rd);
    rec->cause = cask_get_str8 (rd);
    rec->function = cask_get_str8 (rd);
    rec->message = cask_get_str16 (rd);
}

void
cask_done_put (cask_buf_t *buf, const cask_done_t *rec)
{
    cask_put_str8 (buf, rec->key);
    cask_put_u8 (buf, rec->ok);
    cask_put_u8 (buf, rec->type);
    cask_put_u64 (buf, rec->nbytes);
    cask_put_u32 (buf, rec->duration_us);
    cask_put_str16 (buf, rec->message);
    cask_put_u64 (buf, rec->start_us);
    cask_put_u64 (buf, rec->fetch_start_us);
    cask_put_u32 (buf, rec->fetch_us);
    cask_put_u16 (buf, rec->thread);
}

void
cask_done_get (cask_rd_t *rd, cask_done_t *rec)
{
    rec->key = cask_get_str8 (rd);
    rec->ok = cask_get_u8 (rd);
    rec->type = cask_get_u8 (rd);
    rec->nbytes = cask_get_u64 (rd);
    rec->duration_us = cask_get_u32 (rd);
    rec->message = cask_get_str16 (rd);
    rec->start_us = cask_get_u64 (rd);
    rec->fetch_start_us = cask_get_u64 (rd);
    rec->fetch_us = cask_get_u32 (rd);
    rec->thread = cask_get_u16 (rd);
}

void
cask_heartbeat_put (cask_buf_t *buf, const cask_heartbeat_t *rec)
{
    cask_put_u32 (buf, rec->interval_ms);
    cask_put_u64 (buf, rec->rss_bytes);
    cask_put_u32 (buf, rec->cpu_permille);
    cask_put_u64 (buf, rec->spilled_bytes);
}

void
cask_heartbeat_get (cask_rd_t *rd, cask_heartbeat_t *rec)
{
    rec->interval_ms = cask_get_u32 (rd);
    rec->rss_bytes = cask_get_u64 (rd);
    rec->cpu_permille = cask_get_u32 (rd);
    rec->spilled_bytes = cask_get_u64 (rd);
}

void
cask_view_put (cask_buf_t *buf, const cask_view_t *rec)
{
    cask_put_str8 (buf, rec->view);
    cask_put_u64 (buf, rec->since_us);
    cask_put_u32 (buf, rec->limit);
    cask_put_str8 (buf, rec->state);
}

void
cask_view_get (cask_rd_t *rd, cask_view_t *rec)
{
    rec->view = cask_get_str8 (rd);
    rec->since_us = cask_get_u64 (rd);
    rec->limit = cask_get_u32 (rd);
    rec->state = cask_get_str8 (rd);
}

void
cask_scatter_put (cask_buf_t *buf, const cask_scatter_t *rec)
{
    cask_put_str8 (buf, rec->key);
    cask_put_u32 (buf, rec->worker);
}

void
cask_scatter_get (cask_rd_t *rd, cask_scatter_t *rec)
{
    rec->key = cask_get_str8 (rd);
    rec->worker = cask_get_u32 (rd);
}

void
cask_stored_put (cask_buf_t *buf, const cask_stored_t *rec)
{
    cask_put_str8 (buf, rec->key);
    cask_put_u8 (buf, rec->ok);
    cask_put_str16 (buf, rec->message);
}

void
cask_stored_get (cask_rd_t *rd, cask_stored_t *rec)
{
    rec->key = cask_get_str8 (rd);
    rec->ok = cask_get_u8 (rd);
    rec->message = cask_get_str16 (rd);
}

void
cask_dataset_put (cask_buf_t *buf, const cask_dataset_t *rec)
{
    cask_put_str8 (buf, rec->name);
    cask_put_str8 (buf, rec->key);
}

void
cask_dataset_get (cask_rd_t *rd, cask_dataset_t *rec)
{
    rec->name = cask_get_str8 (rd);
    rec->key = cask_get_str8 (rd);
}

void
cask_error_put (cask_buf_t *buf, const cask_error_t *rec)
{
    cask_put_u16 (buf, rec->code);
    cask_put_str8 (buf, rec->about);
    cask_put_str16 (buf, rec->message);
}

void
cask_error_get (cask_rd_t *rd, cask_error_t *rec)
{
    rec->code = cask_get_u16 (rd);
    rec->about = cask_get_str8 (rd);
    rec->message = cask_get_str16 (rd);
}

void
cask_stolen_put (cask_buf_t *buf, const cask_stolen_t *rec)
{
    cask_put_str8 (buf, rec->key);
    cask_put_u8 (buf, rec->given_up);
}

void
cask_stolen_get (cask_rd_t *rd, cask_stolen_t *rec)
{
    rec->key = cask_get_str8 (rd);
    rec->given_up = cask_get_u8 (rd);
}

void
cask_copy_put (cask_buf_t *buf, const cask_copy_t *rec)
{
    cask_put_str8 (buf, rec->key);
    cask_put_str8 (buf, rec->holder);
}

void
cask_copy_get (cask_rd_t *rd, cask_copy_t *rec)
{
    rec->key = cask_get_str8 (rd);
    rec->holder = cask_get_str8 (rd);
}

void
cask_retire_put (cask_buf_t *buf, uint32_t keep, const uint32_t *ids, uint32_t nids)
{
    cask_put_u32 (buf, keep);
    cask_put_u32 (buf, nids);
    for (uint32_t index = 0; index < nids; index++)
        cask_put_u32 (buf, ids [index]);
}

void
cask_retire_get (cask_rd_t *rd, cask_retire_t *rec)
{
    rec->keep = cask_get_u32 (rd);
    rec->nids = cask_get_u32 (rd);
    if (rec->nids > s_rd_left (rd) / 4)
        rd->failed = true;
    size_t size = rd->failed ? 0 : (size_t) rec->nids * 4;
    cask_rd_init (&rec->ids, rd->ptr, size);
    rec->ids.failed = rd->failed;
    cask_get_raw (rd, size);
}

const char *
cask_command_name (uint8_t command)
{
    switch (command) {
        case CASK_MSG_HELLO: return "HELLO";
        case CASK_MSG_REGISTER: return "REGISTER";
        case CASK_MSG_SUBMIT: return "SUBMIT";
        case CASK_MSG_RELEASE: return "RELEASE";
        case CASK_MSG_BYE: return "BYE";
        case CASK_MSG_STATUS: return "STATUS";
        case CASK_MSG_CANCEL: return "CANCEL";
        case CASK_MSG_RESTART: return "RESTART";
        case CASK_MSG_FIRE: return "FIRE";
        case CASK_MSG_SCATTER: return "SCATTER";
        case CASK_MSG_PUBLISH: return "PUBLISH";
        case CASK_MSG_LOOKUP: return "LOOKUP";
        case CASK_MSG_UNPUBLISH: return "UNPUBLISH";
        case CASK_MSG_RETIRE: return "RETIRE";
        case CASK_MSG_HEARTBEAT: return "HEARTBEAT";
        case CASK_MSG_RETIRED: return "RETIRED";
        case CASK_MSG_STEAL: return "STEAL";
        case CASK_MSG_COPY: return "COPY";
        case CASK_MSG_STOLEN: return "STOLEN";
        case CASK_MSG_PAUSE: return "PAUSE";
        case CASK_MSG_WELCOME: return "WELCOME";
        case CASK_MSG_REGISTERED: return "REGISTERED";
        case CASK_MSG_STATE: return "STATE";
        case CASK_MSG_WORKER: return "WORKER";
        case CASK_MSG_REPORT: return "REPORT";
        case CASK_MSG_RESTARTED: return "RESTARTED";
        case CASK_MSG_DATASET: return "DATASET";
        case CASK_MSG_ERROR: return "ERROR";
        case CASK_MSG_LIBRARY: return "LIBRARY";
        case CASK_MSG_TASK: return "TASK";
        case CASK_MSG_FREE: return "FREE";
        case CASK_MSG_DONE: return "DONE";
        case CASK_MSG_LIBFAIL: return "LIBFAIL";
        case CASK_MSG_GET: return "GET";
        case CASK_MSG_DATA: return "DATA";
        case CASK_MSG_PUT: return "PUT";
        case CASK_MSG_STORED: return "STORED";
    }
    return "unknown";
}
