/*  test_graph.c - unit tests of the broker's task graph (broker/cask_graph.c).

    The graph runs without sockets: a recording sink collects what it asks
    the broker to do (dispatch, state, free) and the tests check it.
*/
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cask_graph.h"
#include "cask_testutil.h"

#define FN_INC 1
#define FN_ADD 2

typedef struct {
    char kind;                  //  'd' dispatch, 's' state, 'f' free, 'c' cancelled
    uint32_t peer;              //  worker or client
    char key [CASK_MAX_KEY + 1];
    uint8_t state;
    uint32_t worker;
    char cause [CASK_MAX_KEY + 1];
    char function [CASK_MAX_KEY + 1];
    char message [256];
    uint32_t ndeps;
    char holder [2][CASK_MAX_KEY + 1];  //  dispatch: holders of deps 0 and 1
} event_t;

typedef struct {
    event_t *events;
    size_t size;
    size_t cap;
} recorder_t;

static recorder_t s_recorder;
static cask_graph_t *s_graph;

static event_t *
s_record (char kind, uint32_t peer, cask_str_t key)
{
    if (s_recorder.size == s_recorder.cap) {
        s_recorder.cap = s_recorder.cap ? s_recorder.cap * 2 : 256;
        s_recorder.events = realloc (s_recorder.events, s_recorder.cap * sizeof (event_t));
        ck_assert_ptr_nonnull (s_recorder.events);
    }
    event_t *event = &s_recorder.events [s_recorder.size++];
    memset (event, 0, sizeof (event_t));
    event->kind = kind;
    event->peer = peer;
    cask_str_copy (key, event->key, sizeof event->key);
    return event;
}

static void
s_on_dispatch (void *arg, uint32_t worker, const cask_gtask_t *task)
{
    (void) arg;
    cask_task_t rec;
    cask_gtask_record (task, &rec);
    event_t *event = s_record ('d', worker, rec.key);
    event->ndeps = rec.ndeps;
    for (uint32_t i = 0; i < rec.ndeps && i < 2; i++)
        cask_str_copy (cask_gtask_dep_holder (task, i, worker), event->holder [i],
                       sizeof event->holder [i]);
}

static void
s_on_state (void *arg, uint32_t client, const cask_gtask_t *task)
{
    (void) arg;
    cask_state_rec_t rec;
    cask_gtask_state (task, &rec);
    event_t *event = s_record ('s', client, rec.key);
    event->state = rec.state;
    event->worker = rec.worker;
    cask_str_copy (rec.cause, event->cause, sizeof event->cause);
    cask_str_copy (rec.function, event->function, sizeof event->function);
    cask_str_copy (rec.message, event->message, sizeof event->message);
}

static void
s_on_free (void *arg, uint32_t worker, cask_str_t key)
{
    (void) arg;
    s_record ('f', worker, key);
}

static void
s_on_cancelled (void *arg, uint32_t client, cask_str_t key, const char *message)
{
    (void) arg;
    event_t *event = s_record ('c', client, key);
    event->state = CASK_STATE_CANCELLED;
    snprintf (event->message, sizeof event->message, "%s", message);
}

static void
s_on_steal (void *arg, uint32_t worker, cask_str_t key)
{
    (void) arg;
    s_record ('t', worker, key);
}

static void
s_on_copy (void *arg, uint32_t worker, cask_str_t key, cask_str_t holder)
{
    (void) arg;
    event_t *event = s_record ('k', worker, key);
    cask_str_copy (holder, event->holder [0], sizeof event->holder [0]);
}

static void
s_on_retired (void *arg, uint32_t worker)
{
    (void) arg;
    s_record ('r', worker, cask_str (""));
}

static void
s_setup (void)
{
    s_recorder.size = 0;
    cask_graph_sink_t sink = { s_on_dispatch, s_on_state, s_on_free, s_on_cancelled,
                               s_on_steal, s_on_copy, s_on_retired, NULL };
    s_graph = cask_graph_new (&sink, NULL);
    ck_assert_ptr_nonnull (s_graph);
    ck_assert_int_eq (cask_graph_function_add (s_graph, FN_INC, cask_str ("inc")), 0);
    ck_assert_int_eq (cask_graph_function_add (s_graph, FN_ADD, cask_str ("add")), 0);
}

static void
s_teardown (void)
{
    cask_graph_destroy (&s_graph);
    cask_graph_destroy (&s_graph);
    ck_assert_ptr_null (s_graph);
    free (s_recorder.events);
    s_recorder.events = NULL;
    s_recorder.cap = s_recorder.size = 0;
}

//  Submits key running fn over the ndeps deps, for client, restricted as
//  restrictions say (NULL: not restricted).
static int
s_submit_record (uint32_t client, const char *key, uint32_t fn, const char **deps, size_t ndeps,
                 const cask_restrictions_t *restrictions)
{
    static const uint8_t empty_list [] = { 0x07, 0, 0, 0, 0 };
    cask_buf_t buf;
    cask_buf_init (&buf);
    cask_task_put_head (&buf, &(cask_task_t) { .key = cask_str (key), .fn = fn,
                                               .flags = restrictions ? CASK_TASK_RESTRICTED : 0,
                                               .ndeps = (uint32_t) ndeps });
    for (size_t i = 0; i < ndeps; i++)
        cask_put_str8 (&buf, cask_str (deps [i]));
    cask_task_put_tail (&buf, 0, (cask_str_t) { (const char *) empty_list, sizeof empty_list });
    if (restrictions)
        cask_restrictions_put (&buf, restrictions);
    cask_rd_t rd;
    cask_rd_init (&rd, buf.data, buf.size);
    cask_task_t rec;
    cask_task_get (&rd, &rec, false);
    ck_assert (cask_rd_done (&rd));
    int rc = cask_graph_submit (s_graph, client, &rec, NULL);
    cask_buf_free (&buf);
    return rc;
}

static int
s_submit_deps (uint32_t client, const char *key, uint32_t fn, const char **deps, size_t ndeps)
{
    return s_submit_record (client, key, fn, deps, ndeps, NULL);
}

static int
s_submit (uint32_t client, const char *key, const char *dep0, const char *dep1)
{
    const char *deps [] = { dep0, dep1 };
    return s_submit_deps (client, key, dep0 ? FN_ADD : FN_INC, deps,
                          dep1 ? 2 : dep0 ? 1 : 0);
}

static int
s_done (uint32_t worker, const char *key, uint64_t nbytes)
{
    cask_done_t rec = { .key = cask_str (key), .ok = 1, .type = CASK_INT64, .nbytes = nbytes,
                        .duration_us = 100, .message = cask_str ("") };
    return cask_graph_done (s_graph, worker, &rec);
}

static int
s_fail (uint32_t worker, const char *key, const char *message)
{
    cask_done_t rec = { .key = cask_str (key), .duration_us = 100, .message = cask_str (message) };
    return cask_graph_done (s_graph, worker, &rec);
}

//  Adds a worker named name that declares gpus GPU (none when 0).
static void
s_add_named_worker (uint32_t id, const char *endpoint, uint32_t nthreads, const char *name,
                    double gpus)
{
    cask_hello_t hello = { .role = CASK_ROLE_WORKER, .name = cask_str (name),
                           .nthreads = nthreads, .endpoint = cask_str (endpoint),
                           .nresources = gpus > 0, .resources = { { cask_str ("GPU"), gpus } } };
    ck_assert_int_eq (cask_graph_worker_add (s_graph, id, &hello), 0);
}

static void
s_add_worker (uint32_t id, const char *endpoint, uint32_t nthreads)
{
    s_add_named_worker (id, endpoint, nthreads, "", 0);
}

//  Submits inc as key for client, restricted to worker (when not NULL) and
//  to workers with gpus GPU free (when gpus > 0).
static int
s_submit_restricted (uint32_t client, const char *key, const char *worker, double gpus)
{
    cask_restrictions_t restrictions = {
        .nworkers = worker != NULL, .workers = { cask_str (worker) },
        .nresources = gpus > 0, .resources = { { cask_str ("GPU"), gpus } } };
    return s_submit_record (client, key, FN_INC, NULL, 0, &restrictions);
}

//  Makes inc a function known to be fast (100 us) on worker, so that
//  workers have room for more of its tasks than they have threads; leaves
//  no task and no event behind.
static void
s_warm_up (uint32_t worker)
{
    s_submit (99, "warm-up", NULL, NULL);
    ck_assert_int_eq (s_done (worker, "warm-up", 8), 0);
    cask_graph_client_gone (s_graph, 99);
    s_recorder.size = 0;
}

//  The nth recorded event of kind for key (from 0), or NULL.
static event_t *
s_find_event (char kind, const char *key, int nth)
{
    for (size_t i = 0; i < s_recorder.size; i++)
        if (s_recorder.events [i].kind == kind && strcmp (s_recorder.events [i].key, key) == 0
        &&  nth-- == 0)
            return &s_recorder.events [i];
    return NULL;
}

static size_t
s_count_events (char kind)
{
    size_t count = 0;
    for (size_t i = 0; i < s_recorder.size; i++)
        count += s_recorder.events [i].kind == kind;
    return count;
}

static uint32_t
s_worker_of (const char *key)
{
    event_t *event = s_find_event ('d', key, 0);
    ck_assert_msg (event != NULL, "%s was not dispatched", key);
    return event->peer;
}

