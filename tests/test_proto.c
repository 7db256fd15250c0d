/*  test_proto.c - unit tests of the wire codec (proto/cask_proto.h).

    Primitives and their byte layout, values of every type through
    encode/decode, malformed encodings (every truncation, huge counts, bad
    tags, deep nesting, bad or reused frames, refs out of range), every
    record, and whole messages over real ZeroMQ ROUTER/DEALER pairs: payload
    frames without copies, bad headers, a newer version, limits.
*/
#include <check.h>
#include "cask_testutil.h"
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cask_proto.h"

//  ---------------------------------------------------------------------
//  Primitives

START_TEST (test_views)
{
    cask_str_t view = cask_str ("abc");
    ck_assert_uint_eq (view.len, 3);
    ck_assert (cask_str_eq (view, "abc"));
    ck_assert (!cask_str_eq (view, "abcd"));
    ck_assert (!cask_str_eq (view, "abd"));
    ck_assert (cask_str_eq (cask_str (NULL), ""));
    ck_assert (cask_str_eq (cask_str (""), NULL));
    char buf [3];
    ck_assert_str_eq (cask_str_copy (view, buf, sizeof buf), "ab");
    char wide [10];
    ck_assert_str_eq (cask_str_copy (view, wide, sizeof wide), "abc");
    ck_assert_ptr_eq (cask_str_copy (view, wide, 0), wide);
}
END_TEST

START_TEST (test_primitives_layout)
{
    cask_buf_t buf;
    cask_buf_init (&buf);
    cask_put_u8 (&buf, 0x01);
    cask_put_u16 (&buf, 0x0203);
    cask_put_u32 (&buf, 0x04050607);
    cask_put_u64 (&buf, 0x08090A0B0C0D0E0Full);
    cask_put_str8 (&buf, cask_str ("hi"));
    cask_put_str16 (&buf, cask_str ("yo"));
    cask_put_raw (&buf, "!", 1);
    ck_assert (!buf.failed);
    const uint8_t expect [] = {
        0x01, 0x03, 0x02, 0x07, 0x06, 0x05, 0x04,
        0x0F, 0x0E, 0x0D, 0x0C, 0x0B, 0x0A, 0x09, 0x08,
        2, 'h', 'i', 2, 0, 'y', 'o', '!'
    };
    ck_assert_uint_eq (buf.size, sizeof expect);
    ck_assert_mem_eq (buf.data, expect, sizeof expect);

    cask_rd_t rd;
    cask_rd_init (&rd, buf.data, buf.size);
    ck_assert_uint_eq (cask_get_u8 (&rd), 0x01);
    ck_assert_uint_eq (cask_get_u16 (&rd), 0x0203);
    ck_assert_uint_eq (cask_get_u32 (&rd), 0x04050607);
    ck_assert (cask_get_u64 (&rd) == 0x08090A0B0C0D0E0Full);
    ck_assert (cask_str_eq (cask_get_str8 (&rd), "hi"));
    ck_assert (!cask_rd_done (&rd));
    ck_assert (cask_str_eq (cask_get_str16 (&rd), "yo"));
    ck_assert (cask_str_eq (cask_get_raw (&rd, 1), "!"));
    ck_assert (cask_rd_done (&rd));

    //  Overrun: sticky failure, zeros and empty views from then on
    ck_assert_uint_eq (cask_get_u32 (&rd), 0);
    ck_assert (rd.failed);
    ck_assert (!cask_rd_done (&rd));
    cask_rd_init (&rd, buf.data, buf.size);
    ck_assert_uint_eq (cask_get_raw (&rd, buf.size + 1).len, 0);
    ck_assert (rd.failed);
    ck_assert_uint_eq (cask_get_u8 (&rd), 0);
    cask_str_t view = cask_get_str8 (&rd);
    ck_assert_uint_eq (view.len, 0);
    ck_assert_ptr_nonnull (view.ptr);

    //  A str8 whose length runs past the end
    const uint8_t short_str [] = { 5, 'a', 'b' };
    cask_rd_init (&rd, short_str, sizeof short_str);
    ck_assert_uint_eq (cask_get_str8 (&rd).len, 0);
    ck_assert (rd.failed);

    //  An empty reader
    cask_rd_init (&rd, NULL, 0);
    ck_assert (cask_rd_done (&rd));
    cask_get_u8 (&rd);
    ck_assert (rd.failed);
    cask_buf_free (&buf);
}
END_TEST

START_TEST (test_buf_limits)
{
    cask_buf_t buf;
    cask_buf_init (&buf);
    char long_key [300];
    memset (long_key, 'k', sizeof long_key);
    cask_str_t key = { long_key, 255 };
    cask_put_str8 (&buf, key);
    ck_assert (!buf.failed);
    key.len = 256;
    cask_put_str8 (&buf, key);
    ck_assert (buf.failed);
    cask_buf_reset (&buf);
    ck_assert (!buf.failed);
    ck_assert_uint_eq (buf.size, 0);

    //  str16 truncates to 65535
    char *text = (char *) malloc (70000);
    memset (text, 'm', 70000);
    cask_str_t message = { text, 70000 };
    cask_put_str16 (&buf, message);
    ck_assert (!buf.failed);
    ck_assert_uint_eq (buf.size, 2 + 65535);
    cask_rd_t rd;
    cask_rd_init (&rd, buf.data, buf.size);
    ck_assert_uint_eq (cask_get_str16 (&rd).len, 65535);
    ck_assert (cask_rd_done (&rd));
    free (text);

    //  Growth keeps the content; patching a count written earlier
    cask_buf_reset (&buf);
    cask_put_u32 (&buf, 0);
    for (uint32_t index = 0; index < 100000; index++)
        cask_put_u32 (&buf, index);
    cask_buf_patch_u32 (&buf, 0, 100000);
    ck_assert (!buf.failed);
    ck_assert_uint_ge (buf.cap, buf.size);
    cask_rd_init (&rd, buf.data, buf.size);
    ck_assert_uint_eq (cask_get_u32 (&rd), 100000);
    for (uint32_t index = 0; index < 100000; index++)
        ck_assert_uint_eq (cask_get_u32 (&rd), index);
    ck_assert (cask_rd_done (&rd));
    cask_buf_patch_u32 (&buf, buf.size - 3, 1);
    ck_assert (buf.failed);
    cask_buf_free (&buf);
    ck_assert_ptr_null (buf.data);
    cask_buf_free (&buf);
}
END_TEST

START_TEST (test_command_names)
{
    ck_assert_str_eq (cask_command_name (CASK_MSG_HELLO), "HELLO");
    ck_assert_str_eq (cask_command_name (CASK_MSG_SUBMIT), "SUBMIT");
    ck_assert_str_eq (cask_command_name (CASK_MSG_TASK), "TASK");
    ck_assert_str_eq (cask_command_name (CASK_MSG_DONE), "DONE");
    ck_assert_str_eq (cask_command_name (CASK_MSG_DATA), "DATA");
    ck_assert_str_eq (cask_command_name (CASK_MSG_ERROR), "ERROR");
    ck_assert_str_eq (cask_command_name (0x7E), "unknown");
}
END_TEST

//  ---------------------------------------------------------------------
//  Values

//  Refs in these tests stand for the integers 100 + i: target i is at
//  s_targets [i].
static int s_targets [4];

static int
s_ref_index (void *arg, const cask_value_t *ref)
{
    (void) arg;
    int *target = (int *) cask_value_ref_target (ref);
    if (target < s_targets || target >= s_targets + 4)
        return -1;
    return (int) (target - s_targets);
}

typedef struct {
    cask_buf_t body;
    cask_message_t msg;
} s_encoded_t;

static void
s_encode (s_encoded_t *self, const cask_value_t *value)
{
    cask_buf_init (&self->body);
    cask_message_init (&self->msg);
    ck_assert_int_eq (cask_value_encode (value, &self->body, &self->msg, s_ref_index, NULL), 0);
}

static void
s_encoded_free (s_encoded_t *self)
{
    cask_buf_free (&self->body);
    cask_message_close (&self->msg);
}

//  A copy of the payload frames of msg, for decoding the same encoding
//  more than once.
static void
s_copy_frames (cask_message_t *copy, cask_message_t *msg)
{
    cask_message_init (copy);
    for (size_t index = 0; index < msg->nframes; index++)
        ck_assert_int_ge (cask_message_add_frame (copy, zmq_msg_data (&msg->frames [index]),
                                                  zmq_msg_size (&msg->frames [index])), 0);
}

//  Decodes with refs standing for 100..103; a value found must use the
//  whole body unless the body is mutated noise.
static cask_value_t *
s_decode_any (const void *body, size_t size, cask_message_t *msg, const char **why,
              bool whole)
{
    cask_value_t *refs [4];
    for (int index = 0; index < 4; index++)
        refs [index] = cask_int64 (100 + index);
    cask_rd_t rd;
    cask_rd_init (&rd, body, size);
    size_t nframes = msg ? msg->nframes : 0;
    cask_value_t *value = cask_value_decode (&rd, msg, 0, nframes, refs, 4, why);
    if (!value)
        ck_assert (rd.failed);
    else
    if (whole)
        ck_assert (cask_rd_done (&rd));
    for (int index = 0; index < 4; index++)
        cask_value_destroy (&refs [index]);
    return value;
}

