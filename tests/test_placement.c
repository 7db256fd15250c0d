/*  test_placement.c - where tasks run, on real processes: a worker that
    joins while slow work is queued takes its share at once; an idle worker
    steals a task queued behind a long one on a busy worker; scaling down
    while tasks run retires workers gracefully (their results move to the
    worker that stays, nothing runs twice, no future is lost, the retired
    processes exit cleanly); restricted tasks run only on the named
    workers or where the resources they need are free, and a task no
    worker can run fails at once with a clear message; the task stream
    records what ran where and when, and the transfers before.
*/
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cask_harness.h"
#include "cask_testutil.h"

#define RESULT_TIMEOUT 60000

static cask_harness_t *harness;
static cask_client_t *client;

//  nap(ms, x) with options (opts may be NULL).
static cask_future_t *
s_nap (int64_t ms, int64_t x, const cask_submit_opts_t *opts)
{
    cask_value_t *args [] = { cask_int64 (ms), cask_int64 (x) };
    cask_future_t *future = cask_submit_opts (client, "nap", opts, args, 2);
    ck_assert_msg (future != NULL, "%s", cask_client_error (client));
    return future;
}

static int64_t
s_int (cask_future_t *future)
{
    return cask_harness_int (client, future, RESULT_TIMEOUT);
}

//  A figure of worker index's own REPORT (-1 when missing).
static int64_t
s_worker_figure (size_t index, const char *path)
{
    cJSON *report = cask_harness_worker_report (harness, index, 5000);
    ck_assert_ptr_nonnull (report);
    int64_t figure = cask_harness_json_int (report, path, -1);
    cJSON_Delete (report);
    return figure;
}

static size_t
s_count_lines (const char *path)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return 0;
    size_t lines = 0;
    for (int c; (c = fgetc (file)) != EOF; )
        lines += c == '\n';
    fclose (file);
    return lines;
}

//  Slow tasks wait in the broker, not on the busy worker: a worker that
//  joins later takes its share of them at once.
START_TEST (test_joining_worker_takes_queued_work)
{
    cask_harness_test_start (&harness, 1, 1, &client, cask_harness_test_lib ());
    enum { N = 12 };
    cask_future_t *naps [N];
    for (int i = 0; i < N; i++)
        naps [i] = s_nap (150, i, NULL);
    ck_assert_int_eq (cask_harness_add_workers (harness, 1, 1, NULL), 0);
    ck_assert_int_eq (cask_harness_wait_workers (harness, 2, 10000), 0);
    ck_assert_int_eq (cask_gather (client, naps, N, RESULT_TIMEOUT), 0);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq (s_int (naps [i]), i);
    int64_t late = s_worker_figure (1, "tasks_run");
    ck_assert_msg (late >= N / 3, "the worker that joined ran %lld of %d tasks",
                   (long long) late, N);
    cask_futures_destroy (naps, N);
    cask_harness_test_stop (&harness, &client);
}
END_TEST

//  The broker believes nap takes a millisecond (it has seen it), so it
//  queues a second nap behind a long one on the only worker; a worker that
//  joins then steals it and runs it long before the first one ends.
START_TEST (test_idle_worker_steals_queued_task)
{
    cask_harness_test_start (&harness, 1, 1, &client, cask_harness_test_lib ());
    for (int i = 0; i < 5; i++) {
        cask_future_t *warm = s_nap (1, 100 + i, NULL);
        ck_assert_int_eq (s_int (warm), 100 + i);
        cask_future_destroy (&warm);
    }
    cask_future_t *blocker = s_nap (3000, 1, NULL);
    cask_future_t *queued = s_nap (1, 2, NULL);
    ck_assert_int_eq (cask_wait (client, &queued, 1, CASK_WAIT_ALL, 300), 0);
    ck_assert_int_eq (cask_harness_add_workers (harness, 1, 1, NULL), 0);
    int64_t start = cask_harness_now_ms ();
    ck_assert_int_eq (cask_harness_int (client, queued, 2500), 2);
    int64_t waited = cask_harness_now_ms () - start;
    ck_assert_int_eq (cask_future_status (blocker), CASK_PENDING);
    ck_assert_int_eq (s_worker_figure (0, "tasks_stolen"), 1);
    ck_assert_int_eq (s_worker_figure (1, "tasks_run"), 1);
    fprintf (stderr, "test_idle_worker_steals_queued_task: stolen task done %lld ms after the thief was started\n",
             (long long) waited);
    ck_assert_int_eq (s_int (blocker), 1);
    cask_future_destroy (&blocker);
    cask_future_destroy (&queued);
    cask_harness_test_stop (&harness, &client);
}
END_TEST