//  The worker of the latest dispatch of key.
static uint32_t
s_last_worker_of (const char *key)
{
    for (size_t i = s_recorder.size; i-- > 0;)
        if (s_recorder.events [i].kind == 'd' && strcmp (s_recorder.events [i].key, key) == 0)
            return s_recorder.events [i].peer;
    ck_abort_msg ("%s was not dispatched", key);
    return 0;
}

static int
s_state_of (const char *key)
{
    const cask_gtask_t *task = cask_graph_find (s_graph, cask_str (key));
    if (!task)
        return -1;
    cask_state_rec_t rec;
    cask_gtask_state (task, &rec);
    return rec.state;
}

static size_t
s_total (void)
{
    cask_graph_counts_t counts;
    cask_graph_counts (s_graph, &counts);
    return counts.total;
}

//  ---------------------------------------------------------------------

START_TEST (test_dispatch_when_deps_in_memory)
{
    s_add_worker (1, "tcp://w1", 1);
    ck_assert_int_eq (s_submit (7, "a", NULL, NULL), 0);
    ck_assert_int_eq (s_submit (7, "b", "a", NULL), 0);
    ck_assert_ptr_nonnull (s_find_event ('d', "a", 0));
    ck_assert_ptr_null (s_find_event ('d', "b", 0));
    ck_assert_int_eq (s_state_of ("b"), CASK_STATE_WAITING);

    ck_assert_int_eq (s_done (1, "a", 8), 0);
    event_t *state = s_find_event ('s', "a", 0);
    ck_assert_ptr_nonnull (state);
    ck_assert_int_eq (state->peer, 7);
    ck_assert_int_eq (state->state, CASK_STATE_MEMORY);
    ck_assert_int_eq (state->worker, 1);
    event_t *dispatch = s_find_event ('d', "b", 0);
    ck_assert_ptr_nonnull (dispatch);
    ck_assert_int_eq (dispatch->ndeps, 1);
    ck_assert_str_eq (dispatch->holder [0], "");    //  already on worker 1

    //  Reports from the wrong worker or for unknown keys are ignored
    ck_assert_int_eq (s_done (2, "b", 8), -1);
    ck_assert_int_eq (s_done (1, "nope", 8), -1);
    ck_assert_int_eq (s_done (1, "a", 8), -1);
    ck_assert_int_eq (s_done (1, "b", 8), 0);
    ck_assert_int_eq (s_state_of ("b"), CASK_STATE_MEMORY);
}
END_TEST

START_TEST (test_queued_until_a_worker_joins)
{
    ck_assert_int_eq (s_submit (7, "a", NULL, NULL), 0);
    ck_assert_int_eq (s_submit (7, "b", NULL, NULL), 0);
    ck_assert_uint_eq (s_count_events ('d'), 0);
    ck_assert_int_eq (s_state_of ("a"), CASK_STATE_WAITING);
    s_add_worker (3, "tcp://w3", 4);
    ck_assert_uint_eq (s_count_events ('d'), 2);
    ck_assert_int_eq (s_worker_of ("a"), 3);
    ck_assert_int_eq (s_state_of ("b"), CASK_STATE_PROCESSING);
}
END_TEST

START_TEST (test_locality_picks_bigger_dep)
{
    s_add_worker (1, "tcp://w1", 1);
    s_add_worker (2, "tcp://w2", 1);
    s_submit (7, "small", NULL, NULL);
    s_submit (7, "big", NULL, NULL);
    uint32_t small_on = s_worker_of ("small");
    uint32_t big_on = s_worker_of ("big");
    ck_assert_uint_ne (small_on, big_on);           //  load spread them
    ck_assert_int_eq (s_done (small_on, "small", 1000), 0);
    ck_assert_int_eq (s_done (big_on, "big", 10 * 1000 * 1000), 0);

    s_submit (7, "sum", "small", "big");
    event_t *dispatch = s_find_event ('d', "sum", 0);
    ck_assert_int_eq (dispatch->peer, big_on);
    ck_assert_str_eq (dispatch->holder [0], small_on == 1 ? "tcp://w1" : "tcp://w2");
    ck_assert_str_eq (dispatch->holder [1], "");

    //  Locality beats load: big's worker is busier now, still wins
    s_submit (7, "again", "big", NULL);
    ck_assert_int_eq (s_worker_of ("again"), big_on);
}
END_TEST

START_TEST (test_load_spreads_independent_tasks)
{
    s_add_worker (1, "tcp://w1", 2);
    s_add_worker (2, "tcp://w2", 2);
    s_add_worker (3, "tcp://w3", 4);
    s_warm_up (1);
    char key [16];
    for (int i = 0; i < 16; i++) {
        snprintf (key, sizeof key, "t%d", i);
        s_submit (7, key, NULL, NULL);
    }
    uint32_t inflight [3];
    uint64_t done, nbytes;
    for (uint32_t id = 1; id <= 3; id++)
        ck_assert_int_eq (cask_graph_worker_load (s_graph, id, &inflight [id - 1], &done, &nbytes), 0);
    //  In proportion to their threads
    ck_assert_uint_eq (inflight [0], 4);
    ck_assert_uint_eq (inflight [1], 4);
    ck_assert_uint_eq (inflight [2], 8);

    //  Small results stay where they are when load is equal
    s_done (1, "t0", 8);
    s_submit (7, "next", "t0", NULL);
    ck_assert_int_eq (s_worker_of ("next"), 1);
}
END_TEST

//  A task running elsewhere that needs a result lost with its worker is
//  taken back (its worker may be fetching from the lost one) and runs
//  again once the result is computed again.
START_TEST (test_lost_input_takes_back_its_dependents)
{
    s_add_worker (1, "tcp://w1", 1);
    s_add_worker (2, "tcp://w2", 1);
    s_submit (7, "a", NULL, NULL);
    ck_assert_int_eq (s_last_worker_of ("a"), 1);
    ck_assert_int_eq (s_done (1, "a", 8), 0);
    s_submit (7, "slow", NULL, NULL);               //  keeps worker 1 busy
    ck_assert_int_eq (s_last_worker_of ("slow"), 1);
    s_submit (7, "b", "a", NULL);
    ck_assert_int_eq (s_last_worker_of ("b"), 2);
    s_recorder.size = 0;
    cask_graph_worker_remove (s_graph, 1);
    ck_assert_int_eq (s_find_event ('f', "b", 0)->peer, 2);
    ck_assert_int_eq (s_find_event ('d', "a", 0)->peer, 2);
    ck_assert_ptr_null (s_find_event ('d', "b", 0));
    ck_assert_int_eq (s_done (2, "b", 8), -1);      //  the dropped run
    ck_assert_ptr_null (cask_graph_verify (s_graph));
    ck_assert_int_eq (s_done (2, "a", 8), 0);
    ck_assert_int_eq (s_last_worker_of ("b"), 2);
    ck_assert_int_eq (s_done (2, "b", 8), 0);
    ck_assert_ptr_null (cask_graph_verify (s_graph));
}
END_TEST

START_TEST (test_failure_propagates_with_cause)
{
    s_add_worker (1, "tcp://w1", 1);
    s_submit (7, "a", NULL, NULL);
    s_submit (7, "b", "a", NULL);
    s_submit (8, "c", "b", NULL);
    s_submit (7, "d", NULL, NULL);
    ck_assert_int_eq (s_fail (1, "a", "inc: boom"), 0);

    const char *erred [] = { "a", "b", "c" };
    for (int i = 0; i < 3; i++) {
        event_t *state = s_find_event ('s', erred [i], 0);
        ck_assert_msg (state != NULL, "no state for %s", erred [i]);
        ck_assert_int_eq (state->state, CASK_STATE_ERRED);
        ck_assert_str_eq (state->cause, "a");
        ck_assert_str_eq (state->function, "inc");
        ck_assert_int_eq (state->worker, 1);
        ck_assert_str_eq (state->message, "inc: boom");
    }
    ck_assert_int_eq (s_find_event ('s', "c", 0)->peer, 8);
    ck_assert_int_eq (s_state_of ("d"), CASK_STATE_PROCESSING);
    ck_assert_ptr_null (s_find_event ('d', "b", 0));

    //  A new task on an erred one is erred at once, with the same cause
    s_submit (9, "e", "d", "c");
    event_t *state = s_find_event ('s', "e", 0);
    ck_assert_ptr_nonnull (state);
    ck_assert_int_eq (state->state, CASK_STATE_ERRED);
    ck_assert_str_eq (state->cause, "a");

    //  Releasing everything forgets the erred tasks; nothing to free
    cask_graph_client_gone (s_graph, 7);
    cask_graph_client_gone (s_graph, 8);
    cask_graph_client_gone (s_graph, 9);
    ck_assert_ptr_nonnull (s_find_event ('f', "d", 0));    //  d was still processing
    ck_assert_uint_eq (s_total (), 0);
    ck_assert_int_eq (s_done (1, "d", 8), -1);
    ck_assert_uint_eq (s_count_events ('f'), 1);
}
END_TEST

