/*  simple_futures.c - the "Simple use of submit and Future objects"
    tutorial in C.

    Mirrors the notebook: a slow prime count submitted to the cluster, its
    future going from pending to finished, map and gather, the speed-up of
    running in parallel, futures as arguments building a DAG, an error
    coming back with its cause, and a restart that cancels every future and
    leaves the cluster ready for more.
    The functions live in libtutorial.so (tutorial_lib.c), which this
    program registers with the cluster first.

    Usage: simple_futures [broker-address [path/to/libtutorial.so]]
    Without an address (or an empty one) and $CASK_BROKER, it starts a local
    cluster of its own (cask_client_new (NULL)) and stops it at the end.
    Exits 0 when every result is the right prime count.
*/
#include "tutorial_client.h"
#include "tutorial_primes.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NMAP 9

static cask_future_t *
s_count_primes (cask_client_t *client, int64_t m)
{
    cask_future_t *future = cask_submit (client, "count_primes_less_than", cask_int64 (m), NULL);
    if (!future)
        tutorial_fail ("submit count_primes_less_than(%lld): %s", (long long) m,
                       cask_client_error (client));
    return future;
}

static cask_future_t *
s_add_them (cask_client_t *client, cask_future_t *x, cask_future_t *y)
{
    cask_future_t *future = cask_submit (client, "add_them", cask_future_arg (x),
                                         cask_future_arg (y), NULL);
    if (!future)
        tutorial_fail ("submit add_them: %s", cask_client_error (client));
    return future;
}

//  futures = client.map(count_primes_less_than, [first + i for i in range(9)])
static int
s_map (cask_client_t *client, int64_t first, cask_future_t **futures)
{
    int64_t inputs [NMAP];
    for (int i = 0; i < NMAP; i++)
        inputs [i] = first + i;
    if (cask_map (client, "count_primes_less_than", cask_list_of_int64 (inputs, NMAP), futures)) {
        tutorial_fail ("map: %s", cask_client_error (client));
        return -1;
    }
    return 0;
}

//  N = client.submit(count_primes_less_than, 5000000), after timing it here
static void
s_submit_and_watch (cask_client_t *client)
{
    double start = tutorial_now ();
    int64_t local = tutorial_count_primes_less_than (5000000);
    printf ("count_primes_less_than(5000000) = %lld   (locally, Wall time: %.2f s)\n",
            (long long) local, tutorial_now () - start);

    cask_future_t *N = s_count_primes (client, 5000000);
    if (N) {
        tutorial_print_future ("N", N);
        while (cask_future_status (N) == CASK_PENDING)
            usleep (20000);
        tutorial_print_future ("N", N);
        tutorial_expect ("N.result()", N, 348513);
    }
    cask_future_t *M = s_count_primes (client, 5000001);
    if (M)
        tutorial_expect ("M.result()", M, 348513);
    cask_future_destroy (&N);
    cask_future_destroy (&M);
}

static void
s_map_and_watch (cask_client_t *client)
{
    cask_future_t *futures [NMAP];
    if (s_map (client, 3000001, futures))
        return;
    tutorial_print_futures ("futures", futures, NMAP);
    sleep (1);
    tutorial_print_futures ("futures", futures, NMAP);
    if (cask_gather (client, futures, NMAP, TUTORIAL_TIMEOUT_MS))
        tutorial_fail ("gather: %s", cask_client_error (client));
    for (int i = 0; i < NMAP; i++) {
        int64_t count = 0;
        cask_future_int64 (futures [i], 0, &count);
        if (count != 216816)
            tutorial_fail ("count_primes_less_than(%d) is %lld, expected 216816",
                           3000001 + i, (long long) count);
    }
    cask_futures_destroy (futures, NMAP);
}

//  What the primes below 1500000 + i count, i = 0..8 (1500007 is prime)
static int64_t
s_expected_1500000 (int i)
{
    return i == 8 ? 114156 : 114155;
}

static double
s_local_test (void)
{
    double start = tutorial_now ();
    for (int i = 0; i < NMAP; i++) {
        int64_t count = tutorial_count_primes_less_than (1500000 + i);
        printf ("%lld\n", (long long) count);
        if (count != s_expected_1500000 (i))
            tutorial_fail ("local count_primes_less_than(%d) is %lld", 1500000 + i,
                           (long long) count);
    }
    double elapsed = tutorial_now () - start;
    printf ("local_test(): Wall time: %.2f s\n", elapsed);
    return elapsed;
}

static double
s_distributed_test (cask_client_t *client)
{
    double start = tutorial_now ();
    cask_future_t *futures [NMAP];
    if (s_map (client, 1500000, futures))
        return 0;
    tutorial_print_futures ("futures", futures, NMAP);
    if (cask_gather (client, futures, NMAP, TUTORIAL_TIMEOUT_MS))
        tutorial_fail ("gather: %s", cask_client_error (client));
    for (int i = 0; i < NMAP; i++) {
        int64_t count = -1;
        cask_future_int64 (futures [i], 0, &count);
        printf ("%lld\n", (long long) count);
        if (count != s_expected_1500000 (i))
            tutorial_fail ("count_primes_less_than(%d) is %lld", 1500000 + i, (long long) count);
    }
    cask_futures_destroy (futures, NMAP);
    double elapsed = tutorial_now () - start;
    printf ("distributed_test(): Wall time: %.2f s\n", elapsed);
    return elapsed;
}

