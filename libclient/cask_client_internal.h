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
typedef struct _cask_edge_t cask_edge_t;

//  That a record depends on another, both held here: cancelling the
//  dependency cancels the dependant at once, as the broker will confirm.
//  Edges live in the dependant's allocation; the dependency lists them.
struct _cask_edge_t {
    cask_record_t *dep;         //  the dependency; NULL once its record went
    cask_record_t *owner;       //  the dependant
    cask_edge_t *prev;          //  the dependency's list of dependants
    cask_edge_t *next;
};

//  Where a scattered value is on its way to a worker
typedef enum {
    CASK_STORE_NONE = 0,        //  not being scattered
    CASK_STORE_SENT = 1,        //  PUT sent, STORED not yet here
    CASK_STORE_OK = 2,          //  the worker keeps it
    CASK_STORE_REFUSED = 3      //  the worker refused it (error says why)
} cask_store_state_t;

struct _cask_record_t {
    cask_status_t status;
    uint32_t worker;            //  finished: the worker that holds the result
    uint8_t type;               //  finished: cask_type_t of the result
    uint8_t storing;            //  cask_store_state_t
    cask_value_t *value;        //  the result, once fetched
    char *error;                //  why it erred, was cancelled, or could not be fetched
    bool fetching;              //  a GET for it is under way
    bool fetch_failed;          //  finished, but its worker could not give it
    uint32_t cancels_due;       //  STATE cancelled the broker owes us for a CANCEL
    size_t handles;             //  futures pointing here
    uint64_t done_seq;          //  when the client learned it was done
    uint64_t dep_serial;        //  the submit that last used it as a dependency
    uint32_t dep_index;         //  its dependency index in that submit
    cask_future_t *watchers;    //  as_completed handles waiting for it
    cask_edge_t *dependants;    //  records held here that depend on it
    uint32_t ndeps;             //  edges to its dependencies, in deps
    cask_edge_t *deps;
    char *key;                  //  the task key, NUL-terminated (same allocation)
};

struct _cask_future_t {
    cask_client_t *client;
    cask_record_t *record;
    cask_future_t *prev;        //  the client's list of live futures
    cask_future_t *next;
    cask_as_completed_t *owner; //  the iterator this handle belongs to, or NULL
    bool watching;              //  in its record's watchers (else in owner's queue)
    cask_future_t *watch_prev;  //  record's watchers, or owner's done queue
    cask_future_t *watch_next;
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
//  Sends the RELEASE batch queued so far, if any. Returns 0 or -1.
int cask_client_send_releases (cask_client_t *self);
//  Head of the client's list of live futures (cask_future.c links them).
cask_future_t **cask_client_futures (cask_client_t *self);

//  Sets the record's status; leaving pending stamps its completion order
//  and hands it to the as_completed iterators that wait for it.
void cask_client_set_status (cask_client_t *self, cask_record_t *record,
                             cask_status_t status);
//  True when future is a live handle of this client; else sets the error
//  ("what: future KEY belongs to another client") and returns false.
bool cask_client_owns (cask_client_t *self, cask_future_t *future, const char *what);
//  Detaches every as_completed iterator of the client (client destroy).
void cask_as_completed_detach_all (cask_client_t *client);
//  Head of the client's list of live iterators (cask_as_completed.c links them).
cask_as_completed_t **cask_client_iterators (cask_client_t *self);
//  Moves the handles waiting for record, now done, to their iterators' queues.
void cask_as_completed_notify (cask_record_t *record);
//  Unlinks a handle of an iterator from its record's watchers or its queue.
void cask_as_completed_unwatch (cask_future_t *future);

//  Sends STATUS to the broker and waits up to timeout_ms for its REPORT.
//  Returns the REPORT's JSON text, NUL-terminated, which the caller frees;
//  or NULL (the client's error says why).
char *cask_client_status (cask_client_t *self, int timeout_ms);
//  cask_client_status for a view of the broker (STATUS with a body: see
//  proto/PROTOCOL.md); view NULL is the status view.
char *cask_client_view (cask_client_t *self, const cask_view_t *view, int timeout_ms);

//  Sets the client's error message (printf style) and returns -1.
int cask_client_set_error (cask_client_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

#endif