START_TEST (test_unknown_function_and_dependency)
{
    s_add_worker (1, "tcp://w1", 1);
    const char *deps [] = { "ghost" };
    s_submit_deps (7, "f", 99, NULL, 0);
    s_submit_deps (7, "g", FN_INC, deps, 1);
    event_t *state = s_find_event ('s', "f", 0);
    ck_assert_int_eq (state->state, CASK_STATE_ERRED);
    ck_assert_str_eq (state->message, "unknown function id 99");
    ck_assert_str_eq (state->cause, "f");
    state = s_find_event ('s', "g", 0);
    ck_assert_int_eq (state->state, CASK_STATE_ERRED);
    ck_assert_str_eq (state->message, "unknown dependency ghost");
    ck_assert_str_eq (state->function, "inc");
    ck_assert_uint_eq (s_count_events ('d'), 0);

    cask_graph_submit_erred (s_graph, 7, cask_str ("h"), "malformed task record");
    state = s_find_event ('s', "h", 0);
    ck_assert_int_eq (state->state, CASK_STATE_ERRED);
    ck_assert_str_eq (state->message, "malformed task record");
    ck_assert_int_eq (cask_graph_release (s_graph, 7, cask_str ("h")), 0);
    ck_assert_int_eq (s_state_of ("h"), -1);
}
END_TEST

START_TEST (test_same_key_one_task_two_holders)
{
    s_add_worker (1, "tcp://w1", 1);
    s_submit (7, "x", NULL, NULL);
    s_submit (8, "x", NULL, NULL);
    ck_assert_uint_eq (s_count_events ('d'), 1);
    ck_assert_uint_eq (s_total (), 1);
    ck_assert_uint_eq (cask_gtask_holds (cask_graph_find (s_graph, cask_str ("x"))), 2);
    s_done (1, "x", 8);
    ck_assert_int_eq (s_find_event ('s', "x", 0)->peer, 7);
    ck_assert_int_eq (s_find_event ('s', "x", 1)->peer, 8);

    //  A key already in memory is told at once, and not run again
    s_submit (9, "x", NULL, NULL);
    event_t *state = s_find_event ('s', "x", 2);
    ck_assert_int_eq (state->peer, 9);
    ck_assert_int_eq (state->state, CASK_STATE_MEMORY);
    ck_assert_uint_eq (s_count_events ('d'), 1);

    //  Holds are counted: the same client twice must release twice
    s_submit (9, "x", NULL, NULL);
    ck_assert_int_eq (cask_graph_release (s_graph, 7, cask_str ("x")), 0);
    ck_assert_int_eq (cask_graph_release (s_graph, 7, cask_str ("x")), -1);
    ck_assert_int_eq (cask_graph_release (s_graph, 8, cask_str ("x")), 0);
    ck_assert_int_eq (cask_graph_release (s_graph, 9, cask_str ("x")), 0);
    ck_assert_uint_eq (s_count_events ('f'), 0);
    ck_assert_int_eq (cask_graph_release (s_graph, 9, cask_str ("x")), 0);
    ck_assert_uint_eq (s_count_events ('f'), 1);
    ck_assert_uint_eq (s_total (), 0);
}
END_TEST

START_TEST (test_release_forgets_and_frees)
{
    s_add_worker (1, "tcp://w1", 1);
    s_submit (7, "a", NULL, NULL);
    s_done (1, "a", 8);
    ck_assert_int_eq (cask_graph_release (s_graph, 7, cask_str ("a")), 0);
    event_t *free_a = s_find_event ('f', "a", 0);
    ck_assert_ptr_nonnull (free_a);
    ck_assert_int_eq (free_a->peer, 1);
    ck_assert_int_eq (s_state_of ("a"), -1);
    ck_assert_int_eq (cask_graph_release (s_graph, 7, cask_str ("a")), -1);

    //  Released while processing: freed on its worker and forgotten at once
    s_submit (7, "p", NULL, NULL);
    cask_graph_release (s_graph, 7, cask_str ("p"));
    ck_assert_int_eq (s_state_of ("p"), -1);
    ck_assert_ptr_nonnull (s_find_event ('f', "p", 0));
    ck_assert_int_eq (s_done (1, "p", 8), -1);
    ck_assert_ptr_null (s_find_event ('s', "p", 0));
    ck_assert_uint_eq (s_total (), 0);

    //  Submitted again after it was forgotten: computed again
    s_submit (7, "a", NULL, NULL);
    ck_assert_ptr_nonnull (s_find_event ('d', "a", 1));
}
END_TEST

//  A forgotten task its worker has not finished is freed there at once and
//  no longer counts as load; the worker's late DONE is ignored.
START_TEST (test_forget_processing_frees_at_once)
{
    s_add_worker (1, "tcp://w1", 1);
    s_warm_up (1);
    s_submit (7, "slow", NULL, NULL);
    s_submit (7, "queued", NULL, NULL);
    s_submit (7, "after", "queued", NULL);
    uint32_t inflight;
    uint64_t done, nbytes;
    cask_graph_worker_load (s_graph, 1, &inflight, &done, &nbytes);
    ck_assert_uint_eq (inflight, 2);
    ck_assert_int_eq (cask_graph_cancel (s_graph, 7, cask_str ("queued")), 0);
    event_t *free_q = s_find_event ('f', "queued", 0);
    ck_assert_ptr_nonnull (free_q);
    ck_assert_int_eq (free_q->peer, 1);
    ck_assert_uint_eq (s_count_events ('f'), 1);
    ck_assert_int_eq (s_state_of ("queued"), -1);
    ck_assert_int_eq (s_state_of ("after"), -1);
    cask_graph_worker_load (s_graph, 1, &inflight, &done, &nbytes);
    ck_assert_uint_eq (inflight, 1);
    ck_assert_ptr_null (cask_graph_verify (s_graph));
    ck_assert_int_eq (s_done (1, "queued", 8), -1);
    cask_graph_worker_load (s_graph, 1, &inflight, &done, &nbytes);
    ck_assert_uint_eq (inflight, 1);
    ck_assert_uint_eq (done, 1);                    //  the warm-up only

    //  Submitted again: a new run, after the FREE
    s_submit (7, "queued", NULL, NULL);
    ck_assert_int_eq (s_find_event ('d', "queued", 1)->peer, 1);
    ck_assert_int_eq (s_done (1, "queued", 8), 0);
    ck_assert_int_eq (s_state_of ("queued"), CASK_STATE_MEMORY);

    //  Every holder gone while it runs: freed, and so is its dependency
    s_submit (8, "base", NULL, NULL);
    s_submit (8, "top", "base", NULL);
    s_done (1, "base", 8);
    ck_assert_int_eq (s_state_of ("top"), CASK_STATE_PROCESSING);
    s_submit (9, "top", NULL, NULL);
    cask_graph_client_gone (s_graph, 8);
    ck_assert_ptr_null (s_find_event ('f', "top", 0));
    cask_graph_client_gone (s_graph, 9);
    ck_assert_ptr_nonnull (s_find_event ('f', "top", 0));
    ck_assert_ptr_nonnull (s_find_event ('f', "base", 0));
    cask_graph_worker_load (s_graph, 1, &inflight, &done, &nbytes);
    ck_assert_uint_eq (inflight, 1);                //  slow
    ck_assert_ptr_null (cask_graph_verify (s_graph));
}
END_TEST

START_TEST (test_release_keeps_needed_dep)
{
    s_add_worker (1, "tcp://w1", 1);
    s_submit (7, "a", NULL, NULL);
    s_submit (7, "b", "a", NULL);
    s_done (1, "a", 8);
    cask_graph_release (s_graph, 7, cask_str ("a"));
    ck_assert_uint_eq (s_count_events ('f'), 0);
    ck_assert_int_eq (s_state_of ("a"), CASK_STATE_MEMORY);
    s_done (1, "b", 8);
    ck_assert_ptr_nonnull (s_find_event ('f', "a", 0));
    //  The record stays while b refers to it, without its result
    cask_graph_counts_t counts;
    cask_graph_counts (s_graph, &counts);
    ck_assert_uint_eq (counts.released, 1);
    ck_assert_uint_eq (counts.memory, 1);

    //  Wanted again: computed again
    s_submit (8, "a", NULL, NULL);
    ck_assert_ptr_nonnull (s_find_event ('d', "a", 1));
    s_done (1, "a", 8);
    ck_assert_int_eq (s_find_event ('s', "a", 1)->peer, 8);

    cask_graph_client_gone (s_graph, 7);
    ck_assert_ptr_nonnull (s_find_event ('f', "b", 0));
    ck_assert_uint_eq (s_total (), 1);
    cask_graph_client_gone (s_graph, 8);
    ck_assert_uint_eq (s_total (), 0);
    ck_assert_uint_eq (s_count_events ('f'), 3);
}
END_TEST

