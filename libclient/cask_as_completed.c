/*  cask_as_completed.c - futures handed back in the order they finish.

    An iterator holds handles of its own. A handle whose record is still
    pending waits in that record's list of watchers; when the client learns
    the record is done (a STATE, an ERROR, a cancel), the client moves every
    watcher to the tail of its iterator's done queue. next takes the head of
    the queue, so each call costs the same whatever the number of futures,
    and the order is the order in which the client learned of completions.
    Futures already done when added go in by the order they were learned.
*/
#include "cask_client_internal.h"

#include <stdlib.h>
#include <string.h>

struct _cask_as_completed_t {
    cask_client_t *client;          //  NULL once the client was destroyed
    int flags;
    size_t pending;                 //  handles waiting in their records' watchers
    size_t queued;                  //  handles in the done queue
    cask_future_t *head;            //  done queue, in completion order
    cask_future_t *tail;
    cask_future_t *unsettled;       //  first queued handle whose result is not asked for
    cask_as_completed_t *prev;      //  the client's list of iterators
    cask_as_completed_t *next;
};

static void
s_enqueue (cask_as_completed_t *self, cask_future_t *future)
{
    future->watching = false;
    future->watch_next = NULL;
    future->watch_prev = self->tail;
    if (self->tail)
        self->tail->watch_next = future;
    else
        self->head = future;
    self->tail = future;
    self->queued++;
    if (!self->unsettled)
        self->unsettled = future;
}

static void
s_watch (cask_as_completed_t *self, cask_future_t *future)
{
    cask_record_t *record = future->record;
    future->watching = true;
    future->watch_prev = NULL;
    future->watch_next = record->watchers;
    if (record->watchers)
        record->watchers->watch_prev = future;
    record->watchers = future;
    self->pending++;
}

void
cask_as_completed_notify (cask_record_t *record)
{
    cask_future_t *future = record->watchers;
    record->watchers = NULL;
    while (future) {
        cask_future_t *next = future->watch_next;
        future->owner->pending--;
        s_enqueue (future->owner, future);
        future = next;
    }
}

void
cask_as_completed_unwatch (cask_future_t *future)
{
    cask_as_completed_t *self = future->owner;
    if (future->watching) {
        if (future->watch_prev)
            future->watch_prev->watch_next = future->watch_next;
        else
            future->record->watchers = future->watch_next;
        if (future->watch_next)
            future->watch_next->watch_prev = future->watch_prev;
        self->pending--;
    }
    else {
        if (self->unsettled == future)
            self->unsettled = future->watch_next;
        if (future->watch_prev)
            future->watch_prev->watch_next = future->watch_next;
        else
            self->head = future->watch_next;
        if (future->watch_next)
            future->watch_next->watch_prev = future->watch_prev;
        else
            self->tail = future->watch_prev;
        self->queued--;
    }
    future->owner = NULL;
    future->watching = false;
    future->watch_prev = future->watch_next = NULL;
}

//  A handle of the iterator's own on future's record, watching or queued
static int
s_take (cask_as_completed_t *self, cask_future_t *future)
{
    cask_future_t *handle = cask_future_new (self->client, future->record);
    if (!handle)
        return cask_client_set_error (self->client, "as_completed: out of memory");
    handle->owner = self;
    if (handle->record->status == CASK_PENDING)
        s_watch (self, handle);
    else
        s_enqueue (self, handle);
    return 0;
}

static int
s_by_done_seq (const void *a, const void *b)
{
    uint64_t x = (*(cask_future_t * const *) a)->record->done_seq;
    uint64_t y = (*(cask_future_t * const *) b)->record->done_seq;
    return x < y ? -1 : x > y;
}

//  Takes the futures, the done ones in the order the client learned of them
static int
s_take_all (cask_as_completed_t *self, cask_future_t **futures, size_t n)
{
    cask_future_t **done = (cask_future_t **) malloc ((n ? n : 1) * sizeof *done);
    if (!done)
        return cask_client_set_error (self->client, "as_completed: out of memory");
    size_t ndone = 0;
    int rc = 0;
    for (size_t index = 0; index < n && rc == 0; index++) {
        if (futures [index]->record->status == CASK_PENDING)
            rc = s_take (self, futures [index]);
        else
            done [ndone++] = futures [index];
    }
    qsort (done, ndone, sizeof *done, s_by_done_seq);
    for (size_t index = 0; index < ndone && rc == 0; index++)
        rc = s_take (self, done [index]);
    free (done);
    return rc;
}