static cask_value_t *
s_decode (const void *body, size_t size, cask_message_t *msg, const char **why)
{
    return s_decode_any (body, size, msg, why, true);
}

static void
s_assert_round_trip (cask_value_t *value)
{
    s_encoded_t encoded;
    s_encode (&encoded, value);
    const char *why = NULL;
    cask_value_t *decoded = s_decode (encoded.body.data, encoded.body.size,
                                      &encoded.msg, &why);
    ck_assert_ptr_nonnull (decoded);
    ck_assert (cask_value_equal (value, decoded));
    cask_value_destroy (&decoded);
    s_encoded_free (&encoded);
    cask_value_destroy (&value);
}

static double
s_double_from_bits (uint64_t bits)
{
    double d;
    memcpy (&d, &bits, sizeof d);
    return d;
}

START_TEST (test_value_round_trips)
{
    s_assert_round_trip (cask_null ());
    s_assert_round_trip (cask_bool (true));
    s_assert_round_trip (cask_bool (false));
    s_assert_round_trip (cask_int64 (0));
    s_assert_round_trip (cask_int64 (-1));
    s_assert_round_trip (cask_int64 (INT64_MIN));
    s_assert_round_trip (cask_int64 (INT64_MAX));
    s_assert_round_trip (cask_double (2.5));
    s_assert_round_trip (cask_double (-0.0));
    s_assert_round_trip (cask_double (INFINITY));
    s_assert_round_trip (cask_double (-INFINITY));
    s_assert_round_trip (cask_double (s_double_from_bits (0x7FF0000000000001ull)));
    s_assert_round_trip (cask_double (s_double_from_bits (0xFFF8DEADBEEF0042ull)));
    s_assert_round_trip (cask_double (4.9e-324));
    s_assert_round_trip (cask_string (""));
    s_assert_round_trip (cask_string ("hello, world"));
    s_assert_round_trip (cask_string_n ("nul\0inside\0", 11));
    s_assert_round_trip (cask_bytes (NULL, 0));
    s_assert_round_trip (cask_bytes ("tiny", 4));
    s_assert_round_trip (cask_bytes (s_targets, sizeof s_targets));
    s_assert_round_trip (cask_list (NULL));
    s_assert_round_trip (cask_list (cask_list (cask_list (NULL), NULL),
                                    cask_list (cask_int64 (1), cask_string ("x"),
                                               cask_bytes ("0123456789012345678901234567890123456789", 40),
                                               NULL),
                                    cask_bytes ("", 0), cask_null (), NULL));
    int64_t xs [1000];
    for (int index = 0; index < 1000; index++)
        xs [index] = index * 1000003LL;
    s_assert_round_trip (cask_list_of_int64 (xs, 1000));
}
END_TEST

START_TEST (test_value_tags)
{
    //  The tag table of PROTOCOL.md, byte for byte
    cask_value_t *list = cask_list (cask_null (), cask_bool (false), cask_bool (true),
                                    cask_int64 (-2), cask_double (1.0),
                                    cask_string ("ab"), cask_bytes ("b", 1),
                                    cask_value_new_ref (&s_targets [3]), NULL);
    s_encoded_t encoded;
    s_encode (&encoded, list);
    const uint8_t expect [] = {
        0x07, 8, 0, 0, 0,
        0x00, 0x01, 0x02,
        0x03, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0x04, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F,
        0x05, 2, 0, 0, 0, 'a', 'b',
        0x06, 0, 0, 0, 0,
        0x08, 3, 0, 0, 0
    };
    ck_assert_uint_eq (encoded.body.size, sizeof expect);
    ck_assert_mem_eq (encoded.body.data, expect, sizeof expect);
    ck_assert_uint_eq (encoded.msg.nframes, 1);

    //  The ref decodes as the dependency's value
    cask_value_t *decoded = s_decode (encoded.body.data, encoded.body.size, &encoded.msg, NULL);
    int64_t i;
    ck_assert_int_eq (cask_value_int64 (cask_value_item (decoded, 7), &i), 0);
    ck_assert (i == 103);
    cask_value_destroy (&decoded);
    s_encoded_free (&encoded);
    cask_value_destroy (&list);
}
END_TEST

START_TEST (test_value_frames_relative)
{
    //  A record's frame indices start at its first frame
    cask_message_t msg;
    cask_message_init (&msg);
    ck_assert_int_eq (cask_message_add_frame (&msg, "other record", 12), 0);
    cask_buf_t body;
    cask_buf_init (&body);
    cask_value_t *value = cask_list (cask_bytes ("first", 5), cask_bytes ("second", 6), NULL);
    ck_assert_int_eq (cask_value_encode (value, &body, &msg, NULL, NULL), 0);
    ck_assert_uint_eq (msg.nframes, 3);
    const uint8_t expect [] = { 0x07, 2, 0, 0, 0, 0x06, 0, 0, 0, 0, 0x06, 1, 0, 0, 0 };
    ck_assert_mem_eq (body.data, expect, sizeof expect);

    cask_rd_t rd;
    cask_rd_init (&rd, body.data, body.size);
    cask_value_t *decoded = cask_value_decode (&rd, &msg, 1, 2, NULL, 0, NULL);
    ck_assert (cask_value_equal (value, decoded));
    ck_assert (cask_rd_done (&rd));
    //  The other record's frame is still there
    ck_assert_uint_eq (zmq_msg_size (&msg.frames [0]), 12);

    //  Frames past the end of the message are refused, even unused ones
    cask_rd_init (&rd, body.data, body.size);
    const char *why = NULL;
    ck_assert_ptr_null (cask_value_decode (&rd, &msg, 7, 0, NULL, 0, &why));
    ck_assert_str_eq (why, "the record's payload frames are not all in the message");
    ck_assert (rd.failed);
    cask_rd_init (&rd, body.data, body.size);
    ck_assert_ptr_null (cask_value_decode (&rd, &msg, 1, 3, NULL, 0, &why));
    ck_assert_str_eq (why, "the record's payload frames are not all in the message");

    cask_value_destroy (&decoded);
    cask_value_destroy (&value);
    cask_buf_free (&body);
    cask_message_close (&msg);
}
END_TEST

START_TEST (test_value_record_own_frames)
{
    //  Two records of one message, a frame each: the first must not reach
    //  the second's frame by an index past its own frames
    cask_message_t msg;
    cask_message_init (&msg);
    ck_assert_int_eq (cask_message_add_frame (&msg, "mine", 4), 0);
    ck_assert_int_eq (cask_message_add_frame (&msg, "theirs", 6), 1);
    const char *why = NULL;
    cask_rd_t rd;
    const uint8_t reach_next [] = { 0x06, 1, 0, 0, 0 };
    cask_rd_init (&rd, reach_next, sizeof reach_next);
    ck_assert_ptr_null (cask_value_decode (&rd, &msg, 0, 1, NULL, 0, &why));
    ck_assert_str_eq (why, "payload frame index out of range");
    ck_assert (rd.failed);
    const uint8_t list_reach_next [] = { 0x07, 2, 0, 0, 0, 0x00, 0x06, 1, 0, 0, 0 };
    cask_rd_init (&rd, list_reach_next, sizeof list_reach_next);
    ck_assert_ptr_null (cask_value_decode (&rd, &msg, 0, 1, NULL, 0, &why));
    ck_assert_str_eq (why, "payload frame index out of range");

    //  Both records still decode their own frames
    const uint8_t first_frame [] = { 0x06, 0, 0, 0, 0 };
    const char *names [2] = { "mine", "theirs" };
    for (size_t record = 0; record < 2; record++) {
        cask_rd_init (&rd, first_frame, sizeof first_frame);
        cask_value_t *value = cask_value_decode (&rd, &msg, record, 1, NULL, 0, NULL);
        ck_assert_ptr_nonnull (value);
        const void *data;
        size_t size;
        ck_assert_int_eq (cask_value_bytes (value, &data, &size), 0);
        ck_assert_uint_eq (size, strlen (names [record]));
        ck_assert_mem_eq (data, names [record], size);
        cask_value_destroy (&value);
    }
    cask_message_close (&msg);
}
END_TEST

START_TEST (test_value_zero_copy)
{
    size_t big = 10u << 20;
    uint8_t *data = (uint8_t *) malloc (big);
    memset (data, 0x5A, big);
    cask_value_t *value = cask_bytes_take (data, big, NULL, NULL);
    s_encoded_t encoded;
    s_encode (&encoded, value);
    ck_assert_uint_eq (encoded.body.size, 5);
    ck_assert_uint_eq (encoded.msg.nframes, 1);
    ck_assert_ptr_eq (zmq_msg_data (&encoded.msg.frames [0]), data);

    //  The frame holds a reference: the value outlives its creator's
    cask_value_t *decoded = s_decode (encoded.body.data, encoded.body.size, &encoded.msg, NULL);
    cask_value_destroy (&value);
    const void *out;
    size_t size;
    ck_assert_int_eq (cask_value_bytes (decoded, &out, &size), 0);
    ck_assert_ptr_eq (out, data);
    ck_assert_uint_eq (size, big);
    s_encoded_free (&encoded);
    cask_value_destroy (&decoded);
    free (data);
}
END_TEST

