/*  cask_client_internal.h - what cask_client.c and cask_future.c share.

    The client keeps one record per task key it holds: the task's state as
    the broker last reported it, and its result once fetched from the
    worker. Futures are handles to records; submitting the same task twice
    gives two handles to one record, and the key is released to the broker
    when its last handle goes.

    The calling thread drives the sockets: every blocking call pumps the
    broker socket and the worker sockets until what it waits for is true.
*/
#ifndef CASK_CLIENT_INTERNAL_H_INCLUDED
#define CASK_CLIENT_INTERNAL_H_INCLUDED

#include "cask_proto.h"
#include "cask/cask_client.h"

typedef struct _cask_record_t cask_record_t;

struct _cask_record_t {
    cask_status_t status;
    uint32_t worker;            //  finished: the worker that holds the result
    uint8_t type;               //  finished: cask_type_t of the result
    cask_value_t *value;        //  the result, once fetched
    char *error;                //  why it erred, was cancelled, or could not be fetched
    bool fetching;              //  a GET for it is under way
    bool fetch_failed;          //  finished, but its worker could not give it
    size_t handles;             //  futures pointing here
    uint64_t dep_serial;        //  the submit that last used it as a dependency
    uint32_t dep_index;         //  its dependency index in that submit
    char key [];                //  the task key, NUL-terminated
};

struct _cask_future_t {
    cask_client_t *client;
    cask_record_t *record;
    cask_future_t *prev;        //  the client's list of live futures
    cask_future_t *next;
};

//  A predicate a wait loop checks after each batch of news.
typedef bool (cask_client_ready_fn) (void *arg);

//  Pumps (non-blocking) until ready(arg) is true or timeout_ms passes
//  (-1: for ever). Returns 0 when ready, -1 on timeout.
int cask_client_wait (cask_client_t *self, cask_client_ready_fn *ready, void *arg,
                      int timeout_ms);
//  Reads whatever news has arrived, without blocking.
void cask_client_pump (cask_client_t *self);

//  Makes record ready for a result call: a finished record whose value is
//  not here yet gets a GET queued to its worker. Returns true when there is
//  nothing more to wait for (value here, erred, cancelled, fetch failed).
bool cask_client_settle (cask_client_t *self, cask_record_t *record);
//  Sends the GETs that cask_client_settle queued.
void cask_client_flush_gets (cask_client_t *self);

//  A new handle to record (its handle count goes up), linked into the
//  client's list; NULL when out of memory.
cask_future_t *cask_future_new (cask_client_t *client, cask_record_t *record);
//  Unlinks and frees every future still held (client destroy).
void cask_future_drop_all (cask_client_t *client);

//  Forgets a record whose last handle went, queueing its key for RELEASE.
void cask_client_forget (cask_client_t *self, cask_record_t *record, bool releasing);
//  Head of the client's list of live futures (cask_future.c links them).
cask_future_t **cask_client_futures (cask_client_t *self);

//  Sets the client's error message (printf style) and returns -1.
int cask_client_set_error (cask_client_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

#endif
