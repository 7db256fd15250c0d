/*  test_lifecycle.c - the life of futures beyond submit and result:
    as_completed (each future once, in completion order, the tutorial's
    reduction, results fetched, futures added while iterating, a timeout),
    wait for all or the first, cancel (a cancelled task never runs, nor
    what depends on it), restart (a clean cluster that works at once),
    scatter (ints, 16 MB of bytes, more than a worker may hold), keys
    (equal submits share one, unique and custom keys), retries, priority
    and fire-and-forget. Whether a task ran is told by a trace it leaves in
    a file (append_line, fail_times of the tests' task library).
*/
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cask_harness.h"
#include "cask_testutil.h"
#include "cask_testlib.h"

#define RESULT_TIMEOUT 60000
#define NFUTURES 256                //  as_completed over this many incs
#define SLOW_MS 1500                //  a task that keeps a thread busy
#define BIG (16 << 20)              //  bytes scattered

static cask_harness_t *harness;
static cask_client_t *client;

static int64_t s_int (cask_future_t *f)
{
    return cask_harness_int (client, f, RESULT_TIMEOUT);
}

//  Registers the tests' task library too (the fixture registers the
//  tutorial's).
static void s_register_testlib (cask_client_t *owner)
{
    ck_assert_msg (cask_client_register (owner, cask_harness_test_lib (), 20000) == 0,
                   "cannot register %s: %s", cask_harness_test_lib (),
                   cask_client_error (owner));
}

//  Path of name in the harness's temp dir, in a static buffer of its own
//  (up to two at a time).
static const char *s_path (const char *name)
{
    static char paths [2][4096];
    static int next;
    char *path = paths [next++ % 2];
    snprintf (path, sizeof paths [0], "%s/%s", cask_harness_dir (harness), name);
    return path;
}

//  Reads the int64 lines of the file at path into lines (up to max).
//  Returns how many, or -1 when there is no such file.
static int s_read_lines (const char *path, int64_t *lines, int max)
{
    FILE *file = fopen (path, "r");
    if (!file)
        return -1;
    int count = 0;
    long long line;
    while (count < max && fscanf (file, "%lld", &line) == 1)
        lines [count++] = line;
    fclose (file);
    return count;
}

static cask_future_t *s_submit_opts (const char *fn, const cask_submit_opts_t *opts,
                                     cask_value_t *arg1, cask_value_t *arg2)
{
    cask_value_t *args [] = { arg1, arg2 };
    cask_future_t *future = cask_submit_opts (client, fn, opts, args, arg2 ? 2 : 1);
    ck_assert_msg (future != NULL, "submit of %s failed: %s", fn, cask_client_error (client));
    return future;
}

static cask_future_t *s_nap (int64_t ms, int64_t x)
{
    return s_submit_opts ("nap", NULL, cask_int64 (ms), cask_int64 (x));
}

//  Asserts that f ends cancelled and says so.
static void s_assert_cancelled (cask_future_t *f, const char *expect)
{
    ck_assert_msg (cask_wait (client, &f, 1, CASK_WAIT_ALL, RESULT_TIMEOUT) == 1,
                   "%s is not done: %s", cask_future_key (f), cask_client_error (client));
    ck_assert_msg (cask_future_status (f) == CASK_CANCELLED, "%s is %s, not cancelled",
                   cask_future_key (f), cask_status_name (cask_future_status (f)));
    ck_assert_msg (cask_future_result (f, 0) == NULL, "%s has a result", cask_future_key (f));
    const char *error = cask_future_error (f);
    ck_assert_msg (strstr (error, expect), "the error of %s does not say \"%s\": \"%s\"",
                   cask_future_key (f), expect, error);
}

//  Submits inc (i) for i < n into futures.
static void s_incs (cask_future_t **futures, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        futures [i] = cask_submit (client, "inc", cask_int64 ((int64_t) i), NULL);
        ck_assert_msg (futures [i] != NULL, "%s", cask_client_error (client));
    }
}

//  Polls the broker's REPORT until tasks.total is expect; fails otherwise.
static void s_broker_tasks (int64_t expect, const char *why)
{
    int64_t seen;
    ck_assert_msg (cask_harness_wait_figure (harness, -1, "tasks.total", expect,
                                             RESULT_TIMEOUT / 2, &seen) == 0,
                   "%s: the broker holds %lld tasks, expected %lld", why,
                   (long long) seen, (long long) expect);
}


