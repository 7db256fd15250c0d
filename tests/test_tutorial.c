/*  test_tutorial.c - the two tutorials (docs in /work/shared/seeds), end
    to end against a real broker and two workers: submit and result,
    chained dependencies, hundreds of chains and a sum, tree summation, map
    and gather, the DAG of the second tutorial, a computation built while
    it runs, deterministic keys, and a future's status going from pending
    to finished.
*/
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cask_harness.h"
#include "cask_testutil.h"

#define RESULT_TIMEOUT 60000
#define NCHAINS 256

static cask_harness_t *harness;
static cask_client_t *client;

//  The int64 result of f; fails the test with f's error otherwise.
static int64_t s_int (cask_future_t *f)
{
    return cask_harness_int (client, f, RESULT_TIMEOUT);
}

static cask_future_t *s_submit1 (const char *fn, cask_value_t *arg)
{
    cask_future_t *f = cask_submit (client, fn, arg, NULL);
    ck_assert_msg (f != NULL, "%s: %s", fn, cask_client_error (client));
    return f;
}

static cask_future_t *s_submit2 (const char *fn, cask_value_t *a, cask_value_t *b)
{
    cask_future_t *f = cask_submit (client, fn, a, b, NULL);
    ck_assert_msg (f != NULL, "%s: %s", fn, cask_client_error (client));
    return f;
}

static void s_destroy_all (cask_future_t **futures, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cask_future_destroy (&futures [i]);
}

//  How many primes are less than m, by a sieve (not the task's method).
static int64_t s_primes_below (int64_t m)
{
    if (m < 3)
        return 0;
    char *composite = calloc ((size_t) m, 1);
    ck_assert_ptr_nonnull (composite);
    int64_t count = 0;
    for (int64_t i = 2; i < m; i++) {
        if (composite [i])
            continue;
        count++;
        for (int64_t j = i * i; j < m; j += i)
            composite [j] = 1;
    }
    free (composite);
    return count;
}

//  The first tutorial's loop: z = add (inc (i), double (inc (i))).
static void s_submit_chains (cask_future_t **zs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cask_future_t *x = s_submit1 ("inc", cask_int64 ((int64_t) i));
        cask_future_t *y = s_submit1 ("double", cask_future_arg (x));
        zs [i] = s_submit2 ("add", cask_future_arg (x), cask_future_arg (y));
        cask_future_destroy (&x);
        cask_future_destroy (&y);
    }
}

START_TEST (test_submit_and_result)
{
    ck_assert_uint_eq (cask_client_nworkers (client), 2);
    ck_assert (cask_client_has_function (client, "inc"));
    ck_assert (cask_client_has_function (client, "count_primes_less_than"));
    ck_assert (!cask_client_has_function (client, "no_such_function"));
    cask_future_t *future = s_submit1 ("inc", cask_int64 (1));
    ck_assert_int_eq (s_int (future), 2);
    const cask_value_t *value = cask_future_result (future, 0);
    ck_assert_ptr_nonnull (value);
    ck_assert_int_eq (cask_value_type (value), CASK_INT64);
    ck_assert_int_eq (cask_future_status (future), CASK_FINISHED);
    ck_assert_str_eq (cask_future_error (future), "");
    char text [256];
    ck_assert_int_gt (cask_future_print (future, text, sizeof text), 0);
    ck_assert_msg (strstr (text, "finished") && strstr (text, "int64")
                   && strstr (text, cask_future_key (future)),
                   "cask_future_print wrote \"%s\"", text);
    cask_future_destroy (&future);
    cask_future_destroy (&future);
}
END_TEST

START_TEST (test_chain_dependencies)
{
    cask_future_t *x = s_submit1 ("inc", cask_int64 (1));
    cask_future_t *y = s_submit1 ("double", cask_int64 (2));
    cask_future_t *z = s_submit2 ("add", cask_future_arg (x), cask_future_arg (y));
    //  Never blocked on x or y.
    ck_assert_int_eq (s_int (z), 6);
    cask_future_destroy (&x);
    cask_future_destroy (&y);
    cask_future_destroy (&z);
}
END_TEST

START_TEST (test_many_chains_and_sum)
{
    cask_future_t *zs [NCHAINS];
    int64_t started = cask_harness_now_ms ();
    s_submit_chains (zs, NCHAINS);
    int64_t submitted = cask_harness_now_ms ();
    cask_value_t *list = cask_list_new (NCHAINS);
    for (size_t i = 0; i < NCHAINS; i++)
        ck_assert_int_eq (cask_list_append (list, cask_future_arg (zs [i])), 0);
    cask_future_t *total = s_submit1 ("sum", list);
    ck_assert_int_eq (s_int (total), 98688);
    ck_assert_int_eq (s_int (zs [0]), 3);
    printf ("tutorial: %d chains submitted in %lld ms, summed in %lld ms\n",
            NCHAINS, (long long) (submitted - started),
            (long long) (cask_harness_now_ms () - started));
    cask_future_destroy (&total);
    s_destroy_all (zs, NCHAINS);
}
END_TEST