START_TEST (test_value_encode_failures)
{
    cask_buf_t body;
    cask_buf_init (&body);
    cask_put_u8 (&body, 0xEE);
    cask_message_t msg;
    cask_message_init (&msg);
    ck_assert_int_eq (cask_message_add_frame (&msg, "keep", 4), 0);

    //  A ref with no index function, or one it does not know; bytes with
    //  no message; NULL. Each leaves body and message as they were.
    int stranger;
    cask_value_t *bad [] = {
        cask_list (cask_bytes (s_targets, sizeof s_targets), cask_value_new_ref (&s_targets [0]), NULL),
        cask_list (cask_bytes (s_targets, sizeof s_targets), cask_value_new_ref (&stranger), NULL),
    };
    ck_assert_int_eq (cask_value_encode (bad [0], &body, &msg, NULL, NULL), -1);
    ck_assert_int_eq (cask_value_encode (bad [1], &body, &msg, s_ref_index, NULL), -1);
    ck_assert_int_eq (cask_value_encode (bad [0], &body, NULL, s_ref_index, NULL), -1);
    ck_assert_int_eq (cask_value_encode (NULL, &body, &msg, NULL, NULL), -1);
    ck_assert_uint_eq (body.size, 1);
    ck_assert_uint_eq (msg.nframes, 1);
    ck_assert (!body.failed);

    //  Nesting: 64 lists encode, 65 do not
    cask_value_t *deep = cask_list (NULL);
    for (int depth = 1; depth < CASK_MAX_DEPTH; depth++)
        deep = cask_list (deep, NULL);
    ck_assert_int_eq (cask_value_encode (deep, &body, &msg, NULL, NULL), 0);
    body.size = 1;
    deep = cask_list (deep, NULL);
    ck_assert_int_eq (cask_value_encode (deep, &body, &msg, NULL, NULL), -1);
    ck_assert_uint_eq (body.size, 1);

    cask_value_destroy (&bad [0]);
    cask_value_destroy (&bad [1]);
    cask_value_destroy (&deep);
    cask_buf_free (&body);
    cask_message_close (&msg);
}
END_TEST

//  A value with every type, frames small and large, and a ref.
static cask_value_t *
s_rich_value (void)
{
    return cask_list (cask_null (), cask_bool (true), cask_bool (false),
                      cask_int64 (INT64_MIN), cask_double (-0.0),
                      cask_string_n ("st\0r", 4),
                      cask_bytes ("", 0),
                      cask_bytes ("0123456789012345678901234567890123456789", 40),
                      cask_list (cask_list (cask_bytes ("x", 1), NULL), cask_int64 (7), NULL),
                      cask_value_new_ref (&s_targets [2]),
                      NULL);
}

START_TEST (test_value_truncated)
{
    cask_value_t *value = s_rich_value ();
    s_encoded_t encoded;
    s_encode (&encoded, value);
    for (size_t size = 0; size <= encoded.body.size; size++) {
        cask_message_t msg;
        s_copy_frames (&msg, &encoded.msg);
        const char *why = NULL;
        cask_value_t *decoded = s_decode (encoded.body.data, size, &msg, &why);
        if (size < encoded.body.size) {
            ck_assert_ptr_null (decoded);
            ck_assert_ptr_nonnull (why);
        }
        else
            ck_assert_ptr_nonnull (decoded);
        cask_value_destroy (&decoded);
        cask_message_close (&msg);
    }
    s_encoded_free (&encoded);
    cask_value_destroy (&value);
}
END_TEST

START_TEST (test_value_mutated)
{
    //  Every byte of a valid encoding set to each of a few values, and
    //  random noise: decoding fails cleanly or yields a value, never more
    cask_value_t *value = s_rich_value ();
    s_encoded_t encoded;
    s_encode (&encoded, value);
    uint8_t *copy = (uint8_t *) malloc (encoded.body.size);
    const uint8_t replacements [] = { 0x00, 0x01, 0x07, 0x08, 0x09, 0x7F, 0xFF };
    for (size_t at = 0; at < encoded.body.size; at++)
        for (size_t r = 0; r < sizeof replacements; r++) {
            memcpy (copy, encoded.body.data, encoded.body.size);
            copy [at] = replacements [r];
            cask_message_t msg;
            s_copy_frames (&msg, &encoded.msg);
            cask_value_t *decoded = s_decode_any (copy, encoded.body.size, &msg, NULL, false);
            cask_value_destroy (&decoded);
            cask_message_close (&msg);
        }
    srand (42);
    for (int round = 0; round < 2000; round++) {
        memcpy (copy, encoded.body.data, encoded.body.size);
        for (int flips = 0; flips < 3; flips++)
            copy [rand () % encoded.body.size] = (uint8_t) rand ();
        cask_message_t msg;
        s_copy_frames (&msg, &encoded.msg);
        cask_value_t *decoded = s_decode_any (copy, encoded.body.size, &msg, NULL, false);
        cask_value_destroy (&decoded);
        cask_message_close (&msg);
    }
    free (copy);
    s_encoded_free (&encoded);
    cask_value_destroy (&value);
}
END_TEST

//  Decodes a hand-made encoding; returns the reason it failed, or NULL.
static const char *
s_decode_fails (const uint8_t *body, size_t size, cask_message_t *msg)
{
    const char *why = NULL;
    cask_value_t *decoded = s_decode (body, size, msg, &why);
    if (decoded) {
        cask_value_destroy (&decoded);
        return NULL;
    }
    return why;
}

START_TEST (test_value_malformed)
{
    cask_message_t msg;
    cask_message_init (&msg);
    const char *why;

    const uint8_t huge_list [] = { 0x07, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00 };
    why = s_decode_fails (huge_list, sizeof huge_list, &msg);
    ck_assert_str_eq (why, "list count larger than the bytes left");
    const uint8_t list_one_short [] = { 0x07, 3, 0, 0, 0, 0x00, 0x00 };
    ck_assert_str_eq (s_decode_fails (list_one_short, sizeof list_one_short, &msg),
                      "list count larger than the bytes left");
    const uint8_t huge_string [] = { 0x05, 0xFF, 0xFF, 0xFF, 0xFF, 'a' };
    ck_assert_str_eq (s_decode_fails (huge_string, sizeof huge_string, &msg), "value truncated");
    const uint8_t bad_tag [] = { 0x09 };
    ck_assert_str_eq (s_decode_fails (bad_tag, 1, &msg), "unknown value tag");
    const uint8_t bad_tag_in_list [] = { 0x07, 2, 0, 0, 0, 0x00, 0xC3 };
    ck_assert_str_eq (s_decode_fails (bad_tag_in_list, sizeof bad_tag_in_list, &msg),
                      "unknown value tag");
    ck_assert_str_eq (s_decode_fails (bad_tag, 0, &msg), "value truncated");

    const uint8_t no_frame [] = { 0x06, 0, 0, 0, 0 };
    ck_assert_str_eq (s_decode_fails (no_frame, sizeof no_frame, &msg),
                      "payload frame index out of range");
    ck_assert_str_eq (s_decode_fails (no_frame, sizeof no_frame, NULL),
                      "payload frame index out of range");
    const uint8_t far_frame [] = { 0x06, 0xFF, 0xFF, 0xFF, 0xFF };
    ck_assert_int_eq (cask_message_add_frame (&msg, NULL, 0), 0);
    ck_assert_str_eq (s_decode_fails (far_frame, sizeof far_frame, &msg),
                      "payload frame index out of range");

    //  Frame 0 is empty on the wire: taking it twice is still caught
    const uint8_t twice [] = { 0x07, 2, 0, 0, 0, 0x06, 0, 0, 0, 0, 0x06, 0, 0, 0, 0 };
    ck_assert_str_eq (s_decode_fails (twice, sizeof twice, &msg), "payload frame used twice");
    ck_assert_str_eq (s_decode_fails (no_frame, sizeof no_frame, &msg), "payload frame used twice");

    const uint8_t ref_far [] = { 0x08, 4, 0, 0, 0 };
    ck_assert_str_eq (s_decode_fails (ref_far, sizeof ref_far, &msg),
                      "ref outside the dependencies");
    const uint8_t ref_ok [] = { 0x08, 3, 0, 0, 0 };
    ck_assert_ptr_null (s_decode_fails (ref_ok, sizeof ref_ok, &msg));
    cask_rd_t rd;
    cask_rd_init (&rd, ref_ok, sizeof ref_ok);
    ck_assert_ptr_null (cask_value_decode (&rd, &msg, 0, msg.nframes, NULL, 0, &why));
    ck_assert_str_eq (why, "ref outside the dependencies");

    //  A reader that has already failed yields nothing
    cask_rd_init (&rd, ref_ok, 0);
    cask_get_u8 (&rd);
    ck_assert_ptr_null (cask_value_decode (&rd, &msg, 0, msg.nframes, NULL, 0, &why));

    //  Trailing bytes are the caller's to notice
    const uint8_t trailing [] = { 0x00, 0x00 };
    cask_rd_init (&rd, trailing, sizeof trailing);
    cask_value_t *value = cask_value_decode (&rd, &msg, 0, msg.nframes, NULL, 0, NULL);
    ck_assert_ptr_nonnull (value);
    ck_assert (!cask_rd_done (&rd));
    cask_value_destroy (&value);
    cask_message_close (&msg);
}
END_TEST

