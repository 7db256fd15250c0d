/*  test_scale.c - many tasks, and data that moves: a graph of 10,000 tasks
    with the right total in a bounded time, and results that must travel
    from the worker that made them to the worker that needs them, shown by
    the workers' own counters and arriving intact (8 MB of bytes); and a
    worker that joins after a library was registered, which must receive it
    and take work at once.
*/
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cask_harness.h"
#include "cask_testutil.h"
#include "cask_testlib.h"

#define RESULT_TIMEOUT 90000
#define NINC 5000                   //  + NINC - 1 adds + 1 sum = 10,000 tasks
#define GRAPH_TIME_LIMIT_MS 60000   //  generous for 2 cores and sanitizers
#define BIG (8 << 20)               //  bytes moved between workers

static cask_harness_t *harness;
static cask_client_t *client;

static int64_t s_int (cask_future_t *f)
{
    return cask_harness_int (client, f, RESULT_TIMEOUT);
}

//  The library is registered while the cluster has no worker; the tasks
//  submitted then can only run on workers that join afterwards, so their
//  results prove each new worker received the library.
START_TEST (test_late_worker_gets_libraries)
{
    cask_harness_test_start (&harness, 0, 1, &client, cask_harness_tutorial_lib ());
    cask_future_t *early = cask_submit (client, "inc", cask_int64 (41), NULL);
    ck_assert_msg (early != NULL, "%s", cask_client_error (client));
    ck_assert_int_eq (cask_future_status (early), CASK_PENDING);
    ck_assert_int_eq (cask_harness_add_workers (harness, 2, 1, NULL), 0);
    ck_assert_int_eq (s_int (early), 42);
    cask_future_t *futures [8];
    int64_t inputs [8] = { 0, 1, 2, 3, 4, 5, 6, 7 };
    ck_assert_int_eq (cask_map (client, "inc", cask_list_of_int64 (inputs, 8), futures), 0);
    for (size_t i = 0; i < 8; i++) {
        ck_assert_int_eq (s_int (futures [i]), inputs [i] + 1);
        cask_future_destroy (&futures [i]);
    }
    for (size_t i = 0; i < 2; i++) {
        cJSON *report = cask_harness_worker_report (harness, i, 5000);
        ck_assert_ptr_nonnull (report);
        ck_assert_int_eq (cask_harness_json_int (report, "libraries", -1), 1);
        cJSON_Delete (report);
    }
    cask_future_destroy (&early);
}
END_TEST

START_TEST (test_ten_thousand_tasks)
{
    cask_harness_test_start (&harness, 2, 4, &client, cask_harness_tutorial_lib ());
    cask_future_t **xs = calloc (NINC, sizeof *xs);
    cask_future_t **ys = calloc (NINC - 1, sizeof *ys);
    ck_assert (xs && ys);
    int64_t started = cask_harness_now_ms ();
    cask_future_t *total = cask_harness_tutorial_graph (client, NINC, xs, ys);
    int64_t submitted = cask_harness_now_ms ();
    //  Sum of 2i + 3 for i < NINC - 1.
    const int64_t n = NINC - 1;
    ck_assert_int_eq (s_int (total), n * (n - 1) + 3 * n);
    int64_t elapsed = cask_harness_now_ms () - started;
    printf ("scale: 10000 tasks submitted in %lld ms, total in %lld ms (%.0f tasks/s)\n",
            (long long) (submitted - started), (long long) elapsed,
            elapsed ? 10000.0 * 1000 / (double) elapsed : 0.0);
    ck_assert_msg (elapsed < GRAPH_TIME_LIMIT_MS, "10,000 tasks took %lld ms",
                   (long long) elapsed);
    ck_assert_int_eq (s_int (ys [NINC - 2]), 2 * (NINC - 2) + 3);

    cJSON *report = cask_harness_broker_report (harness, 5000);
    ck_assert_ptr_nonnull (report);
    ck_assert_int_ge (cask_harness_json_int (report, "tasks.memory", -1), 10000);
    int64_t done = 0;
    const cJSON *worker;
    cJSON_ArrayForEach (worker, cJSON_GetObjectItemCaseSensitive (report, "workers"))
        done += cask_harness_json_int (worker, "tasks_done", 0);
    ck_assert_int_ge (done, 10000);
    cJSON_Delete (report);

    cask_future_destroy (&total);
    for (size_t i = 0; i < NINC; i++)
        cask_future_destroy (&xs [i]);
    for (size_t i = 0; i < NINC - 1; i++)
        cask_future_destroy (&ys [i]);
    free (xs);
    free (ys);
    cask_harness_test_stop (&harness, &client);
}
END_TEST