//  Scaling down while tasks run: the retired workers finish or give back
//  their tasks and hand their results to the worker that stays.
START_TEST (test_scale_down_loses_nothing)
{
    cask_harness_test_start (&harness, 3, 1, &client, cask_harness_test_lib ());
    char trace [512];
    snprintf (trace, sizeof trace, "%s/scale-down.trace", cask_harness_dir (harness));
    enum { HELD = 12, RUNNING = 6 };
    cask_future_t *futures [HELD + RUNNING];
    for (int i = 0; i < HELD; i++) {
        cask_value_t *args [] = { cask_string (trace), cask_int64 (i) };
        futures [i] = cask_submit_opts (client, "append_line", NULL, args, 2);
        ck_assert_ptr_nonnull (futures [i]);
    }
    ck_assert_int_eq (cask_wait (client, futures, HELD, CASK_WAIT_ALL, RESULT_TIMEOUT), HELD);
    for (int i = 0; i < RUNNING; i++)
        futures [HELD + i] = s_nap (300, 1000 + i, NULL);

    ck_assert_msg (cask_client_scale (client, 1, RESULT_TIMEOUT) == 0, "%s",
                   cask_client_error (client));
    ck_assert_uint_eq (cask_client_nworkers (client), 1);
    ck_assert_msg (cask_gather (client, futures, HELD + RUNNING, RESULT_TIMEOUT) == 0, "%s",
                   cask_client_error (client));
    for (int i = 0; i < HELD; i++)
        ck_assert_int_eq (s_int (futures [i]), i);
    for (int i = 0; i < RUNNING; i++)
        ck_assert_int_eq (s_int (futures [HELD + i]), 1000 + i);
    ck_assert_uint_eq (s_count_lines (trace), HELD);        //  nothing ran twice

    cJSON *report = cask_harness_broker_report (harness, 5000);
    ck_assert_ptr_nonnull (report);
    cJSON *workers = cJSON_GetObjectItem (report, "workers");
    ck_assert_int_eq (cJSON_GetArraySize (workers), 1);
    const char *name = cJSON_GetStringValue (cJSON_GetObjectItem (cJSON_GetArrayItem (workers, 0),
                                                                  "name"));
    size_t stays = (size_t) atoi (name + 1);                //  "w<index>"
    cJSON_Delete (report);
    ck_assert_int_eq (s_worker_figure (stays, "results_held"), HELD + RUNNING);
    for (size_t i = 0; i < 3; i++)
        if (i != stays) {
            for (int tries = 0; tries < 100 && cask_harness_worker_alive (harness, i); tries++)
                usleep (50000);
            ck_assert_msg (!cask_harness_worker_alive (harness, i), "retired worker %zu still runs", i);
        }
    //  Scaling up is for a cluster the client started itself
    ck_assert_int_eq (cask_client_scale (client, 3, 1000), -1);
    ck_assert_ptr_nonnull (strstr (cask_client_error (client), "cask-cluster add"));
    cask_futures_destroy (futures, HELD + RUNNING);
    cask_harness_test_stop (&harness, &client);
}
END_TEST