//  depth lists nested in each other, innermost empty.
static size_t
s_nested_lists (uint8_t *out, int depth)
{
    size_t size = 0;
    for (int level = 0; level < depth; level++) {
        const uint8_t head [] = { 0x07, level + 1 < depth ? 1 : 0, 0, 0, 0 };
        memcpy (out + size, head, sizeof head);
        size += sizeof head;
    }
    return size;
}

START_TEST (test_value_depth)
{
    uint8_t body [5 * 1000];
    size_t size = s_nested_lists (body, CASK_MAX_DEPTH);
    ck_assert_ptr_null (s_decode_fails (body, size, NULL));
    size = s_nested_lists (body, CASK_MAX_DEPTH + 1);
    ck_assert_str_eq (s_decode_fails (body, size, NULL), "lists nested too deep");
    size = s_nested_lists (body, 1000);
    ck_assert_str_eq (s_decode_fails (body, size, NULL), "lists nested too deep");
}
END_TEST

//  ---------------------------------------------------------------------
//  Records

//  Every shorter prefix of body must fail the record's reader.
typedef void (s_get_fn) (cask_rd_t *rd, void *rec);

static void
s_assert_truncations_fail (const cask_buf_t *body, s_get_fn *get, void *rec)
{
    for (size_t size = 0; size < body->size; size++) {
        cask_rd_t rd;
        cask_rd_init (&rd, body->data, size);
        get (&rd, rec);
        ck_assert_msg (rd.failed, "prefix of %zu bytes read without failure", size);
    }
    cask_rd_t rd;
    cask_rd_init (&rd, body->data, body->size);
    get (&rd, rec);
    ck_assert (cask_rd_done (&rd));
}

static void s_hello_get (cask_rd_t *rd, void *rec) { cask_hello_get (rd, rec); }
static void s_func_get (cask_rd_t *rd, void *rec) { cask_func_get (rd, rec); }
static void s_worker_get (cask_rd_t *rd, void *rec) { cask_worker_info_get (rd, rec); }
static void s_library_get (cask_rd_t *rd, void *rec) { cask_library_get (rd, rec); }
static void s_state_get (cask_rd_t *rd, void *rec) { cask_state_get (rd, rec); }
static void s_done_get (cask_rd_t *rd, void *rec) { cask_done_get (rd, rec); }
static void s_error_get (cask_rd_t *rd, void *rec) { cask_error_get (rd, rec); }
static void s_task_get (cask_rd_t *rd, void *rec) { cask_task_get (rd, rec, false); }
static void s_task_get_holders (cask_rd_t *rd, void *rec) { cask_task_get (rd, rec, true); }
static void s_restrictions_get (cask_rd_t *rd, void *rec) { cask_restrictions_get (rd, rec); }
static void s_stolen_get (cask_rd_t *rd, void *rec) { cask_stolen_get (rd, rec); }
static void s_copy_get (cask_rd_t *rd, void *rec) { cask_copy_get (rd, rec); }
static void s_retire_get (cask_rd_t *rd, void *rec) { cask_retire_get (rd, rec); }

START_TEST (test_records_hello_func_worker_library)
{
    cask_buf_t buf;
    cask_buf_init (&buf);
    cask_rd_t rd;

    cask_hello_t hello = { .role = CASK_ROLE_WORKER, .name = cask_str ("w1"), .nthreads = 8,
                           .memory_limit = 1ull << 40, .endpoint = cask_str ("tcp://127.0.0.1:5555"),
                           .nresources = 2, .resources = { { cask_str ("GPU"), 2 },
                                                           { cask_str ("MEM"), 0.5 } } }, hello2;
    cask_hello_put (&buf, &hello);
    cask_rd_init (&rd, buf.data, buf.size);
    cask_hello_get (&rd, &hello2);
    ck_assert (cask_rd_done (&rd));
    ck_assert_uint_eq (hello2.role, CASK_ROLE_WORKER);
    ck_assert (cask_str_eq (hello2.name, "w1"));
    ck_assert_uint_eq (hello2.nthreads, 8);
    ck_assert (hello2.memory_limit == 1ull << 40);
    ck_assert (cask_str_eq (hello2.endpoint, "tcp://127.0.0.1:5555"));
    ck_assert_uint_eq (hello2.nresources, 2);
    ck_assert (cask_str_eq (hello2.resources [1].name, "MEM"));
    ck_assert (hello2.resources [1].amount == 0.5);
    s_assert_truncations_fail (&buf, s_hello_get, &hello2);

    cask_buf_reset (&buf);
    cask_func_t func = { 77, cask_str ("inc"), cask_str ("x + 1") }, func2;
    cask_func_put (&buf, &func);
    cask_rd_init (&rd, buf.data, buf.size);
    cask_func_get (&rd, &func2);
    ck_assert (cask_rd_done (&rd));
    ck_assert_uint_eq (func2.id, 77);
    ck_assert (cask_str_eq (func2.name, "inc"));
    ck_assert (cask_str_eq (func2.doc, "x + 1"));
    s_assert_truncations_fail (&buf, s_func_get, &func2);

    cask_buf_reset (&buf);
    cask_worker_info_t worker = { 3, cask_str ("tcp://h:1"), 4, 1 }, worker2;
    cask_worker_info_put (&buf, &worker);
    cask_rd_init (&rd, buf.data, buf.size);
    cask_worker_info_get (&rd, &worker2);
    ck_assert (cask_rd_done (&rd));
    ck_assert_uint_eq (worker2.id, 3);
    ck_assert (cask_str_eq (worker2.endpoint, "tcp://h:1"));
    ck_assert_uint_eq (worker2.nthreads, 4);
    ck_assert_uint_eq (worker2.joined, 1);
    s_assert_truncations_fail (&buf, s_worker_get, &worker2);

    cask_buf_reset (&buf);
    cask_library_t library = { cask_str ("tutorial"),
                               cask_str ("da39a3ee5e6b4b0d3255bfef95601890afd80709"), 2 }, library2;
    cask_library_put (&buf, &library);
    cask_rd_init (&rd, buf.data, buf.size);
    cask_library_get (&rd, &library2);
    ck_assert (cask_rd_done (&rd));
    ck_assert (cask_str_eq (library2.name, "tutorial"));
    ck_assert (cask_str_eq (library2.hash, "da39a3ee5e6b4b0d3255bfef95601890afd80709"));
    ck_assert_uint_eq (library2.nfuncs, 2);
    s_assert_truncations_fail (&buf, s_library_get, &library2);
    cask_buf_free (&buf);
}
END_TEST

START_TEST (test_records_state_done_error)
{
    cask_buf_t buf;
    cask_buf_init (&buf);
    cask_rd_t rd;

    cask_state_rec_t state = { cask_str ("k1"), CASK_STATE_ERRED, 9, CASK_INT64, 1234567890123ull,
                               cask_str ("cause-key"), cask_str ("inc"),
                               cask_str ("inc: argument 1 is a string, expected int64") }, state2;
    cask_state_put (&buf, &state);
    cask_rd_init (&rd, buf.data, buf.size);
    cask_state_get (&rd, &state2);
    ck_assert (cask_rd_done (&rd));
    ck_assert (cask_str_eq (state2.key, "k1"));
    ck_assert_uint_eq (state2.state, CASK_STATE_ERRED);
    ck_assert_uint_eq (state2.worker, 9);
    ck_assert_uint_eq (state2.type, CASK_INT64);
    ck_assert (state2.nbytes == 1234567890123ull);
    ck_assert (cask_str_eq (state2.cause, "cause-key"));
    ck_assert (cask_str_eq (state2.function, "inc"));
    ck_assert (cask_str_eq (state2.message, "inc: argument 1 is a string, expected int64"));
    s_assert_truncations_fail (&buf, s_state_get, &state2);

    cask_buf_reset (&buf);
    cask_done_t done = { cask_str ("k2"), 1, CASK_BYTES, 10u << 20, 4321, cask_str (""),
                         1763800000123456u, 1763800000120000u, 3456, 7 }, done2;
    cask_done_put (&buf, &done);
    cask_rd_init (&rd, buf.data, buf.size);
    cask_done_get (&rd, &done2);
    ck_assert (cask_rd_done (&rd));
    ck_assert (cask_str_eq (done2.key, "k2"));
    ck_assert_uint_eq (done2.ok, 1);
    ck_assert_uint_eq (done2.type, CASK_BYTES);
    ck_assert_uint_eq (done2.nbytes, 10u << 20);
    ck_assert_uint_eq (done2.duration_us, 4321);
    ck_assert_uint_eq (done2.message.len, 0);
    ck_assert_uint_eq (done2.start_us, 1763800000123456u);
    ck_assert_uint_eq (done2.fetch_start_us, 1763800000120000u);
    ck_assert_uint_eq (done2.fetch_us, 3456);
    ck_assert_uint_eq (done2.thread, 7);
    s_assert_truncations_fail (&buf, s_done_get, &done2);

    cask_buf_reset (&buf);
    cask_error_t error = { CASK_ERR_VERSION, cask_str ("about"),
                           cask_str ("protocol version 2 not supported, this peer speaks 1") }, error2;
    cask_error_put (&buf, &error);
    cask_rd_init (&rd, buf.data, buf.size);
    cask_error_get (&rd, &error2);
    ck_assert (cask_rd_done (&rd));
    ck_assert_uint_eq (error2.code, CASK_ERR_VERSION);
    ck_assert (cask_str_eq (error2.about, "about"));
    ck_assert (cask_str_eq (error2.message, "protocol version 2 not supported, this peer speaks 1"));
    s_assert_truncations_fail (&buf, s_error_get, &error2);
    cask_buf_free (&buf);
}
END_TEST

