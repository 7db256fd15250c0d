/*  cask_dashboard.c - the dashboard's HTTP server (see cask_dashboard.h).

    Routes: / redirects to /status; /NAME serves NAME.html; /static/NAME
    serves NAME; /api/VIEW answers the view's JSON. Only GET and HEAD.
    Pages and files are answered from the binary without a copy; JSON is
    handed to the server, which frees it once sent.

    A browser that opens many connections, or leaves them idle, costs at
    most S_CONNECTIONS connections, each closed after S_IDLE_SECONDS.
*/
#include "cask_dashboard.h"
#include "cask_assets.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define S_CONNECTIONS 64
#define S_IDLE_SECONDS 30
#define S_DEFAULT_PORT 8787

struct _cask_dashboard_t {
    struct MHD_Daemon *daemon;
    cask_dashboard_view_fn *view;
    void *arg;
    char url [64];
};

//  Parses address into addr. Returns 0 or -1.
static int
s_parse_address (const char *address, struct sockaddr_in *addr)
{
    memset (addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    char host [64] = "";
    const char *colon = strrchr (address, ':');
    const char *port_text = colon ? colon + 1 : address;
    if (colon) {
        size_t len = (size_t) (colon - address);
        if (len >= sizeof host)
            return -1;
        memcpy (host, address, len);
        host [len] = 0;
    }
    char *end = NULL;
    errno = 0;
    long port = strtol (port_text, &end, 10);
    if (!*port_text || *end || errno || port < 0 || port > 65535)
        return -1;
    addr->sin_port = htons ((uint16_t) port);
    if (colon && (!*host || strcmp (host, "*") == 0))
        addr->sin_addr.s_addr = htonl (INADDR_ANY);
    else
    if (*host && strcmp (host, "localhost") != 0 && inet_pton (AF_INET, host, &addr->sin_addr) != 1)
        return -1;
    return 0;
}

static enum MHD_Result
s_respond (struct MHD_Connection *connection, unsigned status, const char *type,
           const void *data, size_t size, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *response = MHD_create_response_from_buffer (size, (void *) data, mode);
    if (!response) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free ((void *) data);
        return MHD_NO;
    }
    MHD_add_response_header (response, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header (response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result rc = MHD_queue_response (connection, status, response);
    MHD_destroy_response (response);
    return rc;
}

static enum MHD_Result
s_respond_text (struct MHD_Connection *connection, unsigned status, const char *text)
{
    return s_respond (connection, status, "text/plain; charset=utf-8", text, strlen (text),
                      MHD_RESPMEM_PERSISTENT);
}

static const cask_asset_t *
s_asset (const char *name)
{
    for (size_t i = 0; i < cask_nassets; i++)
        if (strcmp (cask_assets [i].name, name) == 0)
            return &cask_assets [i];
    return NULL;
}

//  Serves the file name, or 404.
static enum MHD_Result
s_serve_asset (struct MHD_Connection *connection, const char *name)
{
    const cask_asset_t *asset = strchr (name, '/') ? NULL : s_asset (name);
    if (!asset)
        return s_respond_text (connection, MHD_HTTP_NOT_FOUND, "not found\n");
    return s_respond (connection, MHD_HTTP_OK, asset->type, asset->data, asset->size,
                      MHD_RESPMEM_PERSISTENT);
}

//  A query argument as a number, or fallback when absent or not a number.
static double
s_argument (struct MHD_Connection *connection, const char *name, double fallback)
{
    const char *text = MHD_lookup_connection_value (connection, MHD_GET_ARGUMENT_KIND, name);
    char *end = NULL;
    double value = text ? strtod (text, &end) : fallback;
    return text && (end == text || *end || value < 0) ? fallback : value;
}

static enum MHD_Result
s_serve_view (cask_dashboard_t *self, struct MHD_Connection *connection, const char *name)
{
    const char *state = MHD_lookup_connection_value (connection, MHD_GET_ARGUMENT_KIND, "state");
    double since = s_argument (connection, "since", 0);
    double limit = s_argument (connection, "limit", 0);
    cask_view_t view = {
        cask_str (name), since < 1.8e13 ? (uint64_t) (since * 1e6) : UINT64_MAX,
        limit < UINT32_MAX ? (uint32_t) limit : UINT32_MAX, cask_str (state)
    };
    if (view.view.len > CASK_MAX_KEY || view.state.len > CASK_MAX_KEY)
        return s_respond_text (connection, MHD_HTTP_BAD_REQUEST, "argument too long\n");
    bool found = true;
    char *json = self->view (self->arg, &view, &found);
    if (!json)
        return s_respond_text (connection, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    return s_respond (connection, found ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND, "application/json",
                      json, strlen (json), MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result
s_on_request (void *cls, struct MHD_Connection *connection, const char *url,
              const char *method, const char *version, const char *upload_data,
              size_t *upload_data_size, void **req_cls)
{
    (void) version;
    (void) upload_data;
    (void) req_cls;
    cask_dashboard_t *self = (cask_dashboard_t *) cls;
    if (strcmp (method, MHD_HTTP_METHOD_GET) != 0 && strcmp (method, MHD_HTTP_METHOD_HEAD) != 0)
        return s_respond_text (connection, MHD_HTTP_METHOD_NOT_ALLOWED, "GET only\n");
    if (*upload_data_size)
        return s_respond_text (connection, MHD_HTTP_BAD_REQUEST, "no body expected\n");
    if (strcmp (url, "/") == 0) {
        struct MHD_Response *response =
            MHD_create_response_from_buffer (0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!response)
            return MHD_NO;
        MHD_add_response_header (response, MHD_HTTP_HEADER_LOCATION, "/status");
        enum MHD_Result rc = MHD_queue_response (connection, MHD_HTTP_FOUND, response);
        MHD_destroy_response (response);
        return rc;
    }
    if (strncmp (url, "/api/", 5) == 0)
        return s_serve_view (self, connection, url + 5);
    if (strncmp (url, "/static/", 8) == 0)
        return s_serve_asset (connection, url + 8);
    char page [64];
    if (strchr (url + 1, '/') || strchr (url + 1, '.')
    ||  snprintf (page, sizeof page, "%s.html", url + 1) >= (int) sizeof page)
        return s_respond_text (connection, MHD_HTTP_NOT_FOUND, "not found\n");
    return s_serve_asset (connection, page);
}

static struct MHD_Daemon *
s_start (cask_dashboard_t *self, struct sockaddr_in *addr)
{
    return MHD_start_daemon (MHD_USE_EPOLL, ntohs (addr->sin_port), NULL, NULL,
                             s_on_request, self,
                             MHD_OPTION_SOCK_ADDR, (struct sockaddr *) addr,
                             MHD_OPTION_CONNECTION_LIMIT, (unsigned) S_CONNECTIONS,
                             MHD_OPTION_CONNECTION_TIMEOUT, (unsigned) S_IDLE_SECONDS,
                             MHD_OPTION_END);
}

cask_dashboard_t *
cask_dashboard_new (const char *address, cask_dashboard_view_fn *view, void *arg,
                    const char **warning, char *error, size_t size)
{
    *warning = NULL;
    struct sockaddr_in addr;
    if (s_parse_address (address, &addr)) {
        snprintf (error, size, "bad dashboard address '%s' (HOST:PORT, :PORT or PORT)", address);
        return NULL;
    }
    cask_dashboard_t *self = (cask_dashboard_t *) calloc (1, sizeof (cask_dashboard_t));
    if (!self) {
        snprintf (error, size, "out of memory");
        return NULL;
    }
    self->view = view;
    self->arg = arg;
    self->daemon = s_start (self, &addr);
    if (!self->daemon && addr.sin_port) {
        *warning = "its port is in use: serving on another";
        addr.sin_port = 0;
        self->daemon = s_start (self, &addr);
    }
    const union MHD_DaemonInfo *info = self->daemon
        ? MHD_get_daemon_info (self->daemon, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (!info) {
        snprintf (error, size, "cannot serve the dashboard on %s: %s", address, strerror (errno));
        cask_dashboard_destroy (&self);
        return NULL;
    }
    char host [INET_ADDRSTRLEN] = "127.0.0.1";
    if (addr.sin_addr.s_addr != htonl (INADDR_ANY))
        inet_ntop (AF_INET, &addr.sin_addr, host, sizeof host);
    snprintf (self->url, sizeof self->url, "http://%s:%u/status", host, (unsigned) info->port);
    return self;
}

void
cask_dashboard_destroy (cask_dashboard_t **self_p)
{
    cask_dashboard_t *self = *self_p;
    if (!self)
        return;
    if (self->daemon)
        MHD_stop_daemon (self->daemon);
    free (self);
    *self_p = NULL;
}

int
cask_dashboard_fd (cask_dashboard_t *self)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info (self->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    return info ? info->epoll_fd : -1;
}

int64_t
cask_dashboard_timeout (cask_dashboard_t *self)
{
    MHD_UNSIGNED_LONG_LONG timeout = 0;
    if (MHD_get_timeout (self->daemon, &timeout) != MHD_YES)
        return -1;
    return timeout > INT64_MAX ? INT64_MAX : (int64_t) timeout;
}

void
cask_dashboard_serve (cask_dashboard_t *self)
{
    MHD_run (self->daemon);
}

const char *
cask_dashboard_url (cask_dashboard_t *self)
{
    return self->url;
}
