/*  cask_broker.h - the cask broker: one ROUTER socket, one thread, one loop.

    The broker greets clients and workers, keeps the libraries clients
    register and hands them to every worker, feeds submitted tasks to its
    graph (cask_graph) and turns what the graph decides into batched
    messages: one TASK and one FREE message per worker and one STATE message
    per client for each wake-up of the loop. Result data never passes
    through it. Nothing a peer sends can make it stop: bad input is answered
    with ERROR and the loop goes on.
*/
#ifndef CASK_BROKER_H_INCLUDED
#define CASK_BROKER_H_INCLUDED

#include <signal.h>
#include <stdbool.h>
#include "cask_curve.h"

#define CASK_BROKER_DEFAULT_BIND "tcp://127.0.0.1:8786"

typedef struct _cask_broker_t cask_broker_t;

//  Creates a broker bound to endpoint (tcp://host:* picks a free port).
//  verbose logs every message. Returns NULL (logged) when binding fails.
cask_broker_t *cask_broker_new (const char *endpoint, bool verbose);
//  cask_broker_new, with CurveZMQ when curve is not NULL: the ROUTER is a
//  CURVE server with curve's key pair, and only clients and workers whose
//  keys curve allows get in (its ZAP handler runs in the broker's context).
//  curve must hold the pair and the allowed directory, and outlive the
//  broker.
cask_broker_t *cask_broker_new_secure (const char *endpoint, bool verbose,
                                       cask_curve_t *curve);
//  Stops serving and frees everything; safe on NULL and twice.
void cask_broker_destroy (cask_broker_t **self_p);
//  Heartbeats to workers every interval_ms (default CASK_HEARTBEAT_MS, at
//  least 10); a worker silent for CASK_HEARTBEAT_LIVENESS of its own
//  intervals is taken for dead.
void cask_broker_set_heartbeat (cask_broker_t *self, unsigned interval_ms);
//  A task that was running on count workers that died fails (default 3).
void cask_broker_set_allowed_failures (cask_broker_t *self, unsigned count);
//  Serves the dashboard (web pages and JSON API) on address (see
//  cask_dashboard_new: "HOST:PORT", ":PORT" or "PORT"), or stops serving
//  it when address is NULL. A broker serves none until told. Returns 0,
//  or -1 (logged) when address is bad or cannot be bound.
int cask_broker_set_dashboard (cask_broker_t *self, const char *address);
//  The dashboard's URL ("http://127.0.0.1:8787/status"), or NULL.
const char *cask_broker_dashboard_url (cask_broker_t *self);
//  The endpoint the broker is bound to, with the real port.
const char *cask_broker_endpoint (cask_broker_t *self);
//  Serves until *stop becomes non-zero (a signal handler sets it) or the
//  socket fails. Returns 0 when stopped, -1 on a socket error.
int cask_broker_run (cask_broker_t *self, volatile sig_atomic_t *stop);

#endif