//  Writes one task record with its args encoded into msg's frames.
static void
s_put_task (cask_buf_t *buf, cask_message_t *msg, const char *key, uint32_t fn,
            const char **deps, size_t ndeps, bool with_holders, cask_value_t *args)
{
    cask_buf_t scratch;
    cask_buf_init (&scratch);
    size_t first_frame = msg->nframes;
    ck_assert_int_eq (cask_value_encode (args, &scratch, msg, s_ref_index, NULL), 0);
    cask_task_put_head (buf, &(cask_task_t) { .key = cask_str (key), .fn = fn, .retries = 2, .priority = -3, .ndeps = (uint32_t) ndeps });
    for (size_t index = 0; index < ndeps; index++) {
        cask_put_str8 (buf, cask_str (deps [index]));
        if (with_holders)
            cask_put_str8 (buf, cask_str (index % 2 ? "" : "tcp://holder:1"));
    }
    cask_str_t encoded = { (const char *) scratch.data, scratch.size };
    cask_task_put_tail (buf, (uint32_t) (msg->nframes - first_frame), encoded);
    cask_buf_free (&scratch);
    cask_value_destroy (&args);
}

START_TEST (test_records_task_batch)
{
    const char *deps [] = { "dep-a", "dep-b", "dep-c" };
    for (int holders = 0; holders < 2; holders++) {
        cask_buf_t buf;
        cask_buf_init (&buf);
        cask_message_t msg;
        cask_message_init (&msg);
        cask_put_u32 (&buf, 2);
        s_put_task (&buf, &msg, "task-one", 5, deps, 3, holders,
                    cask_list (cask_bytes (s_targets, sizeof s_targets),
                               cask_value_new_ref (&s_targets [1]), NULL));
        s_put_task (&buf, &msg, "task-two", 6, NULL, 0, holders,
                    cask_list (cask_int64 (1), cask_bytes ("second record frame bytes...........", 37), NULL));
        ck_assert (!buf.failed);
        ck_assert_uint_eq (msg.nframes, 2);

        cask_rd_t rd;
        cask_rd_init (&rd, buf.data, buf.size);
        ck_assert_uint_eq (cask_get_u32 (&rd), 2);
        size_t frame_base = 0;
        for (int record = 0; record < 2; record++) {
            cask_task_t task;
            cask_task_get (&rd, &task, holders);
            ck_assert (!rd.failed);
            ck_assert (cask_str_eq (task.key, record ? "task-two" : "task-one"));
            ck_assert_uint_eq (task.fn, record ? 6 : 5);
            ck_assert_uint_eq (task.flags, 0);
            ck_assert_int_eq (task.priority, -3);
            ck_assert_uint_eq (task.retries, 2);
            ck_assert_uint_eq (task.ndeps, record ? 0 : 3);
            ck_assert_uint_eq (task.nframes, 1);
            for (uint32_t index = 0; index < task.ndeps; index++) {
                ck_assert (cask_str_eq (cask_get_str8 (&task.deps), deps [index]));
                if (holders)
                    ck_assert (cask_str_eq (cask_get_str8 (&task.deps),
                                            index % 2 ? "" : "tcp://holder:1"));
            }
            ck_assert (cask_rd_done (&task.deps));

            cask_value_t *refs [2] = { cask_string ("zero"), cask_string ("one") };
            cask_rd_t args;
            cask_rd_init (&args, task.args.ptr, task.args.len);
            cask_value_t *value = cask_value_decode (&args, &msg, frame_base, task.nframes,
                                                     refs, 2, NULL);
            ck_assert (cask_rd_done (&args));
            ck_assert_uint_eq (cask_value_size (value), 2);
            if (record == 0) {
                const char *s;
                ck_assert_int_eq (cask_value_string (cask_value_item (value, 1), &s, NULL), 0);
                ck_assert_str_eq (s, "one");
            }
            else
                ck_assert_int_eq (cask_value_type (cask_value_item (value, 1)), CASK_BYTES);
            frame_base += task.nframes;
            cask_value_destroy (&value);
            cask_value_destroy (&refs [0]);
            cask_value_destroy (&refs [1]);
        }
        ck_assert (cask_rd_done (&rd));

        //  Truncated records fail, a reader over the first record only
        cask_buf_t one;
        cask_buf_init (&one);
        cask_message_t scratch;
        cask_message_init (&scratch);
        s_put_task (&one, &scratch, "k", 1, deps, 3, holders, cask_list (cask_int64 (1), NULL));
        cask_task_t task;
        s_assert_truncations_fail (&one, holders ? s_task_get_holders : s_task_get, &task);
        cask_buf_free (&one);
        cask_message_close (&scratch);
        cask_buf_free (&buf);
        cask_message_close (&msg);
    }
}
END_TEST

//  Restrictions, in a task record and alone; STOLEN, COPY, RETIRE.
START_TEST (test_records_restrictions_steal_copy_retire)
{
    cask_buf_t buf;
    cask_buf_init (&buf);
    cask_restrictions_t restrictions = {
        .nworkers = 2, .workers = { cask_str ("alice"), cask_str ("tcp://10.0.0.2:4000") },
        .nresources = 1, .resources = { { cask_str ("GPU"), 1 } } }, back;
    cask_task_t task = { .key = cask_str ("gpu-task"), .fn = 3, .flags = CASK_TASK_RESTRICTED };
    cask_task_put_head (&buf, &task);
    cask_task_put_tail (&buf, 0, cask_str ("L"));
    cask_restrictions_put (&buf, &restrictions);
    cask_put_u8 (&buf, 0xEE);           //  what follows the record stays unread
    cask_rd_t rd;
    cask_rd_init (&rd, buf.data, buf.size);
    cask_task_t read;
    cask_task_get (&rd, &read, false);
    ck_assert (!rd.failed);
    ck_assert_uint_eq (cask_get_u8 (&rd), 0xEE);
    cask_rd_t block;
    cask_rd_init (&block, read.restrictions.ptr, read.restrictions.len);
    cask_restrictions_get (&block, &back);
    ck_assert (cask_rd_done (&block));
    ck_assert_uint_eq (back.nworkers, 2);
    ck_assert (cask_str_eq (back.workers [1], "tcp://10.0.0.2:4000"));
    ck_assert_uint_eq (back.nresources, 1);
    ck_assert (cask_str_eq (back.resources [0].name, "GPU"));
    ck_assert (back.resources [0].amount == 1);

    cask_buf_reset (&buf);
    cask_restrictions_put (&buf, &restrictions);
    s_assert_truncations_fail (&buf, s_restrictions_get, &back);

    //  Amounts that could never match, empty names and too many entries
    double bad [] = { 0, -1, NAN, INFINITY };
    for (size_t index = 0; index < sizeof bad / sizeof bad [0]; index++) {
        cask_restrictions_t wrong = { .nresources = 1, .resources = { { cask_str ("GPU"), bad [index] } } };
        cask_buf_reset (&buf);
        cask_restrictions_put (&buf, &wrong);
        cask_rd_init (&rd, buf.data, buf.size);
        cask_restrictions_get (&rd, &back);
        ck_assert (rd.failed);
        ck_assert_uint_eq (back.nresources, 0);
    }
    cask_buf_reset (&buf);
    cask_put_u8 (&buf, 1);
    cask_put_str8 (&buf, cask_str (""));
    cask_put_u8 (&buf, 0);
    cask_rd_init (&rd, buf.data, buf.size);
    cask_restrictions_get (&rd, &back);
    ck_assert (rd.failed);
    cask_buf_reset (&buf);
    cask_put_u8 (&buf, CASK_MAX_RESOURCES + 1);
    for (int index = 0; index <= CASK_MAX_RESOURCES; index++)
        cask_put_str8 (&buf, cask_str ("w"));
    cask_put_u8 (&buf, 0);
    cask_rd_init (&rd, buf.data, buf.size);
    cask_restrictions_get (&rd, &back);
    ck_assert (rd.failed);
    restrictions.nworkers = CASK_MAX_RESOURCES + 1;
    cask_buf_reset (&buf);
    cask_restrictions_put (&buf, &restrictions);
    ck_assert (buf.failed);

    cask_buf_reset (&buf);
    cask_stolen_t stolen = { cask_str ("k1"), 1 }, stolen2;
    cask_stolen_put (&buf, &stolen);
    s_assert_truncations_fail (&buf, s_stolen_get, &stolen2);
    ck_assert (cask_str_eq (stolen2.key, "k1"));
    ck_assert_uint_eq (stolen2.given_up, 1);

    cask_buf_reset (&buf);
    cask_copy_t copy = { cask_str ("k2"), cask_str ("tcp://127.0.0.1:9") }, copy2;
    cask_copy_put (&buf, &copy);
    s_assert_truncations_fail (&buf, s_copy_get, &copy2);
    ck_assert (cask_str_eq (copy2.key, "k2"));
    ck_assert (cask_str_eq (copy2.holder, "tcp://127.0.0.1:9"));

    cask_buf_reset (&buf);
    uint32_t ids [] = { 4, 9 };
    cask_retire_put (&buf, 1, ids, 2);
    cask_retire_t retire;
    s_assert_truncations_fail (&buf, s_retire_get, &retire);
    ck_assert_uint_eq (retire.keep, 1);
    ck_assert_uint_eq (retire.nids, 2);
    ck_assert_uint_eq (cask_get_u32 (&retire.ids), 4);
    ck_assert_uint_eq (cask_get_u32 (&retire.ids), 9);
    ck_assert (cask_rd_done (&retire.ids));
    //  A count larger than the bytes left is malformed before anything is read
    cask_buf_reset (&buf);
    cask_put_u32 (&buf, 0);
    cask_put_u32 (&buf, 1000000);
    cask_rd_init (&rd, buf.data, buf.size);
    cask_retire_get (&rd, &retire);
    ck_assert (rd.failed);
    cask_buf_free (&buf);
}
END_TEST

