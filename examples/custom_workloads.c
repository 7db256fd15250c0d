/*  custom_workloads.c - the "Custom Workloads with Futures" tutorial in C.

    Mirrors the notebook up to its as_completed section: submit a task and
    watch its future finish, chain dependencies, submit hundreds of tasks
    that depend on each other, sum a list of futures, and sum them again as
    a tree. The functions live in libtutorial.so (tutorial_lib.c), which
    this program registers with the cluster first.

    Usage: custom_workloads [broker-address [path/to/libtutorial.so]]
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
        for (size_t i = 0; L == level && i < length; i++)
            cask_future_destroy (&level [i]);
        length /= 2;
        for (size_t i = 0; i < length; i++)
            level [i] = new_L [i];
        L = level;
    }
    tutorial_print_future ("L[0]", L [0]);
    tutorial_expect ("L[0].result()", L [0], 98688);
    cask_future_destroy (&L [0]);
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
        for (int i = 0; i < NCHAINS; i++)
            cask_future_destroy (&zs [i]);
    }
    cask_client_destroy (&client);
    printf ("%s\n", tutorial_failures () ? "FAILED" : "OK");
    return tutorial_failures () ? 1 : 0;
}
