/*  cask_cli.c - cask, the operator's command: what a broker is doing, as a
    short aligned summary or table for people, or with --json as the
    document the broker sent (pretty printed) for scripts.

        cask status  [--json] [--timeout MS] [ENDPOINT]
        cask workers [--json] [--timeout MS] [ENDPOINT]
        cask tasks   [--json] [--timeout MS] [--state S] [--limit N] [ENDPOINT]

    Each asks for one of the broker's views (the documents of the
    dashboard's JSON API) with one STATUS round trip (cask_report).
    ENDPOINT defaults to $CASK_BROKER, then tcp://127.0.0.1:8786. Exits 0
    on an answer, 1 when the broker does not answer in time (or answers
    with an error), 2 on bad usage.
*/
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <czmq.h>
#include "cask_report.h"

#define S_DEFAULT_ENDPOINT "tcp://127.0.0.1:8786"     //  cask-broker's default --bind
#define S_DEFAULT_TIMEOUT_MS 5000
#define S_COLUMNS_MAX 16

typedef struct {
    const char *command;        //  "status", "workers" or "tasks"
    bool json;
    int timeout_ms;
    const char *state;          //  tasks: only these (NULL: all)
    uint32_t limit;             //  tasks: at most these (0: the broker's default)
    char endpoint [300];
} s_options_t;

static const char *s_usage_text =
    "usage: cask COMMAND [options] [ENDPOINT]\n"
    "\n"
    "What the cask broker at ENDPOINT is doing (default: $CASK_BROKER, else\n"
    S_DEFAULT_ENDPOINT ").\n"
    "\n"
    "commands:\n"
    "  status    workers and threads, tasks by state, memory, clients, the\n"
    "            dashboard's address and progress per function\n"
    "  workers   one row per worker: threads, tasks in flight and done, CPU,\n"
    "            memory, results held and spilled, paused, last heard from\n"
    "  tasks     one row per task: key, function, state, worker, size, deps\n"
    "\n"
    "options:\n"
    "  --json         print the broker's JSON document instead\n"
    "  --timeout MS   wait MS milliseconds for the answer (default 5000)\n"
    "  --state S      tasks: only those waiting, processing, in memory,\n"
    "                 erred or released\n"
    "  --limit N      tasks: at most N (default 1000, up to 100000)\n"
    "  --help         show this and exit\n"
    "\n"
    "Exits 0 on an answer, 1 when the broker does not answer in time, 2 on\n"
    "bad usage.\n";

//  Says what is wrong, and how to use cask in short. Returns 2.
static int
s_usage (const char *why)
{
    if (why)
        fprintf (stderr, "%s\n", why);
    fputs ("usage: cask status|workers|tasks [--json] [--timeout MS] [--state S] [--limit N]\n"
           "            [ENDPOINT]\n"
           "(cask --help says more)\n", stderr);
    return 2;
}

//  ---------------------------------------------------------------------
//  Reading the documents: absent fields read as 0 or "".

static double
s_number (const cJSON *object, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (object, name);
    return cJSON_IsNumber (item) ? item->valuedouble : 0;
}

static const char *
s_string (const cJSON *object, const char *name)
{
    const char *text = cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (object, name));
    return text ? text : "";
}

//  "800 B", "1.5 KiB", "12.3 MiB", "2.0 GiB"...
static const char *
s_size (double bytes, char *text, size_t size)
{
    static const char *units [] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    size_t unit = 0;
    while (bytes >= 1024 && unit < sizeof units / sizeof units [0] - 1) {
        bytes /= 1024;
        unit++;
    }
    if (unit == 0)
        snprintf (text, size, "%.0f B", bytes);
    else
        snprintf (text, size, "%.1f %s", bytes, units [unit]);
    return text;
}

//  "12.3 s", "5 min 3 s", "2 h 10 min"
static const char *
s_duration (double seconds, char *text, size_t size)
{
    long whole = (long) seconds;
    if (seconds < 60)
        snprintf (text, size, "%.1f s", seconds);
    else
    if (seconds < 3600)
        snprintf (text, size, "%ld min %ld s", whole / 60, whole % 60);
    else
        snprintf (text, size, "%ld h %ld min", whole / 3600, whole / 60 % 60);
    return text;
}

//  ---------------------------------------------------------------------
//  A table: cells kept until printed, columns as wide as their widest
//  cell, left ('l') or right ('r') aligned.

typedef struct {
    size_t ncolumns;
    const char *align;
    size_t nrows;
    char **cells;               //  nrows x ncolumns, row 0 the headers
} s_table_t;

static void
s_table_add (s_table_t *self, const char *const *row)
{
    char **cells = realloc (self->cells, (self->nrows + 1) * self->ncolumns * sizeof (char *));
    if (!cells)
        return;                 //  out of memory: the row is left out
    self->cells = cells;
    for (size_t column = 0; column < self->ncolumns; column++)
        cells [self->nrows * self->ncolumns + column] = strdup (row [column] ? row [column] : "");
    self->nrows++;
}

