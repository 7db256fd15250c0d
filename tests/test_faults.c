/*  test_faults.c - real faults on real processes: a worker that hangs
    (SIGSTOP) is let go within seconds and its work done elsewhere, and it
    joins again when it wakes; a broker that is killed and started again is
    found by its workers, which join it afresh; a worker killed in the
    middle of a 10,000-task graph loses nothing; a task that kills the
    workers it runs on (their nannies start them again) fails after the
    third, saying how they died; a task past its time limit fails, and
    one that will not return costs its worker a restart; a worker pauses
    near its memory limit and is restarted past it. Each test checks that every
    future ends with the right value and that nothing hangs.
*/
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cask_harness.h"
#include "cask_testutil.h"

#define RESULT_TIMEOUT 60000
//  A silent worker or broker is taken for gone after 4 heartbeats of 1 s;
//  the test allows for a heartbeat of delay on each side, and slow builds
#define NOTICE_MS 12000

static cask_harness_t *harness;
static cask_client_t *client;

static int64_t
s_int (cask_future_t *future)
{
    return cask_harness_int (client, future, RESULT_TIMEOUT);
}

//  Number of workers the broker reports (-1 when it does not answer).
static int
s_broker_workers (void)
{
    cJSON *report = cask_harness_broker_report (harness, 2000);
    if (!report)
        return -1;
    int count = cJSON_GetArraySize (cJSON_GetObjectItem (report, "workers"));
    cJSON_Delete (report);
    return count;
}

//  Waits until the broker reports n workers; returns the ms it took, or -1.
static int64_t
s_wait_workers (int n, int timeout_ms)
{
    int64_t start = cask_harness_now_ms ();
    while (cask_harness_now_ms () - start < timeout_ms) {
        if (s_broker_workers () == n)
            return cask_harness_now_ms () - start;
        usleep (50000);
    }
    return -1;
}

//  noop (i) for i < n into futures, all finished.
static void
s_noops (cask_future_t **futures, int n, int base)
{
    for (int i = 0; i < n; i++) {
        futures [i] = cask_submit (client, "noop", cask_int64 (base + i), NULL);
        ck_assert_msg (futures [i] != NULL, "%s", cask_client_error (client));
    }
    ck_assert_msg (cask_gather (client, futures, (size_t) n, RESULT_TIMEOUT) == 0, "%s",
                   cask_client_error (client));
}

START_TEST (test_hung_worker_is_let_go_and_comes_back)
{
    //  No nanny: SIGSTOP must reach the worker itself
    const char *no_nanny [] = { "--no-nanny", NULL };
    cask_harness_test_start_with (&harness, 2, 1, no_nanny, &client, cask_harness_test_lib ());
    enum { N = 20 };
    cask_future_t *held [N], *after [N];
    s_noops (held, N, 0);
    pid_t pid = cask_harness_worker_pid (harness, 0);
    ck_assert_int_eq (kill (pid, SIGSTOP), 0);
    //  Work that needs every result, some of them on the hung worker
    for (int i = 0; i < N; i++) {
        cask_value_t *args [] = { cask_int64 (1), cask_future_arg (held [i]) };
        after [i] = cask_submit_opts (client, "nap", NULL, args, 2);
        ck_assert_ptr_nonnull (after [i]);
    }
    int64_t noticed = s_wait_workers (1, NOTICE_MS);
    ck_assert_msg (noticed >= 0, "the broker still counts the hung worker");
    printf ("faults: a hung worker let go after %lld ms\n", (long long) noticed);
    ck_assert_int_eq (cask_gather (client, after, N, RESULT_TIMEOUT), 0);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq (s_int (after [i]), i);

    //  Woken, it finds the broker forgot it, drops its old results and
    //  joins again as a new worker, which takes work
    ck_assert_int_eq (kill (pid, SIGCONT), 0);
    int64_t back = s_wait_workers (2, NOTICE_MS);
    ck_assert_msg (back >= 0, "the woken worker did not join again");
    printf ("faults: the woken worker joined again after %lld ms\n", (long long) back);
    cJSON *report = cask_harness_worker_report (harness, 0, 5000);
    ck_assert_ptr_nonnull (report);
    ck_assert_int_eq (cask_harness_json_int (report, "results_held", -1), 0);
    cJSON_Delete (report);
    cask_future_t *more [N];
    s_noops (more, N, 100);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq (s_int (more [i]), 100 + i);
    cask_futures_destroy (held, N);
    cask_futures_destroy (after, N);
    cask_futures_destroy (more, N);
    cask_harness_test_stop (&harness, &client);
}
END_TEST