//  Lists as people write them: "GPU=2, MEM = 1e9" and "a,b"
START_TEST (test_resources_and_names_parse)
{
    cask_resource_t resources [CASK_MAX_RESOURCES];
    uint8_t count = 0;
    char why [300];
    ck_assert_int_eq (cask_resources_parse ("GPU=2, MEM = 1e9 ", resources, &count, why,
                                            sizeof why), 0);
    ck_assert_uint_eq (count, 2);
    ck_assert (cask_str_eq (resources [1].name, "MEM"));
    ck_assert (resources [1].amount == 1e9);
    ck_assert_int_eq (cask_resources_parse ("TPU=0.5", resources, &count, why, sizeof why), 0);
    ck_assert_uint_eq (count, 3);                   //  appended
    const char *bad [] = { "", "GPU", "A=1,", "=1", "GPU=0", "GPU=-1", "GPU=nan", "GPU=inf",
                           "GPU=1e301", "GPU=2x", "GPU=1,GPU=2",
                           "a=1,b=1,c=1,d=1,e=1,f=1,g=1,h=1,i=1,j=1,k=1,l=1,m=1,n=1,o=1,p=1,q=1" };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        count = 0;
        ck_assert_msg (cask_resources_parse (bad [i], resources, &count, why, sizeof why) == -1,
                       "\"%s\" was taken", bad [i]);
        ck_assert (strlen (why) > 0);
    }
    cask_str_t names [CASK_MAX_RESOURCES];
    count = 0;
    ck_assert_int_eq (cask_names_parse ("alice, tcp://10.0.0.1:4000", names, &count, why,
                                        sizeof why), 0);
    ck_assert_uint_eq (count, 2);
    ck_assert (cask_str_eq (names [1], "tcp://10.0.0.1:4000"));
    count = 0;
    ck_assert_int_eq (cask_names_parse ("a,,b", names, &count, why, sizeof why), -1);
    ck_assert_ptr_nonnull (strstr (why, "1 to 255 bytes"));
}
END_TEST

START_TEST (test_records_task_hostile)
{
    //  ndeps far beyond the bytes left fails without looping over them
    cask_buf_t buf;
    cask_buf_init (&buf);
    cask_task_put_head (&buf, &(cask_task_t) { .key = cask_str ("k"), .fn = 1, .ndeps = 0xFFFFFFFFu });
    cask_put_u8 (&buf, 0);
    cask_put_u8 (&buf, 0);
    cask_rd_t rd;
    cask_rd_init (&rd, buf.data, buf.size);
    cask_task_t task;
    cask_task_get (&rd, &task, false);
    ck_assert (rd.failed);
    ck_assert (task.deps.failed);
    ck_assert_uint_eq (task.args.len, 0);

    //  Two entries' worth of bytes is one entry when holders come in pairs
    cask_buf_reset (&buf);
    cask_task_put_head (&buf, &(cask_task_t) { .key = cask_str ("k"), .fn = 1, .ndeps = 2 });
    cask_put_u8 (&buf, 0);
    cask_put_u8 (&buf, 0);
    cask_str_t empty_list = { "\x07\x00\x00\x00\x00", 5 };
    cask_task_put_tail (&buf, 0, empty_list);
    cask_rd_init (&rd, buf.data, buf.size);
    cask_task_get (&rd, &task, false);
    ck_assert (cask_rd_done (&rd));
    ck_assert_uint_eq (task.args.len, 5);
    cask_rd_init (&rd, buf.data, buf.size);
    cask_task_get (&rd, &task, true);
    ck_assert (rd.failed);

    //  args_size past the end
    cask_buf_reset (&buf);
    cask_task_put_head (&buf, &(cask_task_t) { .key = cask_str ("k"), .fn = 1 });
    cask_put_u32 (&buf, 0);
    cask_put_u32 (&buf, 1000);
    cask_put_raw (&buf, "\x00", 1);
    cask_rd_init (&rd, buf.data, buf.size);
    cask_task_get (&rd, &task, false);
    ck_assert (rd.failed);
    cask_buf_free (&buf);
}
END_TEST

//  ---------------------------------------------------------------------
//  Messages over sockets

//  Sends raw frames from the dealer; sizes < 0 mean strlen.
static void
s_send_raw (void *socket, size_t nparts, const char **parts, const size_t *sizes)
{
    for (size_t index = 0; index < nparts; index++)
        ck_assert_int_ge (zmq_send (socket, parts [index], sizes [index],
                                    index + 1 < nparts ? ZMQ_SNDMORE : 0), 0);
}

//  A well-formed message must come through after whatever came before.
static void
s_assert_in_sync (cask_test_pair_t *pair, cask_message_t *msg)
{
    cask_buf_t body;
    cask_buf_init (&body);
    cask_put_u32 (&body, 0xC0FFEE);
    ck_assert_int_eq (cask_send (pair->dealer, NULL, CASK_MSG_STATUS, &body, NULL), 0);
    const char *why = NULL;
    ck_assert_int_eq (cask_message_recv (msg, pair->router, true, 0, &why), CASK_RECV_OK);
    ck_assert_uint_eq (msg->command, CASK_MSG_STATUS);
    ck_assert_uint_eq (zmq_msg_size (&msg->body), 4);
    ck_assert_uint_eq (msg->nframes, 0);
    cask_buf_free (&body);
}

static void
s_round_trip_over (const char *transport)
{
    cask_test_pair_t pair;
    cask_test_pair_open (&pair, transport);
    cask_buf_t body;
    cask_buf_init (&body);
    cask_message_t out;
    cask_message_init (&out);
    cask_hello_t hello = { .role = CASK_ROLE_CLIENT, .name = cask_str ("me"), .endpoint = cask_str ("") };
    cask_hello_put (&body, &hello);
    ck_assert_int_eq (cask_message_add_frame (&out, "payload", 7), 0);
    ck_assert_int_eq (cask_send (pair.dealer, NULL, CASK_MSG_HELLO, &body, &out), 0);
    ck_assert_uint_eq (out.nframes, 0);

    cask_message_t in;
    cask_message_init (&in);
    const char *why = NULL;
    ck_assert_int_eq (cask_message_recv (&in, pair.router, true, 0, &why), CASK_RECV_OK);
    ck_assert (in.routed);
    ck_assert_uint_eq (in.version, CASK_PROTO_VERSION);
    ck_assert_uint_eq (in.command, CASK_MSG_HELLO);
    ck_assert_uint_eq (in.nframes, 1);
    ck_assert_mem_eq (zmq_msg_data (&in.frames [0]), "payload", 7);
    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&in.body), zmq_msg_size (&in.body));
    cask_hello_t hello2;
    cask_hello_get (&rd, &hello2);
    ck_assert (cask_rd_done (&rd));
    ck_assert (cask_str_eq (hello2.name, "me"));

    //  Reply to the routing id; the dealer side reads it unrouted
    cask_buf_reset (&body);
    cask_put_u32 (&body, 42);
    cask_put_u32 (&body, 0);
    cask_put_u32 (&body, 0);
    ck_assert_int_eq (cask_send (pair.router, &in.routing, CASK_MSG_WELCOME, &body, NULL), 0);
    cask_message_t reply;
    cask_message_init (&reply);
    ck_assert_int_eq (cask_message_recv (&reply, pair.dealer, false, 0, &why), CASK_RECV_OK);
    ck_assert (!reply.routed);
    ck_assert_uint_eq (reply.command, CASK_MSG_WELCOME);
    ck_assert_uint_eq (zmq_msg_size (&reply.body), 12);

    //  An empty body (NULL buffer) is fine
    ck_assert_int_eq (cask_send (pair.dealer, NULL, CASK_MSG_BYE, NULL, NULL), 0);
    ck_assert_int_eq (cask_message_recv (&in, pair.router, true, 0, &why), CASK_RECV_OK);
    ck_assert_uint_eq (in.command, CASK_MSG_BYE);
    ck_assert_uint_eq (zmq_msg_size (&in.body), 0);

    cask_message_close (&in);
    cask_message_close (&in);
    cask_message_close (&reply);
    cask_message_close (&out);
    cask_buf_free (&body);
    cask_test_pair_close (&pair);
}

