/*  test_memory.c - a cluster runs in flat memory however many results go
    through it: a loop that submits and drops a million small results (map
    of 10,000, gather, destroy; 100 rounds) leaves the broker with no task
    and the workers with no result, and the resident memory of the broker,
    the workers and the client within a small margin of what it was after a
    warm-up round, as their own REPORTs say. The same after cancelling big
    batches of pending tasks, and after restarts.

    Under AddressSanitizer (slower, and every free goes through its
    quarantine) the loop is 100,000 results, and the processes of the
    cluster run with a small quarantine so that their memory measures the
    cluster's and not the sanitizer's. $CASK_MEMORY_TASKS sets the number
    (rounded to a multiple of 10,000) either way.
*/
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cask_harness.h"
#include "cask_testutil.h"

#if defined (__SANITIZE_ADDRESS__)
#   define ASAN 1
#elif defined (__has_feature)
#   if __has_feature (address_sanitizer)
#       define ASAN 1
#   endif
#endif
#ifdef ASAN
#   define DEFAULT_TASKS 100000
//  ASan's allocator (size classes, quarantine) makes resident memory
//  noisy: a broker grew by 6 MB on a quiet machine and by 31 MB on a busy
//  one over the same rounds. Leaks themselves are LeakSanitizer's job here.
#   define GROWTH_LIMIT (48 << 20)
#   define SMALL_QUARANTINE "quarantine_size_mb=4:thread_local_quarantine_size_kb=64"
//  This process's options, read by ASan as it starts (ASAN_OPTIONS still
//  overrides them).
const char *__asan_default_options (void);
const char *__asan_default_options (void)
{
    return SMALL_QUARANTINE;
}
#else
#   define DEFAULT_TASKS 1000000
#   define GROWTH_LIMIT (16 << 20)  //  resident bytes a process may gain
#endif

#define BATCH 10000                 //  tasks per map
#define RESULT_TIMEOUT 120000
#define SETTLE_TIMEOUT 30000        //  for releases to reach broker and workers
#define SLOW_MS 3000
#define WARM_UP_ROUNDS 3

static cask_harness_t *harness;
static cask_client_t *client;

//  The resident memory of each process: the broker, workers, the client.
#define MAX_PROCS 8
typedef struct {
    size_t count;
    int64_t rss [MAX_PROCS];
    char name [MAX_PROCS][32];
} s_memory_t;

//  Resident bytes of a REPORT's process: its own rss_bytes, else /proc.
static int64_t s_rss (cJSON *report, pid_t pid)
{
    int64_t rss = cask_harness_json_int (report, "rss_bytes", -1);
    return rss >= 0 ? rss : cask_harness_rss (pid);
}

static void s_measure (s_memory_t *memory)
{
    size_t nworkers = cask_harness_nworkers (harness);
    ck_assert (nworkers + 2 <= MAX_PROCS);
    memory->count = 0;
    cJSON *report = cask_harness_broker_report (harness, 5000);
    ck_assert_ptr_nonnull (report);
    snprintf (memory->name [memory->count], sizeof memory->name [0], "broker");
    memory->rss [memory->count++] = s_rss (report, cask_harness_broker_pid (harness));
    cJSON_Delete (report);
    for (size_t i = 0; i < nworkers; i++) {
        report = cask_harness_worker_report (harness, i, 5000);
        ck_assert_ptr_nonnull (report);
        snprintf (memory->name [memory->count], sizeof memory->name [0], "worker w%zu", i);
        memory->rss [memory->count++] = s_rss (report, cask_harness_worker_pid (harness, i));
        cJSON_Delete (report);
    }
    snprintf (memory->name [memory->count], sizeof memory->name [0], "client");
    memory->rss [memory->count++] = cask_harness_rss (getpid ());
}

//  Fails unless each process is within GROWTH_LIMIT of its baseline.
static void s_assert_flat (const s_memory_t *baseline, const char *after)
{
    s_memory_t now;
    s_measure (&now);
    for (size_t i = 0; i < now.count; i++) {
        int64_t growth = now.rss [i] - baseline->rss [i];
        printf ("memory: %-10s %7.1f MB -> %7.1f MB after %s\n", now.name [i],
                (double) baseline->rss [i] / 1048576, (double) now.rss [i] / 1048576, after);
        ck_assert_msg (growth < GROWTH_LIMIT, "%s grew by %.1f MB after %s", now.name [i],
                       (double) growth / 1048576, after);
    }
    fflush (stdout);
}

