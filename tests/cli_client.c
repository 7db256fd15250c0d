/*  cli_client.c - the client of tests/test_cli.sh: leaves a known graph in
    the broker while the test looks at it with `cask`.

    Usage: cli_client ADDRESS LIBRARY N

    LIBRARY is examples/libtutorial.so. Maps inc over 0..N-1, submits
    add (inc (0), inc (1)) (a task with two dependencies) and goes_wrong,
    and waits until the N + 1 results are in memory and goes_wrong erred.
    Then it prints "ready" on stdout and holds every future, so the broker
    keeps the N + 2 tasks, until its stdin closes; then it releases them
    and exits. Exits 0 when every future ended as it should, 1 otherwise.
*/
#include <cask/cask.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_TIMEOUT_MS 20000
#define S_MAX_N 1000

//  inc over 0..n-1 into incs, add (incs 0, incs 1) into *sum, and their
//  results: the right ones. Returns 0 or -1.
static int
s_compute (cask_client_t *client, cask_future_t **incs, size_t n, cask_future_t **sum)
{
    int64_t inputs [S_MAX_N], result;
    for (size_t index = 0; index < n; index++)
        inputs [index] = (int64_t) index;
    if (cask_map (client, "inc", cask_list_of_int64 (inputs, n), incs)
    ||  !(*sum = cask_submit (client, "add", cask_future_arg (incs [0]),
                              cask_future_arg (incs [1]), NULL))
    ||  cask_gather (client, incs, n, S_TIMEOUT_MS)
    ||  cask_future_int64 (*sum, S_TIMEOUT_MS, &result) || result != 3) {
        fprintf (stderr, "cli_client: %s\n", cask_client_error (client));
        return -1;
    }
    for (size_t index = 0; index < n; index++)
        if (cask_future_int64 (incs [index], S_TIMEOUT_MS, &result)
        ||  result != (int64_t) index + 1) {
            fprintf (stderr, "cli_client: inc (%zu) gave %lld\n", index, (long long) result);
            return -1;
        }
    return 0;
}

//  A task that fails, waited for. Returns 0 when it erred as it should.
static int
s_fail (cask_client_t *client, cask_future_t **bad)
{
    *bad = cask_submit (client, "goes_wrong", NULL);
    if (!*bad || cask_future_result (*bad, S_TIMEOUT_MS)
    ||  !strstr (cask_future_error (*bad), "division by zero")) {
        fprintf (stderr, "cli_client: goes_wrong: %s\n",
                 *bad ? cask_future_error (*bad) : cask_client_error (client));
        return -1;
    }
    return 0;
}

int
main (int argc, char *argv [])
{
    long n = argc == 4 ? strtol (argv [3], NULL, 10) : 0;
    if (n < 2 || n > S_MAX_N) {
        fprintf (stderr, "usage: cli_client ADDRESS LIBRARY N (2 to %d)\n", S_MAX_N);
        return 1;
    }
    cask_client_t *client = cask_client_new (argv [1], 10000);
    if (!client) {
        fprintf (stderr, "cli_client: %s\n", cask_client_last_error ());
        return 1;
    }
    cask_future_t *incs [S_MAX_N] = { NULL }, *sum = NULL, *bad = NULL;
    int rc = 1;
    if (cask_client_register (client, argv [2], 10000))
        fprintf (stderr, "cli_client: %s\n", cask_client_error (client));
    else
    if (s_compute (client, incs, (size_t) n, &sum) == 0 && s_fail (client, &bad) == 0) {
        puts ("ready");
        fflush (stdout);
        while (getchar () != EOF)
            ;                   //  holding the futures while the test looks
        rc = 0;
    }
    cask_futures_destroy (incs, (size_t) n);
    cask_future_destroy (&sum);
    cask_future_destroy (&bad);
    cask_client_destroy (&client);
    return rc;
}