//  A GPU=2 worker runs at most two GPU=1 tasks at a time, and only it runs
//  them; a task for a named worker runs there; an impossible one fails.
START_TEST (test_restrictions_and_resources)
{
    harness = cask_harness_new ();
    ck_assert_ptr_nonnull (harness);
    const char *gpus [] = { "--resources", "GPU=2", NULL };
    ck_assert_int_eq (cask_harness_add_workers (harness, 1, 4, gpus), 0);
    ck_assert_int_eq (cask_harness_add_workers (harness, 1, 4, NULL), 0);
    ck_assert_int_eq (cask_harness_wait_workers (harness, 2, 10000), 0);
    client = cask_harness_client (harness, cask_harness_test_lib ());
    ck_assert_ptr_nonnull (client);

    enum { N = 4, NAP = 300 };
    cask_submit_opts_t gpu = CASK_SUBMIT_DEFAULT;
    gpu.resources = "GPU=1";
    cask_future_t *naps [N];
    int64_t start = cask_harness_now_ms ();
    for (int i = 0; i < N; i++)
        naps [i] = s_nap (NAP, i, &gpu);
    ck_assert_int_eq (cask_gather (client, naps, N, RESULT_TIMEOUT), 0);
    int64_t took = cask_harness_now_ms () - start;
    ck_assert_msg (took >= 2 * NAP, "4 GPU=1 tasks of %d ms on GPU=2 took %lld ms", NAP,
                   (long long) took);
    ck_assert_int_eq (s_worker_figure (0, "tasks_run"), N);
    ck_assert_int_eq (s_worker_figure (1, "tasks_run"), 0);

    cask_submit_opts_t named = CASK_SUBMIT_DEFAULT;
    named.workers = "w1";
    cask_future_t *on_w1 = s_nap (1, 7, &named);
    ck_assert_int_eq (s_int (on_w1), 7);
    ck_assert_int_eq (s_worker_figure (1, "tasks_run"), 1);

    cask_submit_opts_t impossible = CASK_SUBMIT_DEFAULT;
    impossible.resources = "TPU=1";
    cask_future_t *tpu = s_nap (1, 8, &impossible);
    ck_assert_ptr_null (cask_future_result (tpu, RESULT_TIMEOUT));
    ck_assert_int_eq (cask_future_status (tpu), CASK_ERROR);
    ck_assert_msg (strstr (cask_future_error (tpu), "no worker can run it")
                   && strstr (cask_future_error (tpu), "TPU=1"), "%s", cask_future_error (tpu));
    impossible = (cask_submit_opts_t) CASK_SUBMIT_DEFAULT;
    impossible.workers = "nobody";
    cask_future_t *nobody = s_nap (1, 9, &impossible);
    ck_assert_ptr_null (cask_future_result (nobody, RESULT_TIMEOUT));
    ck_assert_msg (strstr (cask_future_error (nobody), "worker nobody"), "%s",
                   cask_future_error (nobody));
    //  A malformed request is refused before anything is sent
    impossible = (cask_submit_opts_t) CASK_SUBMIT_DEFAULT;
    impossible.resources = "GPU=-1";
    cask_value_t *args [] = { cask_int64 (1), cask_int64 (1) };
    ck_assert_ptr_null (cask_submit_opts (client, "nap", &impossible, args, 2));
    ck_assert_ptr_nonnull (strstr (cask_client_error (client), "GPU"));

    cask_futures_destroy (naps, N);
    cask_future_t *rest [] = { on_w1, tpu, nobody };
    cask_futures_destroy (rest, 3);
    cask_harness_test_stop (&harness, &client);
}
END_TEST

//  The record of one function's progress in the broker's status view.
static const cJSON *
s_progress_of (const cJSON *report, const char *function)
{
    const cJSON *item;
    cJSON_ArrayForEach (item, cJSON_GetObjectItemCaseSensitive (report, "progress"))
        if (strcmp (cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (item, "function")),
                    function) == 0)
            return item;
    return NULL;
}

