/*  cask_views.h - the broker's graph and task stream as JSON documents,
    for REPORT and the dashboard's JSON API (README, "Seeing the cluster").

    Built only when somebody asks (a dashboard poll, cask status): the
    progress counts are kept by the graph as tasks move, the task list and
    the stream are walked then. Nothing here runs on the hot path.
*/
#ifndef CASK_VIEWS_H_INCLUDED
#define CASK_VIEWS_H_INCLUDED

#include <cjson/cJSON.h>
#include "cask_graph.h"
#include "cask_stream.h"

//  Default and largest number of tasks in the "tasks" document, and the
//  default number of records in the "task-stream" one.
#define CASK_VIEWS_TASKS 1000
#define CASK_VIEWS_TASKS_MAX 100000
#define CASK_VIEWS_STREAM 10000

//  Array of {"function", "waiting", "processing", "done", "erred"}, one per
//  function that has had tasks. NULL when out of memory.
cJSON *cask_views_progress (cask_graph_t *graph);
//  Fills doc with "total" (tasks in the graph, or in state), "truncated"
//  and "tasks": up to limit tasks (only those in state, unless NULL), each
//  {"key", "function", "state", "worker", "nbytes", "priority", "deps"}
//  where deps are indices of its dependencies in the same array (those
//  listed).
//  Returns 0, or -1 when state is not a state's name or memory ran out.
int cask_views_tasks (cJSON *doc, cask_graph_t *graph, const char *state, size_t limit);
//  Name of worker id, or NULL when it is not connected.
typedef const char *(cask_views_name_fn) (void *arg, uint32_t worker);
//  JSON text of the array of the newest limit records of stream that
//  stopped after since_us, oldest first: {"key", "function", "worker",
//  "worker_name", "thread", "start", "stop", "transfer_start",
//  "transfer_stop", "nbytes", "status"}, times in seconds since the epoch
//  with six decimals. The caller frees it; NULL when out of memory.
char *cask_views_stream (cask_stream_t *stream, cask_graph_t *graph, uint64_t since_us,
                         size_t limit, cask_views_name_fn *name, void *arg);

#endif
