/*  cask_task_stream.c - the record of what ran where and when (Dask's
    get_task_stream): the broker's "task-stream" view, parsed into records.

    The records point into the parsed JSON, which the stream keeps, so one
    parse serves both the records and cask_task_stream_json.
*/
#include "cask_client_internal.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  Longest wait the broker's ring may need: it keeps 100,000 records.
#define S_LIMIT 100000

struct _cask_task_stream_t {
    cJSON *tasks;               //  the view's "tasks" array
    char *json;                 //  it, printed
    cask_task_record_t *records;
    size_t size;
};

double
cask_time (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
s_number (const cJSON *object, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (object, name);
    return cJSON_IsNumber (item) && item->valuedouble >= 0 ? item->valuedouble : 0;
}

static const char *
s_string (const cJSON *object, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (object, name);
    return cJSON_IsString (item) && item->valuestring ? item->valuestring : "";
}

//  Fills the records from the tasks array. Returns 0, or -1 with why set.
static int
s_records_fill (cask_task_stream_t *self, const char **why)
{
    self->size = (size_t) cJSON_GetArraySize (self->tasks);
    self->records = (cask_task_record_t *) calloc (self->size ? self->size : 1,
                                                   sizeof (cask_task_record_t));
    if (!self->records) {
        *why = "out of memory";
        return -1;
    }
    size_t index = 0;
    const cJSON *task;
    cJSON_ArrayForEach (task, self->tasks) {
        if (!cJSON_IsObject (task)) {
            *why = "a record is not an object";
            return -1;
        }
        cask_task_record_t *record = &self->records [index++];
        record->key = s_string (task, "key");
        record->function = s_string (task, "function");
        record->worker = (uint32_t) s_number (task, "worker");
        record->worker_name = s_string (task, "worker_name");
        record->thread = (unsigned) s_number (task, "thread");
        record->start = s_number (task, "start");
        record->stop = s_number (task, "stop");
        record->transfer_start = s_number (task, "transfer_start");
        record->transfer_stop = s_number (task, "transfer_stop");
        record->nbytes = (uint64_t) s_number (task, "nbytes");
        record->ok = strcmp (s_string (task, "status"), "OK") == 0;
    }
    return 0;
}

//  The stream parsed from the view's text. NULL with why set.
static cask_task_stream_t *
s_parse (const char *text, const char **why)
{
    cask_task_stream_t *self = (cask_task_stream_t *) calloc (1, sizeof (cask_task_stream_t));
    cJSON *doc = cJSON_Parse (text);
    *why = "out of memory";
    if (self && doc) {
        self->tasks = cJSON_DetachItemFromObjectCaseSensitive (doc, "tasks");
        *why = "the broker's task stream has no tasks array";
        if (cJSON_IsArray (self->tasks)
        &&  s_records_fill (self, why) == 0
        &&  (self->json = cJSON_PrintUnformatted (self->tasks)) != NULL) {
            cJSON_Delete (doc);
            return self;
        }
    }
    else
    if (self)
        *why = "the broker's task stream is not JSON";
    cJSON_Delete (doc);
    cask_task_stream_destroy (&self);
    return NULL;
}

cask_task_stream_t *
cask_client_task_stream (cask_client_t *self, double since, int timeout_ms)
{
    cask_view_t view = { cask_str ("task-stream"),
                         since > 0 && since < 1.8e13 ? (uint64_t) (since * 1e6) : 0, S_LIMIT,
                         cask_str ("") };
    char *text = cask_client_view (self, &view, timeout_ms);
    if (!text)
        return NULL;
    const char *why = NULL;
    cask_task_stream_t *stream = s_parse (text, &why);
    free (text);
    if (!stream)
        cask_client_set_error (self, "task_stream: %s", why);
    return stream;
}

void
cask_task_stream_destroy (cask_task_stream_t **self_p)
{
    cask_task_stream_t *self = *self_p;
    if (!self)
        return;
    cJSON_Delete (self->tasks);
    free (self->json);
    free (self->records);
    free (self);
    *self_p = NULL;
}

size_t
cask_task_stream_size (const cask_task_stream_t *self)
{
    return self->size;
}

const cask_task_record_t *
cask_task_stream_get (const cask_task_stream_t *self, size_t index)
{
    return index < self->size ? &self->records [index] : NULL;
}

const char *
cask_task_stream_json (const cask_task_stream_t *self)
{
    return self->json;
}

int
cask_task_stream_save (const cask_task_stream_t *self, const char *path)
{
    FILE *file = fopen (path, "w");
    if (!file)
        return -1;
    bool written = fputs (self->json, file) >= 0 && fputc ('\n', file) != EOF;
    int saved = errno;
    if (fclose (file) || !written) {
        errno = written ? errno : saved;
        return -1;
    }
    return 0;
}