START_TEST (test_batch_send)
{
    cask_test_pair_t pair;
    cask_test_pair_open (&pair, "inproc");
    cask_batch_t batch;
    cask_batch_init (&batch);
    //  Nothing goes out for an empty batch
    ck_assert_int_eq (cask_batch_send (&batch, pair.dealer, NULL, CASK_MSG_RELEASE, NULL), 0);

    cask_put_str8 (cask_batch_add (&batch), cask_str ("a"));
    cask_put_str8 (cask_batch_add (&batch), cask_str ("bc"));
    ck_assert_uint_eq (batch.count, 2);
    cask_message_t frames;
    cask_message_init (&frames);
    ck_assert_int_eq (cask_message_add_frame (&frames, "x", 1), 0);
    ck_assert_int_eq (cask_batch_send (&batch, pair.dealer, NULL, CASK_MSG_RELEASE, &frames), 0);
    ck_assert_uint_eq (batch.count, 0);
    ck_assert_uint_eq (frames.nframes, 0);

    //  Dropped records never go out; the next batch starts afresh
    cask_put_str8 (cask_batch_add (&batch), cask_str ("dropped"));
    cask_batch_reset (&batch);
    cask_put_str8 (cask_batch_add (&batch), cask_str ("d"));
    ck_assert_int_eq (cask_batch_send (&batch, pair.dealer, NULL, CASK_MSG_RELEASE, NULL), 0);

    cask_message_t in;
    cask_message_init (&in);
    const char *why = NULL;
    const uint8_t first [] = { 2, 0, 0, 0, 1, 'a', 2, 'b', 'c' };
    ck_assert_int_eq (cask_message_recv (&in, pair.router, true, 0, &why), CASK_RECV_OK);
    ck_assert_uint_eq (in.command, CASK_MSG_RELEASE);
    ck_assert_uint_eq (zmq_msg_size (&in.body), sizeof first);
    ck_assert_mem_eq (zmq_msg_data (&in.body), first, sizeof first);
    ck_assert_uint_eq (in.nframes, 1);
    const uint8_t second [] = { 1, 0, 0, 0, 1, 'd' };
    ck_assert_int_eq (cask_message_recv (&in, pair.router, true, 0, &why), CASK_RECV_OK);
    ck_assert_uint_eq (zmq_msg_size (&in.body), sizeof second);
    ck_assert_mem_eq (zmq_msg_data (&in.body), second, sizeof second);
    ck_assert_uint_eq (in.nframes, 0);

    cask_message_close (&in);
    cask_message_close (&frames);
    cask_batch_free (&batch);
    cask_test_pair_close (&pair);
}
END_TEST

START_TEST (test_send_recv_inproc)
{
    s_round_trip_over ("inproc");
}
END_TEST

START_TEST (test_send_recv_tcp)
{
    s_round_trip_over ("tcp");
}
END_TEST

static int s_big_freed;

static void
s_free_big (void *data, void *hint)
{
    (void) hint;
    free (data);
    s_big_freed++;
}

START_TEST (test_send_recv_big_bytes)
{
    //  10 MB of bytes in a task's arguments: over inproc the receiver's
    //  value is the sender's memory, never copied
    cask_test_pair_t pair;
    cask_test_pair_open (&pair, "inproc");
    size_t big = 10u << 20;
    uint8_t *data = (uint8_t *) malloc (big);
    memset (data, 0x3C, big);
    s_big_freed = 0;
    cask_value_t *args = cask_list (cask_int64 (1),
                                    cask_bytes_take (data, big, s_free_big, NULL), NULL);
    cask_buf_t body;
    cask_buf_init (&body);
    cask_message_t out;
    cask_message_init (&out);
    cask_put_u32 (&body, 1);
    s_put_task (&body, &out, "big", 1, NULL, 0, false, args);
    ck_assert_int_eq (cask_send (pair.dealer, NULL, CASK_MSG_SUBMIT, &body, &out), 0);
    ck_assert_int_eq (s_big_freed, 0);

    cask_message_t in;
    cask_message_init (&in);
    ck_assert_int_eq (cask_message_recv (&in, pair.router, true, 0, NULL), CASK_RECV_OK);
    ck_assert_uint_eq (in.nframes, 1);
    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&in.body), zmq_msg_size (&in.body));
    ck_assert_uint_eq (cask_get_u32 (&rd), 1);
    cask_task_t task;
    cask_task_get (&rd, &task, false);
    ck_assert (cask_rd_done (&rd));
    cask_rd_t args_rd;
    cask_rd_init (&args_rd, task.args.ptr, task.args.len);
    cask_value_t *value = cask_value_decode (&args_rd, &in, 0, task.nframes, NULL, 0, NULL);
    ck_assert (cask_rd_done (&args_rd));
    const void *received;
    size_t size;
    ck_assert_int_eq (cask_value_bytes (cask_value_item (value, 1), &received, &size), 0);
    ck_assert_ptr_eq (received, data);
    ck_assert_uint_eq (size, big);
    cask_message_close (&in);
    ck_assert_int_eq (s_big_freed, 0);
    cask_value_destroy (&value);
    ck_assert_int_eq (s_big_freed, 1);

    cask_message_close (&out);
    cask_buf_free (&body);
    cask_test_pair_close (&pair);
}
END_TEST

START_TEST (test_recv_bad_messages)
{
    cask_test_pair_t pair;
    cask_test_pair_open (&pair, "inproc");
    cask_message_t msg;
    cask_message_init (&msg);
    const char *why = NULL;

    const char *bad_sig [] = { "\x00\x5C\x01\x01", "", "frame" };
    const size_t bad_sig_sizes [] = { 4, 0, 5 };
    s_send_raw (pair.dealer, 3, bad_sig, bad_sig_sizes);
    ck_assert_int_eq (cask_message_recv (&msg, pair.router, true, 0, &why), CASK_RECV_BAD);
    ck_assert_str_eq (why, "not a cask message (bad signature)");
    ck_assert (msg.routed);
    ck_assert_uint_eq (msg.nframes, 0);

    //  The sender hears why
    ck_assert_int_eq (cask_send_error (pair.router, &msg, CASK_ERR_MALFORMED, why), 0);
    cask_message_t reply;
    cask_message_init (&reply);
    ck_assert_int_eq (cask_message_recv (&reply, pair.dealer, false, 0, NULL), CASK_RECV_OK);
    ck_assert_uint_eq (reply.command, CASK_MSG_ERROR);
    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&reply.body), zmq_msg_size (&reply.body));
    cask_error_t error;
    cask_error_get (&rd, &error);
    ck_assert (cask_rd_done (&rd));
    ck_assert_uint_eq (error.code, CASK_ERR_MALFORMED);
    ck_assert (cask_str_eq (error.message, "not a cask message (bad signature)"));
    cask_message_close (&reply);
    s_assert_in_sync (&pair, &msg);

    const char *short_header [] = { "\xCA\x5C" };
    const size_t short_sizes [] = { 2 };
    s_send_raw (pair.dealer, 1, short_header, short_sizes);
    ck_assert_int_eq (cask_message_recv (&msg, pair.router, true, 0, &why), CASK_RECV_BAD);
    ck_assert_str_eq (why, "short header");
    s_assert_in_sync (&pair, &msg);

    const char *long_header [] = { "\xCA\x5C\x01\x01\x00", "" };
    const size_t long_sizes [] = { 5, 0 };
    s_send_raw (pair.dealer, 2, long_header, long_sizes);
    ck_assert_int_eq (cask_message_recv (&msg, pair.router, true, 0, &why), CASK_RECV_BAD);
    ck_assert_str_eq (why, "header is not 4 bytes");
    s_assert_in_sync (&pair, &msg);

    const char *no_body [] = { "\xCA\x5C\x01\x06" };
    const size_t no_body_sizes [] = { 4 };
    s_send_raw (pair.dealer, 1, no_body, no_body_sizes);
    ck_assert_int_eq (cask_message_recv (&msg, pair.router, true, 0, &why), CASK_RECV_BAD);
    ck_assert_str_eq (why, "no body frame");
    s_assert_in_sync (&pair, &msg);

    //  On the dealer side, no routing frame is expected
    const char *dealer_side [] = { "\xCA\x5C\x01\x11", "body", "p1", "p2" };
    const size_t dealer_sizes [] = { 4, 4, 2, 2 };
    zmq_msg_t id;
    zmq_msg_init (&id);
    zmq_msg_copy (&id, &msg.routing);
    ck_assert_int_ge (zmq_msg_send (&id, pair.router, ZMQ_SNDMORE), 0);
    s_send_raw (pair.router, 4, dealer_side, dealer_sizes);
    ck_assert_int_eq (cask_message_recv (&msg, pair.dealer, false, 0, &why), CASK_RECV_OK);
    ck_assert_uint_eq (msg.command, CASK_MSG_WELCOME);
    ck_assert_uint_eq (msg.nframes, 2);
    ck_assert_mem_eq (zmq_msg_data (&msg.frames [1]), "p2", 2);

    //  Nothing waiting
    ck_assert_int_eq (cask_message_recv (&msg, pair.router, true, ZMQ_DONTWAIT, &why),
                      CASK_RECV_AGAIN);
    cask_message_close (&msg);
    cask_test_pair_close (&pair);
}
END_TEST

