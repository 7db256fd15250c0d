/*  test_errors.c - what goes wrong comes back clearly, and the cluster
    carries on: an unknown function, an argument of the wrong type, a task
    that fails and the tasks that depend on it, libraries that are not
    libraries, and a client that leaves with work in flight.
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

static int64_t s_int (cask_client_t *owner, cask_future_t *f)
{
    return cask_harness_int (owner, f, RESULT_TIMEOUT);
}

//  Waits for f to fail; returns its error message (owned by f).
static const char *s_failure (cask_future_t *f)
{
    ck_assert_ptr_nonnull (f);
    ck_assert_msg (cask_future_result (f, RESULT_TIMEOUT) == NULL,
                   "future %s finished; it should have failed", cask_future_key (f));
    ck_assert_msg (cask_future_status (f) == CASK_ERROR, "status of %s is %s",
                   cask_future_key (f), cask_status_name (cask_future_status (f)));
    int64_t value;
    ck_assert_int_eq (cask_future_int64 (f, 0, &value), -1);
    const char *error = cask_future_error (f);
    ck_assert_msg (error && *error, "future %s failed without a message",
                   cask_future_key (f));
    return error;
}

//  True when text names one of the workers, by name or peer endpoint.
static bool s_names_a_worker (const char *text)
{
    for (size_t i = 0; i < cask_harness_nworkers (harness); i++) {
        char name [32], endpoint [256];
        snprintf (name, sizeof name, "w%zu", i);
        if (cask_harness_worker_endpoint (harness, i, endpoint, sizeof endpoint) == 0
        &&  strstr (text, endpoint))
            return true;
        //  As a word: "w1" and not "w10" or "w1x".
        for (const char *at = strstr (text, name); at; at = strstr (at + 1, name)) {
            char before = at == text ? ' ' : at [-1];
            char after = at [strlen (name)];
            if (!(before >= 'a' && before <= 'z') && !(after >= '0' && after <= '9')
            &&  !(after >= 'a' && after <= 'z'))
                return true;
        }
    }
    return false;
}

START_TEST (test_unknown_function)
{
    cask_future_t *future = cask_submit (client, "no_such_function", cask_int64 (1), NULL);
    ck_assert_ptr_null (future);
    const char *error = cask_client_error (client);
    ck_assert_msg (strstr (error, "no_such_function"),
                   "the error does not name the function: \"%s\"", error);
    //  The NULL it handed back, used unchecked, reads as an error.
    ck_assert_int_eq (cask_future_status (future), CASK_ERROR);
    ck_assert_ptr_null (cask_future_result (future, 0));
    int64_t value;
    ck_assert_int_eq (cask_future_int64 (future, 0, &value), -1);
    ck_assert_str_eq (cask_future_key (future), "");
    ck_assert_ptr_nonnull (strstr (cask_future_error (future), "no future"));
    //  The client is still good.
    future = cask_submit (client, "inc", cask_int64 (1), NULL);
    ck_assert_int_eq (s_int (client, future), 2);
    cask_future_destroy (&future);
}
END_TEST

START_TEST (test_wrong_argument_type)
{
    cask_future_t *future = cask_submit (client, "inc", cask_string ("x"), NULL);
    const char *error = s_failure (future);
    ck_assert_msg (strstr (error, "inc: argument 1 is a string, expected int64"),
                   "error: \"%s\"", error);
    ck_assert_msg (strstr (error, cask_future_key (future)),
                   "the error does not name the key %s: \"%s\"",
                   cask_future_key (future), error);
    ck_assert_msg (s_names_a_worker (error),
                   "the error does not name the worker: \"%s\"", error);
    cask_future_destroy (&future);

    future = cask_submit (client, "add", cask_int64 (1), NULL);
    error = s_failure (future);
    ck_assert_msg (strstr (error, "add:") && strstr (error, "argument"),
                   "error: \"%s\"", error);
    cask_future_destroy (&future);
}
END_TEST

START_TEST (test_failure_and_its_dependents)
{
    cask_future_t *wrong = cask_submit (client, "goes_wrong", NULL);
    ck_assert_msg (wrong != NULL, "%s", cask_client_error (client));
    cask_future_t *after = cask_submit (client, "inc", cask_future_arg (wrong), NULL);
    ck_assert_msg (after != NULL, "%s", cask_client_error (client));
    cask_future_t *later = cask_submit (client, "add", cask_future_arg (after),
                                        cask_int64 (1), NULL);
    ck_assert_msg (later != NULL, "%s", cask_client_error (client));

    char cause [1024];
    snprintf (cause, sizeof cause, "%s", s_failure (wrong));
    ck_assert_msg (strstr (cause, "goes_wrong"), "error: \"%s\"", cause);
    ck_assert_msg (strstr (cause, cask_future_key (wrong)), "error: \"%s\"", cause);
    //  The dependents fail with the cause: its function and its key.
    cask_future_t *dependents [] = { after, later };
    for (size_t i = 0; i < 2; i++) {
        const char *error = s_failure (dependents [i]);
        ck_assert_msg (strstr (error, "goes_wrong") && strstr (error, cask_future_key (wrong)),
                       "%s does not say it failed because of %s: \"%s\"",
                       cask_future_key (dependents [i]), cask_future_key (wrong), error);
    }
    //  A task submitted on an erred future after the fact fails too.
    cask_future_t *late = cask_submit (client, "inc", cask_future_arg (wrong), NULL);
    if (late) {
        const char *error = s_failure (late);
        ck_assert_msg (strstr (error, "goes_wrong"), "error: \"%s\"", error);
    }
    else
        ck_assert_msg (strstr (cask_client_error (client), "goes_wrong"),
                       "error: \"%s\"", cask_client_error (client));
    //  Others still work.
    cask_future_t *fine = cask_submit (client, "inc", cask_int64 (9), NULL);
    ck_assert_int_eq (s_int (client, fine), 10);
    cask_future_t *all [] = { wrong, after, later, late, fine };
    cask_futures_destroy (all, 5);
}
END_TEST

//  Registering path must fail with an error that contains expect.
static void s_register_fails (const char *path, const char *expect)
{
    ck_assert_int_eq (cask_client_register (client, path, 20000), -1);
    const char *error = cask_client_error (client);
    ck_assert_msg (strstr (error, expect),
                   "registering %s failed with \"%s\", which does not say \"%s\"",
                   path, error, expect);
}

START_TEST (test_register_not_a_library)
{
    char path [4096];
    snprintf (path, sizeof path, "%s/not-a-library.so", cask_harness_dir (harness));
    FILE *file = fopen (path, "w");
    ck_assert_ptr_nonnull (file);
    fputs ("this is a text file, not a shared object\n", file);
    fclose (file);
    s_register_fails (path, "not-a-library.so");

    snprintf (path, sizeof path, "%s/does-not-exist.so", cask_harness_dir (harness));
    s_register_fails (path, "does-not-exist.so");

    s_register_fails (cask_harness_noexports_lib (), "cask_exports");

    //  Nothing of it reached the cluster, which still works.
    cJSON *report = cask_harness_broker_report (harness, 5000);
    ck_assert_ptr_nonnull (report);
    ck_assert_int_eq (cask_harness_json_int (report, "libraries", -1), 1);
    cJSON_Delete (report);
    cask_future_t *future = cask_submit (client, "inc", cask_int64 (1), NULL);
    ck_assert_int_eq (s_int (client, future), 2);
    cask_future_destroy (&future);
}
END_TEST

START_TEST (test_register_twice)
{
    ck_assert_int_eq (cask_client_register (client, cask_harness_tutorial_lib (), 20000), 0);
    cask_client_t *other = cask_harness_client (harness, cask_harness_tutorial_lib ());
    ck_assert_ptr_nonnull (other);
    cJSON *report = cask_harness_broker_report (harness, 5000);
    ck_assert_int_eq (cask_harness_json_int (report, "libraries", -1), 1);
    cJSON_Delete (report);
    cask_future_t *future = cask_submit (other, "inc", cask_int64 (2), NULL);
    ck_assert_int_eq (s_int (other, future), 3);
    cask_future_destroy (&future);
    cask_client_destroy (&other);
}
END_TEST

START_TEST (test_client_leaves_with_work_in_flight)
{
    cask_client_t *leaving = cask_harness_client (harness, cask_harness_tutorial_lib ());
    ck_assert_ptr_nonnull (leaving);
    enum { N = 40 };
    cask_future_t *futures [N];
    for (size_t i = 0; i < N; i++) {
        futures [i] = cask_submit (leaving, "count_primes_less_than",
                                   cask_int64 (200000 + (int64_t) i), NULL);
        ck_assert_msg (futures [i] != NULL, "%s", cask_client_error (leaving));
    }
    cask_future_t *chain = cask_submit (leaving, "add_them", cask_future_arg (futures [0]),
                                        cask_future_arg (futures [1]), NULL);
    ck_assert_ptr_nonnull (chain);
    //  Goes away holding futures (destroy frees them) with tasks running.
    cask_client_destroy (&leaving);

    //  The other client's work completes.
    cask_future_t *x = cask_submit (client, "inc", cask_int64 (1), NULL);
    cask_future_t *y = cask_submit (client, "double", cask_future_arg (x), NULL);
    cask_future_t *z = cask_submit (client, "add", cask_future_arg (x),
                                    cask_future_arg (y), NULL);
    ck_assert_int_eq (s_int (client, z), 6);
    cask_future_t *primes = cask_submit (client, "count_primes_less_than",
                                         cask_int64 (200000), NULL);
    ck_assert_int_eq (s_int (client, primes), 17984);

    //  The broker forgets the departed client and, in time, its tasks.
    int64_t deadline = cask_harness_now_ms () + RESULT_TIMEOUT;
    cJSON *report = NULL;
    for (;;) {
        cJSON_Delete (report);
        report = cask_harness_broker_report (harness, 5000);
        ck_assert_ptr_nonnull (report);
        if (cask_harness_json_int (report, "clients", -1) == 1
        &&  cask_harness_json_int (report, "tasks.total", -1) <= 4)
            break;
        if (cask_harness_now_ms () > deadline)
            break;
        usleep (20000);
    }
    char *text = cJSON_PrintUnformatted (report);
    ck_assert_msg (cask_harness_json_int (report, "clients", -1) == 1,
                   "the broker still counts the client that left: %s", text);
    ck_assert_msg (cask_harness_json_int (report, "tasks.total", -1) <= 4,
                   "the broker still holds the tasks of the client that left: %s", text);
    free (text);
    cJSON_Delete (report);
    ck_assert (cask_harness_worker_alive (harness, 0));
    ck_assert (cask_harness_worker_alive (harness, 1));
    cask_future_t *all [] = { x, y, z, primes };
    cask_futures_destroy (all, 4);
}
END_TEST

int main (void)
{
    TCase *tc = tcase_create ("errors");
    cask_harness_fixture (tc, &harness, 2, 2, &client, cask_harness_tutorial_lib ());
    tcase_set_timeout (tc, 120);
    tcase_add_test (tc, test_unknown_function);
    tcase_add_test (tc, test_wrong_argument_type);
    tcase_add_test (tc, test_failure_and_its_dependents);
    tcase_add_test (tc, test_register_not_a_library);
    tcase_add_test (tc, test_register_twice);
    tcase_add_test (tc, test_client_leaves_with_work_in_flight);
    return cask_test_run ("errors", tc, NULL);
}