START_TEST (test_workers_find_a_restarted_broker)
{
    cask_harness_test_start (&harness, 2, 1, &client, cask_harness_test_lib ());
    cask_future_t *before [4];
    s_noops (before, 4, 0);
    cask_futures_destroy (before, 4);
    cask_client_destroy (&client);
    ck_assert_int_eq (cask_harness_restart_broker (harness), 0);
    int64_t back = s_wait_workers (2, NOTICE_MS);
    ck_assert_msg (back >= 0, "the workers did not join the new broker");
    printf ("faults: both workers joined the restarted broker after %lld ms\n", (long long) back);
    client = cask_harness_client (harness, cask_harness_test_lib ());
    ck_assert_ptr_nonnull (client);
    cask_future_t *after [8];
    s_noops (after, 8, 10);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq (s_int (after [i]), 10 + i);
    cask_futures_destroy (after, 8);
    cask_harness_test_stop (&harness, &client);
}
END_TEST

//  inc (i) for i < NINC, pairwise adds, and one sum: 10,000 tasks; a
//  worker is killed while they run
#define NINC 5000

START_TEST (test_worker_killed_mid_graph)
{
    cask_harness_test_start (&harness, 3, 2, &client, cask_harness_tutorial_lib ());
    cask_future_t **xs = calloc (NINC, sizeof *xs);
    cask_future_t **ys = calloc (NINC - 1, sizeof *ys);
    ck_assert (xs && ys);
    cask_future_t *total = cask_harness_tutorial_graph (client, NINC, xs, ys);
    //  Kill a worker once a good part has run
    ck_assert_int_ge (cask_wait (client, xs, NINC / 3, CASK_WAIT_ALL, RESULT_TIMEOUT), NINC / 3);
    ck_assert_int_eq (cask_harness_kill_worker (harness, 1), 0);
    const int64_t n = NINC - 1;
    ck_assert_int_eq (s_int (total), n * (n - 1) + 3 * n);
    ck_assert_int_eq (cask_gather (client, ys, NINC - 1, RESULT_TIMEOUT), 0);
    for (size_t i = 0; i < NINC - 1; i += 97)
        ck_assert_int_eq (s_int (ys [i]), 2 * (int64_t) i + 3);
    cask_future_destroy (&total);
    cask_futures_destroy (xs, NINC);
    cask_futures_destroy (ys, NINC - 1);
    free (xs);
    free (ys);
    cask_harness_test_stop (&harness, &client);
}
END_TEST

//  A task that kills every worker it runs on (its nanny starts each one
//  again) fails after the third with what it did; the rest of the work
//  goes on and the cluster is whole again afterwards.
START_TEST (test_task_that_kills_workers)
{
    cask_harness_test_start (&harness, 2, 1, &client, cask_harness_test_lib ());
    const char *ways [] = { "abort", "kill", "segv" };
#ifdef __SANITIZE_ADDRESS__
    //  AddressSanitizer catches SIGSEGV and exits with status 1 instead
    const char *signals [] = { "Aborted", "Killed", "exit status 1" };
#else
    const char *signals [] = { "Aborted", "Killed", "Segmentation fault" };
#endif
    for (int way = 0; way < 3; way++) {
        cask_future_t *killer = cask_submit (client, "crash", cask_string (ways [way]), NULL);
        ck_assert_ptr_nonnull (killer);
        enum { N = 20 };
        cask_future_t *others [N];
        s_noops (others, N, 1000 * way);
        ck_assert_ptr_null (cask_future_result (killer, RESULT_TIMEOUT));
        ck_assert_int_eq (cask_future_status (killer), CASK_ERROR);
        const char *error = cask_future_error (killer);
        printf ("faults: %s\n", error);
        ck_assert_msg (strstr (error, "killed 3 workers") && strstr (error, "crash")
                       && strstr (error, signals [way]), "%s", error);
        for (int i = 0; i < N; i++)
            ck_assert_int_eq (s_int (others [i]), 1000 * way + i);
        cask_futures_destroy (others, N);
        cask_future_destroy (&killer);
        ck_assert_msg (s_wait_workers (2, NOTICE_MS) >= 0, "the nannies did not restart the workers");
    }
    cask_harness_test_stop (&harness, &client);
}
END_TEST

