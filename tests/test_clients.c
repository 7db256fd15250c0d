/*  test_clients.c - several clients on one cluster: each with its own
    futures (a future of one is refused, clearly, by the other), a client
    process killed in the middle of its graph (its tasks are released while
    the other's work completes), and datasets published by one client for
    others, kept after the publisher leaves, until unpublished.
*/
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cask_harness.h"
#include "cask_testutil.h"

#define RESULT_TIMEOUT 60000
#define RELEASE_TIMEOUT 30000       //  for the broker to let go of tasks

static cask_harness_t *harness;
static cask_client_t *client;

static int64_t s_int (cask_client_t *owner, cask_future_t *f)
{
    return cask_harness_int (owner, f, RESULT_TIMEOUT);
}

static cask_client_t *s_other_client (void)
{
    cask_client_t *other = cask_harness_client (harness, cask_harness_tutorial_lib ());
    ck_assert_ptr_nonnull (other);
    return other;
}

//  Polls the broker's REPORT until the figure at path is expect.
static void s_broker_figure (const char *path, int64_t expect, const char *why)
{
    int64_t seen;
    if (cask_harness_wait_figure (harness, -1, path, expect, RELEASE_TIMEOUT, &seen) == 0)
        return;
    cJSON *report = cask_harness_broker_report (harness, 5000);
    char *text = report ? cJSON_PrintUnformatted (report) : NULL;
    ck_abort_msg ("%s: the broker's %s is %lld, expected %lld (REPORT %s)", why, path,
                  (long long) seen, (long long) expect, text ? text : "none");
}

static void s_results_held (int64_t expect, const char *why)
{
    for (size_t i = 0; i < cask_harness_nworkers (harness); i++) {
        int64_t seen;
        ck_assert_msg (cask_harness_wait_figure (harness, (int) i, "results_held", expect,
                                                 RELEASE_TIMEOUT, &seen) == 0,
                       "%s: worker w%zu holds %lld results, expected %lld", why, i,
                       (long long) seen, (long long) expect);
    }
}

//  inc (0..n-1) summed on the cluster by client owner: n (n + 1) / 2.
static cask_future_t *s_sum_of_incs (cask_client_t *owner, int64_t first, size_t n,
                                     cask_future_t **incs)
{
    cask_value_t *list = cask_list_new (n);
    for (size_t i = 0; i < n; i++) {
        incs [i] = cask_submit (owner, "inc", cask_int64 (first + (int64_t) i), NULL);
        ck_assert_msg (incs [i] != NULL, "%s", cask_client_error (owner));
        cask_list_append (list, cask_future_arg (incs [i]));
    }
    cask_future_t *total = cask_submit (owner, "sum", list, NULL);
    ck_assert_msg (total != NULL, "%s", cask_client_error (owner));
    return total;
}

START_TEST (test_two_clients)
{
    cask_client_t *other = s_other_client ();
    enum { N = 50 };
    cask_future_t *mine [N], *theirs [N];
    cask_future_t *my_total = s_sum_of_incs (client, 0, N, mine);
    cask_future_t *their_total = s_sum_of_incs (other, 1000, N, theirs);
    ck_assert_int_eq (s_int (client, my_total), N * (N + 1) / 2);
    ck_assert_int_eq (s_int (other, their_total), N * 1000 + N * (N + 1) / 2);
    //  Equal submits share a task across clients; each client's handle
    //  holds it.
    cask_future_t *a = cask_submit (client, "inc", cask_int64 (7), NULL);
    cask_future_t *b = cask_submit (other, "inc", cask_int64 (7), NULL);
    ck_assert (a && b);
    ck_assert_str_eq (cask_future_key (a), cask_future_key (b));
    ck_assert_int_eq (s_int (client, a), 8);
    cask_future_destroy (&a);
    cask_future_t *c = cask_submit (other, "inc", cask_future_arg (b), NULL);
    ck_assert_int_eq (s_int (other, c), 9);
    cask_future_destroy (&b);
    cask_future_destroy (&c);
    cask_future_destroy (&my_total);
    cask_futures_destroy (mine, N);
    //  Only the other client's tasks are left.
    s_broker_figure ("tasks.total", N + 1, "after the first client let go of its futures");
    cask_client_destroy (&other);
    s_broker_figure ("tasks.total", 0, "after the other client left");
    s_broker_figure ("clients", 1, "after the other client left");
    s_results_held (0, "after both clients let go");
}
END_TEST