START_TEST (test_tree_summation)
{
    cask_future_t *level [NCHAINS];
    s_submit_chains (level, NCHAINS);
    size_t n = NCHAINS;
    while (n > 1) {
        for (size_t i = 0; i < n; i += 2) {
            cask_future_t *sum = s_submit2 ("add", cask_future_arg (level [i]),
                                            cask_future_arg (level [i + 1]));
            cask_future_destroy (&level [i]);
            cask_future_destroy (&level [i + 1]);
            level [i / 2] = sum;
        }
        n /= 2;
    }
    ck_assert_int_eq (s_int (level [0]), 98688);
    cask_future_destroy (&level [0]);
}
END_TEST

//  The first tutorial's as_completed loop: map inc over the chains, then
//  add whichever two results are done first until one is left.
START_TEST (test_dynamic_reduction)
{
    cask_future_t *zs [NCHAINS], *pool [NCHAINS];
    s_submit_chains (zs, NCHAINS);
    cask_value_t *inputs = cask_list_new (NCHAINS);
    for (size_t i = 0; i < NCHAINS; i++)
        cask_list_append (inputs, cask_future_arg (zs [i]));
    ck_assert_msg (cask_map (client, "inc", inputs, pool) == 0, "map: %s",
                   cask_client_error (client));
    s_destroy_all (zs, NCHAINS);

    size_t live = NCHAINS;
    int64_t deadline = cask_harness_now_ms () + RESULT_TIMEOUT;
    while (live > 1) {
        ck_assert_msg (cask_harness_now_ms () < deadline,
                       "%zu futures still pending", live);
        //  The first two finished futures in the pool, if there are two.
        size_t done [2], ndone = 0;
        for (size_t i = 0; i < live && ndone < 2; i++) {
            cask_status_t status = cask_future_status (pool [i]);
            ck_assert_msg (status == CASK_PENDING || status == CASK_FINISHED,
                           "%s: %s", cask_future_key (pool [i]),
                           cask_future_error (pool [i]));
            if (status == CASK_FINISHED)
                done [ndone++] = i;
        }
        if (ndone < 2) {
            usleep (1000);
            continue;
        }
        cask_future_t *sum = s_submit2 ("add", cask_future_arg (pool [done [0]]),
                                        cask_future_arg (pool [done [1]]));
        cask_future_destroy (&pool [done [0]]);
        cask_future_destroy (&pool [done [1]]);
        pool [done [0]] = sum;
        pool [done [1]] = pool [--live];
    }
    ck_assert_int_eq (s_int (pool [0]), 98688 + NCHAINS);
    cask_future_destroy (&pool [0]);
}
END_TEST

START_TEST (test_map_and_gather)
{
    static const int64_t inputs [] = {
        0, 1, 2, 3, 10, 100, 1000, 10000, 30001, 30002, 30003, 30004, 30005
    };
    enum { N = sizeof inputs / sizeof inputs [0] };
    cask_future_t *futures [N];
    ck_assert_msg (cask_map (client, "count_primes_less_than",
                             cask_list_of_int64 (inputs, N), futures) == 0,
                   "map: %s", cask_client_error (client));
    ck_assert_msg (cask_gather (client, futures, N, RESULT_TIMEOUT) == 0,
                   "gather: %s", cask_client_error (client));
    for (size_t i = 0; i < N; i++) {
        int64_t count = -1;
        //  Gathered: the result is here already, no waiting.
        ck_assert_int_eq (cask_future_int64 (futures [i], 0, &count), 0);
        ck_assert_msg (count == s_primes_below (inputs [i]),
                       "count_primes_less_than (%lld) = %lld, expected %lld",
                       (long long) inputs [i], (long long) count,
                       (long long) s_primes_below (inputs [i]));
    }
    ck_assert_int_eq (s_primes_below (10000), 1229);
    s_destroy_all (futures, N);
}
END_TEST