//  ---------------------------------------------------------------------
//  as_completed and wait

START_TEST (test_as_completed_each_once)
{
    cask_future_t *futures [NFUTURES];
    s_incs (futures, NFUTURES);
    cask_as_completed_t *seq = cask_as_completed_new (client, futures, NFUTURES, 0);
    ck_assert_msg (seq != NULL, "%s", cask_client_error (client));
    ck_assert_uint_eq (cask_as_completed_count (seq), NFUTURES);
    bool seen [NFUTURES + 1] = { false };
    for (size_t handed = 1; handed <= NFUTURES; handed++) {
        cask_future_t *f = cask_as_completed_next (seq, RESULT_TIMEOUT);
        ck_assert_msg (f != NULL, "next %zu: %s", handed, cask_client_error (client));
        ck_assert_msg (cask_future_status (f) == CASK_FINISHED, "next handed out %s %s",
                       cask_status_name (cask_future_status (f)), cask_future_key (f));
        ck_assert_uint_eq (cask_as_completed_count (seq), NFUTURES - handed);
        int64_t value = s_int (f);
        ck_assert_msg (value >= 1 && value <= NFUTURES, "value %lld", (long long) value);
        ck_assert_msg (!seen [value], "inc (%lld) handed out twice", (long long) value - 1);
        seen [value] = true;
        cask_future_destroy (&f);
    }
    int64_t started = cask_harness_now_ms ();
    ck_assert_ptr_null (cask_as_completed_next (seq, 5000));
    ck_assert_msg (cask_harness_now_ms () - started < 1000,
                   "next on an exhausted iterator waited");
    cask_as_completed_destroy (&seq);
    cask_as_completed_destroy (&seq);
    //  The caller's handles are still the caller's.
    ck_assert_int_eq (s_int (futures [7]), 8);
    cask_futures_destroy (futures, NFUTURES);
}
END_TEST

START_TEST (test_as_completed_reduction)
{
    //  The tutorial: while seq.count () > 1: add (next, next), added back.
    cask_future_t *futures [NFUTURES];
    s_incs (futures, NFUTURES);
    cask_as_completed_t *seq = cask_as_completed_new (client, futures, NFUTURES, 0);
    ck_assert_msg (seq != NULL, "%s", cask_client_error (client));
    cask_futures_destroy (futures, NFUTURES);
    size_t adds = 0;
    while (cask_as_completed_count (seq) > 1) {
        cask_future_t *a = cask_as_completed_next (seq, RESULT_TIMEOUT);
        cask_future_t *b = cask_as_completed_next (seq, RESULT_TIMEOUT);
        ck_assert_msg (a && b, "next: %s", cask_client_error (client));
        cask_future_t *sum = cask_submit (client, "add", cask_future_arg (a),
                                          cask_future_arg (b), NULL);
        ck_assert_msg (sum != NULL, "%s", cask_client_error (client));
        ck_assert_int_eq (cask_as_completed_add (seq, sum), 0);
        cask_future_destroy (&sum);
        cask_future_destroy (&a);
        cask_future_destroy (&b);
        adds++;
    }
    ck_assert_uint_eq (adds, NFUTURES - 1);
    cask_future_t *total = cask_as_completed_next (seq, RESULT_TIMEOUT);
    ck_assert_int_eq (s_int (total), NFUTURES * (NFUTURES + 1) / 2);
    ck_assert_uint_eq (cask_as_completed_count (seq), 0);
    cask_future_destroy (&total);
    cask_as_completed_destroy (&seq);
    s_broker_tasks (0, "after the reduction, every handle destroyed");
}
END_TEST

START_TEST (test_as_completed_with_results)
{
    enum { N = 64 };
    cask_future_t *futures [N];
    s_incs (futures, N);
    cask_as_completed_t *seq = cask_as_completed_new (client, futures, N, CASK_WITH_RESULTS);
    ck_assert_msg (seq != NULL, "%s", cask_client_error (client));
    int64_t total = 0;
    for (cask_future_t *f; (f = cask_as_completed_next (seq, RESULT_TIMEOUT)); ) {
        //  Already fetched: no waiting for it.
        const cask_value_t *result = cask_future_result (f, 0);
        ck_assert_msg (result != NULL, "%s handed out without its result: %s",
                       cask_future_key (f), cask_future_error (f));
        int64_t value;
        ck_assert_int_eq (cask_value_int64 (result, &value), 0);
        total += value;
        cask_future_destroy (&f);
    }
    ck_assert_int_eq (total, N * (N + 1) / 2);
    cask_as_completed_destroy (&seq);
    cask_futures_destroy (futures, N);
}
END_TEST

