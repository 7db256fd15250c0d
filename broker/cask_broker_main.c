/*  cask_broker_main.c - the cask-broker command.

    cask-broker [--bind ENDPOINT] [--endpoint-file FILE] [--dashboard ADDRESS|off]
                [--verbose] [--log-format text|json] [--log-level LEVEL] [--help]
                [--curve-cert FILE --curve-allow DIR]

    Binds, says where on stdout ("cask-broker: listening on tcp://...") and,
    if asked, in FILE (written whole, then renamed into place, so a reader
    never sees half of it), then serves until SIGINT or SIGTERM.
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cask_broker.h"
#include "cask_dashboard.h"
#include "cask_log.h"
#include "cask_proto.h"

static volatile sig_atomic_t s_stop = 0;

static void
s_on_signal (int signum)
{
    (void) signum;
    s_stop = 1;
}

static void
s_usage (FILE *stream)
{
    fprintf (stream,
        "usage: cask-broker [--bind ENDPOINT] [--endpoint-file FILE] [--heartbeat MS]\n"
        "                   [--dashboard ADDRESS|off] [--allowed-failures N]\n"
        "                   [--curve-cert FILE --curve-allow DIR] [--verbose]\n"
        "                   [--log-format text|json] [--log-level LEVEL] [--help]\n"
        "  --bind ENDPOINT       where to listen (default " CASK_BROKER_DEFAULT_BIND ";\n"
        "                        tcp://127.0.0.1:* picks a free port)\n"
        "  --endpoint-file FILE  write the endpoint bound to into FILE\n"
        "  --dashboard ADDRESS   serve the dashboard on HOST:PORT, :PORT (every interface)\n"
        "                        or PORT (default " CASK_DASHBOARD_DEFAULT "; port 0 or a port\n"
        "                        in use takes a free one); off serves none\n"
        "  --heartbeat MS        heartbeat workers every MS milliseconds (default %d); a\n"
        "                        worker silent for %d of its own intervals is taken for dead\n"
        "  --allowed-failures N  a task running on N workers that died fails (default 3)\n"
        "  --curve-cert FILE     use CurveZMQ: encrypt all traffic, with the key pair in\n"
        "                        FILE and FILE_secret (made by cask-keygen); needs\n"
        "  --curve-allow DIR     the public certificates of the clients and workers let\n"
        "                        in (any other key is refused before it says a word)\n"
        "  --verbose             log every message\n"
        "  --log-format FORMAT   log lines as text (default) or json, one object a line\n"
        "  --log-level LEVEL     log error, warning, info (default) or debug lines and\n"
        "                        those above (overrides --verbose)\n", CASK_HEARTBEAT_MS, CASK_HEARTBEAT_LIVENESS);
}

static int
s_write_endpoint (const char *path, const char *endpoint)
{
    size_t size = strlen (path) + 5;
    char *temporary = malloc (size);
    if (!temporary)
        return -1;
    snprintf (temporary, size, "%s.tmp", path);
    FILE *file = fopen (temporary, "w");
    int rc = -1;
    if (file) {
        bool written = fprintf (file, "%s\n", endpoint) > 0;
        if (fclose (file) == 0 && written)
            rc = rename (temporary, path);
        if (rc)
            remove (temporary);
    }
    free (temporary);
    return rc;
}

//  The broker's CurveZMQ: its key pair and the keys it lets in, both
//  needed. NULL after saying what is wrong.
static cask_curve_t *
s_curve_new (const char *cert, const char *allow)
{
    if (!cert || !allow) {
        fprintf (stderr, "E: cask-broker: --curve-cert and --curve-allow go together\n");
        return NULL;
    }
    cask_curve_t *curve = cask_curve_new ("cask-broker");
    if (curve && cask_curve_load (curve, cert) == 0 && cask_curve_set_allowed (curve, allow) == 0)
        return curve;
    fprintf (stderr, "E: cask-broker: %s\n", curve ? cask_curve_error (curve) : "out of memory");
    cask_curve_destroy (&curve);
    return NULL;
}

static void
s_catch_signals (void)
{
    struct sigaction action;
    memset (&action, 0, sizeof action);
    action.sa_handler = s_on_signal;
    sigemptyset (&action.sa_mask);
    sigaction (SIGINT, &action, NULL);
    sigaction (SIGTERM, &action, NULL);
}

int
main (int argc, char *argv [])
{
    const char *bind = CASK_BROKER_DEFAULT_BIND;
    const char *endpoint_file = NULL;
    const char *dashboard = CASK_DASHBOARD_DEFAULT;
    bool verbose = false;
    long heartbeat = CASK_HEARTBEAT_MS;
    long allowed_failures = 3;
    const char *curve_cert = NULL, *curve_allow = NULL;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (strcmp (argv [i], "--bind") == 0 && i + 1 < argc)
            bind = argv [++i];
        else
        if (strcmp (argv [i], "--heartbeat") == 0 && i + 1 < argc
        &&  (heartbeat = strtol (argv [i + 1], &end, 10)) >= 10 && heartbeat <= 600000 && !*end)
            i++;
        else
        if (strcmp (argv [i], "--allowed-failures") == 0 && i + 1 < argc
        &&  (allowed_failures = strtol (argv [i + 1], &end, 10)) >= 1 && allowed_failures <= 255
        &&  !*end)
            i++;
        else
        if (strcmp (argv [i], "--endpoint-file") == 0 && i + 1 < argc)
            endpoint_file = argv [++i];
        else
        if (strcmp (argv [i], "--dashboard") == 0 && i + 1 < argc)
            dashboard = strcmp (argv [++i], "off") == 0 ? NULL : argv [i];
        else
        if (strcmp (argv [i], "--curve-cert") == 0 && i + 1 < argc)
            curve_cert = argv [++i];
        else
        if (strcmp (argv [i], "--curve-allow") == 0 && i + 1 < argc)
            curve_allow = argv [++i];
        else
        if (strcmp (argv [i], "--verbose") == 0)
            verbose = true;
        else
        if (strcmp (argv [i], "--log-format") == 0 && i + 1 < argc
        &&  cask_log_set_format (argv [i + 1]) == 0)
            i++;
        else
        if (strcmp (argv [i], "--log-level") == 0 && i + 1 < argc
        &&  cask_log_set_level (argv [i + 1]) == 0)
            i++;
        else
        if (strcmp (argv [i], "--help") == 0) {
            s_usage (stdout);
            return EXIT_SUCCESS;
        }
        else {
            fprintf (stderr, "cask-broker: bad argument '%s'\n", argv [i]);
            s_usage (stderr);
            return EXIT_FAILURE;
        }
    }
    cask_curve_t *curve = NULL;
    if ((curve_cert || curve_allow) && !(curve = s_curve_new (curve_cert, curve_allow)))
        return EXIT_FAILURE;
    s_catch_signals ();
    cask_broker_t *broker = cask_broker_new_secure (bind, verbose, curve);
    if (!broker) {
        cask_curve_destroy (&curve);
        return EXIT_FAILURE;
    }
    if (cask_broker_set_dashboard (broker, dashboard)) {
        cask_broker_destroy (&broker);
        cask_curve_destroy (&curve);
        return EXIT_FAILURE;
    }
    cask_broker_set_heartbeat (broker, (unsigned) heartbeat);
    cask_broker_set_allowed_failures (broker, (unsigned) allowed_failures);
    printf ("cask-broker: listening on %s\n", cask_broker_endpoint (broker));
    if (dashboard)
        printf ("cask-broker: dashboard at %s\n", cask_broker_dashboard_url (broker));
    if (curve)
        printf ("cask-broker: CurveZMQ with the key %s, letting in the keys in %s\n",
                cask_curve_public_key (curve), curve_allow);
    fflush (stdout);
    if (endpoint_file && s_write_endpoint (endpoint_file, cask_broker_endpoint (broker))) {
        fprintf (stderr, "E: cask-broker: cannot write %s\n", endpoint_file);
        cask_broker_destroy (&broker);
        cask_curve_destroy (&curve);
        return EXIT_FAILURE;
    }
    int rc = cask_broker_run (broker, &s_stop);
    cask_broker_destroy (&broker);
    cask_curve_destroy (&curve);
    if (endpoint_file)
        remove (endpoint_file);
    return rc ? EXIT_FAILURE : EXIT_SUCCESS;
}
