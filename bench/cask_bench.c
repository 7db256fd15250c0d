/*  cask_bench.c - measures cask's hot path: the cask half of bench/compare,
    which runs the same workloads on Dask (bench/dask_bench.py).

    Usage: cask-bench [options] LIBRARY         (--help for the options)

    LIBRARY is libbench.so (bench_lib.c). Without --broker, every cluster is
    a local one of 2 workers x 1 thread (cask_client_new_local), the shape
    issue 7 compares with Dask's LocalCluster; with --broker, the workloads
    that need a cluster of their own (start-up, broker memory) are skipped.

    startup     from nothing to a local cluster with 2 workers joined;
    throughput  map of noop over N int64 inputs (default 100,000), then
                gather: tasks per second end to end, and the map call alone
                per task;
    latency     1,000 sequential submit (inc, i) then result: median and p99;
    graph       the tutorial's inc/double/add chains for 256 and 5,000
                inputs plus the tree sum: tasks per second;
    completed   as_completed reduction: map inc over 5,000 inputs, then add
                futures pairwise in the order they finish until one is left;
    p2p         a 100 MB and a 1 GB bytes result made on one worker and
                taken by a task on the other: MB/s of the move, beside raw
                loopback TCP measured here (a forked sender, the best of
                three ways to call read and write, see s_tcp);
    memory      the broker's resident bytes per pending task, for 1,000,000
                tasks waiting on one blocker (REPORT "rss_bytes" before and
                after), on a fresh cluster.

    Each workload runs --repeat times (3; 1 with --quick) and the best run
    counts. Every run uses inputs no earlier run used, so no result is
    served from an earlier identical task, and every result is checked.
    Prints one line per figure; --json FILE writes them with every sample.
    Exits 0 when every workload ran and gave the right results, 1 when one
    failed, 2 on a usage error: timing never fails it.
*/
#include <cask/cask.h>
#include <cjson/cJSON.h>
#include <zmq.h>

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cask_report.h"

#define S_TIMEOUT_MS 120000
#define S_START_TIMEOUT_MS 60000
#define S_MB 1e6                    //  MB/s are 10^6 bytes a second
#define S_NGRAPHS 2
#define S_NMOVES 2

enum {
    S_STARTUP = 1 << 0,
    S_THROUGHPUT = 1 << 1,
    S_LATENCY = 1 << 2,
    S_GRAPH = 1 << 3,
    S_COMPLETED = 1 << 4,
    S_P2P = 1 << 5,
    S_MEMORY = 1 << 6,
    S_ALL = (1 << 7) - 1
};

static const char *s_workload_names [] = {
    "startup", "throughput", "latency", "graph", "completed", "p2p", "memory", NULL
};

typedef struct {
    const char *library;
    const char *broker;             //  NULL: local clusters
    const char *json_path;          //  NULL: no JSON
    unsigned workloads;             //  S_ bits
    bool quick;
    int repeat;
    size_t ntasks;                  //  throughput
    size_t nlatency;
    size_t graph_sizes [S_NGRAPHS];
    size_t ncompleted;
    size_t move_sizes [S_NMOVES];
    size_t npending;
} s_options_t;

typedef struct {
    s_options_t options;
    cask_client_t *client;          //  the cluster of the hot-path workloads
    void *zmq_ctx;                  //  for REPORT round trips
    int64_t next_input;             //  inputs are never used twice
    cJSON *json;                    //  the figures, as they come
} s_bench_t;

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

//  n fresh inputs: the first of a range no run used before
static int64_t
s_inputs (s_bench_t *self, size_t n)
{
    int64_t first = self->next_input;
    self->next_input += (int64_t) n;
    return first;
}

static double
s_max (const double *xs, size_t n)
{
    double best = xs [0];
    for (size_t i = 1; i < n; i++)
        if (xs [i] > best)
            best = xs [i];
    return best;
}

static double
s_min (const double *xs, size_t n)
{
    double best = xs [0];
    for (size_t i = 1; i < n; i++)
        if (xs [i] < best)
            best = xs [i];
    return best;
}

//  ---------------------------------------------------------------------
//  Start-up: from nothing to 2 workers joined

static int
s_startup (s_bench_t *self)
{
    int repeat = self->options.repeat;
    double samples [repeat];
    for (int run = 0; run < repeat; run++) {
        double start = s_now ();
        cask_client_t *client = cask_client_new_local (2, 1, S_START_TIMEOUT_MS);
        double ready = s_now ();
        if (!client || cask_client_nworkers (client) < 2) {
            fprintf (stderr, "startup: %s\n", client ? "fewer than 2 workers joined"
                                                     : cask_client_last_error ());
            cask_client_destroy (&client);
            return -1;
        }
        cask_client_destroy (&client);
        samples [run] = (ready - start) * 1e3;
    }
    double best = s_min (samples, (size_t) repeat);
    printf ("startup:    %.1f ms to a local cluster of 2 workers (best of %d)\n", best, repeat);
    cJSON *json = cJSON_AddObjectToObject (self->json, "startup");
    cJSON_AddNumberToObject (json, "ms", best);
    cJSON_AddItemToObject (json, "samples", cJSON_CreateDoubleArray (samples, repeat));
    return 0;
}

