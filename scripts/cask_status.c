/*  cask_status.c - cask-status: asks a broker or a worker's peer socket for
    its REPORT and prints the JSON, for people and for cask-cluster.

        cask-status [--timeout MS] [--wait-workers N] [--count] ENDPOINT

    With --wait-workers, asks again until the broker reports at least N
    workers. --count prints only the number of workers. Exits 0 on a
    report (with enough workers), 1 on timeout, 2 on bad usage.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <czmq.h>
#include "cask_report.h"

static int s_usage (void)
{
    fprintf (stderr, "usage: cask-status [--timeout MS] [--wait-workers N] [--count] ENDPOINT\n");
    return 2;
}

int main (int argc, char *argv [])
{
    int timeout_ms = 5000, want_workers = -1;
    bool count = false;
    const char *endpoint = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv [i], "--timeout") == 0 && i + 1 < argc)
            timeout_ms = atoi (argv [++i]);
        else
        if (strcmp (argv [i], "--wait-workers") == 0 && i + 1 < argc)
            want_workers = atoi (argv [++i]);
        else
        if (strcmp (argv [i], "--count") == 0)
            count = true;
        else
        if (argv [i][0] != '-' && !endpoint)
            endpoint = argv [i];
        else
            return s_usage ();
    }
    if (!endpoint || timeout_ms < 0)
        return s_usage ();
    char address [300];
    if (!strstr (endpoint, "://"))
        snprintf (address, sizeof address, "tcp://%s", endpoint);
    else
        snprintf (address, sizeof address, "%s", endpoint);

    void *ctx = zmq_ctx_new ();
    int64_t deadline = zclock_mono () + timeout_ms;
    cJSON *report = NULL;
    for (;;) {
        int64_t left = deadline - zclock_mono ();
        report = cask_report_fetch (ctx, address, left > 1000 ? 1000 : left > 0 ? (int) left : 0);
        if (report && cask_report_nworkers (report) >= want_workers)
            break;
        cJSON_Delete (report);
        report = NULL;
        if (zclock_mono () >= deadline)
            break;
        zclock_sleep (50);
    }
    zmq_ctx_term (ctx);
    if (!report) {
        if (want_workers >= 0)
            fprintf (stderr, "cask-status: %s did not report %d workers within %d ms\n",
                     address, want_workers, timeout_ms);
        else
            fprintf (stderr, "cask-status: no REPORT from %s within %d ms\n",
                     address, timeout_ms);
        return 1;
    }
    if (count)
        printf ("%d\n", cask_report_nworkers (report));
    else {
        char *text = cJSON_Print (report);
        if (text)
            puts (text);
        free (text);
    }
    cJSON_Delete (report);
    return 0;
}