START_TEST (test_as_completed_add_and_timeout)
{
    s_register_testlib (client);
    cask_as_completed_t *seq = cask_as_completed_new (client, NULL, 0, 0);
    ck_assert_msg (seq != NULL, "%s", cask_client_error (client));
    ck_assert_ptr_null (cask_as_completed_next (seq, 1000));

    cask_future_t *slow = s_nap (SLOW_MS * 2, 1);
    ck_assert_int_eq (cask_as_completed_add (seq, slow), 0);
    int64_t started = cask_harness_now_ms ();
    cask_future_t *none = cask_as_completed_next (seq, 0);
    int64_t took = cask_harness_now_ms () - started;
    ck_assert_msg (none == NULL, "next handed out a pending future");
    ck_assert_msg (took < 500, "next with timeout 0 took %lld ms", (long long) took);
    ck_assert_msg (*cask_client_error (client), "next timed out without saying so");
    ck_assert_uint_eq (cask_as_completed_count (seq), 1);

    //  Added later, done first.
    cask_future_t *fast = cask_submit (client, "inc", cask_int64 (100), NULL);
    ck_assert_int_eq (cask_as_completed_add (seq, fast), 0);
    ck_assert_uint_eq (cask_as_completed_count (seq), 2);
    cask_future_t *first = cask_as_completed_next (seq, RESULT_TIMEOUT);
    ck_assert_msg (first && strcmp (cask_future_key (first), cask_future_key (fast)) == 0,
                   "the first done is not the fast one: %s",
                   first ? cask_future_key (first) : cask_client_error (client));
    cask_future_t *second = cask_as_completed_next (seq, RESULT_TIMEOUT);
    ck_assert_msg (second && strcmp (cask_future_key (second), cask_future_key (slow)) == 0,
                   "the second is not the slow one: %s",
                   second ? cask_future_key (second) : cask_client_error (client));
    ck_assert_int_eq (s_int (second), 1);
    ck_assert_uint_eq (cask_as_completed_count (seq), 0);
    cask_future_t *all [] = { slow, fast, first, second };
    cask_futures_destroy (all, 4);
    cask_as_completed_destroy (&seq);
}
END_TEST

START_TEST (test_wait_all_and_first)
{
    s_register_testlib (client);
    enum { N = 4 };
    cask_future_t *futures [N];
    s_incs (futures, N - 1);
    futures [N - 1] = s_nap (SLOW_MS * 2, 5);
    //  Fast ones finish; the slow one holds ALL past the timeout.
    int64_t started = cask_harness_now_ms ();
    int done = cask_wait (client, futures, N, CASK_WAIT_ALL, 300);
    int64_t took = cask_harness_now_ms () - started;
    ck_assert_msg (done >= 0 && done < N, "wait ALL returned %d before the slow one ended", done);
    ck_assert_msg (took >= 250 && took < 2000, "wait ALL with a 300 ms timeout took %lld ms",
                   (long long) took);
    //  FIRST returns as soon as one is done, long before the slow one.
    started = cask_harness_now_ms ();
    done = cask_wait (client, futures, N, CASK_WAIT_FIRST, RESULT_TIMEOUT);
    took = cask_harness_now_ms () - started;
    ck_assert_msg (done >= 1 && done < N, "wait FIRST returned %d", done);
    ck_assert_msg (took < SLOW_MS, "wait FIRST took %lld ms", (long long) took);
    //  Timeout 0 just looks.
    started = cask_harness_now_ms ();
    done = cask_wait (client, futures + N - 1, 1, CASK_WAIT_ALL, 0);
    ck_assert_int_eq (done, 0);
    ck_assert_msg (cask_harness_now_ms () - started < 500, "wait with timeout 0 waited");
    //  ALL without a short timeout waits for the slow one; fetches nothing
    //  but the status is known.
    done = cask_wait (client, futures, N, CASK_WAIT_ALL, RESULT_TIMEOUT);
    ck_assert_int_eq (done, N);
    for (size_t i = 0; i < N; i++)
        ck_assert_int_eq (cask_future_status (futures [i]), CASK_FINISHED);
    ck_assert_int_eq (s_int (futures [N - 1]), 5);
    ck_assert_int_eq (cask_wait (client, futures, N, CASK_WAIT_FIRST, 0), N);
    cask_futures_destroy (futures, N);
}
END_TEST