//  ---------------------------------------------------------------------
//  Throughput: map + gather of noop

static int
s_throughput_run (s_bench_t *self, size_t n, double *rate, double *map_us)
{
    int64_t *xs = malloc (n * sizeof (int64_t));
    cask_future_t **futures = calloc (n, sizeof (cask_future_t *));
    if (!xs || !futures) {
        free (xs);
        free (futures);
        return -1;
    }
    int64_t first = s_inputs (self, n);
    for (size_t i = 0; i < n; i++)
        xs [i] = first + (int64_t) i;
    double start = s_now ();
    int rc = cask_map (self->client, "noop", cask_list_of_int64 (xs, n), futures);
    double mapped = s_now ();
    if (rc == 0)
        rc = cask_gather (self->client, futures, n, S_TIMEOUT_MS);
    double end = s_now ();
    if (rc)
        fprintf (stderr, "throughput: %s\n", cask_client_error (self->client));
    //  noop returns its argument: every result is checked
    for (size_t i = 0; rc == 0 && i < n; i++) {
        int64_t x;
        if (cask_future_int64 (futures [i], 0, &x) || x != xs [i]) {
            fprintf (stderr, "throughput: task %zu gave a wrong result\n", i);
            rc = -1;
        }
    }
    if (rc == 0) {
        *rate = n / (end - start);
        *map_us = (mapped - start) * 1e6 / n;
    }
    cask_futures_destroy (futures, rc == 0 ? n : 0);
    free (futures);
    free (xs);
    return rc;
}

static int
s_throughput (s_bench_t *self)
{
    int repeat = self->options.repeat;
    size_t n = self->options.ntasks;
    double rates [repeat], map_us [repeat];
    for (int run = 0; run < repeat; run++)
        if (s_throughput_run (self, n, &rates [run], &map_us [run]))
            return -1;
    double rate = s_max (rates, (size_t) repeat), map_best = s_min (map_us, (size_t) repeat);
    printf ("throughput: %zu tasks, %.0f tasks/s end to end (best of %d)\n", n, rate, repeat);
    printf ("map call:   %.2f us per task\n", map_best);
    cJSON *json = cJSON_AddObjectToObject (self->json, "throughput");
    cJSON_AddNumberToObject (json, "tasks", (double) n);
    cJSON_AddNumberToObject (json, "tasks_per_s", rate);
    cJSON_AddNumberToObject (json, "map_us_per_task", map_best);
    cJSON_AddItemToObject (json, "tasks_per_s_samples", cJSON_CreateDoubleArray (rates, repeat));
    cJSON_AddItemToObject (json, "map_us_samples", cJSON_CreateDoubleArray (map_us, repeat));
    return 0;
}

//  ---------------------------------------------------------------------
//  Latency: sequential submit + result

static int
s_latency_run (s_bench_t *self, size_t n, double *median, double *p99)
{
    double *samples = malloc (n * sizeof (double));
    if (!samples)
        return -1;
    int64_t first = s_inputs (self, n);
    for (size_t i = 0; i < n; i++) {
        double start = s_now ();
        cask_future_t *f = cask_submit (self->client, "inc", cask_int64 (first + (int64_t) i), NULL);
        int64_t result;
        if (!f || cask_future_int64 (f, S_TIMEOUT_MS, &result) || result != first + (int64_t) i + 1) {
            fprintf (stderr, "latency: %s\n", f ? cask_future_error (f)
                                                : cask_client_error (self->client));
            cask_future_destroy (&f);
            free (samples);
            return -1;
        }
        samples [i] = (s_now () - start) * 1e6;
        cask_future_destroy (&f);
    }
    qsort (samples, n, sizeof (double), s_compare_double);
    *median = samples [n / 2];
    *p99 = samples [n * 99 / 100];
    free (samples);
    return 0;
}

static int
s_latency (s_bench_t *self)
{
    int repeat = self->options.repeat, best = 0;
    size_t n = self->options.nlatency;
    double medians [repeat], p99s [repeat];
    for (int run = 0; run < repeat; run++) {
        if (s_latency_run (self, n, &medians [run], &p99s [run]))
            return -1;
        if (medians [run] < medians [best])
            best = run;
    }
    printf ("latency:    median %.0f us, p99 %.0f us over %zu submit+result (best of %d)\n",
            medians [best], p99s [best], n, repeat);
    cJSON *json = cJSON_AddObjectToObject (self->json, "latency");
    cJSON_AddNumberToObject (json, "n", (double) n);
    cJSON_AddNumberToObject (json, "median_us", medians [best]);
    cJSON_AddNumberToObject (json, "p99_us", p99s [best]);
    cJSON_AddItemToObject (json, "median_samples", cJSON_CreateDoubleArray (medians, repeat));
    cJSON_AddItemToObject (json, "p99_samples", cJSON_CreateDoubleArray (p99s, repeat));
    return 0;
}