static uint64_t s_expected_digest (const int64_t *seeds, size_t n)
{
    uint8_t *data = malloc (BIG);
    ck_assert_ptr_nonnull (data);
    uint64_t hash = CASK_TESTLIB_DIGEST_START;
    for (size_t i = 0; i < n; i++) {
        cask_testlib_fill (data, BIG, (uint64_t) seeds [i]);
        hash = cask_testlib_digest (hash, data, BIG);
    }
    free (data);
    return hash;
}

//  Checks value is BIG bytes of seed's pattern.
static void s_assert_pattern (const cask_value_t *value, int64_t seed)
{
    ck_assert_ptr_nonnull (value);
    const void *data;
    size_t size;
    ck_assert_int_eq (cask_value_bytes (value, &data, &size), 0);
    ck_assert_uint_eq (size, BIG);
    uint8_t *expect = malloc (BIG);
    ck_assert_ptr_nonnull (expect);
    cask_testlib_fill (expect, BIG, (uint64_t) seed);
    ck_assert_msg (memcmp (data, expect, BIG) == 0, "the bytes of seed %lld differ",
                   (long long) seed);
    free (expect);
}

//  Two workers of one thread each make a big result each at the same
//  time; a task that needs both must get one of them from the other
//  worker.
START_TEST (test_results_move_between_workers)
{
    cask_harness_test_start (&harness, 2, 1, &client, cask_harness_test_lib ());
    const int64_t seeds [2] = { 11, 22 };
    cask_future_t *a = cask_submit (client, "make_bytes", cask_int64 (BIG),
                                    cask_int64 (seeds [0]), cask_int64 (400), NULL);
    cask_future_t *b = cask_submit (client, "make_bytes", cask_int64 (BIG),
                                    cask_int64 (seeds [1]), cask_int64 (400), NULL);
    ck_assert (a && b);
    cask_future_t *both = cask_submit (client, "digest", cask_future_arg (a),
                                       cask_future_arg (b), NULL);
    ck_assert_ptr_nonnull (both);
    ck_assert_msg ((uint64_t) s_int (both) == s_expected_digest (seeds, 2),
                   "the digest of the two results is wrong: bytes were damaged on the way");

    //  One worker fetched a result from the other, which served it.
    cJSON *reports [2];
    for (size_t i = 0; i < 2; i++) {
        reports [i] = cask_harness_worker_report (harness, i, 5000);
        ck_assert_msg (reports [i] != NULL, "no REPORT from worker w%zu", i);
    }
    char *text0 = cJSON_PrintUnformatted (reports [0]);
    char *text1 = cJSON_PrintUnformatted (reports [1]);
    size_t consumer = cask_harness_json_int (reports [0], "fetches_from_peers", 0) > 0 ? 0 : 1;
    size_t holder = 1 - consumer;
    ck_assert_msg (cask_harness_json_int (reports [consumer], "fetches_from_peers", 0) >= 1,
                   "no worker fetched from a peer (were both results made on one worker?)\n"
                   "w0: %s\nw1: %s", text0, text1);
    ck_assert_msg (cask_harness_json_int (reports [consumer], "bytes_fetched_from_peers", 0) >= BIG,
                   "w%zu fetched less than %d bytes\nw0: %s\nw1: %s", consumer, BIG, text0, text1);
    ck_assert_msg (cask_harness_json_int (reports [holder], "gets_served", 0) >= 1,
                   "w%zu served no GET\nw0: %s\nw1: %s", holder, text0, text1);
    ck_assert_msg (cask_harness_json_int (reports [holder], "bytes_served", 0) >= BIG,
                   "w%zu served less than %d bytes\nw0: %s\nw1: %s", holder, BIG, text0, text1);
    ck_assert_int_ge (cask_harness_json_int (reports [0], "tasks_run", 0)
                      + cask_harness_json_int (reports [1], "tasks_run", 0), 3);
    free (text0);
    free (text1);
    cJSON_Delete (reports [0]);
    cJSON_Delete (reports [1]);

    //  And the client gets both, intact, straight from the workers.
    s_assert_pattern (cask_future_result (a, RESULT_TIMEOUT), seeds [0]);
    s_assert_pattern (cask_future_result (b, RESULT_TIMEOUT), seeds [1]);
    cask_future_destroy (&a);
    cask_future_destroy (&b);
    cask_future_destroy (&both);
    cask_harness_test_stop (&harness, &client);
}
END_TEST

