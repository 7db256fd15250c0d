/*  cask_report.c - one STATUS round trip, for cask-status, cask and the
    tests. */
#include "cask_report.h"

#include <errno.h>
#include <stdbool.h>
#include <czmq.h>
#include "cask_proto.h"

//  Waits until socket is readable or the deadline passes; true if readable.
static bool s_wait_readable (void *socket, int64_t deadline)
{
    zmq_pollitem_t item = { socket, 0, ZMQ_POLLIN, 0 };
    int rc;
    do {
        int64_t left = deadline - zclock_mono ();
        rc = zmq_poll (&item, 1, left > 0 ? (long) left : 0);
    } while (rc < 0 && errno == EINTR && zclock_mono () < deadline);
    return rc == 1;
}

cJSON *cask_report_fetch_view (void *ctx, const char *endpoint, const cask_view_t *view,
                               int timeout_ms)
{
    void *socket = zmq_socket (ctx, ZMQ_DEALER);
    if (!socket)
        return NULL;
    int linger = 0;
    zmq_setsockopt (socket, ZMQ_LINGER, &linger, sizeof linger);
    int64_t deadline = zclock_mono () + timeout_ms;
    cJSON *json = NULL;
    cask_buf_t body;
    cask_buf_init (&body);
    if (view)
        cask_view_put (&body, view);
    if (zmq_connect (socket, endpoint) == 0
    &&  cask_send (socket, NULL, CASK_MSG_STATUS, &body, NULL) == 0
    &&  s_wait_readable (socket, deadline)) {
        cask_message_t msg;
        cask_message_init (&msg);
        const char *why = NULL;
        if (cask_message_recv (&msg, socket, false, ZMQ_DONTWAIT, &why) == CASK_RECV_OK
        &&  msg.command == CASK_MSG_REPORT)
            json = cJSON_ParseWithLength (zmq_msg_data (&msg.body),
                                          zmq_msg_size (&msg.body));
        cask_message_close (&msg);
    }
    cask_buf_free (&body);
    zmq_close (socket);
    return json;
}

cJSON *cask_report_fetch (void *ctx, const char *endpoint, int timeout_ms)
{
    return cask_report_fetch_view (ctx, endpoint, NULL, timeout_ms);
}

int cask_report_nworkers (const cJSON *report)
{
    const cJSON *workers = cJSON_GetObjectItemCaseSensitive (report, "workers");
    return cJSON_IsArray (workers) ? cJSON_GetArraySize (workers) : -1;
}
