/*  cask_views.c - the graph and the task stream as JSON (cask_views.h). */
#include "cask_views.h"

#include <stdlib.h>
#include <string.h>

//  A cask_str_t as a new JSON string.
static cJSON *
s_string (cask_str_t text)
{
    char buffer [CASK_MAX_KEY + 1];
    return cJSON_CreateString (cask_str_copy (text, buffer, sizeof buffer));
}

static void
s_add_progress (void *arg, const cask_graph_progress_t *progress)
{
    cJSON *item = cJSON_CreateObject ();
    cJSON_AddItemToObject (item, "function", s_string (progress->name));
    cJSON_AddNumberToObject (item, "waiting", progress->waiting);
    cJSON_AddNumberToObject (item, "processing", progress->processing);
    cJSON_AddNumberToObject (item, "done", (double) progress->done);
    cJSON_AddNumberToObject (item, "erred", (double) progress->erred);
    cJSON_AddItemToArray ((cJSON *) arg, item);
}

cJSON *
cask_views_progress (cask_graph_t *graph)
{
    cJSON *array = cJSON_CreateArray ();
    if (array)
        cask_graph_progress (graph, s_add_progress, array);
    return array;
}

//  The tasks chosen for the "tasks" document, and a map from each to its
//  index (open addressing on the pointer) to write deps as indices.
typedef struct {
    const char *state;
    size_t limit;
    size_t total;               //  tasks that match
    const cask_gtask_t **tasks;
    size_t ntasks;
    const cask_gtask_t **slots;
    uint32_t *indices;
    size_t nslots;              //  a power of two, over twice ntasks
} s_pick_t;

static bool
s_pick_task (void *arg, const cask_gtask_t *task)
{
    s_pick_t *pick = (s_pick_t *) arg;
    if (pick->state && strcmp (cask_gtask_state_name (task), pick->state) != 0)
        return true;
    if (pick->ntasks < pick->limit)
        pick->tasks [pick->ntasks++] = task;
    pick->total++;
    return true;
}

static size_t
s_slot_of (const s_pick_t *pick, const cask_gtask_t *task)
{
    size_t slot = ((uintptr_t) task >> 4) * 0x9E3779B97F4A7C15ull & (pick->nslots - 1);
    while (pick->slots [slot] && pick->slots [slot] != task)
        slot = (slot + 1) & (pick->nslots - 1);
    return slot;
}

static cJSON *
s_task_json (cask_graph_t *graph, const s_pick_t *pick, const cask_gtask_t *task)
{
    cask_state_rec_t state;
    cask_gtask_state (task, &state);
    cJSON *item = cJSON_CreateObject ();
    cJSON_AddItemToObject (item, "key", s_string (cask_gtask_key (task)));
    cJSON_AddItemToObject (item, "function",
                           s_string (cask_graph_function_name (graph, cask_gtask_fn (task))));
    cJSON_AddStringToObject (item, "state", cask_gtask_state_name (task));
    cJSON_AddNumberToObject (item, "worker", state.worker);
    cJSON_AddNumberToObject (item, "nbytes", (double) state.nbytes);
    cask_task_t record;
    cask_gtask_record (task, &record);
    cJSON_AddNumberToObject (item, "priority", record.priority);
    cJSON *deps = cJSON_AddArrayToObject (item, "deps");
    for (uint32_t i = 0; i < cask_gtask_ndeps (task); i++) {
        size_t slot = s_slot_of (pick, cask_gtask_dep (task, i));
        if (pick->slots [slot])
            cJSON_AddItemToArray (deps, cJSON_CreateNumber (pick->indices [slot]));
    }
    return item;
}

static bool
s_state_known (const char *state)
{
    static const char *names [] = { "waiting", "processing", "memory", "erred", "released" };
    for (size_t i = 0; i < sizeof names / sizeof names [0]; i++)
        if (strcmp (state, names [i]) == 0)
            return true;
    return false;
}

int
cask_views_tasks (cJSON *doc, cask_graph_t *graph, const char *state, size_t limit)
{
    if (state && !s_state_known (state))
        return -1;
    s_pick_t pick = { .state = state, .limit = limit, .nslots = 16 };
    while (pick.nslots < 2 * limit + 2)
        pick.nslots *= 2;
    pick.tasks = (const cask_gtask_t **) malloc ((limit ? limit : 1) * sizeof (cask_gtask_t *));
    pick.slots = (const cask_gtask_t **) calloc (pick.nslots, sizeof (cask_gtask_t *));
    pick.indices = (uint32_t *) malloc (pick.nslots * sizeof (uint32_t));
    int rc = -1;
    if (pick.tasks && pick.slots && pick.indices) {
        cask_graph_each (graph, s_pick_task, &pick);
        for (size_t i = 0; i < pick.ntasks; i++) {
            size_t slot = s_slot_of (&pick, pick.tasks [i]);
            pick.slots [slot] = pick.tasks [i];
            pick.indices [slot] = (uint32_t) i;
        }
        cJSON_AddNumberToObject (doc, "total", (double) pick.total);
        cJSON_AddBoolToObject (doc, "truncated", pick.total > pick.ntasks);
        cJSON *tasks = cJSON_AddArrayToObject (doc, "tasks");
        for (size_t i = 0; i < pick.ntasks; i++)
            cJSON_AddItemToArray (tasks, s_task_json (graph, &pick, pick.tasks [i]));
        rc = tasks ? 0 : -1;
    }
    free (pick.tasks);
    free (pick.slots);
    free (pick.indices);
    return rc;
}

