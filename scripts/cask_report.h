/*  cask_report.h - asks a broker, or a worker on its peer socket, for its
    REPORT: one STATUS round trip on a fresh socket, for one of the
    broker's views (PROTOCOL.md, STATUS). cask-status and cask print the
    answer; the tests' harness reads it.

    Built into a static library that leaves the codec unresolved: link
    it with the codec (proto) or with libcask, which contains it.
*/
#ifndef CASK_REPORT_H_INCLUDED
#define CASK_REPORT_H_INCLUDED

#include <cjson/cJSON.h>
#include "cask_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

//  Sends STATUS with view as its body to endpoint from a new DEALER
//  socket of the ZeroMQ context ctx and returns the REPORT body parsed, or
//  NULL when no REPORT came within timeout_ms or it was not JSON. A NULL
//  view sends an empty body: a broker's "status" view, and what a worker's
//  peer socket answers (it reads no view). The caller owns the result
//  (cJSON_Delete).
cJSON *cask_report_fetch_view (void *ctx, const char *endpoint, const cask_view_t *view,
                               int timeout_ms);
//  cask_report_fetch_view with no view.
cJSON *cask_report_fetch (void *ctx, const char *endpoint, int timeout_ms);

//  Number of workers in a broker's REPORT; -1 when it lists none (not a
//  broker's REPORT, or NULL).
int cask_report_nworkers (const cJSON *report);

#ifdef __cplusplus
}
#endif

#endif