//  The task stream says what ran where and when: a task on w0, one on w1
//  that fetched the first's result from w0 first, and one that failed.
//  The broker's progress counts them by function.
START_TEST (test_task_stream_records_where_and_when)
{
    cask_harness_test_start (&harness, 2, 1, &client, cask_harness_test_lib ());
    double since = cask_time ();
    cask_submit_opts_t on_w0 = CASK_SUBMIT_DEFAULT, on_w1 = CASK_SUBMIT_DEFAULT;
    on_w0.workers = "w0";
    on_w1.workers = "w1";
    cask_future_t *first = s_nap (30, 5, &on_w0);
    cask_value_t *args [] = { cask_int64 (20), cask_future_arg (first) };
    cask_future_t *second = cask_submit_opts (client, "nap", &on_w1, args, 2);
    ck_assert_ptr_nonnull (second);
    ck_assert_int_eq (s_int (second), 5);
    cask_value_t *bad [] = { cask_string ("soon"), cask_int64 (1) };
    cask_future_t *failed = cask_submit_opts (client, "nap", NULL, bad, 2);
    ck_assert_int_eq (cask_wait (client, &failed, 1, CASK_WAIT_ALL, RESULT_TIMEOUT), 1);
    ck_assert_int_eq (cask_future_status (failed), CASK_ERROR);

    cask_task_stream_t *stream = cask_client_task_stream (client, since, 5000);
    ck_assert_msg (stream != NULL, "%s", cask_client_error (client));
    ck_assert_uint_eq (cask_task_stream_size (stream), 3);
    const cask_task_record_t *a = cask_task_stream_get (stream, 0);
    const cask_task_record_t *b = cask_task_stream_get (stream, 1);
    const cask_task_record_t *c = cask_task_stream_get (stream, 2);
    ck_assert_ptr_null (cask_task_stream_get (stream, 3));
    ck_assert_str_eq (a->key, cask_future_key (first));
    ck_assert_str_eq (b->key, cask_future_key (second));
    ck_assert_str_eq (c->key, cask_future_key (failed));
    ck_assert_str_eq (a->function, "nap");
    ck_assert_str_eq (a->worker_name, "w0");
    ck_assert_str_eq (b->worker_name, "w1");
    ck_assert (a->ok && b->ok && !c->ok);
    ck_assert_uint_eq (a->thread, 0);
    ck_assert_uint_eq (a->nbytes, 8);
    //  Same host, so one clock: the nap of 30 ms lies inside the wait
    ck_assert (a->start >= since && a->stop - a->start >= 0.029);
    ck_assert (b->stop - b->start >= 0.019);
    ck_assert (a->transfer_start == 0 && a->transfer_stop == 0);
    ck_assert_msg (b->transfer_start >= a->stop && b->transfer_start <= b->transfer_stop
                   && b->transfer_stop <= b->start,
                   "a stops at %.6f, b fetches %.6f-%.6f, runs from %.6f", a->stop,
                   b->transfer_start, b->transfer_stop, b->start);

    //  Saved as JSON, it reads back as the same three records
    char path [] = "/tmp/cask-task-stream-XXXXXX";
    int fd = mkstemp (path);
    ck_assert_int_ge (fd, 0);
    close (fd);
    ck_assert_int_eq (cask_task_stream_save (stream, path), 0);
    char text [4096] = "";
    FILE *file = fopen (path, "r");
    ck_assert_ptr_nonnull (file);
    size_t size = fread (text, 1, sizeof text - 1, file);
    fclose (file);
    unlink (path);
    text [size] = 0;
    cJSON *saved = cJSON_Parse (text);
    ck_assert_int_eq (cJSON_GetArraySize (saved), 3);
    ck_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (cJSON_GetArrayItem (saved, 2),
                                                                 "status")), "error");
    cJSON_Delete (saved);
    cask_task_stream_destroy (&stream);
    cask_task_stream_destroy (&stream);

    //  Nothing finished since now
    stream = cask_client_task_stream (client, cask_time (), 5000);
    ck_assert_uint_eq (cask_task_stream_size (stream), 0);
    cask_task_stream_destroy (&stream);

    cJSON *report = cask_harness_broker_report (harness, 5000);
    const cJSON *nap = s_progress_of (report, "nap");
    ck_assert_ptr_nonnull (nap);
    ck_assert_int_eq (cask_harness_json_int (nap, "done", -1), 2);
    ck_assert_int_eq (cask_harness_json_int (nap, "erred", -1), 1);
    ck_assert_int_eq (cask_harness_json_int (nap, "processing", -1), 0);
    cJSON_Delete (report);
    cask_future_destroy (&first);
    cask_future_destroy (&second);
    cask_future_destroy (&failed);
    cask_harness_test_stop (&harness, &client);
}
END_TEST

int
main (void)
{
    TCase *tc = tcase_create ("placement");
    tcase_set_timeout (tc, 120);
    tcase_add_test (tc, test_joining_worker_takes_queued_work);
    tcase_add_test (tc, test_idle_worker_steals_queued_task);
    tcase_add_test (tc, test_scale_down_loses_nothing);
    tcase_add_test (tc, test_restrictions_and_resources);
    tcase_add_test (tc, test_task_stream_records_where_and_when);
    return cask_test_run ("placement", tc, NULL);
}