//  The stream is the one document that can be large (a dashboard asks for
//  thousands of records a second while a graph runs), so it is written
//  straight into a buffer: cJSON prints each number through printf twice.

static void
s_put_text (cask_buf_t *buf, const char *text)
{
    cask_put_raw (buf, text, strlen (text));
}

static void
s_put_decimal (cask_buf_t *buf, uint64_t value, int min_digits)
{
    char digits [24];
    int count = 0;
    do {
        digits [sizeof digits - 1 - count++] = (char) ('0' + value % 10);
        value /= 10;
    } while (value || count < min_digits);
    cask_put_raw (buf, digits + sizeof digits - count, (size_t) count);
}

//  Microseconds as seconds with six decimals.
static void
s_put_seconds (cask_buf_t *buf, uint64_t us)
{
    s_put_decimal (buf, us / 1000000, 1);
    cask_put_u8 (buf, '.');
    s_put_decimal (buf, us % 1000000, 6);
}

//  text as a JSON string: quotes, backslashes and control bytes escaped.
static void
s_put_string (cask_buf_t *buf, cask_str_t text)
{
    static const char hex [] = "0123456789abcdef";
    cask_put_u8 (buf, '"');
    for (size_t i = 0; i < text.len; i++) {
        uint8_t byte = (uint8_t) text.ptr [i];
        if (byte == '"' || byte == '\\') {
            cask_put_u8 (buf, '\\');
            cask_put_u8 (buf, byte);
        }
        else
        if (byte < 0x20) {
            char escape [6] = { '\\', 'u', '0', '0', hex [byte >> 4], hex [byte & 15] };
            cask_put_raw (buf, escape, sizeof escape);
        }
        else
            cask_put_u8 (buf, byte);
    }
    cask_put_u8 (buf, '"');
}

typedef struct {
    cask_buf_t buf;
    bool first;
    cask_graph_t *graph;
    cask_views_name_fn *name;
    void *arg;
} s_stream_walk_t;

static void
s_add_stream (void *arg, const cask_stream_rec_t *rec)
{
    s_stream_walk_t *walk = (s_stream_walk_t *) arg;
    cask_buf_t *buf = &walk->buf;
    const char *worker_name = walk->name (walk->arg, rec->worker);
    s_put_text (buf, walk->first ? "{\"key\":" : ",{\"key\":");
    walk->first = false;
    s_put_string (buf, rec->key);
    s_put_text (buf, ",\"function\":");
    s_put_string (buf, cask_graph_function_name (walk->graph, rec->fn));
    s_put_text (buf, ",\"worker\":");
    s_put_decimal (buf, rec->worker, 1);
    s_put_text (buf, ",\"worker_name\":");
    s_put_string (buf, cask_str (worker_name ? worker_name : ""));
    s_put_text (buf, ",\"thread\":");
    s_put_decimal (buf, rec->thread, 1);
    s_put_text (buf, ",\"start\":");
    s_put_seconds (buf, rec->start_us);
    s_put_text (buf, ",\"stop\":");
    s_put_seconds (buf, rec->stop_us);
    s_put_text (buf, ",\"transfer_start\":");
    s_put_seconds (buf, rec->fetch_start_us);
    s_put_text (buf, ",\"transfer_stop\":");
    s_put_seconds (buf, rec->fetch_stop_us);
    s_put_text (buf, ",\"nbytes\":");
    s_put_decimal (buf, rec->nbytes, 1);
    s_put_text (buf, rec->ok ? ",\"status\":\"OK\"}" : ",\"status\":\"error\"}");
}

char *
cask_views_stream (cask_stream_t *stream, cask_graph_t *graph, uint64_t since_us,
                   size_t limit, cask_views_name_fn *name, void *arg)
{
    s_stream_walk_t walk = { .first = true, .graph = graph, .name = name, .arg = arg };
    cask_buf_init (&walk.buf);
    cask_put_u8 (&walk.buf, '[');
    cask_stream_since (stream, since_us, limit, s_add_stream, &walk);
    cask_put_raw (&walk.buf, "]", 2);        //  with the terminating NUL
    if (walk.buf.failed) {
        cask_buf_free (&walk.buf);
        return NULL;
    }
    return (char *) walk.buf.data;      //  the buffer's memory is malloc's
}