cask_as_completed_t *
cask_as_completed_new (cask_client_t *client, cask_future_t **futures, size_t n, int flags)
{
    for (size_t index = 0; index < n; index++)
        if (!cask_client_owns (client, futures [index], "as_completed"))
            return NULL;
    cask_as_completed_t *self = (cask_as_completed_t *) calloc (1, sizeof *self);
    if (!self) {
        cask_client_set_error (client, "as_completed: out of memory");
        return NULL;
    }
    self->client = client;
    self->flags = flags;
    cask_as_completed_t **head = cask_client_iterators (client);
    self->next = *head;
    if (*head)
        (*head)->prev = self;
    *head = self;
    //  News that arrived before counts, in the order it came
    cask_client_pump (client);
    if (s_take_all (self, futures, n))
        cask_as_completed_destroy (&self);
    return self;
}

//  Drops every handle of the iterator: the ones waiting are linked only
//  from their records, so the client's list of futures finds them
static void
s_drop_handles (cask_as_completed_t *self)
{
    cask_future_t *future = *cask_client_futures (self->client);
    while (future) {
        cask_future_t *next = future->next;
        if (future->owner == self)
            cask_future_destroy (&future);
        future = next;
    }
}

static void
s_unlink (cask_as_completed_t *self)
{
    cask_as_completed_t **head = cask_client_iterators (self->client);
    if (self->prev)
        self->prev->next = self->next;
    else
        *head = self->next;
    if (self->next)
        self->next->prev = self->prev;
}

void
cask_as_completed_destroy (cask_as_completed_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cask_as_completed_t *self = *self_p;
    *self_p = NULL;
    if (self->client) {
        s_drop_handles (self);
        s_unlink (self);
    }
    free (self);
}

void
cask_as_completed_detach_all (cask_client_t *client)
{
    cask_as_completed_t **head = cask_client_iterators (client);
    while (*head) {
        cask_as_completed_t *self = *head;
        s_drop_handles (self);
        s_unlink (self);
        self->client = NULL;
        self->pending = self->queued = 0;
        self->head = self->tail = self->unsettled = NULL;
    }
}

int
cask_as_completed_add (cask_as_completed_t *self, cask_future_t *future)
{
    if (!self || !self->client)
        return -1;
    if (!cask_client_owns (self->client, future, "as_completed add"))
        return -1;
    cask_client_pump (self->client);
    return s_take (self, future);
}

static bool
s_head_ready (void *arg)
{
    cask_as_completed_t *self = (cask_as_completed_t *) arg;
    if (!self->head)
        return self->pending == 0;
    if (!(self->flags & CASK_WITH_RESULTS))
        return true;
    //  Ask for every queued result at once, then wait for the head's
    for (; self->unsettled; self->unsettled = self->unsettled->watch_next)
        cask_client_settle (self->client, self->unsettled->record);
    bool ready = cask_client_settle (self->client, self->head->record);
    cask_client_flush_gets (self->client);
    return ready;
}

cask_future_t *
cask_as_completed_next (cask_as_completed_t *self, int timeout_ms)
{
    if (!self || !self->client)
        return NULL;
    if (cask_client_wait (self->client, s_head_ready, self, timeout_ms)) {
        cask_client_set_error (self->client, "as_completed: %s after %d ms",
                               self->head ? "the next result is not fetched"
                                          : "no future done", timeout_ms);
        return NULL;
    }
    cask_future_t *future = self->head;
    if (!future) {
        cask_client_set_error (self->client, "as_completed: no future left");
        return NULL;
    }
    cask_as_completed_unwatch (future);
    return future;
}

size_t
cask_as_completed_count (cask_as_completed_t *self)
{
    if (!self || !self->client)
        return 0;
    return self->pending + self->queued;
}