//  ---------------------------------------------------------------------
//  The tutorial's graph: z = add (x, double (x)) with x = inc (i) for each
//  input, then neighbours added pairwise up a tree (an odd one out moves up
//  as it is) to one total.

static int
s_graph_run (s_bench_t *self, size_t n, size_t *ntasks, double *rate)
{
    cask_future_t **all = calloc (5 * n, sizeof (cask_future_t *));
    cask_future_t **level = calloc (n, sizeof (cask_future_t *));
    if (!all || !level) {
        free (all);
        free (level);
        return -1;
    }
    int64_t offset = s_inputs (self, n);
    size_t count = 0;
    double start = s_now ();
    for (size_t i = 0; i < n; i++) {
        cask_future_t *x = cask_submit (self->client, "inc", cask_int64 (offset + (int64_t) i), NULL);
        cask_future_t *y = cask_submit (self->client, "double", cask_future_arg (x), NULL);
        all [count++] = x;
        all [count++] = y;
        all [count++] = level [i] =
            cask_submit (self->client, "add", cask_future_arg (x), cask_future_arg (y), NULL);
    }
    for (size_t width = n; width > 1; width = (width + 1) / 2) {
        for (size_t i = 0; i < width / 2; i++)
            all [count++] = level [i] = cask_submit (self->client, "add",
                cask_future_arg (level [2 * i]), cask_future_arg (level [2 * i + 1]), NULL);
        if (width % 2)
            level [width / 2] = level [width - 1];
    }
    int64_t total = 0;
    int rc = cask_future_int64 (level [0], S_TIMEOUT_MS, &total);
    double end = s_now ();
    //  x + 2x = 3 (offset + i + 1), summed over i
    int64_t expected = 3 * ((int64_t) n * (offset + 1) + (int64_t) (n * (n - 1) / 2));
    if (rc || total != expected) {
        fprintf (stderr, "graph %zu: total %lld, expected %lld: %s\n", n, (long long) total,
                 (long long) expected, cask_future_error (level [0]));
        rc = -1;
    }
    *ntasks = count;
    *rate = count / (end - start);
    cask_futures_destroy (all, count);
    free (level);
    free (all);
    return rc;
}

static int
s_graph (s_bench_t *self)
{
    int repeat = self->options.repeat;
    cJSON *array = cJSON_AddArrayToObject (self->json, "graph");
    for (size_t g = 0; g < S_NGRAPHS; g++) {
        size_t n = self->options.graph_sizes [g], ntasks = 0;
        double rates [repeat];
        for (int run = 0; run < repeat; run++)
            if (s_graph_run (self, n, &ntasks, &rates [run]))
                return -1;
        double rate = s_max (rates, (size_t) repeat);
        printf ("graph %-5zu %zu tasks, %.0f tasks/s (best of %d)\n", n, ntasks, rate, repeat);
        cJSON *json = cJSON_CreateObject ();
        cJSON_AddNumberToObject (json, "inputs", (double) n);
        cJSON_AddNumberToObject (json, "tasks", (double) ntasks);
        cJSON_AddNumberToObject (json, "tasks_per_s", rate);
        cJSON_AddItemToObject (json, "samples", cJSON_CreateDoubleArray (rates, repeat));
        cJSON_AddItemToArray (array, json);
    }
    return 0;
}

//  ---------------------------------------------------------------------
//  as_completed reduction, as in the custom-workloads tutorial: inc over
//  the inputs, then the first two to finish are added, the sum goes back
//  into the iterator, until one future is left.