//  Eight big results made across two workers, then one task that needs
//  them all: whichever worker runs it fetches those the other one made.
START_TEST (test_tree_of_big_results)
{
    cask_harness_test_start (&harness, 2, 2, &client, cask_harness_test_lib ());
    enum { N = 8 };
    int64_t seeds [N];
    cask_future_t *parts [N];
    for (size_t i = 0; i < N; i++) {
        seeds [i] = 100 + (int64_t) i;
        parts [i] = cask_submit (client, "make_bytes", cask_int64 (BIG),
                                 cask_int64 (seeds [i]), cask_int64 (100), NULL);
        ck_assert_ptr_nonnull (parts [i]);
    }
    cask_value_t *args [N];
    for (size_t i = 0; i < N; i++)
        args [i] = cask_future_arg (parts [i]);
    cask_future_t *all = cask_submitv (client, "digest", args, N);
    ck_assert_msg (all != NULL, "%s", cask_client_error (client));
    ck_assert_msg ((uint64_t) s_int (all) == s_expected_digest (seeds, N),
                   "the digest of %d results is wrong", N);
    int64_t fetched = 0;
    for (size_t i = 0; i < 2; i++) {
        cJSON *report = cask_harness_worker_report (harness, i, 5000);
        ck_assert_ptr_nonnull (report);
        fetched += cask_harness_json_int (report, "bytes_fetched_from_peers", 0);
        cJSON_Delete (report);
    }
    //  With the parts spread over both workers, the digest needed some
    //  of them from the other one.
    ck_assert_int_ge (fetched, BIG);
    for (size_t i = 0; i < N; i++)
        cask_future_destroy (&parts [i]);
    cask_future_destroy (&all);
    cask_harness_test_stop (&harness, &client);
}
END_TEST

//  Cluster info, the client's view of the broker's REPORT: counts and
//  totals that are the sums of the workers' figures, the endpoints the
//  harness knows, bytes cached that rise once a bytes result is made, and
//  a Dask-like summary.
START_TEST (test_cluster_info)
{
    cask_harness_test_start (&harness, 2, 2, &client, cask_harness_test_lib ());
    cask_cluster_info_t *info = cask_client_info (client, 5000);
    ck_assert_msg (info != NULL, "%s", cask_client_error (client));
    ck_assert_str_eq (info->address, cask_harness_broker (harness));
    ck_assert_uint_eq (info->nworkers, 2);
    ck_assert_uint_eq (info->nthreads, 4);
    uint64_t memory = 0, cached_before = 0;
    for (size_t i = 0; i < info->nworkers; i++) {
        const cask_cluster_worker_t *worker = &info->workers [i];
        ck_assert_uint_eq (worker->nthreads, 2);
        ck_assert_uint_gt (worker->memory_limit, 0);
        ck_assert_uint_eq (worker->inflight, 0);
        memory += worker->memory_limit;
        cached_before += worker->bytes_cached;
        //  Named w0 and w1 by the harness, at the endpoints it knows
        ck_assert_msg (strcmp (worker->name, "w0") == 0 || strcmp (worker->name, "w1") == 0,
                       "unexpected worker name '%s'", worker->name);
        char endpoint [256];
        ck_assert_int_eq (cask_harness_worker_endpoint (harness, (size_t) (worker->name [1] - '0'),
                                                        endpoint, sizeof endpoint), 0);
        ck_assert_str_eq (worker->endpoint, endpoint);
    }
    ck_assert_str_ne (info->workers [0].name, info->workers [1].name);
    ck_assert_uint_eq (info->memory, memory);

    char text [1024];
    int length = cask_cluster_info_print (info, text, sizeof text);
    ck_assert_int_gt (length, 0);
    ck_assert_uint_eq (strlen (text), (size_t) length);
    ck_assert_msg (strstr (text, cask_harness_broker (harness)) != NULL, "%s", text);
    ck_assert_msg (strstr (text, "workers=2") != NULL, "%s", text);
    ck_assert_msg (strstr (text, "threads=4") != NULL, "%s", text);
    //  The harness's broker serves its dashboard on a port of its own
    ck_assert_msg (strncmp (info->dashboard, "http://127.0.0.1:", 17) == 0, "%s", info->dashboard);
    ck_assert_msg (strstr (text, info->dashboard) != NULL, "%s", text);
    ck_assert_msg (strstr (text, info->workers [0].endpoint) != NULL, "%s", text);
    ck_assert_msg (strstr (text, info->workers [1].endpoint) != NULL, "%s", text);
    //  Truncated like snprintf: the same length wanted, a NUL at the end
    char small [16];
    ck_assert_int_eq (cask_cluster_info_print (info, small, sizeof small), length);
    ck_assert_uint_eq (strlen (small), sizeof small - 1);
    cask_cluster_info_destroy (&info);
    cask_cluster_info_destroy (&info);
    ck_assert_ptr_null (info);

    //  A result of 1 MiB made (and not fetched) is cached on its worker
    cask_future_t *bytes = cask_submit (client, "make_bytes", cask_int64 (1 << 20),
                                        cask_int64 (5), NULL);
    ck_assert_ptr_nonnull (bytes);
    ck_assert_int_eq (cask_wait (client, &bytes, 1, CASK_WAIT_ALL, RESULT_TIMEOUT), 1);
    ck_assert_int_eq (cask_future_status (bytes), CASK_FINISHED);
    info = cask_client_info (client, 5000);
    ck_assert_msg (info != NULL, "%s", cask_client_error (client));
    uint64_t cached_after = 0, done = 0;
    for (size_t i = 0; i < info->nworkers; i++) {
        cached_after += info->workers [i].bytes_cached;
        done += info->workers [i].tasks_done;
    }
    ck_assert_uint_ge (cached_after, cached_before + (1 << 20));
    ck_assert_uint_ge (done, 1);
    length = cask_cluster_info_print (info, text, sizeof text);
    ck_assert_msg (strstr (text, "cached=1.00 MiB") != NULL, "%s", text);
    printf ("%s", text);
    cask_cluster_info_destroy (&info);
    cask_future_destroy (&bytes);
    cask_harness_test_stop (&harness, &client);
}
END_TEST