//  ---------------------------------------------------------------------
//  cancel and restart

//  Runs cask_progress over n naps with stderr on fd, restored after.
static int s_progress_to (int fd, int64_t base)
{
    enum { N = 10 };
    cask_future_t *naps [N];
    for (int i = 0; i < N; i++)
        naps [i] = s_nap (60, base + i);
    fflush (stderr);
    int saved = dup (STDERR_FILENO);
    ck_assert_int_ge (saved, 0);
    ck_assert_int_ge (dup2 (fd, STDERR_FILENO), 0);
    int done = cask_progress (client, naps, N, RESULT_TIMEOUT);
    fflush (stderr);
    dup2 (saved, STDERR_FILENO);
    close (saved);
    cask_futures_destroy (naps, N);
    return done;
}

//  The progress bar draws itself on a terminal and stays quiet elsewhere.
START_TEST (test_progress_bar)
{
    s_register_testlib (client);
    char path [] = "/tmp/cask-progress-XXXXXX";
    int file = mkstemp (path);
    ck_assert_int_ge (file, 0);
    ck_assert_int_eq (s_progress_to (file, 0), 10);
    ck_assert_int_eq (lseek (file, 0, SEEK_END), 0);        //  not a terminal: nothing
    close (file);
    unlink (path);

    int master = posix_openpt (O_RDWR | O_NOCTTY);
    ck_assert_int_ge (master, 0);
    ck_assert_int_eq (grantpt (master), 0);
    ck_assert_int_eq (unlockpt (master), 0);
    int slave = open (ptsname (master), O_RDWR | O_NOCTTY);
    ck_assert_int_ge (slave, 0);
    ck_assert_int_eq (s_progress_to (slave, 100), 10);
    close (slave);
    char text [8192];
    size_t size = 0;
    fcntl (master, F_SETFL, O_NONBLOCK);
    ssize_t got;
    while (size < sizeof text - 1 && (got = read (master, text + size, sizeof text - 1 - size)) > 0)
        size += (size_t) got;
    text [size] = 0;
    close (master);
    ck_assert_msg (strstr (text, "[########################################] 100% 10/10 done"),
                   "the terminal shows: %s", text);
}
END_TEST

START_TEST (test_cancel_with_dependants)
{
    s_register_testlib (client);
    const char *trace = s_path ("cancelled.trace");
    cask_future_t *slow = s_nap (SLOW_MS, 5);
    cask_future_t *marked = s_submit_opts ("append_line", NULL, cask_string (trace),
                                           cask_future_arg (slow));
    cask_future_t *after = cask_submit (client, "inc", cask_future_arg (marked), NULL);
    ck_assert_ptr_nonnull (after);
    ck_assert_int_eq (cask_cancel (client, &marked, 1), 0);
    s_assert_cancelled (marked, "cancel");
    s_assert_cancelled (after, "cancel");
    //  Twice does nothing.
    ck_assert_int_eq (cask_cancel (client, &marked, 1), 0);
    ck_assert_int_eq (cask_cancel (client, &after, 1), 0);
    //  The dependency was not cancelled; once it is done, and then a task
    //  more, the cancelled one has still left no trace.
    ck_assert_int_eq (s_int (slow), 5);
    cask_future_t *later = cask_submit (client, "inc", cask_future_arg (slow), NULL);
    ck_assert_int_eq (s_int (later), 6);
    usleep (200 * 1000);
    ck_assert_msg (access (trace, F_OK) == -1 && errno == ENOENT,
                   "the cancelled task ran: %s exists", trace);
    s_broker_tasks (2, "after cancel (slow and later held)");
    cask_future_t *all [] = { slow, marked, after, later };
    cask_futures_destroy (all, 4);
    s_broker_tasks (0, "after the handles were destroyed");
}
END_TEST