START_TEST (test_worker_lost)
{
    s_add_worker (1, "tcp://w1", 4);
    s_submit (7, "a", NULL, NULL);                  //  on 1
    s_done (1, "a", 1000000);
    s_add_worker (2, "tcp://w2", 1);
    s_submit (7, "b", "a", NULL);                   //  on 1, locality
    s_submit (7, "c", NULL, NULL);                  //  on 2, idle
    s_submit (7, "x", NULL, NULL);                  //  on 1, more threads
    ck_assert_int_eq (s_worker_of ("b"), 1);
    ck_assert_int_eq (s_worker_of ("c"), 2);
    ck_assert_int_eq (s_worker_of ("x"), 1);
    s_submit (7, "r", NULL, NULL);                  //  on 1, then released
    ck_assert_int_eq (s_worker_of ("r"), 1);
    cask_graph_release (s_graph, 7, cask_str ("r"));
    ck_assert_int_eq (s_find_event ('f', "r", 0)->peer, 1);

    cask_graph_worker_remove (s_graph, 1);
    //  a's result is lost but b needs it: client told, a runs again on 2
    event_t *state = s_find_event ('s', "a", 1);
    ck_assert_ptr_nonnull (state);
    ck_assert_int_eq (state->state, CASK_STATE_WAITING);
    ck_assert_int_eq (s_find_event ('d', "a", 1)->peer, 2);
    ck_assert_int_eq (s_state_of ("b"), CASK_STATE_WAITING);
    ck_assert_int_eq (s_find_event ('d', "x", 1)->peer, 2);
    ck_assert_int_eq (s_state_of ("r"), -1);        //  nobody wanted it
    ck_assert_ptr_null (s_find_event ('d', "r", 1));
    ck_assert_uint_eq (s_count_events ('f'), 1);    //  nothing to free on a lost worker

    s_done (2, "a", 1000000);
    ck_assert_int_eq (s_find_event ('d', "b", 1)->peer, 2);
    ck_assert_str_eq (s_find_event ('d', "b", 1)->holder [0], "");
    s_done (2, "b", 8);
    ck_assert_int_eq (s_state_of ("b"), CASK_STATE_MEMORY);

    //  Processing tasks go back to the queue when no worker is left
    cask_graph_worker_remove (s_graph, 2);
    ck_assert_int_eq (s_state_of ("c"), CASK_STATE_WAITING);
    ck_assert_int_eq (s_state_of ("a"), CASK_STATE_WAITING);
    s_add_worker (3, "tcp://w3", 1);
    ck_assert_int_eq (s_find_event ('d', "c", 1)->peer, 3);
    ck_assert_int_eq (s_find_event ('d', "x", 2)->peer, 3);
    ck_assert_int_eq (s_find_event ('d', "a", 2)->peer, 3);
    ck_assert_ptr_null (s_find_event ('d', "b", 2));
    s_done (3, "a", 8);
    ck_assert_int_eq (s_find_event ('d', "b", 2)->peer, 3);
    uint32_t inflight;
    uint64_t done, nbytes;
    ck_assert_int_eq (cask_graph_worker_load (s_graph, 1, &inflight, &done, &nbytes), -1);
    ck_assert_int_eq (cask_graph_worker_load (s_graph, 3, &inflight, &done, &nbytes), 0);
    ck_assert_uint_eq (inflight, 3);
    ck_assert_uint_eq (nbytes, 8);                  //  a, on worker 3
}
END_TEST

START_TEST (test_lost_chain_recomputed_from_the_start)
{
    s_add_worker (1, "tcp://w1", 1);
    s_submit (7, "a", NULL, NULL);
    s_submit (7, "b", "a", NULL);
    s_submit (7, "c", "b", NULL);
    s_done (1, "a", 8);
    s_done (1, "b", 8);
    cask_graph_release (s_graph, 7, cask_str ("a"));
    cask_graph_release (s_graph, 7, cask_str ("b"));
    s_done (1, "c", 8);
    ck_assert_uint_eq (s_count_events ('f'), 2);     //  a and b freed
    s_add_worker (2, "tcp://w2", 1);
    cask_graph_worker_remove (s_graph, 1);
    //  c is held: b and a are computed again from nothing
    ck_assert_int_eq (s_find_event ('d', "a", 1)->peer, 2);
    s_done (2, "a", 8);
    s_done (2, "b", 8);
    s_done (2, "c", 8);
    event_t *state = s_find_event ('s', "c", 2);
    ck_assert_ptr_nonnull (state);
    ck_assert_int_eq (state->state, CASK_STATE_MEMORY);
    ck_assert_int_eq (state->worker, 2);
    ck_assert_uint_eq (s_count_events ('f'), 4);     //  a and b freed again
}
END_TEST

START_TEST (test_long_chain_and_fan_in)
{
    enum { N = 10000 };
    s_add_worker (1, "tcp://w1", 4);
    s_add_worker (2, "tcp://w2", 4);
    char key [32], prev [32];
    for (int i = 0; i < N; i++) {
        snprintf (key, sizeof key, "chain-%d", i);
        ck_assert_int_eq (s_submit (7, key, i ? prev : NULL, NULL), 0);
        strcpy (prev, key);
    }
    ck_assert_uint_eq (s_count_events ('d'), 1);
    for (int i = 0; i < N; i++) {
        snprintf (key, sizeof key, "chain-%d", i);
        ck_assert_int_eq (s_done (s_last_worker_of (key), key, 8), 0);
        if (i > 0)      //  locality keeps the chain on one worker
            ck_assert_int_eq (s_last_worker_of (key), s_last_worker_of (prev));
        strcpy (prev, key);
        if (i < N - 1)
            ck_assert_int_eq (cask_graph_release (s_graph, 7, cask_str (key)), 0);
    }
    ck_assert_uint_eq (s_count_events ('d'), N);
    ck_assert_uint_eq (s_count_events ('f'), N - 1);
    ck_assert_uint_eq (s_total (), N);               //  released records stay
    ck_assert_int_eq (cask_graph_release (s_graph, 7, cask_str (prev)), 0);
    ck_assert_uint_eq (s_total (), 0);               //  forgotten all at once

    //  A waiting chain released at its end goes away at once, the running
    //  head too, freed on its worker
    s_recorder.size = 0;
    for (int i = 0; i < N; i++) {
        snprintf (key, sizeof key, "w-%d", i);
        s_submit (8, key, i ? prev : NULL, NULL);
        strcpy (prev, key);
    }
    cask_graph_client_gone (s_graph, 8);
    ck_assert_uint_eq (s_total (), 0);
    ck_assert_int_eq (s_find_event ('f', "w-0", 0)->peer, s_worker_of ("w-0"));
    ck_assert_uint_eq (s_count_events ('f'), 1);

    //  Fan-in: N leaves over both workers, one sum of all
    s_recorder.size = 0;
    uint32_t inflight;
    uint64_t before1, before2, done1, done2, nbytes;
    cask_graph_worker_load (s_graph, 1, &inflight, &before1, &nbytes);
    cask_graph_worker_load (s_graph, 2, &inflight, &before2, &nbytes);
    const char **deps = malloc (N * sizeof (char *));
    char (*keys) [32] = malloc (N * sizeof *keys);
    for (int i = 0; i < N; i++) {
        snprintf (keys [i], sizeof keys [i], "leaf-%d", i);
        deps [i] = keys [i];
        s_submit (9, keys [i], NULL, NULL);
    }
    s_submit_deps (9, "sum", FN_ADD, deps, N);
    //  Leaves go out as room opens: each one done lets another out
    int leaves_done = 0;
    for (size_t e = 0; e < s_recorder.size; e++) {
        event_t event = s_recorder.events [e];      //  s_done may move the array
        if (event.kind != 'd' || strncmp (event.key, "leaf-", 5) != 0)
            continue;
        if (leaves_done == N - 1)
            ck_assert_ptr_null (s_find_event ('d', "sum", 0));
        ck_assert_int_eq (s_done (event.peer, event.key, 8), 0);
        leaves_done++;
    }
    ck_assert_int_eq (leaves_done, N);
    ck_assert_int_eq (s_find_event ('d', "sum", 0)->ndeps, N);
    cask_graph_worker_load (s_graph, 1, &inflight, &done1, &nbytes);
    cask_graph_worker_load (s_graph, 2, &inflight, &done2, &nbytes);
    ck_assert_uint_eq (done1 - before1 + done2 - before2, N);
    ck_assert_uint_gt (done1 - before1, N / 2 - N / 10);     //  leaves spread evenly
    ck_assert_uint_gt (done2 - before2, N / 2 - N / 10);
    //  The running sum and its leaves all go at once
    cask_graph_client_gone (s_graph, 9);
    ck_assert_uint_eq (s_count_events ('f'), N + 1);
    ck_assert_uint_eq (s_total (), 0);
    ck_assert_int_eq (s_done (s_find_event ('d', "sum", 0)->peer, "sum", 8), -1);
    free (deps);
    free (keys);
}
END_TEST

//  How many events of kind were recorded for key.
static size_t
s_count_kind_for (char kind, const char *key)
{
    size_t count = 0;
    for (size_t i = 0; i < s_recorder.size; i++)
        count += s_recorder.events [i].kind == kind && strcmp (s_recorder.events [i].key, key) == 0;
    return count;
}

START_TEST (test_cancel_transitive_and_shared)
{
    s_add_worker (1, "tcp://w1", 1);
    s_submit (7, "a", NULL, NULL);                  //  processing
    s_submit (7, "b", "a", NULL);                   //  waiting on a
    s_submit (7, "c", "b", NULL);                   //  waiting on b
    s_submit (8, "d", "b", NULL);                   //  another client's, on b
    s_submit (7, "e", NULL, NULL);                  //  unrelated
    //  Not held by client 9: nothing happens
    ck_assert_int_eq (cask_graph_cancel (s_graph, 9, cask_str ("a")), -1);
    ck_assert_int_eq (cask_graph_cancel (s_graph, 7, cask_str ("nope")), -1);

    ck_assert_int_eq (cask_graph_cancel (s_graph, 7, cask_str ("a")), 0);
    const char *cancelled [] = { "a", "b", "c" };
    for (int i = 0; i < 3; i++) {
        event_t *event = s_find_event ('c', cancelled [i], 0);
        ck_assert_msg (event != NULL, "%s not cancelled", cancelled [i]);
        ck_assert_int_eq (event->peer, 7);
        ck_assert_str_eq (event->message, "cancelled");
    }
    ck_assert_ptr_null (s_find_event ('c', "d", 0));
    ck_assert_ptr_null (s_find_event ('c', "e", 0));
    //  d (client 8) still needs b and a: nothing is forgotten, c is
    ck_assert_int_eq (s_state_of ("c"), -1);
    ck_assert_int_eq (s_state_of ("b"), CASK_STATE_WAITING);
    ck_assert_int_eq (s_state_of ("a"), CASK_STATE_PROCESSING);
    ck_assert_uint_eq (cask_gtask_holds (cask_graph_find (s_graph, cask_str ("a"))), 0);
    ck_assert_ptr_null (cask_graph_verify (s_graph));
    //  Cancelling again does nothing
    ck_assert_int_eq (cask_graph_cancel (s_graph, 7, cask_str ("a")), -1);

    //  The other client lets go: b never runs, a is freed on its worker at
    //  once, and its DONE comes too late
    ck_assert_int_eq (cask_graph_cancel (s_graph, 8, cask_str ("d")), 0);
    ck_assert_int_eq (s_state_of ("b"), -1);
    ck_assert_int_eq (s_state_of ("a"), -1);
    ck_assert_ptr_nonnull (s_find_event ('f', "a", 0));
    ck_assert_int_eq (s_done (1, "a", 8), -1);
    ck_assert_ptr_null (s_find_event ('s', "a", 0));
    ck_assert_ptr_null (s_find_event ('d', "b", 0));
    ck_assert_uint_eq (s_total (), 1);              //  e
    ck_assert_ptr_null (cask_graph_verify (s_graph));
}
END_TEST

