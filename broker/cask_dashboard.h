/*  cask_dashboard.h - the broker's web dashboard: an HTTP server
    (libmicrohttpd) that runs inside the broker's own loop.

    It serves the pages (/status, /workers, /graph, and /static/NAME: the
    files of broker/dashboard/, built into the binary) and the JSON API
    (/api/VIEW?since=S&limit=N&state=X) whose documents the broker makes
    on request through a callback. libmicrohttpd runs in its "external"
    epoll mode: the broker polls one descriptor beside its ZeroMQ socket
    and lets the server work only when that is ready, so the dashboard
    takes no thread, no lock, and no time while nobody looks.
*/
#ifndef CASK_DASHBOARD_H_INCLUDED
#define CASK_DASHBOARD_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "cask_proto.h"

#define CASK_DASHBOARD_DEFAULT "127.0.0.1:8787"

typedef struct _cask_dashboard_t cask_dashboard_t;

//  Makes the JSON document of view (its fields as in STATUS), as text the
//  caller frees (NULL when out of memory); *found is false when the
//  document says there is no such view, or its arguments are wrong.
typedef char *(cask_dashboard_view_fn) (void *arg, const cask_view_t *view, bool *found);

//  Starts serving on address: "HOST:PORT", ":PORT" (all interfaces), or
//  "PORT" (127.0.0.1); HOST is an IPv4 address, "localhost" or "*".
//  Port 0 takes any free port, and so does a port in use, with a warning
//  in *warning (else NULL) as Dask does. Returns NULL with the reason in
//  error when address is bad or no socket can be had.
cask_dashboard_t *cask_dashboard_new (const char *address, cask_dashboard_view_fn *view,
                                      void *arg, const char **warning, char *error,
                                      size_t size);
//  Stops serving (open connections are closed) and frees everything;
//  safe on NULL and twice.
void cask_dashboard_destroy (cask_dashboard_t **self_p);

//  The descriptor to poll for reading; when it is ready, or when
//  cask_dashboard_timeout says, call cask_dashboard_serve.
int cask_dashboard_fd (cask_dashboard_t *self);
//  Milliseconds until the server must run even if nothing is ready
//  (connections to time out, work left over), or -1 for no such need.
int64_t cask_dashboard_timeout (cask_dashboard_t *self);
//  Does the work that is ready: accepts, reads, answers. Never blocks
//  (save in the view callback).
void cask_dashboard_serve (cask_dashboard_t *self);
//  "http://HOST:PORT/status", with the port really bound.
const char *cask_dashboard_url (cask_dashboard_t *self);

#endif
