/*  cask_info.c - cluster info: the broker's REPORT as a struct, and a
    Dask-like summary of it.

    cask_client_info sends STATUS and parses the REPORT's "dashboard" URL
    and "workers" array
    (id, name, endpoint, nthreads, memory_limit, inflight, bytes_held,
    tasks_done, and resources when the broker gives them, as
    broker/cask_broker.c builds them); the totals are the sums over the
    workers.
*/
#include "cask_client_internal.h"
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  A number member of object as an unsigned integer; 0 when missing,
//  negative or not a number.
static uint64_t
s_number (const cJSON *object, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (object, name);
    if (!cJSON_IsNumber (item) || item->valuedouble < 0)
        return 0;
    return (uint64_t) item->valuedouble;
}

//  A copy of string member name of object ("" when missing); NULL when out
//  of memory.
static char *
s_string (const cJSON *object, const char *name)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (object, name);
    return strdup (cJSON_IsString (item) && item->valuestring ? item->valuestring : "");
}

//  Appends to buf as snprintf does, counting what it wanted in *length.
static void
s_append (char *buf, size_t size, size_t *length, const char *format, ...)
    __attribute__ ((format (printf, 4, 5)));
static void
s_append (char *buf, size_t size, size_t *length, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    int wrote = vsnprintf (*length < size ? buf + *length : NULL,
                           *length < size ? size - *length : 0, format, args);
    va_end (args);
    if (wrote > 0)
        *length += (size_t) wrote;
}

//  The "resources" object of a worker, {"GPU": 2, "MEM": 1e9}, as text
//  "GPU=2,MEM=1e+09" into buf (as s_append writes); members that are not
//  numbers are skipped, and a worker without the object declares none.
static void
s_resources_print (const cJSON *worker, char *buf, size_t size, size_t *length)
{
    const cJSON *resources = cJSON_GetObjectItemCaseSensitive (worker, "resources");
    const cJSON *item;
    bool first = true;
    if (cJSON_IsObject (resources))
        cJSON_ArrayForEach (item, resources)
            if (cJSON_IsNumber (item) && item->string) {
                s_append (buf, size, length, "%s%s=%g", first ? "" : ",", item->string,
                          item->valuedouble);
                first = false;
            }
}

//  The worker's resources as a new string ("" when none); NULL when out of
//  memory.
static char *
s_resources (const cJSON *worker)
{
    size_t length = 0;
    s_resources_print (worker, NULL, 0, &length);
    char *text = (char *) malloc (length + 1);
    if (text) {
        size_t written = 0;
        text [0] = 0;
        s_resources_print (worker, text, length + 1, &written);
    }
    return text;
}

//  Fills info from the parsed report. Returns 0, or -1 with the reason in
//  *why.
static int
s_parse (cask_cluster_info_t *info, const cJSON *report, const char **why)
{
    info->dashboard = s_string (report, "dashboard");
    const cJSON *workers = cJSON_GetObjectItemCaseSensitive (report, "workers");
    if (!info->dashboard) {
        *why = "out of memory";
        return -1;
    }
    if (!cJSON_IsArray (workers)) {
        *why = "the REPORT has no workers array";
        return -1;
    }
    size_t count = (size_t) cJSON_GetArraySize (workers);
    if (count > 0) {
        info->workers = (cask_cluster_worker_t *) calloc (count, sizeof *info->workers);
        if (!info->workers) {
            *why = "out of memory";
            return -1;
        }
    }
    const cJSON *item;
    cJSON_ArrayForEach (item, workers) {
        if (!cJSON_IsObject (item)) {
            *why = "a worker of the REPORT is not an object";
            return -1;
        }
        cask_cluster_worker_t *worker = &info->workers [info->nworkers++];
        worker->id = (uint32_t) s_number (item, "id");
        worker->name = s_string (item, "name");
        worker->endpoint = s_string (item, "endpoint");
        worker->resources = s_resources (item);
        if (!worker->name || !worker->endpoint || !worker->resources) {
            *why = "out of memory";
            return -1;
        }
        worker->nthreads = (uint32_t) s_number (item, "nthreads");
        worker->memory_limit = s_number (item, "memory_limit");
        worker->inflight = (uint32_t) s_number (item, "inflight");
        worker->bytes_cached = s_number (item, "bytes_held");
        worker->tasks_done = s_number (item, "tasks_done");
        info->nthreads += worker->nthreads;
        info->memory += worker->memory_limit;
    }
    return 0;
}

