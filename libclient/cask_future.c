/*  cask_future.c - futures: handles to the client's records of tasks.

    A future is what submit returns: a handle on the client's one record of
    its task key. Its status is the broker's last word on the task; its
    result is fetched from the worker that holds it the first time someone
    asks, then kept in the record for every handle. When the last handle of
    a key goes, the client tells the broker at once that it holds the key
    no more.
*/
#include "cask_client_internal.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *
cask_status_name (cask_status_t status)
{
    switch (status) {
        case CASK_PENDING: return "pending";
        case CASK_FINISHED: return "finished";
        case CASK_ERROR: return "error";
        case CASK_CANCELLED: return "cancelled";
    }
    return "unknown";
}

cask_future_t *
cask_future_new (cask_client_t *client, cask_record_t *record)
{
    cask_future_t *self = (cask_future_t *) malloc (sizeof (cask_future_t));
    if (!self)
        return NULL;
    cask_future_t **head = cask_client_futures (client);
    self->client = client;
    self->record = record;
    self->prev = NULL;
    self->next = *head;
    self->owner = NULL;
    self->watching = false;
    self->watch_prev = self->watch_next = NULL;
    if (*head)
        (*head)->prev = self;
    *head = self;
    record->handles++;
    return self;
}

//  Drops a handle: when it was the record's last, the record goes and its
//  key is queued for RELEASE (unless the client is leaving: BYE says it all)
static void
s_future_drop (cask_future_t *self, bool releasing)
{
    if (self->owner)
        cask_as_completed_unwatch (self);
    cask_future_t **head = cask_client_futures (self->client);
    if (self->prev)
        self->prev->next = self->next;
    else
        *head = self->next;
    if (self->next)
        self->next->prev = self->prev;
    if (--self->record->handles == 0)
        cask_client_forget (self->client, self->record, releasing);
    free (self);
}

void
cask_future_drop_all (cask_client_t *client)
{
    cask_future_t **head = cask_client_futures (client);
    while (*head)
        s_future_drop (*head, false);
}

void
cask_future_destroy (cask_future_t **self_p)
{
    cask_futures_destroy (self_p, 1);
}

//  The keys released go out at once, so an idle client holds nothing it
//  let go of; one RELEASE per client (and per full batch) for all of them
void
cask_futures_destroy (cask_future_t **futures, size_t n)
{
    if (!futures)
        return;
    cask_client_t *client = NULL;
    for (size_t index = 0; index < n; index++) {
        cask_future_t *future = futures [index];
        if (!future)
            continue;
        if (client && future->client != client)
            cask_client_send_releases (client);
        client = future->client;
        s_future_drop (future, true);
        futures [index] = NULL;
    }
    if (client)
        cask_client_send_releases (client);
}

cask_future_t *
cask_future_dup (cask_future_t *self)
{
    return self ? cask_future_new (self->client, self->record) : NULL;
}

cask_value_t *
cask_future_arg (cask_future_t *f)
{
    //  A NULL future still makes a value, so it fails the submit rather
    //  than ending its argument list early
    return cask_value_new_ref (f);
}

//  What the accessors say of a NULL future: the one a failed submit, map or
//  lookup handed back, passed on unchecked.
#define S_NO_FUTURE "no future: the call that should have made it failed"

const char *
cask_future_key (cask_future_t *self)
{
    return self ? self->record->key : "";
}

cask_status_t
cask_future_status (cask_future_t *self)
{
    if (!self)
        return CASK_ERROR;
    cask_client_pump (self->client);
    return self->record->status;
}

const char *
cask_future_error (cask_future_t *self)
{
    if (!self)
        return S_NO_FUTURE;
    return self->record->error ? self->record->error : "";
}

static bool
s_result_ready (void *arg)
{
    cask_future_t *self = (cask_future_t *) arg;
    bool ready = cask_client_settle (self->client, self->record);
    cask_client_flush_gets (self->client);
    return ready;
}

const cask_value_t *
cask_future_result (cask_future_t *self, int timeout_ms)
{
    if (!self)
        return NULL;
    cask_record_t *record = self->record;
    if (cask_client_wait (self->client, s_result_ready, self, timeout_ms)) {
        cask_client_set_error (self->client, "%s: %s after %d ms", record->key,
                               record->status == CASK_PENDING ? "still pending"
                                                              : "result not fetched",
                               timeout_ms);
        free (record->error);
        record->error = strdup (cask_client_error (self->client));
        return NULL;
    }
    if (record->status == CASK_FINISHED && record->value) {
        free (record->error);       //  an earlier wait's timeout
        record->error = NULL;
        return record->value;
    }
    cask_client_set_error (self->client, "%s", cask_future_error (self));
    return NULL;
}