//  The error of a call given a future of another client must say so.
static void s_refused (cask_client_t *owner, const char *call)
{
    const char *error = cask_client_error (owner);
    ck_assert_msg (strstr (error, "client"),
                   "%s given a future of another client failed with \"%s\", which does"
                   " not say it is another client's", call, error);
}

START_TEST (test_future_of_another_client)
{
    cask_client_t *other = s_other_client ();
    cask_future_t *mine = cask_submit (client, "inc", cask_int64 (1), NULL);
    ck_assert_ptr_nonnull (mine);
    cask_future_t *f = cask_submit (other, "inc", cask_future_arg (mine), NULL);
    ck_assert_msg (f == NULL, "submit took a future of another client");
    s_refused (other, "submit");
    cask_value_t *inputs = cask_list (cask_future_arg (mine), NULL);
    ck_assert_int_eq (cask_map (other, "inc", inputs, &f), -1);
    s_refused (other, "map");
    ck_assert_int_eq (cask_wait (other, &mine, 1, CASK_WAIT_ALL, 1000), -1);
    s_refused (other, "wait");
    ck_assert_int_eq (cask_gather (other, &mine, 1, 1000), -1);
    s_refused (other, "gather");
    ck_assert_int_eq (cask_cancel (other, &mine, 1), -1);
    s_refused (other, "cancel");
    ck_assert_int_eq (cask_fire_and_forget (other, &mine, 1), -1);
    s_refused (other, "fire_and_forget");
    ck_assert_int_eq (cask_publish (other, "stolen", mine, 5000), -1);
    s_refused (other, "publish");
    cask_as_completed_t *seq = cask_as_completed_new (other, &mine, 1, 0);
    ck_assert_msg (seq == NULL, "as_completed took a future of another client");
    s_refused (other, "as_completed_new");
    seq = cask_as_completed_new (other, NULL, 0, 0);
    ck_assert_ptr_nonnull (seq);
    ck_assert_int_eq (cask_as_completed_add (seq, mine), -1);
    s_refused (other, "as_completed_add");
    cask_as_completed_destroy (&seq);
    //  Both are still fine, and the future still its owner's.
    ck_assert_int_eq (s_int (client, mine), 2);
    ck_assert_int_eq (cask_cancel (client, &mine, 1), 0);
    cask_future_t *theirs = cask_submit (other, "inc", cask_int64 (2), NULL);
    ck_assert_int_eq (s_int (other, theirs), 3);
    cask_future_destroy (&theirs);
    cask_future_destroy (&mine);
    cask_client_destroy (&other);
    s_broker_figure ("tasks.total", 0, "after both let go");
}
END_TEST

//  What the client process that gets killed does: a graph of slow tasks
//  and the adds over them, of which it waits for the first to finish, so
//  that it dies in the middle of the graph.
enum { NSLOW = 40 };
static int s_graph_body (cask_client_t *victim, void *arg)
{
    (void) arg;
    if (cask_client_register (victim, cask_harness_test_lib (), 20000))
        return -1;
    cask_future_t *slow [NSLOW];
    for (size_t i = 0; i < NSLOW; i++) {
        slow [i] = cask_submit (victim, "nap", cask_int64 (300), cask_int64 ((int64_t) i), NULL);
        if (!slow [i])
            return -1;
    }
    for (size_t i = 0; i + 1 < NSLOW; i++)
        if (!cask_submit (victim, "add", cask_future_arg (slow [i]),
                          cask_future_arg (slow [i + 1]), NULL))
            return -1;
    return cask_wait (victim, slow, 1, CASK_WAIT_ALL, RESULT_TIMEOUT) == 1 ? 0 : -1;
}