START_TEST (test_restart)
{
    s_register_testlib (client);
    cask_client_t *other = cask_harness_client (harness, cask_harness_test_lib ());
    ck_assert_ptr_nonnull (other);
    enum { NSLOW = 6 };
    cask_future_t *done = cask_submit (client, "inc", cask_int64 (1), NULL);
    ck_assert_int_eq (s_int (done), 2);
    cask_future_t *slow [NSLOW];
    for (size_t i = 0; i < NSLOW; i++)
        slow [i] = s_nap (SLOW_MS, (int64_t) i);
    cask_future_t *after = cask_submit (client, "inc", cask_future_arg (slow [0]), NULL);
    cask_value_t *args [] = { cask_int64 (SLOW_MS), cask_int64 (99) };
    cask_future_t *theirs = cask_submit_opts (other, "nap", NULL, args, 2);
    ck_assert_ptr_nonnull (after);
    ck_assert_ptr_nonnull (theirs);
    //  The other client's SUBMIT comes on a connection of its own: the
    //  broker has it before the RESTART only once it says so.
    s_broker_tasks (NSLOW + 3, "before restart");

    ck_assert_msg (cask_client_restart (client, RESULT_TIMEOUT) == 0, "restart: %s",
                   cask_client_error (client));
    //  The cluster confirmed: clean at once.
    cJSON *report = cask_harness_broker_report (harness, 5000);
    ck_assert_ptr_nonnull (report);
    char *text = cJSON_PrintUnformatted (report);
    ck_assert_msg (cask_harness_json_int (report, "tasks.total", -1) == 0,
                   "the broker holds tasks after restart: %s", text);
    ck_assert_msg (cask_harness_json_int (report, "libraries", -1) == 2,
                   "the libraries did not stay registered: %s", text);
    free (text);
    cJSON_Delete (report);
    for (size_t i = 0; i < cask_harness_nworkers (harness); i++) {
        report = cask_harness_worker_report (harness, i, 5000);
        ck_assert_ptr_nonnull (report);
        ck_assert_msg (cask_harness_json_int (report, "results_held", -1) == 0,
                       "worker w%zu holds %lld results after restart", i,
                       (long long) cask_harness_json_int (report, "results_held", -1));
        cJSON_Delete (report);
    }
    //  Every outstanding future, of every client, is cancelled.
    for (size_t i = 0; i < NSLOW; i++)
        s_assert_cancelled (slow [i], "restart");
    s_assert_cancelled (after, "restart");
    ck_assert_msg (cask_wait (other, &theirs, 1, CASK_WAIT_ALL, RESULT_TIMEOUT) == 1
                   && cask_future_status (theirs) == CASK_CANCELLED,
                   "the other client's future is %s after restart",
                   cask_status_name (cask_future_status (theirs)));
    ck_assert_msg (cask_future_status (done) == CASK_CANCELLED,
                   "a finished future is %s after restart, not cancelled",
                   cask_status_name (cask_future_status (done)));
    //  Usable at once, with the functions registered before.
    ck_assert (cask_client_has_function (client, "inc"));
    ck_assert (cask_client_has_function (client, "nap"));
    int64_t started = cask_harness_now_ms ();
    cask_future_t *fresh = cask_submit (client, "inc", cask_int64 (41), NULL);
    ck_assert_int_eq (s_int (fresh), 42);
    cask_future_t *again = cask_submit (client, "inc", cask_int64 (1), NULL);
    ck_assert_int_eq (s_int (again), 2);
    printf ("restart: a new submit finished %lld ms after restart\n",
            (long long) (cask_harness_now_ms () - started));
    cask_future_t *all [] = { done, after, theirs, fresh, again };
    cask_futures_destroy (all, 5);
    cask_futures_destroy (slow, NSLOW);
    cask_client_destroy (&other);
    s_broker_tasks (0, "after restart, every handle destroyed");
}
END_TEST


//  ---------------------------------------------------------------------
//  scatter

static void s_free (void *data, void *hint)
{
    (void) hint;
    free (data);
}