static void
s_table_init (s_table_t *self, const char *const *headers, const char *align)
{
    self->ncolumns = strlen (align);
    self->align = align;
    self->nrows = 0;
    self->cells = NULL;
    s_table_add (self, headers);
}

//  Prints the table and frees its cells.
static void
s_table_print (s_table_t *self)
{
    size_t widths [S_COLUMNS_MAX] = { 0 };
    for (size_t index = 0; index < self->nrows * self->ncolumns; index++) {
        size_t length = self->cells [index] ? strlen (self->cells [index]) : 0;
        if (length > widths [index % self->ncolumns])
            widths [index % self->ncolumns] = length;
    }
    for (size_t index = 0; index < self->nrows * self->ncolumns; index++) {
        size_t column = index % self->ncolumns;
        const char *cell = self->cells [index] ? self->cells [index] : "";
        bool last = column == self->ncolumns - 1;
        int width = self->align [column] == 'r' ? (int) widths [column]
                  : last ? 0 : -(int) widths [column];
        printf ("%*s%s", width, cell, last ? "\n" : "  ");
        free (self->cells [index]);
    }
    free (self->cells);
    self->cells = NULL;
    self->nrows = 0;
}

//  ---------------------------------------------------------------------
//  cask status

//  Sums of the workers' figures.
typedef struct {
    double threads, rss, held, spilled;
} s_totals_t;

static s_totals_t
s_worker_totals (const cJSON *workers)
{
    s_totals_t totals = { 0, 0, 0, 0 };
    const cJSON *worker;
    cJSON_ArrayForEach (worker, workers) {
        totals.threads += s_number (worker, "nthreads");
        totals.rss += s_number (worker, "rss_bytes");
        totals.held += s_number (worker, "bytes_held");
        totals.spilled += s_number (worker, "spilled_bytes");
    }
    return totals;
}

static void
s_print_progress (const cJSON *progress)
{
    if (cJSON_GetArraySize (progress) == 0)
        return;
    static const char *headers [] = { "function", "waiting", "processing", "done", "erred" };
    static const char *fields [] = { NULL, "waiting", "processing", "done", "erred" };
    s_table_t table;
    s_table_init (&table, headers, "lrrrr");
    const cJSON *function;
    cJSON_ArrayForEach (function, progress) {
        char numbers [5][24];
        const char *row [5] = { s_string (function, "function") };
        for (int column = 1; column < 5; column++) {
            snprintf (numbers [column], sizeof numbers [column], "%.0f",
                      s_number (function, fields [column]));
            row [column] = numbers [column];
        }
        s_table_add (&table, row);
    }
    putchar ('\n');
    s_table_print (&table);
}

static void
s_print_status (const s_options_t *options, const cJSON *doc)
{
    const cJSON *workers = cJSON_GetObjectItemCaseSensitive (doc, "workers");
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive (doc, "tasks");
    s_totals_t totals = s_worker_totals (workers);
    const char *dashboard = s_string (doc, "dashboard");
    char up [32], broker_rss [32], rss [32], held [32], spilled [32];
    printf ("%-11s %s, up %s\n", "broker", options->endpoint,
            s_duration (s_number (doc, "uptime"), up, sizeof up));
    printf ("%-11s %s\n", "dashboard", *dashboard ? dashboard : "off");
    printf ("%-11s %.0f\n", "clients", s_number (doc, "clients"));
    printf ("%-11s %.0f, %d functions\n", "libraries", s_number (doc, "libraries"),
            cJSON_GetArraySize (cJSON_GetObjectItemCaseSensitive (doc, "functions")));
    printf ("%-11s %d, %.0f threads\n", "workers", cJSON_GetArraySize (workers), totals.threads);
    printf ("%-11s %.0f: %.0f waiting, %.0f processing, %.0f in memory, %.0f erred, "
            "%.0f released\n", "tasks", s_number (tasks, "total"), s_number (tasks, "waiting"),
            s_number (tasks, "processing"), s_number (tasks, "memory"),
            s_number (tasks, "erred"), s_number (tasks, "released"));
    printf ("%-11s broker %s, workers %s resident; %s held, %s spilled\n", "memory",
            s_size (s_number (doc, "rss_bytes"), broker_rss, sizeof broker_rss),
            s_size (totals.rss, rss, sizeof rss), s_size (totals.held, held, sizeof held),
            s_size (totals.spilled, spilled, sizeof spilled));
    s_print_progress (cJSON_GetObjectItemCaseSensitive (doc, "progress"));
}

//  ---------------------------------------------------------------------
//  cask workers

