/*  test_stream.c - the broker's task stream ring (broker/cask_stream.c):
    records keep what the worker's DONE said, the ring keeps the newest,
    "since" and "limit" pick the right ones, long keys survive whole.
*/
#include <check.h>
#include <stdio.h>
#include <string.h>
#include "cask_stream.h"
#include "cask_testutil.h"

typedef struct {
    size_t count;
    char keys [16][300];
    cask_stream_rec_t recs [16];
} s_seen_t;

static void
s_collect (void *arg, const cask_stream_rec_t *rec)
{
    s_seen_t *seen = (s_seen_t *) arg;
    if (seen->count < 16) {
        cask_str_copy (rec->key, seen->keys [seen->count], sizeof seen->keys [0]);
        seen->recs [seen->count++] = *rec;
    }
}

//  Adds task "k<i>" that ran from i seconds for 1 ms.
static void
s_add (cask_stream_t *stream, int i)
{
    char key [16];
    snprintf (key, sizeof key, "k%d", i);
    cask_done_t done = { .key = cask_str (key), .ok = 1, .nbytes = 8, .duration_us = 1000,
                         .start_us = (uint64_t) i * 1000000, .thread = (uint16_t) (i % 3) };
    cask_stream_add (stream, 7, 3, &done, 0);
}

START_TEST (test_record_fields)
{
    cask_stream_t *stream = cask_stream_new (4);
    ck_assert_ptr_nonnull (stream);
    cask_done_t done = { .key = cask_str ("inc-1"), .ok = 1, .nbytes = 8, .duration_us = 250,
                         .start_us = 5000000, .fetch_start_us = 4990000, .fetch_us = 4000,
                         .thread = 2 };
    cask_stream_add (stream, 9, 1, &done, 123);
    //  A copy: no run, a fetch; and a failure before anything ran
    cask_done_t copy = { .key = cask_str ("inc-2"), .ok = 1, .fetch_start_us = 6000000,
                         .fetch_us = 500 };
    cask_stream_add (stream, 9, 0, &copy, 123);
    cask_done_t failed = { .key = cask_str ("inc-3"), .message = cask_str ("no such peer") };
    cask_stream_add (stream, 9, 1, &failed, 7000000);
    s_seen_t seen = { 0 };
    ck_assert_uint_eq (cask_stream_since (stream, 0, 0, s_collect, &seen), 3);
    ck_assert_str_eq (seen.keys [0], "inc-1");
    ck_assert_uint_eq (seen.recs [0].worker, 9);
    ck_assert_uint_eq (seen.recs [0].fn, 1);
    ck_assert_uint_eq (seen.recs [0].thread, 2);
    ck_assert (seen.recs [0].ok);
    ck_assert_uint_eq (seen.recs [0].start_us, 5000000);
    ck_assert_uint_eq (seen.recs [0].stop_us, 5000250);
    ck_assert_uint_eq (seen.recs [0].fetch_start_us, 4990000);
    ck_assert_uint_eq (seen.recs [0].fetch_stop_us, 4994000);
    ck_assert_uint_eq (seen.recs [1].start_us, 6000500);
    ck_assert_uint_eq (seen.recs [1].stop_us, 6000500);
    ck_assert (!seen.recs [2].ok);
    ck_assert_uint_eq (seen.recs [2].start_us, 7000000);
    ck_assert_uint_eq (seen.recs [2].fetch_start_us, 0);
    cask_stream_destroy (&stream);
    cask_stream_destroy (&stream);
}
END_TEST

START_TEST (test_ring_since_and_limit)
{
    cask_stream_t *stream = cask_stream_new (5);
    for (int i = 1; i <= 12; i++)
        s_add (stream, i);
    ck_assert_uint_eq (cask_stream_total (stream), 12);
    //  The ring keeps the newest 5: k8..k12, oldest first
    s_seen_t seen = { 0 };
    ck_assert_uint_eq (cask_stream_since (stream, 0, 0, s_collect, &seen), 5);
    ck_assert_str_eq (seen.keys [0], "k8");
    ck_assert_str_eq (seen.keys [4], "k12");
    //  since: stopped after 10.0005 s, so k10 (stops at 10.001 s) on
    memset (&seen, 0, sizeof seen);
    ck_assert_uint_eq (cask_stream_since (stream, 10000500, 0, s_collect, &seen), 3);
    ck_assert_str_eq (seen.keys [0], "k10");
    //  limit keeps the newest
    memset (&seen, 0, sizeof seen);
    ck_assert_uint_eq (cask_stream_since (stream, 0, 2, s_collect, &seen), 2);
    ck_assert_str_eq (seen.keys [0], "k11");
    ck_assert_str_eq (seen.keys [1], "k12");
    memset (&seen, 0, sizeof seen);
    ck_assert_uint_eq (cask_stream_since (stream, 12001000, 0, s_collect, &seen), 0);
    cask_stream_clear (stream);
    ck_assert_uint_eq (cask_stream_since (stream, 0, 0, s_collect, &seen), 0);
    cask_stream_destroy (&stream);
}
END_TEST

START_TEST (test_long_keys_kept_whole)
{
    cask_stream_t *stream = cask_stream_new (2);
    char key [CASK_MAX_KEY + 1];
    memset (key, 'x', CASK_MAX_KEY);
    key [CASK_MAX_KEY] = 0;
    cask_done_t done = { .key = cask_str (key), .ok = 1, .start_us = 1 };
    //  Three times round a ring of two: the heap copies are freed as reused
    for (int i = 0; i < 3; i++)
        cask_stream_add (stream, 1, 1, &done, 0);
    s_seen_t seen = { 0 };
    ck_assert_uint_eq (cask_stream_since (stream, 0, 0, s_collect, &seen), 2);
    ck_assert_str_eq (seen.keys [1], key);
    cask_stream_destroy (&stream);
}
END_TEST

int
main (void)
{
    TCase *tc = tcase_create ("stream");
    tcase_add_test (tc, test_record_fields);
    tcase_add_test (tc, test_ring_since_and_limit);
    tcase_add_test (tc, test_long_keys_kept_whole);
    return cask_test_run ("stream", tc, NULL);
}