//  A task past its time limit fails at once; one that will not return
//  costs its worker a restart (by its nanny), and nothing else.
START_TEST (test_time_limits)
{
    cask_harness_test_start (&harness, 2, 1, &client, cask_harness_test_lib ());
    cask_submit_opts_t opts = CASK_SUBMIT_DEFAULT;
    opts.timeout_ms = 5000;
    cask_value_t *fast_args [] = { cask_int64 (50), cask_int64 (1) };
    cask_future_t *fast = cask_submit_opts (client, "nap", &opts, fast_args, 2);
    ck_assert_int_eq (s_int (fast), 1);
    opts.timeout_ms = 300;
    cask_value_t *slow_args [] = { cask_int64 (60000), cask_int64 (2) };
    int64_t start = cask_harness_now_ms ();
    cask_future_t *slow = cask_submit_opts (client, "nap", &opts, slow_args, 2);
    ck_assert_ptr_nonnull (slow);
    ck_assert_ptr_null (cask_future_result (slow, RESULT_TIMEOUT));
    int64_t took = cask_harness_now_ms () - start;
    printf ("faults: %s (after %lld ms)\n", cask_future_error (slow), (long long) took);
    ck_assert_msg (strstr (cask_future_error (slow), "ran past its time limit of 300 ms"), "%s",
                   cask_future_error (slow));
    ck_assert_int_lt (took, 5000);
    enum { N = 20 };
    cask_future_t *others [N];
    s_noops (others, N, 0);
    //  The worker whose thread is stuck is started again by its nanny: the
    //  broker then counts a third worker id, and two workers
    int64_t deadline = cask_harness_now_ms () + NOTICE_MS;
    bool restarted = false;
    while (!restarted && cask_harness_now_ms () < deadline) {
        cJSON *report = cask_harness_broker_report (harness, 2000);
        const cJSON *worker;
        cJSON_ArrayForEach (worker, cJSON_GetObjectItem (report, "workers"))
            restarted |= cask_harness_json_int (worker, "id", 0) >= 3;
        cJSON_Delete (report);
        usleep (50000);
    }
    ck_assert_msg (restarted, "the stuck worker was not started again");
    ck_assert_msg (s_wait_workers (2, NOTICE_MS) >= 0, "a worker did not come back");
    cask_future_t *more [N];
    s_noops (more, N, 100);
    cask_futures_destroy (others, N);
    cask_futures_destroy (more, N);
    cask_future_destroy (&fast);
    cask_future_destroy (&slow);
    cask_harness_test_stop (&harness, &client);
}
END_TEST

//  Whether the broker reports a paused worker (-1: no answer).
static int
s_any_paused (void)
{
    cJSON *report = cask_harness_broker_report (harness, 2000);
    if (!report)
        return -1;
    int paused = 0;
    const cJSON *worker;
    cJSON_ArrayForEach (worker, cJSON_GetObjectItem (report, "workers"))
        paused |= cJSON_IsTrue (cJSON_GetObjectItem (worker, "paused"));
    cJSON_Delete (report);
    return paused;
}

//  Waits until s_any_paused () is paused; returns 0 or -1.
static int
s_wait_paused (int paused, int timeout_ms)
{
    int64_t deadline = cask_harness_now_ms () + timeout_ms;
    while (cask_harness_now_ms () < deadline) {
        if (s_any_paused () == paused)
            return 0;
        usleep (50000);
    }
    return -1;
}

//  Past 80% of its memory limit a worker pauses and the others take the
//  work; under 70% it resumes; past the limit its nanny restarts it, and
//  a task that does that 3 times fails saying so.
START_TEST (test_memory_limits)
{
    const char *limit [] = { "--memory-limit", "200M", NULL };
    cask_harness_test_start_with (&harness, 2, 1, limit, &client, cask_harness_test_lib ());
    cask_future_t *hog = cask_submit (client, "hog", cask_int64 (170), cask_int64 (4000), NULL);
    ck_assert_ptr_nonnull (hog);
    ck_assert_msg (s_wait_paused (1, 5000) == 0, "no worker paused");
    enum { N = 10 };
    cask_future_t *others [N];
    s_noops (others, N, 0);
    ck_assert_int_eq (s_int (hog), 170);
    ck_assert_msg (s_wait_paused (0, 5000) == 0, "the worker did not resume");
    cask_futures_destroy (others, N);

    cask_future_t *glutton = cask_submit (client, "hog", cask_int64 (300), cask_int64 (4000), NULL);
    ck_assert_ptr_null (cask_future_result (glutton, RESULT_TIMEOUT));
    const char *error = cask_future_error (glutton);
    printf ("faults: %s\n", error);
    ck_assert_msg (strstr (error, "killed 3 workers") && strstr (error, "memory limit"), "%s",
                   error);
    ck_assert_msg (s_wait_workers (2, NOTICE_MS) >= 0, "the workers did not come back");
    cask_future_destroy (&hog);
    cask_future_destroy (&glutton);
    cask_harness_test_stop (&harness, &client);
}
END_TEST

int
main (void)
{
    TCase *tc = tcase_create ("faults");
    tcase_set_timeout (tc, 120);
    tcase_add_test (tc, test_hung_worker_is_let_go_and_comes_back);
    tcase_add_test (tc, test_workers_find_a_restarted_broker);
    tcase_add_test (tc, test_worker_killed_mid_graph);
    tcase_add_test (tc, test_task_that_kills_workers);
    tcase_add_test (tc, test_time_limits);
    tcase_add_test (tc, test_memory_limits);
    return cask_test_run ("faults", tc, NULL);
}