START_TEST (test_scatter)
{
    s_register_testlib (client);
    enum { N = 3 };
    cask_value_t *values [N] = { cask_int64 (10), cask_int64 (20), cask_int64 (30) };
    cask_future_t *scattered [N] = { NULL };
    ck_assert_msg (cask_scatter (client, values, N, scattered, RESULT_TIMEOUT) == 0,
                   "scatter: %s", cask_client_error (client));
    for (size_t i = 0; i < N; i++) {
        ck_assert_ptr_nonnull (scattered [i]);
        ck_assert_int_eq (cask_future_status (scattered [i]), CASK_FINISHED);
        cask_future_t *more = cask_submit (client, "inc", cask_future_arg (scattered [i]), NULL);
        ck_assert_int_eq (s_int (more), 10 * ((int64_t) i + 1) + 1);
        ck_assert_int_eq (s_int (scattered [i]), 10 * ((int64_t) i + 1));
        cask_future_destroy (&more);
    }

    uint8_t *data = malloc (BIG);
    ck_assert_ptr_nonnull (data);
    cask_testlib_fill (data, BIG, 16);
    uint64_t expect = cask_testlib_digest (CASK_TESTLIB_DIGEST_START, data, BIG);
    cask_value_t *big = cask_bytes_take (data, BIG, s_free, NULL);
    cask_future_t *held = NULL;
    ck_assert_msg (cask_scatter (client, &big, 1, &held, RESULT_TIMEOUT) == 0,
                   "scatter of %d bytes: %s", BIG, cask_client_error (client));
    cask_future_t *digest = cask_submit (client, "digest", cask_future_arg (held), NULL);
    cask_future_t *size = cask_submit (client, "bytes_size", cask_future_arg (held), NULL);
    ck_assert_msg (s_int (digest) == (int64_t) expect, "the scattered bytes changed");
    ck_assert_int_eq (s_int (size), BIG);
    //  And back to the client, intact.
    const cask_value_t *back = cask_future_result (held, RESULT_TIMEOUT);
    ck_assert_msg (back != NULL, "%s", cask_future_error (held));
    const void *bytes;
    size_t nbytes;
    ck_assert_int_eq (cask_value_bytes (back, &bytes, &nbytes), 0);
    ck_assert_uint_eq (nbytes, BIG);
    ck_assert (cask_testlib_digest (CASK_TESTLIB_DIGEST_START, bytes, nbytes) == expect);
    cask_future_t *all [] = { held, digest, size };
    cask_futures_destroy (all, 3);
    cask_futures_destroy (scattered, N);
    s_broker_tasks (0, "after the scattered futures were destroyed");
}
END_TEST


//  ---------------------------------------------------------------------
//  keys, retries, fire and forget

START_TEST (test_keys)
{
    cask_future_t *a = cask_submit (client, "inc", cask_int64 (5), NULL);
    cask_future_t *b = cask_submit (client, "inc", cask_int64 (5), NULL);
    ck_assert (a && b);
    ck_assert_str_eq (cask_future_key (a), cask_future_key (b));
    cask_submit_opts_t unique = CASK_SUBMIT_DEFAULT;
    unique.unique = true;
    cask_future_t *u1 = s_submit_opts ("inc", &unique, cask_int64 (5), NULL);
    cask_future_t *u2 = s_submit_opts ("inc", &unique, cask_int64 (5), NULL);
    ck_assert_str_ne (cask_future_key (u1), cask_future_key (u2));
    ck_assert_str_ne (cask_future_key (u1), cask_future_key (a));
    ck_assert_str_ne (cask_future_key (u2), cask_future_key (a));
    cask_submit_opts_t custom = CASK_SUBMIT_DEFAULT;
    custom.key = "my-own-key-17";
    cask_future_t *c = s_submit_opts ("inc", &custom, cask_int64 (5), NULL);
    ck_assert_str_eq (cask_future_key (c), "my-own-key-17");
    cask_future_t *all [] = { a, b, u1, u2, c };
    for (size_t i = 0; i < 5; i++)
        ck_assert_int_eq (s_int (all [i]), 6);
    //  a and b are one task; the others one each.
    cJSON *report = cask_harness_broker_report (harness, 5000);
    ck_assert_int_eq (cask_harness_json_int (report, "tasks.total", -1), 4);
    cJSON_Delete (report);
    //  A dup is the same future.
    cask_future_t *dup = cask_future_dup (c);
    ck_assert_ptr_nonnull (dup);
    ck_assert_str_eq (cask_future_key (dup), "my-own-key-17");
    cask_future_destroy (&all [4]);
    ck_assert_int_eq (s_int (dup), 6);
    cask_future_destroy (&dup);
    cask_futures_destroy (all, 5);
    s_broker_tasks (0, "after the handles were destroyed");
}
END_TEST