static int
s_compare_ids (const void *a, const void *b)
{
    double x = s_number (*(const cJSON *const *) a, "id");
    double y = s_number (*(const cJSON *const *) b, "id");
    return (x > y) - (x < y);
}

//  One worker's row; text holds the cells that are not the document's.
static void
s_worker_row (const cJSON *worker, char text [][32], const char **row)
{
    double limit = s_number (worker, "memory_limit");
    snprintf (text [0], 32, "%.0f", s_number (worker, "id"));
    snprintf (text [3], 32, "%.0f", s_number (worker, "nthreads"));
    snprintf (text [4], 32, "%.0f", s_number (worker, "inflight"));
    snprintf (text [5], 32, "%.0f", s_number (worker, "tasks_done"));
    snprintf (text [6], 32, "%.1f%%", s_number (worker, "cpu"));
    s_size (s_number (worker, "rss_bytes"), text [7], 32);
    if (limit > 0)
        s_size (limit, text [8], 32);
    else
        snprintf (text [8], 32, "-");
    s_size (s_number (worker, "bytes_held"), text [9], 32);
    s_size (s_number (worker, "spilled_bytes"), text [10], 32);
    snprintf (text [11], 32, "%s",
              cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (worker, "paused")) ? "yes" : "no");
    snprintf (text [12], 32, "%.1f s ago", s_number (worker, "last_seen"));
    for (int column = 0; column < 13; column++)
        row [column] = text [column];
    row [1] = s_string (worker, "name");
    row [2] = s_string (worker, "endpoint");
}

static void
s_print_workers (const cJSON *doc)
{
    const cJSON *workers = cJSON_GetObjectItemCaseSensitive (doc, "workers");
    int count = cJSON_GetArraySize (workers);
    if (count == 0) {
        puts ("no workers");
        return;
    }
    //  In the order they joined, whatever order the broker keeps them in
    const cJSON **sorted = calloc ((size_t) count, sizeof (cJSON *));
    if (!sorted)
        return;
    for (int index = 0; index < count; index++)
        sorted [index] = cJSON_GetArrayItem (workers, index);
    qsort (sorted, (size_t) count, sizeof (cJSON *), s_compare_ids);
    static const char *headers [] = { "id", "name", "endpoint", "threads", "inflight", "done",
        "cpu", "rss", "limit", "held", "spilled", "paused", "last seen" };
    s_table_t table;
    s_table_init (&table, headers, "lllrrrrrrrrll");
    for (int index = 0; index < count; index++) {
        char text [13][32];
        const char *row [13];
        s_worker_row (sorted [index], text, row);
        s_table_add (&table, row);
    }
    s_table_print (&table);
    free (sorted);
}

//  ---------------------------------------------------------------------
//  cask tasks

static void
s_print_tasks (const s_options_t *options, const cJSON *doc)
{
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive (doc, "tasks");
    const char *which = options->state ? options->state : "";
    int shown = cJSON_GetArraySize (tasks);
    if (shown == 0) {
        printf ("no %s%stasks\n", which, *which ? " " : "");
        return;
    }
    static const char *headers [] = { "key", "function", "state", "worker", "nbytes", "deps" };
    s_table_t table;
    s_table_init (&table, headers, "lllrrr");
    const cJSON *task;
    cJSON_ArrayForEach (task, tasks) {
        char worker [24] = "-", nbytes [32], deps [24];
        if (s_number (task, "worker") > 0)
            snprintf (worker, sizeof worker, "%.0f", s_number (task, "worker"));
        s_size (s_number (task, "nbytes"), nbytes, sizeof nbytes);
        snprintf (deps, sizeof deps, "%d",
                  cJSON_GetArraySize (cJSON_GetObjectItemCaseSensitive (task, "deps")));
        const char *row [] = { s_string (task, "key"), s_string (task, "function"),
                               s_string (task, "state"), worker, nbytes, deps };
        s_table_add (&table, row);
    }
    s_table_print (&table);
    if (cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (doc, "truncated")))
        printf ("%d of %.0f %s%stasks shown (--limit N for more)\n", shown,
                s_number (doc, "total"), which, *which ? " " : "");
}

//  ---------------------------------------------------------------------
//  The command line, the round trip, the answer

static bool
s_state_known (const char *state)
{
    static const char *states [] = { "waiting", "processing", "memory", "erred", "released" };
    for (size_t index = 0; index < sizeof states / sizeof states [0]; index++)
        if (strcmp (state, states [index]) == 0)
            return true;
    return false;
}

//  A count from text into *value, between 1 and max. Returns 0 or -1.
static int
s_parse_count (const char *text, long max, long *value)
{
    char *end = NULL;
    *value = strtol (text, &end, 10);
    return end != text && !*end && *value >= 1 && *value <= max ? 0 : -1;
}