START_TEST (test_cancel_counted_holds_and_queued)
{
    //  Without a worker the tasks queue; cancelled ones never run
    s_submit (7, "q", NULL, NULL);
    s_submit (7, "q", NULL, NULL);                  //  held twice
    s_submit (7, "r", NULL, NULL);
    ck_assert_int_eq (cask_graph_cancel (s_graph, 7, cask_str ("q")), 0);
    ck_assert_uint_eq (s_count_kind_for ('c', "q"), 1);   //  all holds at once
    ck_assert_int_eq (s_state_of ("q"), -1);
    s_add_worker (1, "tcp://w1", 1);
    ck_assert_ptr_null (s_find_event ('d', "q", 0));
    ck_assert_ptr_nonnull (s_find_event ('d', "r", 0));
    //  A finished task cancelled is freed at once
    s_done (1, "r", 8);
    ck_assert_int_eq (cask_graph_cancel (s_graph, 7, cask_str ("r")), 0);
    ck_assert_ptr_nonnull (s_find_event ('f', "r", 0));
    ck_assert_uint_eq (s_total (), 0);
}
END_TEST

START_TEST (test_restart_forgets_everything)
{
    s_add_worker (1, "tcp://w1", 2);
    s_submit (7, "a", NULL, NULL);
    s_submit (7, "b", "a", NULL);
    s_submit (8, "a", NULL, NULL);
    s_submit (8, "p", NULL, NULL);
    s_done (1, "a", 100);
    ck_assert_int_eq (cask_graph_fire (s_graph, cask_str ("p")), 0);
    ck_assert_int_eq (cask_graph_publish (s_graph, cask_str ("ds"), cask_str ("a")), 0);
    size_t before = s_count_events ('c');
    cask_graph_restart (s_graph, "cluster restarted");
    //  a (7, 8), b (7), p (8): one each, never to fire or published holds
    ck_assert_uint_eq (s_count_events ('c') - before, 4);
    ck_assert_str_eq (s_find_event ('c', "b", 0)->message, "cluster restarted");
    ck_assert_uint_eq (s_total (), 0);
    ck_assert_uint_eq (s_count_events ('f'), 0);    //  the workers drop all themselves
    uint32_t inflight;
    uint64_t done, nbytes;
    ck_assert_int_eq (cask_graph_worker_load (s_graph, 1, &inflight, &done, &nbytes), 0);
    ck_assert_uint_eq (inflight, 0);
    ck_assert_uint_eq (nbytes, 0);
    ck_assert_ptr_null (cask_graph_verify (s_graph));
    //  Reports from before are ignored; names are gone; work goes on
    ck_assert_int_eq (s_done (1, "b", 8), -1);
    ck_assert_uint_eq (cask_graph_lookup (s_graph, 9, cask_str ("ds")).len, 0);
    ck_assert_int_eq (cask_graph_unpublish (s_graph, cask_str ("ds")), CASK_ERR_NOT_FOUND);
    s_submit (7, "a", NULL, NULL);
    ck_assert_ptr_nonnull (s_find_event ('d', "a", 1));
    ck_assert_int_eq (s_done (1, "a", 8), 0);
    ck_assert_ptr_null (cask_graph_verify (s_graph));
}
END_TEST

START_TEST (test_fire_and_forget)
{
    s_add_worker (1, "tcp://w1", 1);
    s_submit (7, "a", NULL, NULL);
    s_submit (7, "b", "a", NULL);
    ck_assert_int_eq (cask_graph_fire (s_graph, cask_str ("b")), 0);
    ck_assert_int_eq (cask_graph_fire (s_graph, cask_str ("ghost")), -1);
    cask_graph_client_gone (s_graph, 7);
    //  b still wants a; both run
    ck_assert_int_eq (s_state_of ("a"), CASK_STATE_PROCESSING);
    ck_assert_int_eq (s_state_of ("b"), CASK_STATE_WAITING);
    s_done (1, "a", 8);
    ck_assert_ptr_nonnull (s_find_event ('d', "b", 0));
    ck_assert_ptr_null (s_find_event ('s', "a", 0));    //  the fire hold is told nothing
    ck_assert_ptr_null (cask_graph_verify (s_graph));
    s_done (1, "b", 8);
    //  Finished: forgotten, results freed
    ck_assert_ptr_nonnull (s_find_event ('f', "a", 0));
    ck_assert_ptr_nonnull (s_find_event ('f', "b", 0));
    ck_assert_uint_eq (s_total (), 0);

    //  A fired task that fails is forgotten too, and a client still
    //  holding it is told
    s_submit (7, "x", NULL, NULL);
    cask_graph_fire (s_graph, cask_str ("x"));
    s_fail (1, "x", "boom");
    ck_assert_int_eq (s_find_event ('s', "x", 0)->state, CASK_STATE_ERRED);
    ck_assert_int_eq (s_state_of ("x"), CASK_STATE_ERRED);
    ck_assert_ptr_null (cask_graph_verify (s_graph));
    cask_graph_release (s_graph, 7, cask_str ("x"));
    ck_assert_uint_eq (s_total (), 0);
    //  Fired when already in memory: nothing to hold
    s_submit (7, "y", NULL, NULL);
    s_done (1, "y", 8);
    ck_assert_int_eq (cask_graph_fire (s_graph, cask_str ("y")), 0);
    cask_graph_release (s_graph, 7, cask_str ("y"));
    ck_assert_uint_eq (s_total (), 0);
}
END_TEST

START_TEST (test_scatter_lifecycle)
{
    s_add_worker (1, "tcp://w1", 1);
    s_add_worker (2, "tcp://w2", 1);
    ck_assert_int_eq (cask_graph_scatter (s_graph, 7, cask_str ("s1"), 2), 0);
    ck_assert_int_eq (cask_graph_scatter (s_graph, 7, cask_str ("s2"), 1), 0);
    ck_assert_uint_eq (s_count_events ('d'), 0);     //  no TASK: the client uploads
    ck_assert_int_eq (s_state_of ("s1"), CASK_STATE_PROCESSING);
    s_submit (7, "t", "s1", "s2");
    ck_assert_int_eq (s_state_of ("t"), CASK_STATE_WAITING);
    ck_assert_int_eq (s_done (1, "s1", 8), -1);      //  not that worker
    ck_assert_int_eq (s_done (2, "s1", 1000000), 0);
    ck_assert_int_eq (s_find_event ('s', "s1", 0)->state, CASK_STATE_MEMORY);
    ck_assert_int_eq (s_done (1, "s2", 8), 0);
    ck_assert_int_eq (s_worker_of ("t"), 2);         //  locality: s1 is big
    ck_assert_ptr_null (cask_graph_verify (s_graph));

    //  A second client scattering the same key just holds it
    ck_assert_int_eq (cask_graph_scatter (s_graph, 8, cask_str ("s1"), 1), 0);
    ck_assert_uint_eq (cask_gtask_holds (cask_graph_find (s_graph, cask_str ("s1"))), 2);
    //  Unknown worker: erred
    ck_assert_int_eq (cask_graph_scatter (s_graph, 7, cask_str ("s3"), 42), 0);
    ck_assert_int_eq (s_find_event ('s', "s3", 0)->state, CASK_STATE_ERRED);
    ck_assert_str_eq (s_find_event ('s', "s3", 0)->message, "no worker 42");

    //  Worker 2 leaves holding s1 (in memory) while t runs there: s1 erred,
    //  no recomputation; t, which needs it, erred too
    ck_assert_int_eq (cask_graph_scatter (s_graph, 7, cask_str ("s4"), 2), 0);
    cask_graph_worker_remove (s_graph, 2);
    event_t *lost = s_find_event ('s', "s1", 2);     //  after memory to 7 and to 8
    ck_assert_ptr_nonnull (lost);
    ck_assert_int_eq (lost->state, CASK_STATE_ERRED);
    ck_assert_str_eq (lost->message, "scattered data lost with worker 2");
    ck_assert_int_eq (s_find_event ('s', "s4", 0)->state, CASK_STATE_ERRED);
    ck_assert_int_eq (s_state_of ("t"), CASK_STATE_ERRED);
    ck_assert_ptr_null (s_find_event ('d', "s1", 0));
    ck_assert_ptr_null (s_find_event ('d', "t", 1));
    ck_assert_ptr_null (cask_graph_verify (s_graph));
    cask_graph_client_gone (s_graph, 7);
    cask_graph_client_gone (s_graph, 8);
    ck_assert_ptr_nonnull (s_find_event ('f', "s2", 0));
    ck_assert_uint_eq (s_total (), 0);
}
END_TEST