//  Waits until the broker holds no task and no worker a result.
static void s_assert_empty (const char *after)
{
    int64_t seen;
    ck_assert_msg (cask_harness_wait_figure (harness, -1, "tasks.total", 0,
                                             SETTLE_TIMEOUT, &seen) == 0,
                   "the broker still holds %lld tasks after %s", (long long) seen, after);
    for (size_t i = 0; i < cask_harness_nworkers (harness); i++)
        ck_assert_msg (cask_harness_wait_figure (harness, (int) i, "results_held", 0,
                                                 SETTLE_TIMEOUT, &seen) == 0,
                       "worker w%zu still holds %lld results after %s", i,
                       (long long) seen, after);
}

static size_t s_rounds (void)
{
    const char *text = getenv ("CASK_MEMORY_TASKS");
    long long tasks = text && *text ? atoll (text) : DEFAULT_TASKS;
    return tasks >= BATCH ? (size_t) (tasks / BATCH) : 1;
}

//  The int64 list first, first + 1, ... of BATCH items.
static cask_value_t *s_inputs (int64_t first)
{
    cask_value_t *list = cask_list_new (BATCH);
    ck_assert_ptr_nonnull (list);
    for (int64_t i = 0; i < BATCH; i++)
        ck_assert_int_eq (cask_list_append (list, cask_int64 (first + i)), 0);
    return list;
}

//  One round: map noop over BATCH new inputs, gather, check, drop.
static void s_round (cask_future_t **futures, size_t round)
{
    int64_t first = (int64_t) round * BATCH;
    ck_assert_msg (cask_map (client, "noop", s_inputs (first), futures) == 0,
                   "map in round %zu: %s", round, cask_client_error (client));
    ck_assert_msg (cask_gather (client, futures, BATCH, RESULT_TIMEOUT) == 0,
                   "gather in round %zu: %s", round, cask_client_error (client));
    for (size_t i = 0; i < BATCH; i += BATCH / 10) {
        int64_t value;
        ck_assert_int_eq (cask_future_int64 (futures [i], 0, &value), 0);
        ck_assert_int_eq (value, first + (int64_t) i);
    }
    cask_futures_destroy (futures, BATCH);
}

typedef void (s_round_fn) (cask_future_t **futures, size_t round);

//  Runs warm-up rounds of round_fn (so that the baseline has seen its
//  high-water mark), takes the baseline once all is released, runs `rounds`
//  more, and asserts that everything was released again and that no
//  process grew past the baseline's margin. Returns the measured rounds'
//  time in ms.
static int64_t s_rounds_stay_flat (s_round_fn *round_fn, size_t rounds, const char *what)
{
    cask_future_t **futures = calloc (BATCH, sizeof *futures);
    ck_assert_ptr_nonnull (futures);
    for (size_t round = 0; round < WARM_UP_ROUNDS; round++)
        round_fn (futures, round);
    s_assert_empty ("the warm-up");
    s_memory_t baseline;
    s_measure (&baseline);
    int64_t started = cask_harness_now_ms ();
    for (size_t round = 0; round < rounds; round++)
        round_fn (futures, WARM_UP_ROUNDS + round);
    int64_t took = cask_harness_now_ms () - started;
    s_assert_empty (what);
    s_assert_flat (&baseline, what);
    free (futures);
    return took;
}

START_TEST (test_a_million_results)
{
    size_t rounds = s_rounds ();
    char what [64];
    snprintf (what, sizeof what, "%zu results", rounds * BATCH);
    int64_t took = s_rounds_stay_flat (s_round, rounds, what);
    printf ("memory: %zu results submitted, gathered and dropped in %lld ms (%.0f tasks/s)\n",
            rounds * BATCH, (long long) took,
            took ? (double) (rounds * BATCH) * 1000 / (double) took : 0.0);
}
END_TEST

