/*  tutorial_client.c - helpers shared by the tutorial examples. */
#include "tutorial_client.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int s_failures;

void
tutorial_fail (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "FAILED: ");
    vfprintf (stderr, format, args);
    fprintf (stderr, "\n");
    va_end (args);
    s_failures++;
}

int
tutorial_failures (void)
{
    return s_failures;
}

double
tutorial_now (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (double) now.tv_sec + (double) now.tv_nsec / 1e9;
}

//  libtutorial.so in the directory of the running executable
static const char *
s_library_beside_executable (char *path, size_t size)
{
    ssize_t length = readlink ("/proc/self/exe", path, size - 1);
    if (length <= 0)
        return "libtutorial.so";
    path [length] = 0;
    char *slash = strrchr (path, '/');
    if (slash)
        slash [1] = 0;
    strncat (path, "libtutorial.so", size - strlen (path) - 1);
    return path;
}

//  The notebook's `client` cell: the cluster's summary, one line a worker.
static void
s_print_cluster (cask_client_t *client)
{
    cask_cluster_info_t *info = cask_client_info (client, 5000);
    char summary [4096];
    if (info && cask_cluster_info_print (info, summary, sizeof summary) >= 0)
        printf ("client = %s\n", summary);
    else
        printf ("client = <Client: '%s' workers=%zu>\n", cask_client_address (client),
                cask_client_nworkers (client));
    cask_cluster_info_destroy (&info);
}

cask_client_t *
tutorial_connect (int argc, char **argv)
{
    const char *address = argc > 1 ? argv [1] : NULL;
    char beside [PATH_MAX];
    const char *library = argc > 2 ? argv [2] : getenv ("CASK_TUTORIAL_LIB");
    if (!library || !*library)
        library = s_library_beside_executable (beside, sizeof beside);

    cask_client_t *client = cask_client_new (address, 30000);
    if (!client) {
        tutorial_fail ("%s", cask_client_last_error ());
        return NULL;
    }
    if (cask_client_wait_for_workers (client, 1, 30000)
    ||  cask_client_register (client, library, 30000)) {
        tutorial_fail ("%s", cask_client_error (client));
        cask_client_destroy (&client);
        return NULL;
    }
    s_print_cluster (client);
    return client;
}

void
tutorial_print_future (const char *label, cask_future_t *future)
{
    char text [512];
    cask_future_print (future, text, sizeof text);
    printf ("%s = %s\n", label, text);
}

void
tutorial_print_futures (const char *label, cask_future_t **futures, size_t count)
{
    printf ("%s = [\n", label);
    for (size_t index = 0; index < count; index++) {
        char text [512];
        cask_future_print (futures [index], text, sizeof text);
        printf ("    %s%s\n", text, index + 1 < count ? "," : "");
    }
    printf ("]\n");
}

void
tutorial_wait_done (cask_future_t *future)
{
    double deadline = tutorial_now () + 10;
    while (cask_future_status (future) == CASK_PENDING && tutorial_now () < deadline)
        usleep (10000);
}

int64_t
tutorial_expect (const char *label, cask_future_t *future, int64_t expected)
{
    int64_t result;
    if (cask_future_int64 (future, TUTORIAL_TIMEOUT_MS, &result)) {
        const char *error = cask_future_error (future);
        tutorial_fail ("%s: %s", label, *error ? error : "the result is not an int64");
        return -1;
    }
    printf ("%s = %lld\n", label, (long long) result);
    if (result != expected)
        tutorial_fail ("%s is %lld, expected %lld", label, (long long) result,
                       (long long) expected);
    return result;
}