static void
s_chain (cask_client_t *client)
{
    cask_future_t *M1 = s_count_primes (client, 4000000);
    cask_future_t *M2 = s_count_primes (client, 4500000);
    cask_future_t *Msum = s_add_them (client, M1, M2);
    if (Msum) {
        tutorial_print_future ("Msum", Msum);
        tutorial_expect ("Msum.result()", Msum, 283146 + 315948);
    }
    cask_future_destroy (&M1);
    cask_future_destroy (&M2);
    cask_future_destroy (&Msum);
}

static void
s_dag (cask_client_t *client)
{
    cask_future_t *M [9] = { NULL };
    for (int i = 3; i <= 8; i++)
        M [i] = s_count_primes (client, (i % 2 ? 4000000 : 4500000) + i);
    cask_future_t *Msum1 = s_add_them (client, M [3], M [4]);
    cask_future_t *Msum2 = s_add_them (client, M [5], M [6]);
    cask_future_t *Msum3 = s_add_them (client, M [7], M [8]);
    cask_future_t *Msum4 = s_add_them (client, Msum1, Msum2);
    cask_future_t *Msum5 = s_add_them (client, Msum4, Msum3);
    cask_future_t *Msum6 = s_add_them (client, M [3], Msum3);
    //  M3, M5, M7 count 283146 primes, M4 and M6 315948, M8 315949
    if (Msum5)
        tutorial_expect ("K = Msum5.result()", Msum5, 3 * 283146 + 2 * 315948 + 315949);
    cask_future_t *all [] = { M [3], M [4], M [5], M [6], M [7], M [8],
                              Msum1, Msum2, Msum3, Msum4, Msum5, Msum6 };
    cask_futures_destroy (all, sizeof all / sizeof all [0]);
}

static void
s_goes_wrong (cask_client_t *client)
{
    cask_future_t *N = cask_submit (client, "goes_wrong", NULL);
    if (!N) {
        tutorial_fail ("submit goes_wrong: %s", cask_client_error (client));
        return;
    }
    const cask_value_t *result = cask_future_result (N, TUTORIAL_TIMEOUT_MS);
    tutorial_print_future ("N", N);
    if (result || cask_future_status (N) != CASK_ERROR)
        tutorial_fail ("goes_wrong did not fail");
    else
        printf ("N.result() failed: %s\n", cask_future_error (N));
    if (!strstr (cask_future_error (N), "division by zero"))
        tutorial_fail ("goes_wrong failed without its cause: %s", cask_future_error (N));
    cask_future_destroy (&N);
}

//  client.restart(): a finished future and a running one are cancelled,
//  and the cluster takes new work at once
static void
s_restart (cask_client_t *client)
{
    cask_future_t *done = s_count_primes (client, 1000);
    cask_future_t *slow = s_count_primes (client, 8000000);
    if (!done || !slow) {
        cask_future_destroy (&done);
        cask_future_destroy (&slow);
        return;
    }
    tutorial_expect ("done.result()", done, 168);
    tutorial_print_future ("slow", slow);
    if (cask_client_restart (client, 30000))
        tutorial_fail ("restart: %s", cask_client_error (client));
    else
        printf ("client.restart()\n");
    tutorial_print_future ("done", done);
    tutorial_print_future ("slow", slow);
    if (cask_future_status (done) != CASK_CANCELLED || cask_future_status (slow) != CASK_CANCELLED)
        tutorial_fail ("restart left futures that are not cancelled");
    if (cask_future_result (slow, 0))
        tutorial_fail ("a cancelled future gave a result");
    else
        printf ("slow.result() failed: %s\n", cask_future_error (slow));
    cask_future_destroy (&done);
    cask_future_destroy (&slow);
    cask_future_t *x = cask_submit (client, "inc", cask_int64 (1), NULL);
    if (x)
        tutorial_expect ("client.submit(inc, 1).result()", x, 2);
    else
        tutorial_fail ("submit after restart: %s", cask_client_error (client));
    cask_future_destroy (&x);
}

int
main (int argc, char **argv)
{
    double start = tutorial_now ();
    cask_client_t *client = tutorial_connect (argc, argv);
    if (!client)
        return 1;
    s_submit_and_watch (client);
    s_map_and_watch (client);
    double local = s_local_test ();
    double distributed = s_distributed_test (client);
    if (distributed > 0)
        printf ("speed-up: %.1fx with %zu worker(s)\n", local / distributed,
                cask_client_nworkers (client));
    s_chain (client);
    s_dag (client);
    s_goes_wrong (client);
    s_restart (client);
    cask_client_destroy (&client);
    printf ("%s (%.1f s)\n", tutorial_failures () ? "FAILED" : "OK", tutorial_now () - start);
    return tutorial_failures () ? 1 : 0;
}