START_TEST (test_scatter_released_has_no_lineage)
{
    s_add_worker (1, "tcp://w1", 1);
    s_add_worker (2, "tcp://w2", 1);
    cask_graph_scatter (s_graph, 7, cask_str ("s"), 1);
    s_done (1, "s", 8);
    s_submit (7, "t", "s", NULL);
    uint32_t t_on = s_worker_of ("t");
    cask_graph_release (s_graph, 7, cask_str ("s"));
    s_done (t_on, "t", 8);
    ck_assert_ptr_nonnull (s_find_event ('f', "s", 0));
    //  t's result is lost: it needs s again, which cannot be computed
    cask_graph_worker_remove (s_graph, t_on);
    ck_assert_int_eq (s_state_of ("t"), CASK_STATE_ERRED);
    ck_assert_ptr_null (s_find_event ('d', "s", 0));
    ck_assert_ptr_null (cask_graph_verify (s_graph));
}
END_TEST

START_TEST (test_publish_lookup_holds)
{
    s_add_worker (1, "tcp://w1", 1);
    s_submit (7, "a", NULL, NULL);
    ck_assert_int_eq (cask_graph_publish (s_graph, cask_str ("ds"), cask_str ("a")), 0);
    ck_assert_int_eq (cask_graph_publish (s_graph, cask_str ("ds"), cask_str ("a")),
                      CASK_ERR_EXISTS);
    ck_assert_int_eq (cask_graph_publish (s_graph, cask_str ("x"), cask_str ("ghost")),
                      CASK_ERR_NOT_FOUND);
    ck_assert_int_eq (cask_graph_publish (s_graph, cask_str ("ds2"), cask_str ("a")), 0);
    //  The publisher leaves: the names keep it
    cask_graph_client_gone (s_graph, 7);
    ck_assert_int_eq (s_state_of ("a"), CASK_STATE_PROCESSING);
    s_done (1, "a", 8);
    ck_assert_ptr_null (s_find_event ('f', "a", 0));
    ck_assert_ptr_null (cask_graph_verify (s_graph));

    cask_str_t key = cask_graph_lookup (s_graph, 8, cask_str ("ds"));
    ck_assert (cask_str_eq (key, "a"));
    event_t *state = s_find_event ('s', "a", 0);
    ck_assert_int_eq (state->peer, 8);
    ck_assert_int_eq (state->state, CASK_STATE_MEMORY);
    ck_assert_uint_eq (cask_graph_lookup (s_graph, 8, cask_str ("nope")).len, 0);

    ck_assert_int_eq (cask_graph_unpublish (s_graph, cask_str ("ds")), 0);
    ck_assert_int_eq (cask_graph_unpublish (s_graph, cask_str ("ds")), CASK_ERR_NOT_FOUND);
    ck_assert_int_eq (cask_graph_unpublish (s_graph, cask_str ("ds2")), 0);
    ck_assert_ptr_null (s_find_event ('f', "a", 0));     //  client 8 holds it
    ck_assert_ptr_null (cask_graph_verify (s_graph));
    cask_graph_release (s_graph, 8, cask_str ("a"));
    ck_assert_ptr_nonnull (s_find_event ('f', "a", 0));
    ck_assert_uint_eq (s_total (), 0);
}
END_TEST

//  Submits key with retries and priority, no deps, for client 7.
static void
s_submit_with (const char *key, uint8_t retries, int32_t priority)
{
    static const uint8_t empty_list [] = { 0x07, 0, 0, 0, 0 };
    cask_buf_t buf;
    cask_buf_init (&buf);
    cask_task_put_head (&buf, &(cask_task_t) { .key = cask_str (key), .fn = FN_INC,
                                               .retries = retries, .priority = priority });
    cask_task_put_tail (&buf, 0, (cask_str_t) { (const char *) empty_list, sizeof empty_list });
    cask_rd_t rd;
    cask_rd_init (&rd, buf.data, buf.size);
    cask_task_t rec;
    cask_task_get (&rd, &rec, false);
    ck_assert (cask_rd_done (&rd));
    ck_assert_int_eq (cask_graph_submit (s_graph, 7, &rec, NULL), 0);
    cask_buf_free (&buf);
}

START_TEST (test_retries)
{
    s_add_worker (1, "tcp://w1", 1);
    s_add_worker (2, "tcp://w2", 1);
    s_submit_with ("r", 2, 0);
    uint32_t first = s_worker_of ("r");
    ck_assert_int_eq (s_fail (first, "r", "flaky"), 0);
    //  Runs again, on the other worker, told nothing yet
    ck_assert_ptr_null (s_find_event ('s', "r", 0));
    ck_assert_uint_ne (s_last_worker_of ("r"), first);
    ck_assert_int_eq (s_state_of ("r"), CASK_STATE_PROCESSING);
    ck_assert_ptr_null (cask_graph_verify (s_graph));
    ck_assert_int_eq (s_fail (s_last_worker_of ("r"), "r", "flaky"), 0);
    ck_assert_uint_eq (s_last_worker_of ("r"), first);
    //  None left: erred with the last message
    ck_assert_int_eq (s_fail (first, "r", "flaky again"), 0);
    event_t *state = s_find_event ('s', "r", 0);
    ck_assert_int_eq (state->state, CASK_STATE_ERRED);
    ck_assert_str_eq (state->message, "flaky again");
    ck_assert_uint_eq (s_count_kind_for ('d', "r"), 3);

    //  Retries that succeed
    s_submit_with ("ok", 1, 0);
    s_fail (s_worker_of ("ok"), "ok", "once");
    ck_assert_int_eq (s_done (s_last_worker_of ("ok"), "ok", 8), 0);
    ck_assert_int_eq (s_find_event ('s', "ok", 0)->state, CASK_STATE_MEMORY);

    //  The only worker gets it again; a cancelled task is not retried
    cask_graph_worker_remove (s_graph, 2);
    s_submit_with ("one", 3, 0);
    s_fail (1, "one", "x");
    ck_assert_uint_eq (s_count_kind_for ('d', "one"), 2);
    cask_graph_cancel (s_graph, 7, cask_str ("one"));
    s_fail (1, "one", "x");
    ck_assert_uint_eq (s_count_kind_for ('d', "one"), 2);
    ck_assert_int_eq (s_state_of ("one"), -1);
    ck_assert_ptr_null (cask_graph_verify (s_graph));
}
END_TEST

START_TEST (test_priority_order_and_record)
{
    s_submit_with ("low", 0, -5);
    s_submit_with ("mid1", 0, 0);
    s_submit_with ("high", 0, 10);
    s_submit_with ("mid2", 0, 0);
    ck_assert_uint_eq (s_count_events ('d'), 0);
    s_add_worker (1, "tcp://w1", 1);
    //  The worker has room for one task of a function of unknown duration
    //  per thread; once one finished fast, for the rest
    ck_assert_uint_eq (s_count_events ('d'), 1);
    s_done (1, "high", 8);
    const char *order [] = { "high", "mid1", "mid2", "low" };
    ck_assert_uint_eq (s_count_events ('d'), 4);
    for (int i = 0, d = 0; i < 4; i++, d++) {
        while (s_recorder.events [d].kind != 'd')
            d++;
        ck_assert_str_eq (s_recorder.events [d].key, order [i]);
    }
    cask_task_t rec;
    cask_gtask_record (cask_graph_find (s_graph, cask_str ("high")), &rec);
    ck_assert_int_eq (rec.priority, 10);
    cask_gtask_record (cask_graph_find (s_graph, cask_str ("low")), &rec);
    ck_assert_int_eq (rec.priority, -5);
}
END_TEST

START_TEST (test_nul_key_is_malformed)
{
    s_add_worker (1, "tcp://w1", 1);
    static const uint8_t empty_list [] = { 0x07, 0, 0, 0, 0 };
    cask_buf_t buf;
    cask_buf_init (&buf);
    cask_task_put_head (&buf, &(cask_task_t) { .key = { "a\0b", 3 }, .fn = FN_INC });
    cask_task_put_tail (&buf, 0, (cask_str_t) { (const char *) empty_list, sizeof empty_list });
    cask_rd_t rd;
    cask_rd_init (&rd, buf.data, buf.size);
    cask_task_t rec;
    cask_task_get (&rd, &rec, false);
    ck_assert_int_eq (cask_graph_submit (s_graph, 7, &rec, NULL), 0);
    cask_buf_free (&buf);
    ck_assert_uint_eq (s_count_events ('d'), 0);
    ck_assert_uint_eq (s_count_events ('s'), 1);
    ck_assert_int_eq (s_recorder.events [0].state, CASK_STATE_ERRED);
    ck_assert_ptr_nonnull (strstr (s_recorder.events [0].message, "NUL"));
    ck_assert_int_eq (cask_graph_release (s_graph, 7, (cask_str_t) { "a\0b", 3 }), 0);
    ck_assert_int_eq (cask_graph_scatter (s_graph, 7, (cask_str_t) { "c\0", 2 }, 1), 0);
    ck_assert_int_eq (s_recorder.events [1].state, CASK_STATE_ERRED);
    cask_graph_client_gone (s_graph, 7);
    ck_assert_uint_eq (s_total (), 0);
}
END_TEST