//  A worker with a 64 MB memory limit holds 12 results of 8 MB: past 60%
//  of the limit the oldest go to disk, and all come back intact.
START_TEST (test_results_spill_to_disk)
{
    const char *limit [] = { "--memory-limit", "64M", NULL };
    cask_harness_test_start_with (&harness, 1, 1, limit, &client, cask_harness_test_lib ());
    enum { N = 12 };
    cask_future_t *big [N];
    for (int i = 0; i < N; i++) {
        big [i] = cask_submit (client, "make_bytes", cask_int64 (BIG), cask_int64 (i), NULL);
        ck_assert_msg (big [i] != NULL, "%s", cask_client_error (client));
    }
    ck_assert_int_eq (cask_wait (client, big, N, CASK_WAIT_ALL, RESULT_TIMEOUT), N);
    cJSON *report = cask_harness_worker_report (harness, 0, 5000);
    ck_assert_ptr_nonnull (report);
    int64_t in_memory = cask_harness_json_int (report, "bytes_in_memory", -1);
    int64_t on_disk = cask_harness_json_int (report, "values_on_disk", -1);
    cJSON_Delete (report);
    printf ("scale: %d results of 8 MB: %lld bytes in memory, %lld on disk\n", N,
            (long long) in_memory, (long long) on_disk);
    ck_assert_int_le (in_memory, (int64_t) (64 << 20) * 6 / 10);
    ck_assert_int_ge (on_disk, N - 4);
    for (int i = 0; i < N; i++)
        s_assert_pattern (cask_future_result (big [i], RESULT_TIMEOUT), i);
    report = cask_harness_worker_report (harness, 0, 5000);
    ck_assert_int_ge (cask_harness_json_int (report, "unspills", -1), N - 4);
    ck_assert_int_eq (cask_harness_json_int (report, "spill_errors", -1), 0);
    cJSON_Delete (report);
    cask_futures_destroy (big, N);
    cask_harness_test_stop (&harness, &client);
}
END_TEST

int main (void)
{
    TCase *tc = tcase_create ("scale");
    tcase_set_timeout (tc, 200);
    tcase_add_test (tc, test_late_worker_gets_libraries);
    tcase_add_test (tc, test_ten_thousand_tasks);
    tcase_add_test (tc, test_results_move_between_workers);
    tcase_add_test (tc, test_tree_of_big_results);
    tcase_add_test (tc, test_cluster_info);
    tcase_add_test (tc, test_results_spill_to_disk);
    return cask_test_run ("scale", tc, NULL);
}
