/*  custom_workloads.c - the "Custom Workloads with Futures" tutorial in C.

    Mirrors the notebook: submit a task and watch its future finish, chain
    dependencies, submit hundreds of tasks that depend on each other, sum a
    list of futures, sum them again as a tree, then take results as they
    complete (as_completed) and reduce them in the order they finish,
    adding new work to the loop as it runs. The functions live in
    libtutorial.so (tutorial_lib.c), which this program registers with the
    cluster first.

    Usage: custom_workloads [broker-address [path/to/libtutorial.so]]
    Without an address (or an empty one) and $CASK_BROKER, it starts a local
    cluster of its own (cask_client_new (NULL)) and stops it at the end.
    Exits 0 when every result is the notebook's.
*/
#include "tutorial_client.h"

#include <stdio.h>
#include <stdlib.h>

#define NCHAINS 256

//  future = client.submit(inc, 1); future; future; future.result()
static void
s_submit_one (cask_client_t *client)
{
    cask_future_t *future = cask_submit (client, "inc", cask_int64 (1), NULL);
    if (!future) {
        tutorial_fail ("submit inc: %s", cask_client_error (client));
        return;
    }
    tutorial_print_future ("future", future);       //  pending, at once
    tutorial_wait_done (future);
    tutorial_print_future ("future", future);       //  finished, a moment later
    tutorial_expect ("future.result()", future, 2);
    cask_future_destroy (&future);
}

//  x = inc(1); y = double(2); z = add(x, y)
static void
s_chain (cask_client_t *client)
{
    cask_future_t *x = cask_submit (client, "inc", cask_int64 (1), NULL);
    cask_future_t *y = cask_submit (client, "double", cask_int64 (2), NULL);
    cask_future_t *z = x && y
        ? cask_submit (client, "add", cask_future_arg (x), cask_future_arg (y), NULL) : NULL;
    if (!z)
        tutorial_fail ("chain: %s", cask_client_error (client));
    else {
        tutorial_print_future ("z", z);
        tutorial_expect ("z.result()", z, 6);
    }
    cask_future_destroy (&x);
    cask_future_destroy (&y);
    cask_future_destroy (&z);
}

//  for i in range(256): x = inc(i); y = double(x); z = add(x, y)
//  As in Python, x and y are dropped each round: only the zs are kept,
//  and the cluster keeps x and y as long as their z needs them.
static int
s_submit_many (cask_client_t *client, cask_future_t **zs)
{
    double start = tutorial_now ();
    for (int i = 0; i < NCHAINS; i++) {
        cask_future_t *x = cask_submit (client, "inc", cask_int64 (i), NULL);
        cask_future_t *y = x ? cask_submit (client, "double", cask_future_arg (x), NULL) : NULL;
        zs [i] = y ? cask_submit (client, "add", cask_future_arg (x), cask_future_arg (y), NULL)
                   : NULL;
        cask_future_destroy (&x);
        cask_future_destroy (&y);
        if (!zs [i]) {
            tutorial_fail ("submit round %d: %s", i, cask_client_error (client));
            return -1;
        }
    }
    printf ("submitted %d tasks, Wall time: %.1f ms\n", 3 * NCHAINS,
            (tutorial_now () - start) * 1000);
    return 0;
}

//  total = client.submit(sum, zs)
static void
s_sum (cask_client_t *client, cask_future_t **zs)
{
    cask_value_t *list = cask_list_new (NCHAINS);
    for (int i = 0; i < NCHAINS; i++)
        cask_list_append (list, cask_future_arg (zs [i]));
    cask_future_t *total = cask_submit (client, "sum", list, NULL);
    if (!total) {
        tutorial_fail ("submit sum: %s", cask_client_error (client));
        return;
    }
    tutorial_expect ("zs[0].result()", zs [0], 3);
    tutorial_print_future ("total", total);
    tutorial_expect ("total.result()", total, 98688);
    cask_future_destroy (&total);
}

//  Neighbours merge until one future is left: a tree of add
static void
s_tree_sum (cask_client_t *client, cask_future_t **zs)
{
    cask_future_t *level [NCHAINS];
    cask_future_t **L = zs;
    size_t length = NCHAINS;
    while (length > 1) {
        cask_future_t *new_L [NCHAINS / 2];
        for (size_t i = 0; i < length; i += 2) {
            new_L [i / 2] = cask_submit (client, "add", cask_future_arg (L [i]),
                                         cask_future_arg (L [i + 1]), NULL);
            if (!new_L [i / 2])
                tutorial_fail ("tree: %s", cask_client_error (client));
        }
        //  The old level goes, as in Python when L is swapped (but zs stay)
        if (L == level)
            cask_futures_destroy (level, length);
        length /= 2;
        for (size_t i = 0; i < length; i++)
            level [i] = new_L [i];
        L = level;
    }
    tutorial_print_future ("L[0]", L [0]);
    tutorial_expect ("L[0].result()", L [0], 98688);
    cask_future_destroy (&L [0]);
}

