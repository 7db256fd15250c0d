/*  cask_bench.c - measures cask's hot path on a running cluster.

    Usage: cask-bench BROKER LIBRARY [N]

    throughput  map of noop over N int64 inputs (default 100,000), then
                gather: tasks per second end to end, and the map call alone
                per task;
    latency     1,000 sequential submit (inc, i) then result: median and p99;
    graph       the tutorial's inc/double/add chains for 256 and 5,000
                inputs plus the tree sum: tasks per second.

    Each phase uses inputs no earlier phase used, so no result is served
    from an earlier identical task. Prints one line per figure.
*/
#include <cask/cask.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define TIMEOUT_MS 120000

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
s_compare_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

static int
s_throughput (cask_client_t *client, size_t n)
{
    int64_t *xs = malloc (n * sizeof (int64_t));
    cask_future_t **futures = calloc (n, sizeof (cask_future_t *));
    if (!xs || !futures)
        return -1;
    for (size_t i = 0; i < n; i++)
        xs [i] = (int64_t) i;
    double start = s_now ();
    int rc = cask_map (client, "noop", cask_list_of_int64 (xs, n), futures);
    double mapped = s_now ();
    if (rc == 0)
        rc = cask_gather (client, futures, n, TIMEOUT_MS);
    double end = s_now ();
    if (rc == 0) {
        printf ("throughput: %zu tasks in %.3f s = %.0f tasks/s end to end\n",
                n, end - start, n / (end - start));
        printf ("map call:   %.2f us per task\n", (mapped - start) * 1e6 / n);
    }
    else
        fprintf (stderr, "throughput: %s\n", cask_client_error (client));
    if (rc == 0)
        cask_futures_destroy (futures, n);
    free (futures);
    free (xs);
    return rc;
}

static int
s_latency (cask_client_t *client, size_t n)
{
    double *samples = malloc (n * sizeof (double));
    if (!samples)
        return -1;
    for (size_t i = 0; i < n; i++) {
        double start = s_now ();
        cask_future_t *f = cask_submit (client, "inc", cask_int64 (1000000000 + (int64_t) i), NULL);
        int64_t result;
        if (!f || cask_future_int64 (f, TIMEOUT_MS, &result)) {
            fprintf (stderr, "latency: %s\n", f? cask_future_error (f): cask_client_error (client));
            cask_future_destroy (&f);
            free (samples);
            return -1;
        }
        samples [i] = (s_now () - start) * 1e6;
        cask_future_destroy (&f);
    }
    qsort (samples, n, sizeof (double), s_compare_double);
    printf ("latency:    median %.0f us, p99 %.0f us over %zu submit+result\n",
            samples [n / 2], samples [n * 99 / 100], n);
    free (samples);
    return 0;
}

//  The tutorial's graph: z = add (x, double (x)) with x = inc (i) for each
//  input, then neighbours added pairwise up a tree (an odd one out moves up
//  as it is) to one total.
static int
s_graph (cask_client_t *client, size_t n, int64_t offset)
{
    cask_future_t **all = calloc (5 * n, sizeof (cask_future_t *));
    cask_future_t **level = calloc (n, sizeof (cask_future_t *));
    if (!all || !level)
        return -1;
    size_t count = 0;
    double start = s_now ();
    for (size_t i = 0; i < n; i++) {
        cask_future_t *x = cask_submit (client, "inc", cask_int64 (offset + (int64_t) i), NULL);
        cask_future_t *y = cask_submit (client, "double", cask_future_arg (x), NULL);
        all [count++] = x;
        all [count++] = y;
        all [count++] = level [i] =
            cask_submit (client, "add", cask_future_arg (x), cask_future_arg (y), NULL);
    }
    for (size_t width = n; width > 1; width = (width + 1) / 2) {
        for (size_t i = 0; i < width / 2; i++)
            all [count++] = level [i] = cask_submit (client, "add",
                cask_future_arg (level [2 * i]), cask_future_arg (level [2 * i + 1]), NULL);
        if (width % 2)
            level [width / 2] = level [width - 1];
    }
    int64_t total = 0;
    int rc = cask_future_int64 (level [0], TIMEOUT_MS, &total);
    double end = s_now ();
    //  x + 2x = 3 (offset + i + 1), summed over i
    int64_t expected = 3 * ((int64_t) n * (offset + 1) + (int64_t) (n * (n - 1) / 2));
    if (rc == 0 && total == expected)
        printf ("graph %-5zu %zu tasks in %.3f s = %.0f tasks/s\n",
                n, count, end - start, count / (end - start));
    else
        fprintf (stderr, "graph %zu: total %lld, expected %lld: %s\n", n, (long long) total,
                 (long long) expected, cask_future_error (level [0]));
    cask_futures_destroy (all, count);
    free (level);
    free (all);
    return rc == 0 && total == expected? 0: -1;
}

int
main (int argc, char **argv)
{
    if (argc < 3) {
        fprintf (stderr, "usage: cask-bench BROKER LIBRARY [N]\n");
        return 2;
    }
    size_t n = argc > 3? strtoul (argv [3], NULL, 10): 100000;
    cask_client_t *client = cask_client_new (argv [1], 5000);
    if (!client) {
        fprintf (stderr, "cask-bench: %s\n", cask_client_last_error ());
        return 1;
    }
    int rc = cask_client_wait_for_workers (client, 1, 10000)
          || cask_client_register (client, argv [2], 10000)
          || s_throughput (client, n)
          || s_latency (client, 1000)
          || s_graph (client, 256, 2000000000)
          || s_graph (client, 5000, 3000000000);
    if (rc)
        fprintf (stderr, "cask-bench: %s\n", cask_client_error (client));
    cask_client_destroy (&client);
    return rc? 1: 0;
}