//  BATCH tasks that wait on one slow task, cancelled before they run.
static void s_cancelled_round (cask_future_t **futures, size_t round)
{
    cask_future_t *slow = cask_submit (client, "nap", cask_int64 (SLOW_MS),
                                       cask_int64 ((int64_t) round), NULL);
    ck_assert_ptr_nonnull (slow);
    for (size_t i = 0; i < BATCH; i++) {
        futures [i] = cask_submit (client, "add_them", cask_future_arg (slow),
                                   cask_int64 ((int64_t) i), NULL);
        ck_assert_msg (futures [i] != NULL, "%s", cask_client_error (client));
    }
    ck_assert_int_eq (cask_wait (client, futures, BATCH, CASK_WAIT_FIRST, 0), 0);
    ck_assert_msg (cask_cancel (client, futures, BATCH) == 0, "cancel: %s",
                   cask_client_error (client));
    ck_assert_int_eq (cask_cancel (client, &slow, 1), 0);
    ck_assert_int_eq (cask_wait (client, futures, BATCH, CASK_WAIT_ALL, RESULT_TIMEOUT), BATCH);
    for (size_t i = 0; i < BATCH; i += BATCH / 10)
        ck_assert_int_eq (cask_future_status (futures [i]), CASK_CANCELLED);
    cask_futures_destroy (futures, BATCH);
    cask_future_destroy (&slow);
}

START_TEST (test_cancelled_batches)
{
    ck_assert_int_eq (cask_client_register (client, cask_harness_tutorial_lib (), 20000), 0);
    s_rounds_stay_flat (s_cancelled_round, 10, "cancelling 10 batches of 10,000 pending tasks");
}
END_TEST

//  BATCH tasks, half of them gathered, then a restart.
static void s_restarted_round (cask_future_t **futures, size_t round)
{
    int64_t first = (int64_t) round * BATCH;
    ck_assert_int_eq (cask_map (client, "noop", s_inputs (first), futures), 0);
    ck_assert_int_eq (cask_gather (client, futures, BATCH / 2, RESULT_TIMEOUT), 0);
    ck_assert_msg (cask_client_restart (client, RESULT_TIMEOUT) == 0, "restart: %s",
                   cask_client_error (client));
    cask_futures_destroy (futures, BATCH);
}

START_TEST (test_restarts)
{
    s_rounds_stay_flat (s_restarted_round, 5, "5 restarts");
}
END_TEST

//  The memory figures above come from the processes' own REPORTs.
START_TEST (test_reports_give_rss)
{
    cJSON *report = cask_harness_broker_report (harness, 5000);
    int64_t rss = cask_harness_json_int (report, "rss_bytes", -1);
    cJSON_Delete (report);
    ck_assert_msg (rss > 0, "the broker's REPORT has no rss_bytes");
    report = cask_harness_worker_report (harness, 0, 5000);
    rss = cask_harness_json_int (report, "rss_bytes", -1);
    cJSON_Delete (report);
    ck_assert_msg (rss > 0, "the worker's REPORT has no rss_bytes");
}
END_TEST

int main (void)
{
#ifdef ASAN
    //  For the broker and workers the harness starts (they inherit it).
    const char *options = getenv ("ASAN_OPTIONS");
    char buf [1024];
    snprintf (buf, sizeof buf, "%s%s" SMALL_QUARANTINE,
              options ? options : "", options && *options ? ":" : "");
    setenv ("ASAN_OPTIONS", buf, 1);
    printf ("memory: under AddressSanitizer, %zu results, the cluster with %s\n",
            s_rounds () * BATCH, buf);
#endif
    TCase *tc = tcase_create ("memory");
    cask_harness_fixture (tc, &harness, 2, 2, &client, cask_harness_test_lib ());
    tcase_set_timeout (tc, 200);
    tcase_add_test (tc, test_reports_give_rss);
    tcase_add_test (tc, test_a_million_results);
    tcase_add_test (tc, test_cancelled_batches);
    tcase_add_test (tc, test_restarts);
    return cask_test_run ("memory", tc, NULL);
}