START_TEST (test_many_tasks_give_memory_back)
{
    enum { N = 200000 };
    s_add_worker (1, "tcp://w1", 8);
    char key [32];
    for (int i = 0; i < N; i++) {
        snprintf (key, sizeof key, "m-%d", i);
        s_submit (7, key, NULL, NULL);
        if (i % 4096 == 4095)
            s_recorder.size = 0;
    }
    s_submit (8, "keep", NULL, NULL);
    uint32_t inflight;
    uint64_t done, nbytes;
    cask_graph_worker_load (s_graph, 1, &inflight, &done, &nbytes);
    ck_assert_uint_eq (inflight, 8);                //  unknown durations: one per thread
    s_recorder.size = 0;
    cask_graph_client_gone (s_graph, 7);
    ck_assert_uint_eq (s_count_events ('f'), 8);     //  sent: freed at once
    ck_assert_uint_eq (s_total (), 1);
    for (int i = 0; i < N; i++) {
        snprintf (key, sizeof key, "m-%d", i);
        ck_assert_int_eq (s_done (1, key, 8), -1);
    }
    ck_assert_ptr_nonnull (cask_graph_find (s_graph, cask_str ("keep")));
    ck_assert_ptr_null (cask_graph_verify (s_graph));
}
END_TEST

//  An idle worker takes over the newest of a busy worker's queued tasks,
//  up to where the two queues even out; a task already started is kept.
START_TEST (test_steal_for_idle_worker)
{
    s_add_worker (1, "tcp://w1", 1);
    s_warm_up (1);                                  //  inc: 100 us
    char key [16];
    for (int i = 0; i < 15; i++) {
        snprintf (key, sizeof key, "t%d", i);
        s_submit (7, key, NULL, NULL);
    }
    uint32_t inflight;
    uint64_t done, nbytes;
    cask_graph_worker_load (s_graph, 1, &inflight, &done, &nbytes);
    ck_assert_uint_eq (inflight, 15);
    s_add_worker (2, "tcp://w2", 1);
    ck_assert_uint_eq (s_count_events ('t'), 0);    //  nothing queued on the broker
    cask_graph_balance (s_graph);
    size_t steals = s_count_events ('t');
    ck_assert_uint_ge (steals, 5);
    ck_assert_uint_le (steals, 8);
    ck_assert_str_eq (s_find_event ('t', "t14", 0)->key, "t14");  //  newest first
    ck_assert_ptr_null (s_find_event ('t', "t0", 0));
    cask_graph_balance (s_graph);                   //  one round at a time
    ck_assert_uint_eq (s_count_events ('t'), steals);
    ck_assert_ptr_null (cask_graph_verify (s_graph));

    //  Given up: runs on the idle worker; kept: never asked again
    ck_assert_int_eq (cask_graph_stolen (s_graph, 1, cask_str ("t14"), true), 0);
    ck_assert_int_eq (s_last_worker_of ("t14"), 2);
    ck_assert_int_eq (cask_graph_stolen (s_graph, 1, cask_str ("t13"), false), 0);
    ck_assert_int_eq (cask_graph_stolen (s_graph, 1, cask_str ("t13"), true), -1);
    ck_assert_int_eq (cask_graph_stolen (s_graph, 1, cask_str ("t0"), true), -1);
    for (size_t i = 0; i < s_recorder.size; i++) {
        event_t event = s_recorder.events [i];
        if (event.kind == 't' && strcmp (event.key, "t14") && strcmp (event.key, "t13"))
            ck_assert_int_eq (cask_graph_stolen (s_graph, 1, cask_str (event.key), true), 0);
    }
    ck_assert_ptr_null (cask_graph_verify (s_graph));
    cask_graph_worker_load (s_graph, 2, &inflight, &done, &nbytes);
    ck_assert_uint_eq (inflight, steals - 1);
    ck_assert_int_eq (s_done (1, "t13", 8), 0);
    s_recorder.size = 0;
    cask_graph_balance (s_graph);
    ck_assert_ptr_null (s_find_event ('t', "t13", 0));
    ck_assert_ptr_null (cask_graph_verify (s_graph));
}
END_TEST

//  A retiring worker gets no new task, gives back what it has queued,
//  finishes what runs, and hands its needed results to a worker that
//  stays before it is retired; nothing is computed again.
START_TEST (test_retire_hands_over)
{
    s_add_worker (1, "tcp://w1", 1);
    s_submit (7, "kept", NULL, NULL);
    ck_assert_int_eq (s_done (1, "kept", 1000), 0);
    s_submit (7, "dropped", NULL, NULL);
    ck_assert_int_eq (s_done (1, "dropped", 1000), 0);
    cask_graph_release (s_graph, 7, cask_str ("dropped"));
    s_submit (7, "running", NULL, NULL);
    s_submit (7, "queued", NULL, NULL);
    ck_assert_int_eq (s_last_worker_of ("queued"), 1);
    s_add_worker (2, "tcp://w2", 1);
    s_recorder.size = 0;

    ck_assert_int_eq (cask_graph_worker_retire (s_graph, 1), 0);
    ck_assert_int_eq (cask_graph_worker_retire (s_graph, 1), -1);
    ck_assert_uint_eq (cask_graph_retiring (s_graph), 1);
    ck_assert_ptr_nonnull (s_find_event ('t', "running", 0));
    ck_assert_ptr_nonnull (s_find_event ('t', "queued", 0));
    event_t *copy = s_find_event ('k', "kept", 0);
    ck_assert_ptr_nonnull (copy);
    ck_assert_int_eq (copy->peer, 2);
    ck_assert_str_eq (copy->holder [0], "tcp://w1");
    ck_assert_uint_eq (s_count_events ('k'), 1);    //  not what nobody wants
    s_submit (7, "new", NULL, NULL);                //  never to the retiring one
    ck_assert_int_eq (s_last_worker_of ("new"), 2);
    ck_assert_ptr_null (cask_graph_verify (s_graph));

    ck_assert_int_eq (cask_graph_stolen (s_graph, 1, cask_str ("queued"), true), 0);
    ck_assert_int_eq (s_last_worker_of ("queued"), 2);
    ck_assert_int_eq (cask_graph_stolen (s_graph, 1, cask_str ("running"), false), 0);
    ck_assert_int_eq (s_done (2, "kept", 1000), 0);             //  the copy
    ck_assert_int_eq (s_find_event ('f', "kept", 0)->peer, 1);
    ck_assert_ptr_null (s_find_event ('r', "", 0));
    ck_assert_int_eq (s_done (1, "running", 500), 0);           //  then its copy
    copy = s_find_event ('k', "running", 0);
    ck_assert_ptr_nonnull (copy);
    ck_assert_ptr_null (s_find_event ('r', "", 0));
    ck_assert_int_eq (s_done (2, "running", 500), 0);
    ck_assert_int_eq (s_find_event ('r', "", 0)->peer, 1);
    ck_assert_uint_eq (cask_graph_retiring (s_graph), 0);
    uint32_t inflight;
    uint64_t done, nbytes;
    ck_assert_int_eq (cask_graph_worker_load (s_graph, 1, &inflight, &done, &nbytes), -1);
    ck_assert_int_eq (cask_graph_worker_load (s_graph, 2, &inflight, &done, &nbytes), 0);
    ck_assert_uint_eq (nbytes, 1500);
    ck_assert_int_eq (cask_gtask_holds (cask_graph_find (s_graph, cask_str ("kept"))), 1);
    cask_state_rec_t state;
    cask_gtask_state (cask_graph_find (s_graph, cask_str ("kept")), &state);
    ck_assert_int_eq (state.state, CASK_STATE_MEMORY);
    ck_assert_int_eq (state.worker, 2);
    ck_assert_ptr_null (cask_graph_verify (s_graph));

    //  A released result is not copied; a copy made for nothing is freed
    s_submit (7, "late", NULL, NULL);
    ck_assert_int_eq (s_done (2, "late", 10), 0);
    s_add_worker (3, "tcp://w3", 1);
    s_recorder.size = 0;
    ck_assert_int_eq (cask_graph_worker_retire (s_graph, 2), 0);
    ck_assert_int_eq (s_find_event ('k', "late", 0)->peer, 3);
    cask_graph_release (s_graph, 7, cask_str ("late"));
    ck_assert_int_eq (s_find_event ('f', "late", 0)->peer, 2);
    ck_assert_int_eq (s_find_event ('f', "late", 1)->peer, 3);  //  the copy, dropped
    ck_assert_int_eq (s_done (3, "late", 10), -1);
    //  The copy target leaves: the copy is made on the next one
    s_add_worker (4, "tcp://w4", 1);
    event_t *kept_copy = s_find_event ('k', "kept", 0);
    cask_graph_worker_remove (s_graph, kept_copy->peer);
    ck_assert_ptr_nonnull (s_find_event ('k', "kept", 1));
    ck_assert_ptr_null (cask_graph_verify (s_graph));
    //  The last worker retires: its results cannot move, they are lost
    cask_graph_worker_remove (s_graph, 3);
    cask_graph_worker_remove (s_graph, 4);
    s_recorder.size = 0;
    ck_assert_int_eq (cask_graph_worker_retire (s_graph, 2), -1);
    ck_assert_int_eq (s_done (2, "new", 8), 0);
    ck_assert_ptr_null (s_find_event ('r', "", 0));             //  "queued" runs there
    ck_assert_int_eq (s_done (2, "queued", 8), 0);
    ck_assert_ptr_nonnull (s_find_event ('r', "", 0));
    ck_assert_ptr_null (cask_graph_verify (s_graph));
}
END_TEST