static int
s_completed_run (s_bench_t *self, size_t n, size_t *ntasks, double *rate)
{
    int64_t *xs = malloc (n * sizeof (int64_t));
    cask_future_t **zs = calloc (n, sizeof (cask_future_t *));
    if (!xs || !zs) {
        free (xs);
        free (zs);
        return -1;
    }
    int64_t offset = s_inputs (self, n);
    for (size_t i = 0; i < n; i++)
        xs [i] = offset + (int64_t) i;
    size_t count = n;
    int64_t total = 0;
    double start = s_now ();
    int rc = cask_map (self->client, "inc", cask_list_of_int64 (xs, n), zs);
    cask_as_completed_t *seq = rc == 0 ? cask_as_completed_new (self->client, zs, n, 0) : NULL;
    cask_futures_destroy (zs, rc == 0 ? n : 0);     //  the iterator holds its own
    rc = seq ? 0 : -1;
    while (rc == 0 && cask_as_completed_count (seq) > 1) {
        cask_future_t *a = cask_as_completed_next (seq, S_TIMEOUT_MS);
        cask_future_t *b = a ? cask_as_completed_next (seq, S_TIMEOUT_MS) : NULL;
        cask_future_t *sum = b ? cask_submit (self->client, "add", cask_future_arg (a),
                                              cask_future_arg (b), NULL) : NULL;
        if (!sum || cask_as_completed_add (seq, sum))
            rc = -1;
        count++;
        cask_futures_destroy ((cask_future_t *[]) { a, b, sum }, 3);
    }
    cask_future_t *last = rc == 0 ? cask_as_completed_next (seq, S_TIMEOUT_MS) : NULL;
    if (!last || cask_future_int64 (last, S_TIMEOUT_MS, &total))
        rc = -1;
    double end = s_now ();
    int64_t expected = (int64_t) n * (offset + 1) + (int64_t) (n * (n - 1) / 2);
    if (rc || total != expected) {
        fprintf (stderr, "as_completed %zu: total %lld, expected %lld: %s\n", n,
                 (long long) total, (long long) expected, cask_client_error (self->client));
        rc = -1;
    }
    *ntasks = count;
    *rate = count / (end - start);
    cask_future_destroy (&last);
    cask_as_completed_destroy (&seq);
    free (zs);
    free (xs);
    return rc;
}

static int
s_completed (s_bench_t *self)
{
    int repeat = self->options.repeat;
    size_t n = self->options.ncompleted, ntasks = 0;
    double rates [repeat];
    for (int run = 0; run < repeat; run++)
        if (s_completed_run (self, n, &ntasks, &rates [run]))
            return -1;
    double rate = s_max (rates, (size_t) repeat);
    printf ("completed:  %zu inputs, %zu tasks, %.0f tasks/s (best of %d)\n", n, ntasks, rate,
            repeat);
    cJSON *json = cJSON_AddObjectToObject (self->json, "as_completed");
    cJSON_AddNumberToObject (json, "inputs", (double) n);
    cJSON_AddNumberToObject (json, "tasks", (double) ntasks);
    cJSON_AddNumberToObject (json, "tasks_per_s", rate);
    cJSON_AddItemToObject (json, "samples", cJSON_CreateDoubleArray (rates, repeat));
    return 0;
}

//  ---------------------------------------------------------------------
//  Peer to peer, and raw loopback TCP beside it

