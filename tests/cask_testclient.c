/*  cask_testclient.c - see cask_testclient.h. */
#include "cask_testclient.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static const char *s_name = "client";
static struct timespec s_start;
static int s_failures;

void
cask_testclient_start (const char *name)
{
    s_name = name;
    clock_gettime (CLOCK_MONOTONIC, &s_start);
}

int64_t
cask_testclient_elapsed_ms (void)
{
    struct timespec now;
    clock_gettime (CLOCK_MONOTONIC, &now);
    return (int64_t) (now.tv_sec - s_start.tv_sec) * 1000
         + (now.tv_nsec - s_start.tv_nsec) / 1000000;
}

void
cask_testclient_fail (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    fprintf (stderr, "%s: %6lld ms: ", s_name, (long long) cask_testclient_elapsed_ms ());
    vfprintf (stderr, format, args);
    fputc ('\n', stderr);
    va_end (args);
    s_failures++;
}

int
cask_testclient_failures (void)
{
    return s_failures;
}

int64_t
cask_testclient_arg (const char *text, const char *what, int64_t least)
{
    char *end;
    long long value = strtoll (text, &end, 10);
    if (*text == 0 || *end || value < least) {
        fprintf (stderr, "%s: %s must be a number >= %lld, not \"%s\"\n",
                 s_name, what, (long long) least, text);
        exit (2);
    }
    return value;
}
