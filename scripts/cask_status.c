/*  cask_status.c - cask-status: asks a broker or a worker's peer socket for
    its REPORT and prints the JSON, for people and for cask-cluster.

        cask-status [--timeout MS] [--wait-workers N] [--count] ENDPOINT

    With --wait-workers, asks again until the broker reports at least N
    workers. --count prints only the number of workers. Exits 0 on a
    report (with enough workers), 1 on timeout, 2 on bad usage.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cjson/cJSON.h>
#include <zmq.h>
#include "cask_proto.h"

static int64_t s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  One STATUS round trip on a fresh socket; the REPORT body parsed, or NULL.
static cJSON *s_report (void *ctx, const char *endpoint, int timeout_ms)
{
    void *socket = zmq_socket (ctx, ZMQ_DEALER);
    if (!socket)
        return NULL;
    int linger = 0;
    zmq_setsockopt (socket, ZMQ_LINGER, &linger, sizeof linger);
    cJSON *json = NULL;
    cask_buf_t body;
    cask_buf_init (&body);
    if (zmq_connect (socket, endpoint) == 0
    &&  cask_send (socket, NULL, CASK_MSG_STATUS, &body, NULL) == 0) {
        zmq_pollitem_t item = { socket, 0, ZMQ_POLLIN, 0 };
        cask_message_t msg;
        cask_message_init (&msg);
        const char *why = NULL;
        if (zmq_poll (&item, 1, timeout_ms) == 1
        &&  cask_message_recv (&msg, socket, false, ZMQ_DONTWAIT, &why) == CASK_RECV_OK
        &&  msg.command == CASK_MSG_REPORT)
            json = cJSON_ParseWithLength (zmq_msg_data (&msg.body), zmq_msg_size (&msg.body));
        cask_message_close (&msg);
    }
    cask_buf_free (&body);
    zmq_close (socket);
    return json;
}

static int s_nworkers (const cJSON *report)
{
    const cJSON *workers = cJSON_GetObjectItemCaseSensitive (report, "workers");
    return cJSON_IsArray (workers) ? cJSON_GetArraySize (workers) : -1;
}

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
    int64_t deadline = s_now_ms () + timeout_ms;
    cJSON *report = NULL;
    for (;;) {
        int64_t left = deadline - s_now_ms ();
        report = s_report (ctx, address, left > 1000 ? 1000 : left > 0 ? (int) left : 0);
        if (report && s_nworkers (report) >= want_workers)
            break;
        cJSON_Delete (report);
        report = NULL;
        if (s_now_ms () >= deadline)
            break;
        struct timespec nap = { 0, 50 * 1000000 };
        nanosleep (&nap, NULL);
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
        printf ("%d\n", s_nworkers (report));
    else {
        char *text = cJSON_Print (report);
        if (text)
            puts (text);
        free (text);
    }
    cJSON_Delete (report);
    return 0;
}