//  "host:port" becomes "tcp://host:port"; anything with a scheme is kept.
static void
s_set_endpoint (s_options_t *options, const char *address)
{
    snprintf (options->endpoint, sizeof options->endpoint, "%s%s",
              strstr (address, "://") ? "" : "tcp://", address);
}

//  Parses the options after the command. Returns 0, or 2 after saying what
//  is wrong.
static int
s_parse_options (s_options_t *options, int argc, char *argv [])
{
    bool tasks = strcmp (options->command, "tasks") == 0;
    const char *endpoint = NULL;
    long value;
    for (int i = 2; i < argc; i++) {
        const char *option = argv [i];
        bool has_value = i + 1 < argc;
        if (strcmp (option, "--json") == 0)
            options->json = true;
        else
        if (strcmp (option, "--timeout") == 0 && has_value
        &&  s_parse_count (argv [++i], 3600000, &value) == 0)
            options->timeout_ms = (int) value;
        else
        if (strcmp (option, "--limit") == 0 && tasks && has_value
        &&  s_parse_count (argv [++i], 100000, &value) == 0)
            options->limit = (uint32_t) value;
        else
        if (strcmp (option, "--state") == 0 && tasks && has_value && s_state_known (argv [i + 1]))
            options->state = argv [++i];
        else
        if (option [0] != '-' && !endpoint)
            endpoint = option;
        else {
            char why [300];
            snprintf (why, sizeof why, "cask %s: bad option or value at '%s'", options->command,
                      option);
            return s_usage (why);
        }
    }
    const char *from_env = getenv ("CASK_BROKER");
    s_set_endpoint (options, endpoint ? endpoint
                           : from_env && *from_env ? from_env : S_DEFAULT_ENDPOINT);
    return 0;
}

//  The document the command asks for, or NULL after saying why not.
static cJSON *
s_fetch (const s_options_t *options)
{
    cask_view_t view = { cask_str (options->command), 0, options->limit,
                         cask_str (options->state ? options->state : "") };
    void *ctx = zmq_ctx_new ();
    cJSON *doc = ctx ? cask_report_fetch_view (ctx, options->endpoint, &view, options->timeout_ms)
                     : NULL;
    if (ctx)
        zmq_ctx_term (ctx);
    if (!doc)
        fprintf (stderr, "cask: no answer from %s within %d ms (is a broker running there?)\n",
                 options->endpoint, options->timeout_ms);
    return doc;
}

//  The array or object the command's view must have, to tell a broker's
//  answer from another peer's (a worker's peer socket answers STATUS too).
static bool
s_is_view (const s_options_t *options, const cJSON *doc)
{
    const cJSON *workers = cJSON_GetObjectItemCaseSensitive (doc, "workers");
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive (doc, "tasks");
    if (strcmp (options->command, "status") == 0)
        return cJSON_IsArray (workers) && cJSON_IsObject (tasks);
    if (strcmp (options->command, "workers") == 0)
        return cJSON_IsArray (workers);
    return cJSON_IsArray (tasks);
}

static int
s_print (const s_options_t *options, const cJSON *doc)
{
    const char *error = cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (doc, "error"));
    if (error || !s_is_view (options, doc)) {
        fprintf (stderr, "cask: %s answered, but %s%s\n", options->endpoint,
                 error ? "with an error: " : "not as a broker does", error ? error : "");
        return 1;
    }
    if (options->json) {
        char *text = cJSON_Print (doc);
        if (text)
            puts (text);
        free (text);
    }
    else
    if (strcmp (options->command, "status") == 0)
        s_print_status (options, doc);
    else
    if (strcmp (options->command, "workers") == 0)
        s_print_workers (doc);
    else
        s_print_tasks (options, doc);
    return 0;
}

int
main (int argc, char *argv [])
{
    if (argc >= 2 && (strcmp (argv [1], "--help") == 0 || strcmp (argv [1], "-h") == 0
                  ||  strcmp (argv [1], "help") == 0)) {
        fputs (s_usage_text, stdout);
        return 0;
    }
    for (int i = 2; i < argc; i++)
        if (strcmp (argv [i], "--help") == 0) {
            fputs (s_usage_text, stdout);
            return 0;
        }
    if (argc < 2)
        return s_usage (NULL);
    if (strcmp (argv [1], "status") && strcmp (argv [1], "workers") && strcmp (argv [1], "tasks"))
        return s_usage ("cask: no such command");
    s_options_t options = { argv [1], false, S_DEFAULT_TIMEOUT_MS, NULL, 0, "" };
    if (s_parse_options (&options, argc, argv))
        return 2;
    cJSON *doc = s_fetch (&options);
    if (!doc)
        return 1;
    int rc = s_print (&options, doc);
    cJSON_Delete (doc);
    return rc;
}