//  Raw loopback TCP, what the move is compared with: a forked child writes
//  size bytes from a buffer the parent wrote before the fork (as a worker
//  holds a result it made) on a plain TCP connection, chunk bytes per
//  write(); the parent reads them, chunk bytes per read(), into a buffer
//  just allocated, whose pages the kernel faults in as they fill (as any
//  receiver of a new value's), or with touched true into one already
//  written. The time runs from the go byte the parent sends to the last
//  byte read. Which chunk size does best varies here (256 KiB usually
//  beats one call for the whole buffer), so s_p2p tries several and the
//  best counts: the bar the move must reach is the best the kernel gives.
//  Returns MB/s, or -1.
static double
s_tcp (const char *payload, size_t size, size_t chunk, bool touched)
{
    int listener = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in address = {
        .sin_family = AF_INET, .sin_addr.s_addr = htonl (INADDR_LOOPBACK)
    };
    socklen_t length = sizeof address;
    if (listener < 0 || bind (listener, (struct sockaddr *) &address, sizeof address)
    ||  listen (listener, 1) || getsockname (listener, (struct sockaddr *) &address, &length)) {
        fprintf (stderr, "tcp: cannot listen on loopback: %s\n", strerror (errno));
        if (listener >= 0)
            close (listener);
        return -1;
    }
    pid_t pid = fork ();
    if (pid == 0) {
        //  Only system calls until _exit: the parent's threads are not ours
        close (listener);
        int fd = socket (AF_INET, SOCK_STREAM, 0);
        char go;
        if (fd < 0 || connect (fd, (struct sockaddr *) &address, sizeof address)
        ||  read (fd, &go, 1) != 1)
            _exit (1);
        for (size_t sent = 0; sent < size; ) {
            ssize_t rc = write (fd, payload + sent, size - sent < chunk ? size - sent : chunk);
            if (rc < 0 && errno != EINTR)
                _exit (1);
            sent += rc > 0 ? (size_t) rc : 0;
        }
        close (fd);
        _exit (0);
    }
    double rate = -1;
    int fd = pid > 0 ? accept (listener, NULL, NULL) : -1;
    close (listener);
    char *buffer = fd >= 0 ? malloc (size) : NULL;
    if (buffer) {
        if (touched)
            memset (buffer, 0, size);
        size_t got = 0;
        double start = s_now ();
        if (write (fd, "g", 1) == 1)
            while (got < size) {
                ssize_t rc = read (fd, buffer + got, size - got < chunk ? size - got : chunk);
                if (rc == 0 || (rc < 0 && errno != EINTR))
                    break;
                got += rc > 0 ? (size_t) rc : 0;
            }
        double end = s_now ();
        if (got == size && buffer [size - 1] == payload [size - 1])
            rate = size / S_MB / (end - start);
    }
    free (buffer);
    if (fd >= 0)
        close (fd);
    int status = 0;
    if (pid > 0) {
        if (rate < 0)
            kill (pid, SIGKILL);
        while (waitpid (pid, &status, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED (status) || WEXITSTATUS (status))
            rate = -1;
    }
    if (rate < 0)
        fprintf (stderr, "tcp: the loopback transfer of %zu bytes failed\n", size);
    return rate;
}

//  One move: make_bytes on worker `from`, waited for, then nbytes on worker
//  `to`, which must fetch it; timed from that submit to its result.
//  Returns MB/s, or -1.
static double
s_move (s_bench_t *self, size_t size, const char *from, const char *to)
{
    cask_submit_opts_t opts = CASK_SUBMIT_DEFAULT;
    opts.unique = true;
    opts.workers = from;
    cask_future_t *made = cask_submit_opts (self->client, "make_bytes", &opts,
                                            (cask_value_t *[]) { cask_int64 ((int64_t) size) }, 1);
    if (!made || cask_wait (self->client, &made, 1, CASK_WAIT_ALL, S_TIMEOUT_MS) != 1
    ||  cask_future_status (made) != CASK_FINISHED) {
        fprintf (stderr, "p2p: making %zu bytes: %s\n", size, cask_future_error (made));
        cask_future_destroy (&made);
        return -1;
    }
    opts.workers = to;
    double start = s_now ();
    cask_future_t *taken = cask_submit_opts (self->client, "nbytes", &opts,
                                             (cask_value_t *[]) { cask_future_arg (made) }, 1);
    int64_t got = -1;
    int rc = cask_future_int64 (taken, S_TIMEOUT_MS, &got);
    double end = s_now ();
    if (rc || got != (int64_t) size)
        fprintf (stderr, "p2p: moving %zu bytes: got %lld: %s\n", size, (long long) got,
                 cask_future_error (taken));
    cask_futures_destroy ((cask_future_t *[]) { taken, made }, 2);
    return rc || got != (int64_t) size ? -1 : size / S_MB / (end - start);
}

//  The raw TCP variants s_p2p runs beside each move: chunk 0 is the whole
//  buffer in one call
static const struct {
    size_t chunk;
    bool touched;
    const char *name;
} s_tcp_variants [] = {
    { 0, false, "whole buffer per call, into fresh memory" },
    { 256 * 1024, false, "256 KiB per call, into fresh memory" },
    { 256 * 1024, true, "256 KiB per call, into touched memory" }
};
#define S_NTCP (sizeof s_tcp_variants / sizeof s_tcp_variants [0])

static int
s_p2p (s_bench_t *self)
{
    cask_cluster_info_t *info = cask_client_info (self->client, 10000);
    if (!info || info->nworkers < 2) {
        fprintf (stderr, "p2p: needs 2 workers: %s\n",
                 info ? "fewer joined" : cask_client_error (self->client));
        cask_cluster_info_destroy (&info);
        return -1;
    }
    const char *from = info->workers [0].endpoint, *to = info->workers [1].endpoint;
    int repeat = self->options.repeat, rc = 0;
    cJSON *array = cJSON_AddArrayToObject (self->json, "p2p");
    for (size_t m = 0; rc == 0 && m < S_NMOVES; m++) {
        size_t size = self->options.move_sizes [m];
        double moves [repeat], tcps [S_NTCP][repeat];
        //  Back to back, after one move that is not counted, and with no
        //  payload of our own held meanwhile: on the development VM, the
        //  first touch of memory the host has not backed lately costs
        //  1.0 s a GB against 0.35 s for pages freed a moment ago, and
        //  the host takes freed pages back within seconds. Moves in a row
        //  receive into the pages the one before freed, as the raw TCP
        //  runs in a row below do; interleaving them made the moves land
        //  on cold pages and run at half speed.
        if (s_move (self, size, from, to) < 0)
            rc = -1;
        for (int run = 0; rc == 0 && run < repeat; run++)
            if ((moves [run] = s_move (self, size, from, to)) < 0)
                rc = -1;
        char *payload = rc == 0 ? malloc (size) : NULL;
        if (payload)
            memset (payload, 0x5a, size);
        else
            rc = -1;
        for (size_t v = 0; rc == 0 && v < S_NTCP; v++)
            for (int run = 0; rc == 0 && run < repeat; run++) {
                size_t chunk = s_tcp_variants [v].chunk ? s_tcp_variants [v].chunk : size;
                if ((tcps [v][run] = s_tcp (payload, size, chunk, s_tcp_variants [v].touched)) < 0)
                    rc = -1;
            }
        free (payload);
        if (rc)
            break;
        double move = s_max (moves, (size_t) repeat), tcp = 0;
        cJSON *json = cJSON_CreateObject ();
        cJSON *variants = cJSON_CreateArray ();
        for (size_t v = 0; v < S_NTCP; v++) {
            double best = s_max (tcps [v], (size_t) repeat);
            tcp = best > tcp ? best : tcp;
            cJSON *variant = cJSON_CreateObject ();
            cJSON_AddStringToObject (variant, "how", s_tcp_variants [v].name);
            cJSON_AddNumberToObject (variant, "mb_per_s", best);
            cJSON_AddItemToObject (variant, "samples", cJSON_CreateDoubleArray (tcps [v], repeat));
            cJSON_AddItemToArray (variants, variant);
        }
        printf ("p2p:        %zu bytes worker to worker %.0f MB/s; raw loopback TCP %.0f MB/s "
                "(best of %d runs of %zu ways)\n", size, move, tcp, repeat, S_NTCP);
        cJSON_AddNumberToObject (json, "bytes", (double) size);
        cJSON_AddNumberToObject (json, "mb_per_s", move);
        cJSON_AddNumberToObject (json, "tcp_mb_per_s", tcp);
        cJSON_AddItemToObject (json, "samples", cJSON_CreateDoubleArray (moves, repeat));
        cJSON_AddItemToObject (json, "tcp", variants);
        cJSON_AddItemToArray (array, json);
    }
    cask_cluster_info_destroy (&info);
    return rc;
}

//  ---------------------------------------------------------------------
//  Broker memory per pending task

//  A number from the broker's REPORT: "rss_bytes", or "tasks"."total" with
//  section "tasks". -1 when no REPORT came.
static double
s_report_number (s_bench_t *self, cask_client_t *client, const char *section, const char *name)
{
    cJSON *report = cask_report_fetch (self->zmq_ctx, cask_client_address (client), 10000);
    const cJSON *object = section ? cJSON_GetObjectItemCaseSensitive (report, section) : report;
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (object, name);
    double number = cJSON_IsNumber (item) ? item->valuedouble : -1;
    cJSON_Delete (report);
    return number;
}

static int
s_memory (s_bench_t *self)
{
    size_t n = self->options.npending;
    char dir [] = "/tmp/cask-bench-memory.XXXXXX", path [sizeof dir + 16];
    if (!mkdtemp (dir)) {
        fprintf (stderr, "memory: cannot make a temp dir: %s\n", strerror (errno));
        return -1;
    }
    snprintf (path, sizeof path, "%s/release", dir);
    //  A fresh broker: one that ran other workloads may hold freed memory
    //  the new tasks would reuse, which would make them look cheaper
    cask_client_t *client = cask_client_new_local (2, 1, S_START_TIMEOUT_MS);
    cask_future_t **futures = calloc (n, sizeof (cask_future_t *));
    cask_future_t *blocker = NULL;
    cask_value_t *inputs = cask_list_new (n);
    int rc = client && futures && inputs
          && cask_client_register (client, self->options.library, S_START_TIMEOUT_MS) == 0 ? 0 : -1;
    cask_submit_opts_t opts = CASK_SUBMIT_DEFAULT;
    opts.unique = true;
    if (rc == 0)
        blocker = cask_submit_opts (client, "wait_file", &opts, (cask_value_t *[]) {
            cask_string (path), cask_int64 (S_TIMEOUT_MS) }, 2);
    //  Once the blocker runs, the broker is as it will be but for the tasks
    double before = -1, after = -1, total = -1;
    for (double deadline = s_now () + 10; rc == 0 && blocker && s_now () < deadline; ) {
        if (s_report_number (self, client, "tasks", "processing") >= 1) {
            before = s_report_number (self, client, NULL, "rss_bytes");
            break;
        }
        nanosleep (&(struct timespec) { .tv_nsec = 10000000 }, NULL);
    }
    for (size_t i = 0; before > 0 && i < n; i++)
        if (cask_list_append (inputs, cask_future_arg (blocker)))
            before = -1;
    if (before > 0 && cask_map_opts (client, "noop", inputs, &opts, futures) == 0) {
        inputs = NULL;          //  taken
        double deadline = s_now () + S_TIMEOUT_MS / 1e3;
        while ((total = s_report_number (self, client, "tasks", "total")) >= 0
            && total < (double) n + 1 && s_now () < deadline)
            nanosleep (&(struct timespec) { .tv_nsec = 20000000 }, NULL);
        //  Settled: a last look once the broker has had all of them a while
        nanosleep (&(struct timespec) { .tv_nsec = 200000000 }, NULL);
        after = s_report_number (self, client, NULL, "rss_bytes");
    }
    if (before <= 0 || after <= 0 || total < (double) n + 1) {
        fprintf (stderr, "memory: %zu pending tasks: rss before %.0f, after %.0f, tasks %.0f: %s\n",
                 n, before, after, total, client ? cask_client_error (client)
                                                 : cask_client_last_error ());
        rc = -1;
    }
    //  Release the tasks, then let the blocker end
    cask_futures_destroy (futures, futures ? n : 0);
    FILE *file = fopen (path, "w");
    if (file)
        fclose (file);
    if (blocker && rc == 0) {
        int64_t zero;
        if (cask_future_int64 (blocker, S_TIMEOUT_MS, &zero))
            rc = -1;
    }
    cask_future_destroy (&blocker);
    cask_value_destroy (&inputs);
    cask_client_destroy (&client);
    free (futures);
    unlink (path);
    rmdir (dir);
    if (rc)
        return -1;
    double per_task = (after - before) / n;
    printf ("memory:     %zu pending tasks, broker rss %.1f -> %.1f MB, %.0f bytes per task\n",
            n, before / S_MB, after / S_MB, per_task);
    cJSON *json = cJSON_AddObjectToObject (self->json, "memory");
    cJSON_AddNumberToObject (json, "pending", (double) n);
    cJSON_AddNumberToObject (json, "rss_before", before);
    cJSON_AddNumberToObject (json, "rss_after", after);
    cJSON_AddNumberToObject (json, "bytes_per_task", per_task);
    return 0;
}

//  ---------------------------------------------------------------------

static void
s_usage (FILE *out)
{
    fprintf (out,
        "usage: cask-bench [options] LIBRARY\n"
        "\n"
        "Runs issue 7's workloads on cask. LIBRARY is libbench.so (BUILD/bench/).\n"
        "Local clusters (2 workers x 1 thread) find cask-broker and cask-worker as\n"
        "cask_client_new_local does: from a build tree, set\n"
        "CASK_BROKER_BIN=BUILD/broker/cask-broker and\n"
        "CASK_WORKER_BIN=BUILD/worker/cask-worker.\n"
        "\n"
        "  -b, --broker ADDRESS  use this running cluster instead of local ones\n"
        "                        (startup and memory are then skipped)\n"
        "  -o, --only LIST       workloads, comma-separated, of: startup, throughput,\n"
        "                        latency, graph, completed, p2p, memory (default: all)\n"
        "  -n, --tasks N         throughput tasks (default 100000)\n"
        "  -p, --pending N       pending tasks for the memory figure (default 1000000)\n"
        "  -r, --repeat R        runs of each workload, the best counts (default 3)\n"
        "  -q, --quick           small sizes and 1 run: seconds, to see it works\n"
        "  -j, --json FILE       also write the figures, with every run, as JSON\n"
        "  -h, --help            show this and exit\n");
}

static int
s_parse_size (const char *text, const char *option, size_t min, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long value = strtoull (text, &end, 10);
    if (errno || end == text || *end || value < min || value > 100000000) {
        fprintf (stderr, "cask-bench: %s takes a number from %zu to 100000000, not '%s'\n",
                 option, min, text);
        return -1;
    }
    *out = (size_t) value;
    return 0;
}

static int
s_parse_workloads (const char *text, unsigned *workloads)
{
    *workloads = 0;
    char copy [256];
    snprintf (copy, sizeof copy, "%s", text);
    char *save = NULL;
    for (char *name = strtok_r (copy, ",", &save); name; name = strtok_r (NULL, ",", &save)) {
        size_t index = 0;
        while (s_workload_names [index] && strcmp (s_workload_names [index], name))
            index++;
        if (!s_workload_names [index]) {
            fprintf (stderr, "cask-bench: no workload '%s' (try --help)\n", name);
            return -1;
        }
        *workloads |= 1u << index;
    }
    return 0;
}

//  Returns 0 to run, 1 to exit successfully (--help), -1 on a usage error.
static int
s_parse_options (s_options_t *options, int argc, char *argv [])
{
    static const struct option longopts [] = {
        { "broker", required_argument, NULL, 'b' },
        { "only", required_argument, NULL, 'o' },
        { "tasks", required_argument, NULL, 'n' },
        { "pending", required_argument, NULL, 'p' },
        { "repeat", required_argument, NULL, 'r' },
        { "quick", no_argument, NULL, 'q' },
        { "json", required_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    *options = (s_options_t) {
        .workloads = S_ALL, .repeat = 3, .ntasks = 100000, .nlatency = 1000,
        .graph_sizes = { 256, 5000 }, .ncompleted = 5000,
        .move_sizes = { 100000000, 1000000000 }, .npending = 1000000
    };
    size_t ntasks = 0, npending = 0, repeat = 0;
    int option;
    while ((option = getopt_long (argc, argv, "b:o:n:p:r:qj:h", longopts, NULL)) != -1) {
        switch (option) {
            case 'b': options->broker = optarg; break;
            case 'o':
                if (s_parse_workloads (optarg, &options->workloads))
                    return -1;
                break;
            case 'n':
                if (s_parse_size (optarg, "--tasks", 1, &ntasks))
                    return -1;
                break;
            case 'p':
                if (s_parse_size (optarg, "--pending", 1, &npending))
                    return -1;
                break;
            case 'r':
                if (s_parse_size (optarg, "--repeat", 1, &repeat) || repeat > 100) {
                    fprintf (stderr, "cask-bench: --repeat takes 1 to 100\n");
                    return -1;
                }
                break;
            case 'q': options->quick = true; break;
            case 'j': options->json_path = optarg; break;
            case 'h':
                s_usage (stdout);
                return 1;
            default:
                fprintf (stderr, "cask-bench: try --help\n");
                return -1;
        }
    }
    if (argc - optind != 1) {
        s_usage (stderr);
        return -1;
    }
    options->library = argv [optind];
    if (access (options->library, R_OK)) {
        fprintf (stderr, "cask-bench: cannot read the task library %s: %s\n", options->library,
                 strerror (errno));
        return -1;
    }
    if (options->quick) {
        options->repeat = 1;
        options->ntasks = 2000;
        options->nlatency = 100;
        options->graph_sizes [0] = 64;
        options->graph_sizes [1] = 500;
        options->ncompleted = 500;
        options->move_sizes [0] = 1000000;
        options->move_sizes [1] = 10000000;
        options->npending = 10000;
    }
    if (repeat)
        options->repeat = (int) repeat;
    if (ntasks)
        options->ntasks = ntasks;
    if (npending)
        options->npending = npending;
    if (options->broker)
        options->workloads &= ~(unsigned) (S_STARTUP | S_MEMORY);
    return 0;
}

static int
s_write_json (cJSON *json, const char *path)
{
    char *text = cJSON_Print (json);
    FILE *file = text ? fopen (path, "w") : NULL;
    int rc = file && fputs (text, file) >= 0 && fputc ('\n', file) != EOF ? 0 : -1;
    if (file && fclose (file))
        rc = -1;
    if (rc)
        fprintf (stderr, "cask-bench: cannot write %s: %s\n", path, strerror (errno));
    free (text);
    return rc;
}

int
main (int argc, char **argv)
{
    s_bench_t self = { .next_input = (int64_t) (time (NULL) % 100000) * 10000000 };
    int parsed = s_parse_options (&self.options, argc, argv);
    if (parsed)
        return parsed > 0 ? 0 : 2;
    const s_options_t *options = &self.options;
    setvbuf (stdout, NULL, _IOLBF, 0);
    self.json = cJSON_CreateObject ();
    self.zmq_ctx = zmq_ctx_new ();
    cJSON_AddStringToObject (self.json, "cluster", options->broker ? options->broker
                                                                   : "local, 2 workers x 1 thread");
    cJSON_AddBoolToObject (self.json, "quick", options->quick);
    cJSON_AddNumberToObject (self.json, "repeat", options->repeat);
    cJSON_AddNumberToObject (self.json, "cores", (double) sysconf (_SC_NPROCESSORS_ONLN));

    int rc = 0;
    if (options->workloads & S_STARTUP)
        rc = s_startup (&self);
    unsigned hot = S_THROUGHPUT | S_LATENCY | S_GRAPH | S_COMPLETED | S_P2P;
    if (rc == 0 && (options->workloads & hot)) {
        self.client = options->broker ? cask_client_new (options->broker, 5000)
                                      : cask_client_new_local (2, 1, S_START_TIMEOUT_MS);
        if (!self.client
        ||  cask_client_wait_for_workers (self.client, options->broker ? 1 : 2, 10000)
        ||  cask_client_register (self.client, options->library, 10000)) {
            fprintf (stderr, "cask-bench: %s\n", self.client ? cask_client_error (self.client)
                                                             : cask_client_last_error ());
            rc = -1;
        }
    }
    if (rc == 0 && (options->workloads & S_THROUGHPUT))
        rc = s_throughput (&self);
    if (rc == 0 && (options->workloads & S_LATENCY))
        rc = s_latency (&self);
    if (rc == 0 && (options->workloads & S_GRAPH))
        rc = s_graph (&self);
    if (rc == 0 && (options->workloads & S_COMPLETED))
        rc = s_completed (&self);
    if (rc == 0 && (options->workloads & S_P2P))
        rc = s_p2p (&self);
    cask_client_destroy (&self.client);
    if (rc == 0 && (options->workloads & S_MEMORY))
        rc = s_memory (&self);
    if (rc == 0 && options->json_path)
        rc = s_write_json (self.json, options->json_path);
    cJSON_Delete (self.json);
    zmq_ctx_term (self.zmq_ctx);
    if (rc)
        fprintf (stderr, "cask-bench: failed\n");
    return rc ? 1 : 0;
}