START_TEST (test_recv_newer_version)
{
    cask_test_pair_t pair;
    cask_test_pair_open (&pair, "inproc");
    cask_message_t msg;
    cask_message_init (&msg);
    const char *why = NULL;

    const char *newer [] = { "\xCA\x5C\x02\x03\x00\x00", "future body", "frame" };
    const size_t newer_sizes [] = { 6, 11, 5 };
    s_send_raw (pair.dealer, 3, newer, newer_sizes);
    ck_assert_int_eq (cask_message_recv (&msg, pair.router, true, 0, &why), CASK_RECV_OK);
    ck_assert_uint_eq (msg.version, 2);
    ck_assert_uint_eq (msg.command, CASK_MSG_SUBMIT);
    ck_assert (msg.routed);
    ck_assert_uint_eq (msg.nframes, 0);
    ck_assert_uint_eq (zmq_msg_size (&msg.body), 0);
    ck_assert_int_eq (cask_send_error (pair.router, &msg, CASK_ERR_VERSION,
                                       "protocol version 2 not supported, this peer speaks 1"), 0);
    cask_message_t reply;
    cask_message_init (&reply);
    ck_assert_int_eq (cask_message_recv (&reply, pair.dealer, false, 0, NULL), CASK_RECV_OK);
    ck_assert_uint_eq (reply.command, CASK_MSG_ERROR);
    cask_message_close (&reply);
    s_assert_in_sync (&pair, &msg);

    //  Only the first three bytes are fixed across versions
    const char *tiny [] = { "\xCA\x5C\x07" };
    const size_t tiny_sizes [] = { 3 };
    s_send_raw (pair.dealer, 1, tiny, tiny_sizes);
    ck_assert_int_eq (cask_message_recv (&msg, pair.router, true, 0, &why), CASK_RECV_OK);
    ck_assert_uint_eq (msg.version, 7);
    ck_assert_uint_eq (msg.command, 0);
    s_assert_in_sync (&pair, &msg);
    cask_message_close (&msg);
    cask_test_pair_close (&pair);
}
END_TEST

START_TEST (test_recv_limits)
{
    cask_test_pair_t pair;
    cask_test_pair_open (&pair, "inproc");
    cask_message_t msg;
    cask_message_init (&msg);
    const char *why = NULL;

    //  One frame over the limit: rejected, and every part drained
    const char header [] = "\xCA\x5C\x01\x03";
    zmq_send (pair.dealer, header, 4, ZMQ_SNDMORE);
    zmq_send (pair.dealer, "", 0, ZMQ_SNDMORE);
    for (int index = 0; index <= CASK_MAX_FRAMES; index++)
        zmq_send (pair.dealer, "f", 1, index < CASK_MAX_FRAMES ? ZMQ_SNDMORE : 0);
    ck_assert_int_eq (cask_message_recv (&msg, pair.router, true, 0, &why), CASK_RECV_BAD);
    ck_assert_str_eq (why, "too many payload frames");
    ck_assert_uint_eq (msg.nframes, 0);
    s_assert_in_sync (&pair, &msg);

    //  Exactly the limit is fine
    zmq_send (pair.dealer, header, 4, ZMQ_SNDMORE);
    zmq_send (pair.dealer, "", 0, ZMQ_SNDMORE);
    for (int index = 0; index < CASK_MAX_FRAMES; index++)
        zmq_send (pair.dealer, "f", 1, index + 1 < CASK_MAX_FRAMES ? ZMQ_SNDMORE : 0);
    ck_assert_int_eq (cask_message_recv (&msg, pair.router, true, 0, &why), CASK_RECV_OK);
    ck_assert_uint_eq (msg.nframes, CASK_MAX_FRAMES);

    //  A message cannot be built with more than the limit either
    ck_assert_int_eq (cask_message_add_frame (&msg, "f", 1), -1);

    //  A body over 64 MiB
    size_t huge = (size_t) CASK_MAX_BODY + 1;
    char *body = (char *) calloc (1, huge);
    zmq_send (pair.dealer, header, 4, ZMQ_SNDMORE);
    zmq_send (pair.dealer, body, huge, 0);
    ck_assert_int_eq (cask_message_recv (&msg, pair.router, true, 0, &why), CASK_RECV_BAD);
    ck_assert_str_eq (why, "body too large");
    s_assert_in_sync (&pair, &msg);

    //  ... which cask_send refuses to make
    cask_buf_t buf;
    cask_buf_init (&buf);
    cask_put_raw (&buf, body, huge);
    errno = 0;
    ck_assert_int_eq (cask_send (pair.dealer, NULL, CASK_MSG_SUBMIT, &buf, NULL), -1);
    ck_assert_int_eq (errno, EMSGSIZE);
    cask_buf_free (&buf);
    free (body);
    cask_message_close (&msg);
    cask_test_pair_close (&pair);
}
END_TEST

START_TEST (test_send_failures)
{
    cask_test_pair_t pair;
    cask_test_pair_open (&pair, "inproc");

    //  A failed buffer is refused, and the payload frames are still freed
    cask_buf_t body;
    cask_buf_init (&body);
    body.failed = true;
    cask_message_t out;
    cask_message_init (&out);
    cask_value_t *big = cask_bytes_take (malloc (1000), 1000, s_free_big, NULL);
    s_big_freed = 0;
    ck_assert_int_eq (cask_message_add_value_frame (&out, big), 0);
    cask_value_destroy (&big);
    ck_assert_int_eq (s_big_freed, 0);
    errno = 0;
    ck_assert_int_eq (cask_send (pair.dealer, NULL, CASK_MSG_SUBMIT, &body, &out), -1);
    ck_assert_int_eq (errno, ENOMEM);
    ck_assert_uint_eq (out.nframes, 0);
    ck_assert_int_eq (s_big_freed, 1);

    //  Only bytes values become value frames
    cask_value_t *number = cask_int64 (1);
    ck_assert_int_eq (cask_message_add_value_frame (&out, number), -1);
    cask_value_destroy (&number);

    //  A routed send to nobody on a mandatory router fails cleanly
    int mandatory = 1;
    zmq_setsockopt (pair.router, ZMQ_ROUTER_MANDATORY, &mandatory, sizeof mandatory);
    zmq_msg_t nobody;
    zmq_msg_init_size (&nobody, 5);
    memcpy (zmq_msg_data (&nobody), "\x00nope", 5);
    ck_assert_int_eq (cask_message_add_frame (&out, "x", 1), 0);
    ck_assert_int_eq (cask_send (pair.router, &nobody, CASK_MSG_TASK, NULL, &out), -1);
    ck_assert_int_eq (errno, EHOSTUNREACH);
    ck_assert_uint_eq (out.nframes, 0);
    zmq_msg_close (&nobody);

    cask_message_close (&out);
    cask_buf_free (&body);
    cask_test_pair_close (&pair);
}
END_TEST

START_TEST (test_recv_term)
{
    void *ctx = zmq_ctx_new ();
    void *dealer = zmq_socket (ctx, ZMQ_DEALER);
    int timeout = 10;
    zmq_setsockopt (dealer, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    cask_message_t msg;
    cask_message_init (&msg);
    ck_assert_int_eq (cask_message_recv (&msg, dealer, false, 0, NULL), CASK_RECV_AGAIN);
    zmq_ctx_shutdown (ctx);
    ck_assert_int_eq (cask_message_recv (&msg, dealer, false, 0, NULL), CASK_RECV_TERM);
    cask_message_close (&msg);
    zmq_close (dealer);
    zmq_ctx_term (ctx);
}
END_TEST

int
main (void)
{
    TCase *codec = tcase_create ("codec");
    tcase_add_test (codec, test_views);
    tcase_add_test (codec, test_primitives_layout);
    tcase_add_test (codec, test_buf_limits);
    tcase_add_test (codec, test_command_names);
    tcase_add_test (codec, test_value_round_trips);
    tcase_add_test (codec, test_value_tags);
    tcase_add_test (codec, test_value_frames_relative);
    tcase_add_test (codec, test_value_record_own_frames);
    tcase_add_test (codec, test_value_zero_copy);
    tcase_add_test (codec, test_value_encode_failures);
    tcase_add_test (codec, test_value_truncated);
    tcase_add_test (codec, test_value_mutated);
    tcase_add_test (codec, test_value_malformed);
    tcase_add_test (codec, test_value_depth);
    tcase_add_test (codec, test_records_hello_func_worker_library);
    tcase_add_test (codec, test_records_state_done_error);
    tcase_add_test (codec, test_records_task_batch);
    tcase_add_test (codec, test_records_task_hostile);
    tcase_add_test (codec, test_records_restrictions_steal_copy_retire);
    tcase_add_test (codec, test_resources_and_names_parse);

    TCase *wire = tcase_create ("wire");
    tcase_set_timeout (wire, 60);
    tcase_add_test (wire, test_send_recv_inproc);
    tcase_add_test (wire, test_batch_send);
    tcase_add_test (wire, test_send_recv_tcp);
    tcase_add_test (wire, test_send_recv_big_bytes);
    tcase_add_test (wire, test_recv_bad_messages);
    tcase_add_test (wire, test_recv_newer_version);
    tcase_add_test (wire, test_recv_limits);
    tcase_add_test (wire, test_send_failures);
    tcase_add_test (wire, test_recv_term);
    return cask_test_run ("proto", codec, wire, NULL);
}