START_TEST (test_killed_client)
{
    pid_t victim = cask_harness_client_process (harness, cask_harness_tutorial_lib (),
                                                s_graph_body, NULL, RESULT_TIMEOUT);
    ck_assert_msg (victim > 0, "the client process did not get going");
    cJSON *report = cask_harness_broker_report (harness, 5000);
    int64_t held = cask_harness_json_int (report, "tasks.total", -1);
    cJSON_Delete (report);
    ck_assert_msg (held > NSLOW / 2, "the broker holds %lld tasks of the victim's %d",
                   (long long) held, 2 * NSLOW - 1);
    enum { N = 100 };
    cask_future_t *incs [N];
    cask_future_t *total = s_sum_of_incs (client, 0, N, incs);
    ck_assert_int_eq (cask_harness_kill_process (victim), 0);
    ck_assert_int_eq (s_int (client, total), N * (N + 1) / 2);
    s_broker_figure ("clients", 1, "after the client process was killed");
    s_broker_figure ("tasks.total", N + 1, "after the client process was killed");
    ck_assert_int_eq (s_int (client, incs [N - 1]), N);
    cask_future_destroy (&total);
    cask_futures_destroy (incs, N);
    s_broker_figure ("tasks.total", 0, "after the survivor let go");
    s_results_held (0, "after the survivor let go");
}
END_TEST

START_TEST (test_datasets)
{
    cask_client_t *reader = s_other_client ();
    cask_future_t *eleven = cask_submit (client, "inc", cask_int64 (10), NULL);
    ck_assert_int_eq (s_int (client, eleven), 11);
    ck_assert_msg (cask_publish (client, "eleven", eleven, 5000) == 0, "publish: %s",
                   cask_client_error (client));
    cask_future_t *got = cask_get_dataset (reader, "eleven", 5000);
    ck_assert_msg (got != NULL, "get_dataset: %s", cask_client_error (reader));
    ck_assert_str_eq (cask_future_key (got), cask_future_key (eleven));
    ck_assert_int_eq (s_int (reader, got), 11);
    //  A name in use stays with its first future.
    cask_future_t *twelve = cask_submit (client, "inc", cask_int64 (11), NULL);
    ck_assert_int_eq (cask_publish (client, "eleven", twelve, 5000), -1);
    ck_assert_msg (strstr (cask_client_error (client), "eleven"),
                   "publishing a name in use failed with \"%s\", which does not name it",
                   cask_client_error (client));
    ck_assert_int_eq (cask_publish (reader, "eleven", got, 5000), -1);
    cask_future_destroy (&twelve);

    //  The publisher leaves; the dataset stays.
    cask_future_destroy (&got);
    cask_future_destroy (&eleven);
    cask_client_destroy (&client);
    s_broker_figure ("clients", 1, "after the publisher left");
    s_broker_figure ("tasks.total", 1, "the published task is all that is left");
    got = cask_get_dataset (reader, "eleven", 5000);
    ck_assert_msg (got != NULL, "get_dataset after the publisher left: %s",
                   cask_client_error (reader));
    ck_assert_int_eq (s_int (reader, got), 11);
    cask_future_t *more = cask_submit (reader, "inc", cask_future_arg (got), NULL);
    ck_assert_int_eq (s_int (reader, more), 12);
    cask_future_destroy (&more);

    ck_assert_msg (cask_unpublish (reader, "eleven", 5000) == 0, "unpublish: %s",
                   cask_client_error (reader));
    ck_assert_ptr_null (cask_get_dataset (reader, "eleven", 5000));
    ck_assert_msg (strstr (cask_client_error (reader), "eleven"),
                   "get_dataset of an unpublished name failed with \"%s\"",
                   cask_client_error (reader));
    ck_assert_int_eq (cask_unpublish (reader, "eleven", 5000), -1);
    //  The reader's handle still holds the task; then nothing does.
    ck_assert_int_eq (s_int (reader, got), 11);
    cask_future_destroy (&got);
    s_broker_figure ("tasks.total", 0, "after unpublish and the last handle");
    s_results_held (0, "after unpublish and the last handle");

    ck_assert_ptr_null (cask_get_dataset (reader, "no-such-dataset", 5000));
    const char *error = cask_client_error (reader);
    ck_assert_msg (strstr (error, "no-such-dataset"),
                   "get_dataset of an unknown name failed with \"%s\", which does not name it",
                   error);
    cask_client_destroy (&reader);
}
END_TEST

int main (void)
{
    TCase *tc = tcase_create ("clients");
    cask_harness_fixture (tc, &harness, 2, 2, &client, cask_harness_tutorial_lib ());
    tcase_set_timeout (tc, 120);
    tcase_add_test (tc, test_two_clients);
    tcase_add_test (tc, test_future_of_another_client);
    tcase_add_test (tc, test_killed_client);
    tcase_add_test (tc, test_datasets);
    return cask_test_run ("clients", tc, NULL);
}