//  The second tutorial's DAG, with inputs a thousand times smaller.
START_TEST (test_dag)
{
    const char *cp = "count_primes_less_than";
    cask_future_t *m1 = s_submit1 (cp, cask_int64 (4000));
    cask_future_t *m2 = s_submit1 (cp, cask_int64 (4500));
    cask_future_t *msum = s_submit2 ("add_them", cask_future_arg (m1), cask_future_arg (m2));
    ck_assert_int_eq (s_int (msum), s_primes_below (4000) + s_primes_below (4500));

    static const int64_t n [6] = { 4003, 4504, 4005, 4506, 4007, 4508 };
    cask_future_t *m [6];
    int64_t expect [6];
    for (size_t i = 0; i < 6; i++) {
        m [i] = s_submit1 (cp, cask_int64 (n [i]));
        expect [i] = s_primes_below (n [i]);
    }
    cask_future_t *msum1 = s_submit2 ("add_them", cask_future_arg (m [0]), cask_future_arg (m [1]));
    cask_future_t *msum2 = s_submit2 ("add_them", cask_future_arg (m [2]), cask_future_arg (m [3]));
    cask_future_t *msum3 = s_submit2 ("add_them", cask_future_arg (m [4]), cask_future_arg (m [5]));
    cask_future_t *msum4 = s_submit2 ("add_them", cask_future_arg (msum1), cask_future_arg (msum2));
    cask_future_t *msum5 = s_submit2 ("add_them", cask_future_arg (msum4), cask_future_arg (msum3));
    cask_future_t *msum6 = s_submit2 ("add_them", cask_future_arg (m [0]), cask_future_arg (msum3));
    int64_t k = expect [0] + expect [1] + expect [2] + expect [3] + expect [4] + expect [5];
    ck_assert_int_eq (s_int (msum5), k);
    ck_assert_int_eq (s_int (msum6), expect [0] + expect [4] + expect [5]);
    ck_assert_int_eq (s_int (msum4), expect [0] + expect [1] + expect [2] + expect [3]);
    cask_future_t *all [] = { m1, m2, msum, msum1, msum2, msum3, msum4, msum5, msum6 };
    s_destroy_all (all, sizeof all / sizeof all [0]);
    s_destroy_all (m, 6);
}
END_TEST

START_TEST (test_same_submit_same_key)
{
    cask_future_t *a = s_submit1 ("inc", cask_int64 (41));
    cask_future_t *b = s_submit1 ("inc", cask_int64 (41));
    cask_future_t *c = s_submit1 ("inc", cask_int64 (42));
    cask_future_t *d = s_submit1 ("double", cask_int64 (41));
    ck_assert_str_eq (cask_future_key (a), cask_future_key (b));
    ck_assert_str_ne (cask_future_key (a), cask_future_key (c));
    ck_assert_str_ne (cask_future_key (a), cask_future_key (d));
    ck_assert_int_eq (s_int (a), 42);
    ck_assert_int_eq (s_int (b), 42);
    ck_assert_int_eq (s_int (c), 43);
    ck_assert_int_eq (s_int (d), 82);
    //  And once more after it finished: the same task, already done.
    cask_future_t *e = s_submit1 ("inc", cask_int64 (41));
    ck_assert_str_eq (cask_future_key (a), cask_future_key (e));
    ck_assert_int_eq (s_int (e), 42);
    cask_future_t *all [] = { a, b, c, d, e };
    s_destroy_all (all, 5);
}
END_TEST

START_TEST (test_status_pending_then_finished)
{
    ck_assert_str_eq (cask_status_name (CASK_PENDING), "pending");
    ck_assert_str_eq (cask_status_name (CASK_FINISHED), "finished");
    ck_assert_str_eq (cask_status_name (CASK_ERROR), "error");
    ck_assert_str_eq (cask_status_name (CASK_CANCELLED), "cancelled");
    const int64_t m = 300000;
    cask_future_t *future = s_submit1 ("count_primes_less_than", cask_int64 (m));
    ck_assert_int_eq (cask_future_status (future), CASK_PENDING);
    char text [256];
    cask_future_print (future, text, sizeof text);
    ck_assert_msg (strstr (text, "pending"), "cask_future_print wrote \"%s\"", text);
    //  Poll without blocking: the news must come by itself.
    int64_t deadline = cask_harness_now_ms () + RESULT_TIMEOUT;
    cask_status_t status;
    while ((status = cask_future_status (future)) == CASK_PENDING
    &&     cask_harness_now_ms () < deadline)
        usleep (2000);
    ck_assert_msg (status == CASK_FINISHED, "status %s: %s",
                   cask_status_name (status), cask_future_error (future));
    cask_future_print (future, text, sizeof text);
    ck_assert_msg (strstr (text, "finished"), "cask_future_print wrote \"%s\"", text);
    ck_assert_int_eq (s_int (future), s_primes_below (m));
    cask_future_destroy (&future);
}
END_TEST

int main (void)
{
    TCase *tc = tcase_create ("tutorial");
    cask_harness_fixture (tc, &harness, 2, 2, &client, cask_harness_tutorial_lib ());
    tcase_set_timeout (tc, 180);
    tcase_add_test (tc, test_submit_and_result);
    tcase_add_test (tc, test_chain_dependencies);
    tcase_add_test (tc, test_many_chains_and_sum);
    tcase_add_test (tc, test_tree_summation);
    tcase_add_test (tc, test_dynamic_reduction);
    tcase_add_test (tc, test_map_and_gather);
    tcase_add_test (tc, test_dag);
    tcase_add_test (tc, test_same_submit_same_key);
    tcase_add_test (tc, test_status_pending_then_finished);
    return cask_test_run ("tutorial", tc, NULL);
}