//  zs = client.map(inc, zs), as futures of the caller
static int
s_map_inc (cask_client_t *client, cask_future_t **zs, cask_future_t **incs)
{
    cask_value_t *inputs = cask_list_new (NCHAINS);
    for (int i = 0; i < NCHAINS; i++)
        cask_list_append (inputs, cask_future_arg (zs [i]));
    if (cask_map (client, "inc", inputs, incs)) {
        tutorial_fail ("map inc: %s", cask_client_error (client));
        return -1;
    }
    return 0;
}

//  for future in as_completed(client.map(inc, zs)): print(future.result())
static void
s_as_completed (cask_client_t *client, cask_future_t **zs)
{
    cask_future_t *incs [NCHAINS];
    if (s_map_inc (client, zs, incs))
        return;
    cask_as_completed_t *seq = cask_as_completed_new (client, incs, NCHAINS, CASK_WITH_RESULTS);
    cask_futures_destroy (incs, NCHAINS);       //  seq holds its own
    int64_t total = 0;
    int count = 0;
    printf ("as_completed:");
    cask_future_t *future;
    while (seq && (future = cask_as_completed_next (seq, TUTORIAL_TIMEOUT_MS))) {
        int64_t result = 0;
        if (cask_future_int64 (future, 0, &result))
            tutorial_fail ("as_completed: %s", cask_future_error (future));
        printf ("%s%lld", count % 16 ? " " : "\n    ", (long long) result);
        total += result;
        count++;
        cask_future_destroy (&future);
    }
    printf ("\n");
    if (!seq || count != NCHAINS || total != 98688 + NCHAINS)
        tutorial_fail ("as_completed gave %d results summing to %lld, expected %d summing to %d: %s",
                       count, (long long) total, NCHAINS, 98688 + NCHAINS,
                       cask_client_error (client));
    cask_as_completed_destroy (&seq);
}

//  zs = client.map(inc, zs)
//  seq = as_completed(zs)
//  while seq.count() > 1:
//      a = next(seq); b = next(seq)
//      new = client.submit(add, a, b, priority=1)     # add them together
//      seq.add(new)                                   # add new future back into loop
static void
s_reduce_as_completed (cask_client_t *client, cask_future_t **zs)
{
    cask_future_t *incs [NCHAINS];
    if (s_map_inc (client, zs, incs))
        return;
    cask_as_completed_t *seq = cask_as_completed_new (client, incs, NCHAINS, 0);
    cask_futures_destroy (incs, NCHAINS);
    if (!seq) {
        tutorial_fail ("as_completed: %s", cask_client_error (client));
        return;
    }
    cask_submit_opts_t opts = { .priority = 1 };
    while (cask_as_completed_count (seq) > 1) {
        cask_future_t *a = cask_as_completed_next (seq, TUTORIAL_TIMEOUT_MS);
        cask_future_t *b = a ? cask_as_completed_next (seq, TUTORIAL_TIMEOUT_MS) : NULL;
        cask_future_t *new = NULL;
        if (b) {
            cask_value_t *args [] = { cask_future_arg (a), cask_future_arg (b) };
            new = cask_submit_opts (client, "add", &opts, args, 2);
        }
        if (!new || cask_as_completed_add (seq, new))
            tutorial_fail ("reduce: %s", cask_client_error (client));
        cask_future_destroy (&a);
        cask_future_destroy (&b);
        cask_future_destroy (&new);
        if (tutorial_failures ())
            break;
    }
    cask_future_t *total = cask_as_completed_next (seq, TUTORIAL_TIMEOUT_MS);
    if (total) {
        tutorial_print_future ("total", total);
        tutorial_expect ("total.result()", total, 98688 + NCHAINS);
    }
    else
        tutorial_fail ("reduce: no total: %s", cask_client_error (client));
    cask_future_destroy (&total);
    cask_as_completed_destroy (&seq);
}

int
main (int argc, char **argv)
{
    cask_client_t *client = tutorial_connect (argc, argv);
    if (!client)
        return 1;
    s_submit_one (client);
    s_chain (client);
    cask_future_t *zs [NCHAINS];
    if (s_submit_many (client, zs) == 0) {
        s_sum (client, zs);
        printf ("(client.cluster.scale: start more cask-worker processes; "
                "the broker uses them as they join)\n");
        s_tree_sum (client, zs);
        s_as_completed (client, zs);
        s_reduce_as_completed (client, zs);
        cask_futures_destroy (zs, NCHAINS);
    }
    cask_client_destroy (&client);
    printf ("%s\n", tutorial_failures () ? "FAILED" : "OK");
    return tutorial_failures () ? 1 : 0;
}