cask_cluster_info_t *
cask_client_info (cask_client_t *self, int timeout_ms)
{
    char *text = cask_client_status (self, timeout_ms);
    if (!text)
        return NULL;
    cJSON *report = cJSON_Parse (text);
    free (text);
    if (!report) {
        cask_client_set_error (self, "info: the broker's REPORT is not JSON");
        return NULL;
    }
    const char *why = "out of memory";
    cask_cluster_info_t *info = (cask_cluster_info_t *) calloc (1, sizeof *info);
    if (info)
        info->address = strdup (cask_client_address (self));
    int rc = info && info->address ? s_parse (info, report, &why) : -1;
    cJSON_Delete (report);
    if (rc) {
        cask_cluster_info_destroy (&info);
        cask_client_set_error (self, "info: %s", why);
        return NULL;
    }
    return info;
}

void
cask_cluster_info_destroy (cask_cluster_info_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cask_cluster_info_t *self = *self_p;
    *self_p = NULL;
    for (size_t index = 0; index < self->nworkers; index++) {
        free (self->workers [index].name);
        free (self->workers [index].endpoint);
        free (self->workers [index].resources);
    }
    free (self->workers);
    free (self->address);
    free (self->dashboard);
    free (self);
}

//  Bytes as Dask's format_bytes writes them: "512 B", "1.17 KiB",
//  "15.63 GiB" (a unit once the figure reaches 0.9 of it).
static void
s_format_bytes (uint64_t bytes, char *buf, size_t size)
{
    static const char *units [] = { "PiB", "TiB", "GiB", "MiB", "KiB" };
    for (int index = 0; index < 5; index++) {
        double unit = (double) (1ULL << (10 * (5 - index)));
        if ((double) bytes >= unit * 0.9) {
            snprintf (buf, size, "%.2f %s", (double) bytes / unit, units [index]);
            return;
        }
    }
    snprintf (buf, size, "%llu B", (unsigned long long) bytes);
}

int
cask_cluster_info_print (const cask_cluster_info_t *self, char *buf, size_t size)
{
    if (size > 0)
        buf [0] = 0;
    if (!self)
        return -1;
    size_t length = 0;
    char memory [32], cached [32];
    s_format_bytes (self->memory, memory, sizeof memory);
    s_append (buf, size, &length, "<Client: '%s' workers=%zu, threads=%llu, memory=%s>\n",
              self->address, self->nworkers, (unsigned long long) self->nthreads, memory);
    if (self->dashboard && *self->dashboard)
        s_append (buf, size, &length, "  dashboard: %s\n", self->dashboard);
    for (size_t index = 0; index < self->nworkers; index++) {
        const cask_cluster_worker_t *worker = &self->workers [index];
        s_format_bytes (worker->memory_limit, memory, sizeof memory);
        s_format_bytes (worker->bytes_cached, cached, sizeof cached);
        const char *resources = worker->resources ? worker->resources : "";
        s_append (buf, size, &length,
                  "  worker %u %s %s threads=%u memory=%s%s%s in-flight=%u cached=%s done=%llu\n",
                  worker->id, *worker->name ? worker->name : "-", worker->endpoint,
                  worker->nthreads, memory, *resources ? " resources=" : "", resources,
                  worker->inflight, cached, (unsigned long long) worker->tasks_done);
    }
    return length > (size_t) INT32_MAX ? -1 : (int) length;
}
