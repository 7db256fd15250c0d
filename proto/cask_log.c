/*  cask_log.c - the log of a cask process (see cask_log.h).

    The line is built in a buffer on the caller's stack and handed to stdio
    in one fputs, which takes the stream's lock: that, and localtime_r, is
    all the thread safety it needs. A line longer than the buffer is cut.
*/
#include "cask_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S_LINE_MAX 2048

struct _cask_log_t {
    char *name;
    cask_log_level_t verbosity;
    FILE *stream;
};

cask_log_t *
cask_log_new (const char *name, cask_log_level_t verbosity)
{
    cask_log_t *self = (cask_log_t *) calloc (1, sizeof (cask_log_t));
    if (!self)
        return NULL;
    self->name = strdup (name ? name : "cask");
    if (!self->name) {
        free (self);
        return NULL;
    }
    self->verbosity = verbosity;
    self->stream = stderr;
    return self;
}

void
cask_log_destroy (cask_log_t **self_p)
{
    if (self_p && *self_p) {
        free ((*self_p)->name);
        free (*self_p);
        *self_p = NULL;
    }
}

bool
cask_log_enabled (cask_log_t *self, cask_log_level_t level)
{
    return self && level <= self->verbosity;
}

//  "W: 2026-11-22 05:09:03.123 name: " into line; returns its length.
static size_t
s_prefix (cask_log_t *self, cask_log_level_t level, char *line, size_t size)
{
    static const char letters [] = "EWID";
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    struct tm tm;
    char when [32] = "";
    strftime (when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r (&now.tv_sec, &tm));
    int length = snprintf (line, size, "%c: %s.%03ld %s: ", letters [level], when,
                           now.tv_nsec / 1000000, self->name);
    return length < 0 ? 0 : (size_t) length < size ? (size_t) length : size - 1;
}

void
cask_log_print (cask_log_t *self, cask_log_level_t level, const char *format, ...)
{
    if (!cask_log_enabled (self, level))
        return;
    char line [S_LINE_MAX];
    size_t length = s_prefix (self, level, line, sizeof line - 1);
    va_list args;
    va_start (args, format);
    int body = vsnprintf (line + length, sizeof line - 1 - length, format, args);
    va_end (args);
    if (body > 0)
        length += (size_t) body < sizeof line - 1 - length ? (size_t) body
                                                          : sizeof line - 2 - length;
    line [length++] = '\n';
    line [length] = 0;
    fputs (line, self->stream);
}
