/*  cask-scaling.c - how the tutorial's count_primes map speeds up with the
    number of workers, beside the same work in plain forked processes.

    Usage: cask-scaling [options] [LIBRARY]     (--help for the options)

    For each worker count w from 1 to --workers, starts a local cluster of w
    workers of 1 thread (cask_client_new_local), registers the tutorial's
    task library, and times map (count_primes_less_than) over --tasks inputs
    plus gather, --repeat times; each run also times the same computations
    split over w forked processes (process p computes tasks p, p + w, ...).
    Cluster start and registration are not timed. Runs alternate between
    plain and cask, so a burst of load from elsewhere hits both alike.

    Every result is checked against the plain C function's (the first plain
    run, which never goes through cask). Keys are unique per run, so no run
    is served the results of an earlier one.

    Prints best and median seconds per point and speed-ups computed from the
    best runs; --json FILE writes the same figures with every sample.
    Exits 0 when every run gave the right counts, 1 on a failure, 2 on a
    usage error.
*/
#include <cask/cask.h>
#include <cjson/cJSON.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tutorial_primes.h"

#define S_FUNCTION "count_primes_less_than"
#define S_DEFAULT_SIZE 1500000      //  about 0.3 s a task on the 2-core dev machine
#define S_DEFAULT_TASKS 8
#define S_DEFAULT_REPEAT 3
#define S_MAX_TASKS 100000
#define S_MAX_WORKERS 256
#define S_START_TIMEOUT_MS 60000    //  cluster start and registration
#define S_RUN_TIMEOUT_MS 3600000    //  one map + gather: the size is the user's

typedef struct {
    const char *library;
    const char *json_path;          //  NULL: no JSON
    size_t max_workers;
    size_t ntasks;
    int repeat;
    int64_t size;                   //  the inputs are size, size + 1, ...
} s_options_t;

//  The runs of one way of computing at one worker count
typedef struct {
    double *seconds;                //  repeat entries, in run order
    double best;
    double median;
} s_series_t;

typedef struct {
    size_t workers;                 //  cask workers, and plain processes
    s_series_t cask;
    s_series_t plain;
} s_point_t;

typedef struct {
    s_options_t options;
    long cores;
    int64_t *inputs;                //  ntasks
    int64_t *reference;             //  the plain C function's counts
    bool have_reference;
    int64_t *results;               //  one cask run's counts
    int64_t *shared;                //  ntasks, mapped shared with forked children
    s_point_t *points;              //  max_workers, points [w - 1] for w workers
    double *samples;                //  every series' seconds
} s_bench_t;

static double
s_now (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (double) now.tv_sec + (double) now.tv_nsec / 1e9;
}

static void
s_usage (FILE *out)
{
    long cores = sysconf (_SC_NPROCESSORS_ONLN);
    fprintf (out,
        "usage: cask-scaling [options] [LIBRARY]\n"
        "\n"
        "Times map (" S_FUNCTION ") + gather on local clusters of 1 to MAX\n"
        "workers of 1 thread, beside the same work in as many forked processes.\n"
        "LIBRARY is the tutorial's libtutorial.so (default: $CASK_TUTORIAL_LIB),\n"
        "built in BUILD/examples/. cask-broker and cask-worker are found as\n"
        "cask_client_new_local finds them: $CASK_BROKER_BIN and $CASK_WORKER_BIN,\n"
        "else in $CASK_BIN_DIR, else in the install bindir, else on $PATH; from a\n"
        "build tree, set CASK_BROKER_BIN=BUILD/broker/cask-broker and\n"
        "CASK_WORKER_BIN=BUILD/worker/cask-worker.\n"
        "\n"
        "  -w, --workers MAX   largest worker count (default: online cores + 1 = %ld)\n"
        "  -n, --size N        the inputs are N, N + 1, ... (default: %d)\n"
        "  -t, --tasks T       number of inputs (default: %d)\n"
        "  -r, --repeat R      runs per point; best and median reported (default: %d)\n"
        "  -j, --json FILE     also write the figures, with every run, as JSON\n"
        "  -h, --help          show this and exit\n"
        "\n"
        "Speed-ups and the cask/plain ratio are computed from the best runs.\n",
        (cores > 0 ? cores : 1) + 1, S_DEFAULT_SIZE, S_DEFAULT_TASKS, S_DEFAULT_REPEAT);
}