//  Tasks restricted to named workers, or needing resources, run only where
//  allowed and while the resources are free; impossible ones fail at once.
START_TEST (test_restrictions_and_resources)
{
    s_add_named_worker (1, "tcp://w1", 4, "alice", 2);
    s_add_named_worker (2, "tcp://w2", 4, "bob", 0);
    s_submit_restricted (7, "g1", NULL, 1);
    s_submit_restricted (7, "g2", NULL, 1);
    s_submit_restricted (7, "g3", NULL, 1);
    ck_assert_int_eq (s_last_worker_of ("g1"), 1);
    ck_assert_int_eq (s_last_worker_of ("g2"), 1);
    ck_assert_ptr_null (s_find_event ('d', "g3", 0));           //  GPUs all used
    ck_assert_int_eq (s_done (1, "g1", 8), 0);
    ck_assert_int_eq (s_last_worker_of ("g3"), 1);
    s_submit_restricted (7, "on-bob", "bob", 0);
    ck_assert_int_eq (s_last_worker_of ("on-bob"), 2);
    s_submit_restricted (7, "on-w2", "tcp://w2", 0);
    ck_assert_int_eq (s_last_worker_of ("on-w2"), 2);
    s_submit_restricted (7, "bob-gpu", "bob", 1);
    s_submit_restricted (7, "carol", "carol", 0);
    s_submit_restricted (7, "three", NULL, 3);
    const char *impossible [] = { "bob-gpu", "carol", "three" };
    for (int i = 0; i < 3; i++) {
        event_t *event = s_find_event ('s', impossible [i], 0);
        ck_assert_ptr_nonnull (event);
        ck_assert_int_eq (event->state, CASK_STATE_ERRED);
        ck_assert_msg (strstr (event->message, "no worker can run it"), "%s", event->message);
    }
    ck_assert_ptr_nonnull (strstr (s_find_event ('s', "carol", 0)->message, "worker carol"));
    ck_assert_ptr_nonnull (strstr (s_find_event ('s', "three", 0)->message, "GPU=3"));
    ck_assert_ptr_null (cask_graph_verify (s_graph));

    //  With no worker a restricted task waits; a worker that cannot run it
    //  fails it when it joins
    cask_graph_worker_remove (s_graph, 1);
    cask_graph_worker_remove (s_graph, 2);
    s_recorder.size = 0;
    s_submit_restricted (7, "later", NULL, 1);
    ck_assert_uint_eq (s_count_events ('s'), 0);
    s_add_named_worker (3, "tcp://w3", 1, "dave", 0);
    ck_assert_int_eq (s_find_event ('s', "later", 0)->state, CASK_STATE_ERRED);
    s_submit_restricted (7, "wait-gpu", "eve", 1);
    ck_assert_int_eq (s_find_event ('s', "wait-gpu", 0)->state, CASK_STATE_ERRED);
    ck_assert_ptr_null (cask_graph_verify (s_graph));
}
END_TEST

//  Random operations on a small key space, invariants checked after each.
START_TEST (test_random_operations_keep_invariants)
{
    enum { KEYS = 60, CLIENTS = 3, WORKERS = 4, STEPS = 20000 };
    srand (1234 + (unsigned) _i);
    bool worker_up [WORKERS + 1] = { false };
    char key [16], dep0 [16], dep1 [16];
    for (int step = 0; step < STEPS; step++) {
        int op = rand () % 100;
        uint32_t client = 1 + rand () % CLIENTS;
        uint32_t worker = 1 + rand () % WORKERS;
        snprintf (key, sizeof key, "k%d", rand () % KEYS);
        if (op < 35) {
            int ndeps = rand () % 3;
            snprintf (dep0, sizeof dep0, "k%d", rand () % KEYS);
            snprintf (dep1, sizeof dep1, "k%d", rand () % KEYS);
            if (rand () % 4 == 0)
                s_submit_with (key, (uint8_t) (rand () % 3), rand () % 5 - 2);
            else
            if (rand () % 6 == 0)
                s_submit_restricted (client, key, rand () % 2 ? "tcp://w" : NULL, rand () % 3);
            else
                s_submit (client, key, ndeps > 0 ? dep0 : NULL, ndeps > 1 ? dep1 : NULL);
        }
        else
        if (op < 65) {
            //  Finish some dispatch or copy, well or badly, or answer a steal
            if (s_recorder.size > 0) {
                event_t event = s_recorder.events [rand () % s_recorder.size];
                if ((event.kind == 'd' || event.kind == 'k') && rand () % 10 == 0)
                    s_fail (event.peer, event.key, "boom");
                else
                if (event.kind == 'd' || event.kind == 'k')
                    s_done (event.peer, event.key, (uint64_t) (rand () % 1000));
                else
                if (event.kind == 't')
                    cask_graph_stolen (s_graph, event.peer, cask_str (event.key), rand () % 2);
            }
        }
        else
        if (op < 78)
            cask_graph_release (s_graph, client, cask_str (key));
        else
        if (op < 81)
            cask_graph_cancel (s_graph, client, cask_str (key));
        else
        if (op < 83)
            cask_graph_fire (s_graph, cask_str (key));
        else
        if (op < 85) {
            snprintf (dep0, sizeof dep0, "n%d", rand () % 4);
            if (rand () % 2)
                cask_graph_publish (s_graph, cask_str (dep0), cask_str (key));
            else
            if (rand () % 2)
                cask_graph_unpublish (s_graph, cask_str (dep0));
            else
                cask_graph_lookup (s_graph, client, cask_str (dep0));
        }
        else
        if (op < 87)
            cask_graph_scatter (s_graph, client, cask_str (key), worker);
        else
        if (op < 88) {
            if (rand () % 20 == 0)
                cask_graph_restart (s_graph, "cluster restarted");
            else
                cask_graph_client_gone (s_graph, client);
        }
        else
        if (op < 91)
            cask_graph_balance (s_graph);
        else
        if (op < 92)
            cask_graph_worker_retire (s_graph, worker);
        else
        if (op < 97) {
            if (!worker_up [worker])
                s_add_named_worker (worker, "tcp://w", 1 + worker % 2, "", worker % 3);
            worker_up [worker] = true;
        }
        else {
            cask_graph_worker_remove (s_graph, worker);
            worker_up [worker] = false;
        }
        for (size_t e = 0; e < s_recorder.size; e++)
            if (s_recorder.events [e].kind == 'r') {
                worker_up [s_recorder.events [e].peer] = false;
                s_recorder.events [e].kind = 'R';       //  seen
            }
        const char *wrong = cask_graph_verify (s_graph);
        ck_assert_msg (wrong == NULL, "step %d (op %d): %s", step, op, wrong);
        if (s_recorder.size > 4096)
            s_recorder.size = 0;
    }
    for (uint32_t client = 1; client <= CLIENTS; client++)
        cask_graph_client_gone (s_graph, client);
    ck_assert_ptr_null (cask_graph_verify (s_graph));
    cask_graph_restart (s_graph, "cluster restarted");
    ck_assert_uint_eq (s_total (), 0);
    ck_assert_ptr_null (cask_graph_verify (s_graph));
}
END_TEST

int
main (void)
{
    TCase *tc = tcase_create ("core");
    tcase_add_checked_fixture (tc, s_setup, s_teardown);
    tcase_add_test (tc, test_dispatch_when_deps_in_memory);
    tcase_add_test (tc, test_queued_until_a_worker_joins);
    tcase_add_test (tc, test_locality_picks_bigger_dep);
    tcase_add_test (tc, test_load_spreads_independent_tasks);
    tcase_add_test (tc, test_failure_propagates_with_cause);
    tcase_add_test (tc, test_unknown_function_and_dependency);
    tcase_add_test (tc, test_same_key_one_task_two_holders);
    tcase_add_test (tc, test_release_forgets_and_frees);
    tcase_add_test (tc, test_forget_processing_frees_at_once);
    tcase_add_test (tc, test_release_keeps_needed_dep);
    tcase_add_test (tc, test_worker_lost);
    tcase_add_test (tc, test_lost_chain_recomputed_from_the_start);
    tcase_add_test (tc, test_long_chain_and_fan_in);
    tcase_add_test (tc, test_cancel_transitive_and_shared);
    tcase_add_test (tc, test_cancel_counted_holds_and_queued);
    tcase_add_test (tc, test_restart_forgets_everything);
    tcase_add_test (tc, test_fire_and_forget);
    tcase_add_test (tc, test_scatter_lifecycle);
    tcase_add_test (tc, test_scatter_released_has_no_lineage);
    tcase_add_test (tc, test_publish_lookup_holds);
    tcase_add_test (tc, test_retries);
    tcase_add_test (tc, test_priority_order_and_record);
    tcase_add_test (tc, test_nul_key_is_malformed);
    tcase_add_test (tc, test_many_tasks_give_memory_back);
    tcase_add_test (tc, test_steal_for_idle_worker);
    tcase_add_test (tc, test_lost_input_takes_back_its_dependents);
    tcase_add_test (tc, test_retire_hands_over);
    tcase_add_test (tc, test_restrictions_and_resources);
    tcase_add_loop_test (tc, test_random_operations_keep_invariants, 0, 8);
    return cask_test_run ("graph", tc, NULL);
}