int
cask_future_int64 (cask_future_t *self, int timeout_ms, int64_t *out)
{
    const cask_value_t *value = cask_future_result (self, timeout_ms);
    if (!value)
        return -1;
    if (cask_value_int64 (value, out))
        return cask_client_set_error (self->client, "%s: the result is a %s, not an int64",
                                      self->record->key,
                                      cask_type_name (cask_value_type (value)));
    return 0;
}

int
cask_future_print (cask_future_t *self, char *buf, size_t size)
{
    if (!self)
        return snprintf (buf, size, "<Future: none (%s)>", S_NO_FUTURE);
    cask_status_t status = cask_future_status (self);
    if (status == CASK_FINISHED)
        return snprintf (buf, size, "<Future: finished, type: %s, key: %s>",
                         cask_type_name ((cask_type_t) self->record->type), self->record->key);
    return snprintf (buf, size, "<Future: %s, key: %s>", cask_status_name (status),
                     self->record->key);
}

//  ---------------------------------------------------------------------
//  Gathering many futures: wait until all are done, then fetch the
//  missing results in one GET per worker, then wait for them. A cursor
//  keeps each wake-up from looking again at the futures already done.

typedef struct {
    cask_client_t *client;
    cask_future_t **futures;
    size_t count;
    size_t next;                //  futures before this one are done
    bool fetching;              //  second phase: done means settled
} s_gather_t;

static bool
s_gather_ready (void *arg)
{
    s_gather_t *self = (s_gather_t *) arg;
    for (; self->next < self->count; self->next++) {
        cask_record_t *record = self->futures [self->next]->record;
        bool done = self->fetching ? cask_client_settle (self->client, record)
                                   : record->status != CASK_PENDING;
        if (!done)
            break;
    }
    if (self->fetching)
        cask_client_flush_gets (self->client);
    return self->next == self->count;
}

static int
s_gather_wait (s_gather_t *self, int64_t deadline)
{
    int64_t remaining = deadline < 0 ? -1 : deadline - zclock_mono ();
    if (deadline >= 0 && remaining < 0)
        remaining = 0;
    return cask_client_wait (self->client, s_gather_ready, self, (int) remaining);
}

int
cask_gather (cask_client_t *self, cask_future_t **futures, size_t n, int timeout_ms)
{
    for (size_t index = 0; index < n; index++)
        if (!cask_client_owns (self, futures [index], "gather"))
            return -1;
    int64_t deadline = timeout_ms >= 0 ? zclock_mono () + timeout_ms : -1;
    s_gather_t gather = { self, futures, n, 0, false };
    int rc = s_gather_wait (&gather, deadline);
    if (rc == 0) {
        //  Everything finished: ask every worker for all it holds at once
        for (size_t index = 0; index < n; index++)
            cask_client_settle (self, futures [index]->record);
        cask_client_flush_gets (self);
        gather.next = 0;
        gather.fetching = true;
        rc = s_gather_wait (&gather, deadline);
    }
    for (size_t index = 0; index < n; index++) {
        cask_record_t *record = futures [index]->record;
        if (record->status == CASK_FINISHED && record->value)
            continue;
        if (record->error && record->status != CASK_PENDING)
            return cask_client_set_error (self, "%s", record->error);
        return cask_client_set_error (self, "%s: %s after %d ms", record->key,
                                      record->status == CASK_PENDING ? "still pending"
                                                                     : "result not fetched",
                                      timeout_ms);
    }
    return rc;
}

//  ---------------------------------------------------------------------
//  Waiting for futures without fetching: all of them (a cursor skips the
//  ones seen done, as in gather), or the first.

typedef struct {
    cask_future_t **futures;
    size_t count;
    size_t next;                //  ALL: futures before this one are done
    cask_wait_t mode;
} s_wait_t;

static bool
s_wait_ready (void *arg)
{
    s_wait_t *self = (s_wait_t *) arg;
    if (self->mode == CASK_WAIT_FIRST) {
        for (size_t index = 0; index < self->count; index++)
            if (self->futures [index]->record->status != CASK_PENDING)
                return true;
        return self->count == 0;
    }
    while (self->next < self->count
       &&  self->futures [self->next]->record->status != CASK_PENDING)
        self->next++;
    return self->next == self->count;
}

int
cask_wait (cask_client_t *self, cask_future_t **futures, size_t n, cask_wait_t mode,
           int timeout_ms)
{
    for (size_t index = 0; index < n; index++)
        if (!cask_client_owns (self, futures [index], "wait"))
            return -1;
    s_wait_t wait = { futures, n, 0, mode };
    cask_client_wait (self, s_wait_ready, &wait, timeout_ms);
    int done = 0;
    for (size_t index = 0; index < n; index++)
        if (futures [index]->record->status != CASK_PENDING)
            done++;
    return done;
}