//  fail_times (path, 2, 7) with retries: its result, or -1 when it erred.
//  *runs gets how many times it ran.
static int64_t s_fail_twice (const char *name, uint8_t retries, int64_t *runs)
{
    const char *counter = s_path (name);
    cask_submit_opts_t opts = CASK_SUBMIT_DEFAULT;
    opts.retries = retries;
    cask_value_t *args [] = { cask_string (counter), cask_int64 (2), cask_int64 (7) };
    cask_future_t *f = cask_submit_opts (client, "fail_times", &opts, args, 3);
    ck_assert_msg (f != NULL, "%s", cask_client_error (client));
    int64_t value = -1;
    if (cask_future_int64 (f, RESULT_TIMEOUT, &value)) {
        ck_assert_msg (cask_future_status (f) == CASK_ERROR, "%s: %s",
                       cask_status_name (cask_future_status (f)), cask_future_error (f));
        ck_assert_msg (strstr (cask_future_error (f), "meant to fail"), "error: %s",
                       cask_future_error (f));
        value = -1;
    }
    int n = s_read_lines (counter, runs, 1);
    ck_assert_msg (n == 1, "no run count in %s", counter);
    cask_future_destroy (&f);
    return value;
}

START_TEST (test_retries)
{
    s_register_testlib (client);
    int64_t runs;
    ck_assert_int_eq (s_fail_twice ("retries2.count", 2, &runs), 7);
    ck_assert_int_eq (runs, 3);
    ck_assert_int_eq (s_fail_twice ("retries1.count", 1, &runs), -1);
    ck_assert_int_eq (runs, 2);
    ck_assert_int_eq (s_fail_twice ("retries0.count", 0, &runs), -1);
    ck_assert_int_eq (runs, 1);
}
END_TEST

START_TEST (test_fire_and_forget)
{
    s_register_testlib (client);
    const char *trace = s_path ("fired.trace");
    cask_future_t *slow = s_nap (500, 42);
    cask_future_t *fired = s_submit_opts ("append_line", NULL, cask_string (trace),
                                          cask_future_arg (slow));
    ck_assert_int_eq (cask_fire_and_forget (client, &fired, 1), 0);
    cask_future_destroy (&fired);
    cask_future_destroy (&slow);
    int64_t deadline = cask_harness_now_ms () + RESULT_TIMEOUT / 2;
    int64_t line = 0;
    while (s_read_lines (trace, &line, 1) != 1 && cask_harness_now_ms () < deadline)
        usleep (20 * 1000);
    ck_assert_msg (line == 42, "the fired task did not run: no line in %s", trace);
    s_broker_tasks (0, "after the fired task finished");
}
END_TEST


//  ---------------------------------------------------------------------
//  One worker of one thread: what queues behind a slow task

static void s_start_one_thread (void)
{
    cask_harness_test_start (&harness, 1, 1, &client, cask_harness_tutorial_lib ());
    s_register_testlib (client);
}

//  A task that holds the one thread for SLOW_MS, once it runs.
static cask_future_t *s_block_the_thread (void)
{
    cask_future_t *blocker = s_nap (SLOW_MS, 0);
    int64_t seen;
    ck_assert_msg (cask_harness_wait_figure (harness, 0, "tasks_in_flight", 1, 10000, &seen) == 0,
                   "the slow task is not running: %lld in flight", (long long) seen);
    return blocker;
}

START_TEST (test_cancel_queued)
{
    s_start_one_thread ();
    const char *trace = s_path ("queued.trace");
    cask_future_t *blocker = s_block_the_thread ();
    cask_future_t *queued = s_submit_opts ("append_line", NULL, cask_string (trace),
                                           cask_int64 (1));
    cask_future_t *after = cask_submit (client, "inc", cask_future_arg (queued), NULL);
    ck_assert_ptr_nonnull (after);
    ck_assert_int_eq (cask_cancel (client, &queued, 1), 0);
    s_assert_cancelled (queued, "cancel");
    s_assert_cancelled (after, "cancel");
    ck_assert_int_eq (cask_cancel (client, &queued, 1), 0);
    //  Behind the blocker; a task submitted later runs, the cancelled one not.
    ck_assert_int_eq (s_int (blocker), 0);
    cask_future_t *later = cask_submit (client, "inc", cask_int64 (1), NULL);
    ck_assert_int_eq (s_int (later), 2);
    ck_assert_msg (access (trace, F_OK) == -1 && errno == ENOENT,
                   "the cancelled task ran: %s exists", trace);
    cJSON *report = cask_harness_worker_report (harness, 0, 5000);
    ck_assert_msg (cask_harness_json_int (report, "tasks_run", -1) == 2,
                   "the worker ran %lld tasks; 2 expected (the blocker and the later one)",
                   (long long) cask_harness_json_int (report, "tasks_run", -1));
    cJSON_Delete (report);
    cask_future_t *all [] = { blocker, queued, after, later };
    cask_futures_destroy (all, 4);
    cask_harness_test_stop (&harness, &client);
}
END_TEST

