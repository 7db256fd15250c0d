/*  cask_stream.h - the task stream: what ran where and when.

    The broker keeps the last tasks that finished (by default 100,000, as
    Dask's task stream plugin does) in a ring of fixed records, for the
    dashboard's task stream and cask_client_task_stream: the worker and
    executor thread, when the function started and stopped, and when the
    fetches of its dependencies from peers started and stopped (wall clock,
    microseconds since the epoch, as the worker's DONE says).

    Adding a record copies a few fields and the key into a slot that was
    allocated once: nothing on the hot path allocates. Keys longer than
    the slot's inline room (rare: keys are a function name and a hash) are
    copied to the heap.
*/
#ifndef CASK_STREAM_H_INCLUDED
#define CASK_STREAM_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cask_proto.h"

#define CASK_STREAM_DEFAULT 100000

typedef struct _cask_stream_t cask_stream_t;

//  One finished task. Times are wall clock, microseconds since the epoch.
typedef struct {
    cask_str_t key;             //  a view into the stream
    uint32_t fn;                //  function id (0: none, e.g. a copy)
    uint32_t worker;
    uint16_t thread;
    bool ok;
    uint64_t start_us;          //  when the function started
    uint64_t stop_us;
    uint64_t fetch_start_us;    //  0: it fetched nothing from peers
    uint64_t fetch_stop_us;
    uint64_t nbytes;            //  of the result
} cask_stream_rec_t;

//  Creates a stream that keeps the last capacity records (at least 1), or
//  NULL when out of memory. The ring's memory is taken once, and touched
//  only as records arrive.
cask_stream_t *cask_stream_new (size_t capacity);
//  Frees the stream; safe on NULL and twice.
void cask_stream_destroy (cask_stream_t **self_p);

//  Records that rec, the DONE of a task of function fn, came from worker
//  at now_us (the broker's wall clock, for a task that never ran).
void cask_stream_add (cask_stream_t *self, uint32_t worker, uint32_t fn,
                      const cask_done_t *rec, uint64_t now_us);
//  Calls fn for the newest limit records (0: all) that stopped after
//  since_us, oldest first. Returns the number of records visited.
typedef void (cask_stream_fn) (void *arg, const cask_stream_rec_t *rec);
size_t cask_stream_since (cask_stream_t *self, uint64_t since_us, size_t limit,
                          cask_stream_fn *fn, void *arg);
//  Records ever added, kept or not.
uint64_t cask_stream_total (cask_stream_t *self);
//  Forgets every record (RESTART).
void cask_stream_clear (cask_stream_t *self);

#endif