//  Parses a whole decimal number in [min, max]. Returns 0, or -1 after
//  saying which option takes what.
static int
s_parse_number (const char *text, const char *option, long long min, long long max,
                long long *number)
{
    char *end;
    errno = 0;
    long long value = strtoll (text, &end, 10);
    if (errno || end == text || *end || value < min || value > max) {
        fprintf (stderr, "cask-scaling: %s takes a number from %lld to %lld, not '%s'\n",
                 option, min, max, text);
        return -1;
    }
    *number = value;
    return 0;
}

//  Parses the command line. Returns 0 to run, 1 to exit successfully
//  (--help), -1 on a usage error.
static int
s_parse_options (s_options_t *options, long cores, int argc, char *argv [])
{
    static const struct option longopts [] = {
        { "workers", required_argument, NULL, 'w' },
        { "size", required_argument, NULL, 'n' },
        { "tasks", required_argument, NULL, 't' },
        { "repeat", required_argument, NULL, 'r' },
        { "json", required_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    *options = (s_options_t) {
        .library = getenv ("CASK_TUTORIAL_LIB"), .max_workers = (size_t) cores + 1,
        .ntasks = S_DEFAULT_TASKS, .repeat = S_DEFAULT_REPEAT, .size = S_DEFAULT_SIZE
    };
    int option;
    long long number = 0;
    while ((option = getopt_long (argc, argv, "w:n:t:r:j:h", longopts, NULL)) != -1) {
        switch (option) {
            case 'w':
                if (s_parse_number (optarg, "--workers", 1, S_MAX_WORKERS, &number))
                    return -1;
                options->max_workers = (size_t) number;
                break;
            case 'n':
                //  Bounded so that size + tasks cannot overflow
                if (s_parse_number (optarg, "--size", 1, INT64_MAX / 2, &number))
                    return -1;
                options->size = number;
                break;
            case 't':
                if (s_parse_number (optarg, "--tasks", 1, S_MAX_TASKS, &number))
                    return -1;
                options->ntasks = (size_t) number;
                break;
            case 'r':
                if (s_parse_number (optarg, "--repeat", 1, 1000, &number))
                    return -1;
                options->repeat = (int) number;
                break;
            case 'j':
                options->json_path = optarg;
                break;
            case 'h':
                s_usage (stdout);
                return 1;
            default:
                fprintf (stderr, "cask-scaling: try --help\n");
                return -1;
        }
    }
    if (optind < argc)
        options->library = argv [optind++];
    if (optind < argc) {
        fprintf (stderr, "cask-scaling: one LIBRARY only, '%s' is one too many\n", argv [optind]);
        return -1;
    }
    if (!options->library || !*options->library) {
        fprintf (stderr, "cask-scaling: no task library: give the path of libtutorial.so "
                 "or set CASK_TUTORIAL_LIB\n");
        return -1;
    }
    //  Said now rather than after the first cluster has started
    if (access (options->library, R_OK)) {
        fprintf (stderr, "cask-scaling: cannot read the task library %s: %s\n",
                 options->library, strerror (errno));
        return -1;
    }
    return 0;
}

static void
s_bench_destroy (s_bench_t **self_p)
{
    s_bench_t *self = *self_p;
    if (!self)
        return;
    *self_p = NULL;
    if (self->shared)
        munmap (self->shared, self->options.ntasks * sizeof (int64_t));
    free (self->inputs);
    free (self->reference);
    free (self->results);
    free (self->points);
    free (self->samples);
    free (self);
}

static s_bench_t *
s_bench_new (const s_options_t *options, long cores)
{
    s_bench_t *self = calloc (1, sizeof *self);
    if (!self)
        return NULL;
    self->options = *options;
    self->cores = cores;
    size_t ntasks = options->ntasks, npoints = options->max_workers;
    size_t nsamples = 2 * npoints * (size_t) options->repeat;
    self->inputs = calloc (ntasks, sizeof (int64_t));
    self->reference = calloc (ntasks, sizeof (int64_t));
    self->results = calloc (ntasks, sizeof (int64_t));
    self->points = calloc (npoints, sizeof (s_point_t));
    self->samples = calloc (nsamples, sizeof (double));
    //  Forked children write their counts here for the parent to check
    self->shared = mmap (NULL, ntasks * sizeof (int64_t), PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (self->shared == MAP_FAILED)
        self->shared = NULL;
    if (!self->inputs || !self->reference || !self->results || !self->points
    ||  !self->samples || !self->shared) {
        s_bench_destroy (&self);
        return NULL;
    }
    for (size_t task = 0; task < ntasks; task++)
        self->inputs [task] = options->size + (int64_t) task;
    for (size_t index = 0; index < npoints; index++) {
        s_point_t *point = &self->points [index];
        point->workers = index + 1;
        point->cask.seconds = self->samples + 2 * index * (size_t) options->repeat;
        point->plain.seconds = point->cask.seconds + options->repeat;
    }
    return self;
}

//  Compares counts with the plain C function's. Returns 0, or -1 after
//  naming the first wrong one.
static int
s_check (s_bench_t *self, const int64_t *counts, const char *what, size_t workers)
{
    for (size_t task = 0; task < self->options.ntasks; task++)
        if (counts [task] != self->reference [task]) {
            fprintf (stderr, "cask-scaling: %s, workers=%zu: " S_FUNCTION "(%" PRId64 ") "
                     "gave %" PRId64 ", the plain C function %" PRId64 "\n", what, workers,
                     self->inputs [task], counts [task], self->reference [task]);
            return -1;
        }
    return 0;
}

//  Waits for a forked child by pid (never any child: the local cluster's
//  processes are children too). Returns 0 when it exited with 0.
static int
s_reap (pid_t pid)
{
    int status = 0;
    pid_t rc;
    while ((rc = waitpid (pid, &status, 0)) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        fprintf (stderr, "cask-scaling: cannot wait for process %d: %s\n", (int) pid,
                 strerror (errno));
        return -1;
    }
    if (WIFEXITED (status) && WEXITSTATUS (status) == 0)
        return 0;
    fprintf (stderr, "cask-scaling: plain process %d failed (wait status %d)\n", (int) pid,
             status);
    return -1;
}

//  The tasks without cask, split over nprocs forked processes. The first
//  run's counts become the reference the others and every cask run must
//  equal. Returns 0 with the seconds from the first fork to the last exit.
static int
s_plain_run (s_bench_t *self, size_t nprocs, double *seconds)
{
    size_t ntasks = self->options.ntasks;
    pid_t *pids = calloc (nprocs, sizeof (pid_t));
    if (!pids) {
        fprintf (stderr, "cask-scaling: out of memory\n");
        return -1;
    }
    for (size_t task = 0; task < ntasks; task++)
        self->shared [task] = -1;
    int rc = 0;
    size_t started;
    double start = s_now ();
    for (started = 0; started < nprocs; started++) {
        pid_t pid = fork ();
        if (pid == 0) {
            //  Only computation until _exit: the parent's sockets and
            //  threads (the cask client) are not the child's to touch
            for (size_t task = started; task < ntasks; task += nprocs)
                self->shared [task] = tutorial_count_primes_less_than (self->inputs [task]);
            _exit (0);
        }
        if (pid < 0) {
            fprintf (stderr, "cask-scaling: cannot fork: %s\n", strerror (errno));
            rc = -1;
            break;
        }
        pids [started] = pid;
    }
    for (size_t index = 0; index < started; index++) {
        if (rc)         //  the run is lost: do not wait for its work
            kill (pids [index], SIGKILL);
        if (s_reap (pids [index]))
            rc = -1;
    }
    *seconds = s_now () - start;
    free (pids);
    if (rc)
        return -1;
    if (!self->have_reference) {
        memcpy (self->reference, self->shared, ntasks * sizeof (int64_t));
        self->have_reference = true;
    }
    return s_check (self, self->shared, "plain processes", nprocs);
}

//  One map + gather on the cluster. Returns 0 with the seconds it took.
static int
s_cask_run (s_bench_t *self, cask_client_t *client, size_t workers, double *seconds)
{
    size_t ntasks = self->options.ntasks;
    cask_future_t **futures = calloc (ntasks, sizeof (cask_future_t *));
    if (!futures) {
        fprintf (stderr, "cask-scaling: out of memory\n");
        return -1;
    }
    //  Fresh keys: equal inputs would otherwise share the last run's tasks
    cask_submit_opts_t opts = CASK_SUBMIT_DEFAULT;
    opts.unique = true;
    double start = s_now ();
    int rc = cask_map_opts (client, S_FUNCTION,
                            cask_list_of_int64 (self->inputs, ntasks), &opts, futures);
    if (rc == 0)
        rc = cask_gather (client, futures, ntasks, S_RUN_TIMEOUT_MS);
    *seconds = s_now () - start;
    if (rc)
        fprintf (stderr, "cask-scaling: cask, workers=%zu: %s\n", workers,
                 cask_client_error (client));
    for (size_t task = 0; rc == 0 && task < ntasks; task++)
        if (cask_future_int64 (futures [task], 0, &self->results [task])) {
            fprintf (stderr, "cask-scaling: cask, workers=%zu: %s\n", workers,
                     cask_future_error (futures [task]));
            rc = -1;
        }
    cask_futures_destroy (futures, ntasks);
    free (futures);
    return rc ? -1 : s_check (self, self->results, "cask", workers);
}

static int
s_compare_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return (x > y) - (x < y);
}

//  Best and median of the series' runs, leaving them in run order
static void
s_series_summarise (s_series_t *self, int repeat)
{
    double sorted [repeat];
    memcpy (sorted, self->seconds, sizeof sorted);
    qsort (sorted, (size_t) repeat, sizeof (double), s_compare_double);
    self->best = sorted [0];
    self->median = repeat % 2 ? sorted [repeat / 2]
                              : (sorted [repeat / 2 - 1] + sorted [repeat / 2]) / 2;
}

//  All runs of one worker count, on one cluster started for them
static int
s_measure_point (s_bench_t *self, s_point_t *point)
{
    cask_client_t *client = cask_client_new_local (point->workers, 1, S_START_TIMEOUT_MS);
    if (!client) {
        fprintf (stderr, "cask-scaling: cannot start a local cluster, workers=%zu: %s\n",
                 point->workers, cask_client_last_error ());
        return -1;
    }
    if (cask_client_register (client, self->options.library, S_START_TIMEOUT_MS)) {
        fprintf (stderr, "cask-scaling: cannot register %s: %s\n", self->options.library,
                 cask_client_error (client));
        cask_client_destroy (&client);
        return -1;
    }
    int rc = 0;
    for (int run = 0; rc == 0 && run < self->options.repeat; run++) {
        rc = s_plain_run (self, point->workers, &point->plain.seconds [run])
          || s_cask_run (self, client, point->workers, &point->cask.seconds [run]) ? -1 : 0;
        if (rc == 0)
            fprintf (stderr, "workers %zu, run %d: cask %.3f s, plain %.3f s\n",
                     point->workers, run + 1, point->cask.seconds [run],
                     point->plain.seconds [run]);
    }
    cask_client_destroy (&client);
    if (rc == 0) {
        s_series_summarise (&point->cask, self->options.repeat);
        s_series_summarise (&point->plain, self->options.repeat);
    }
    return rc;
}

static void
s_print_table (s_bench_t *self)
{
    const s_options_t *options = &self->options;
    const s_point_t *first = &self->points [0];
    printf ("%s over %zu inputs from %" PRId64 ", runs per point: %d, cores online: %ld;\n"
            "seconds as best (median); speed-ups and ratio from the best runs\n\n",
            S_FUNCTION, options->ntasks, options->size, options->repeat, self->cores);
    printf ("%-8s | %-17s | %-8s | %-17s | %-8s | %s\n", "workers", "cask seconds",
            "speed-up", "plain processes s", "speed-up", "cask/plain");
    for (size_t index = 0; index < options->max_workers; index++) {
        const s_point_t *point = &self->points [index];
        printf ("%-8zu | %7.3f (%7.3f) | %8.2f | %7.3f (%7.3f) | %8.2f | %10.2f\n",
                point->workers, point->cask.best, point->cask.median,
                first->cask.best / point->cask.best, point->plain.best, point->plain.median,
                first->plain.best / point->plain.best, point->cask.best / point->plain.best);
    }
}

static cJSON *
s_series_json (const s_series_t *self, const s_series_t *first, int repeat)
{
    cJSON *json = cJSON_CreateObject ();
    cJSON_AddNumberToObject (json, "best", self->best);
    cJSON_AddNumberToObject (json, "median", self->median);
    cJSON_AddNumberToObject (json, "speedup", first->best / self->best);
    cJSON_AddItemToObject (json, "seconds", cJSON_CreateDoubleArray (self->seconds, repeat));
    return json;
}

static cJSON *
s_bench_json (s_bench_t *self)
{
    const s_options_t *options = &self->options;
    cJSON *json = cJSON_CreateObject ();
    cJSON_AddStringToObject (json, "function", S_FUNCTION);
    cJSON_AddStringToObject (json, "library", options->library);
    cJSON_AddNumberToObject (json, "tasks", (double) options->ntasks);
    cJSON_AddNumberToObject (json, "size", (double) options->size);
    cJSON_AddNumberToObject (json, "repeat", options->repeat);
    cJSON_AddNumberToObject (json, "cores", (double) self->cores);
    cJSON_AddNumberToObject (json, "threads_per_worker", 1);
    cJSON *points = cJSON_AddArrayToObject (json, "points");
    const s_point_t *first = &self->points [0];
    for (size_t index = 0; index < options->max_workers; index++) {
        const s_point_t *point = &self->points [index];
        cJSON *item = cJSON_CreateObject ();
        cJSON_AddNumberToObject (item, "workers", (double) point->workers);
        cJSON_AddItemToObject (item, "cask",
                               s_series_json (&point->cask, &first->cask, options->repeat));
        cJSON_AddItemToObject (item, "plain",
                               s_series_json (&point->plain, &first->plain, options->repeat));
        cJSON_AddNumberToObject (item, "cask_over_plain", point->cask.best / point->plain.best);
        cJSON_AddItemToArray (points, item);
    }
    return json;
}

static int
s_write_json (s_bench_t *self, const char *path)
{
    cJSON *json = s_bench_json (self);
    char *text = cJSON_Print (json);
    cJSON_Delete (json);
    if (!text) {
        fprintf (stderr, "cask-scaling: out of memory writing the JSON\n");
        return -1;
    }
    FILE *file = fopen (path, "w");
    int rc = file && fputs (text, file) >= 0 && fputc ('\n', file) != EOF ? 0 : -1;
    if (file && fclose (file))
        rc = -1;
    if (rc)
        fprintf (stderr, "cask-scaling: cannot write %s: %s\n", path, strerror (errno));
    free (text);
    return rc;
}

int
main (int argc, char *argv [])
{
    long cores = sysconf (_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    s_options_t options;
    int parsed = s_parse_options (&options, cores, argc, argv);
    if (parsed)
        return parsed > 0 ? 0 : 2;
    s_bench_t *self = s_bench_new (&options, cores);
    if (!self) {
        fprintf (stderr, "cask-scaling: out of memory\n");
        return 1;
    }
    int rc = 0;
    for (size_t index = 0; rc == 0 && index < options.max_workers; index++)
        rc = s_measure_point (self, &self->points [index]);
    if (rc == 0) {
        s_print_table (self);
        if (options.json_path)
            rc = s_write_json (self, options.json_path);
    }
    s_bench_destroy (&self);
    return rc ? 1 : 0;
}