START_TEST (test_priority)
{
    s_start_one_thread ();
    const char *trace = s_path ("priority.trace");
    cask_future_t *blocker = s_block_the_thread ();
    enum { N = 8 };
    const int32_t priorities [N] = { 3, -2, 7, 0, 5, -6, 1, 4 };
    cask_future_t *queued [N];
    for (size_t i = 0; i < N; i++) {
        cask_submit_opts_t opts = CASK_SUBMIT_DEFAULT;
        opts.priority = priorities [i];
        queued [i] = s_submit_opts ("append_line", &opts, cask_string (trace),
                                    cask_int64 (priorities [i]));
    }
    ck_assert_msg (cask_gather (client, queued, N, RESULT_TIMEOUT) == 0, "%s",
                   cask_client_error (client));
    int64_t order [N + 1];
    int n = s_read_lines (trace, order, N + 1);
    ck_assert_int_eq (n, N);
    const int64_t expect [N] = { 7, 5, 4, 3, 1, 0, -2, -6 };
    for (int i = 0; i < N; i++)
        ck_assert_msg (order [i] == expect [i],
                       "run %d had priority %lld, expected %lld (highest first)", i,
                       (long long) order [i], (long long) expect [i]);
    cask_future_destroy (&blocker);
    cask_futures_destroy (queued, N);
    cask_harness_test_stop (&harness, &client);
}
END_TEST

START_TEST (test_scatter_over_memory_limit)
{
    const char *const extra [] = { "--memory-limit", "1M", NULL };
    cask_harness_test_start_with (&harness, 1, 1, extra, &client, cask_harness_tutorial_lib ());
    enum { SIZE = 4 << 20 };
    cask_value_t *big = cask_bytes_take (calloc (1, SIZE), SIZE, s_free, NULL);
    ck_assert_ptr_nonnull (big);
    cask_future_t *held = NULL;
    ck_assert_int_eq (cask_scatter (client, &big, 1, &held, RESULT_TIMEOUT), -1);
    ck_assert_ptr_null (held);
    const char *error = cask_client_error (client);
    ck_assert_msg (strstr (error, "limit") || strstr (error, "memory"),
                   "the error does not say the value is over the memory limit: \"%s\"", error);
    printf ("scatter over the limit: %s\n", error);
    //  What fits still does.
    cask_value_t *small = cask_int64 (3);
    ck_assert_msg (cask_scatter (client, &small, 1, &held, RESULT_TIMEOUT) == 0, "%s",
                   cask_client_error (client));
    cask_future_t *more = cask_submit (client, "inc", cask_future_arg (held), NULL);
    ck_assert_int_eq (s_int (more), 4);
    cask_future_destroy (&more);
    cask_future_destroy (&held);
    cask_harness_test_stop (&harness, &client);
}
END_TEST

int main (void)
{
    TCase *tc = tcase_create ("lifecycle");
    cask_harness_fixture (tc, &harness, 2, 2, &client, cask_harness_tutorial_lib ());
    tcase_set_timeout (tc, 120);
    tcase_add_test (tc, test_as_completed_each_once);
    tcase_add_test (tc, test_as_completed_reduction);
    tcase_add_test (tc, test_as_completed_with_results);
    tcase_add_test (tc, test_as_completed_add_and_timeout);
    tcase_add_test (tc, test_wait_all_and_first);
    tcase_add_test (tc, test_progress_bar);
    tcase_add_test (tc, test_cancel_with_dependants);
    tcase_add_test (tc, test_restart);
    tcase_add_test (tc, test_scatter);
    tcase_add_test (tc, test_keys);
    tcase_add_test (tc, test_retries);
    tcase_add_test (tc, test_fire_and_forget);
    //  Clusters of their own.
    TCase *own = tcase_create ("own cluster");
    tcase_set_timeout (own, 120);
    tcase_add_test (own, test_cancel_queued);
    tcase_add_test (own, test_priority);
    tcase_add_test (own, test_scatter_over_memory_limit);
    return cask_test_run ("lifecycle", tc, own, NULL);
}
