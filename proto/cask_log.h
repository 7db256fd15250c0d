/*  cask_log.h - the log of a cask process (broker, worker).

    One line per event on stderr, with its level, the local time to the
    millisecond and the name of whoever logs:

        W: 2026-11-22 05:09:03.123 cask-broker: could not send TASK to worker 2: ...

    A line is formatted whole and written in one call, so lines from
    several threads never mix. Lines above the log's verbosity are dropped
    before they are formatted. A NULL log drops everything: the client
    library makes none, so nothing of cask writes to stderr in a client
    program unless it asks for it.
*/
#ifndef CASK_LOG_H_INCLUDED
#define CASK_LOG_H_INCLUDED

#include <stdbool.h>

//  Levels, most severe first; a log prints its verbosity and all above it.
typedef enum {
    CASK_LOG_ERROR = 0,         //  E: something failed
    CASK_LOG_WARNING = 1,       //  W: a peer did something wrong, we carry on
    CASK_LOG_INFO = 2,          //  I: what happens, in a line or two a minute
    CASK_LOG_DEBUG = 3          //  D: every message
} cask_log_level_t;

typedef struct _cask_log_t cask_log_t;

//  Creates a log for name (copied) that prints levels up to verbosity, or
//  NULL when out of memory.
cask_log_t *cask_log_new (const char *name, cask_log_level_t verbosity);
//  Frees the log and nulls *self_p. Safe on NULL and twice.
void cask_log_destroy (cask_log_t **self_p);

//  True when a line of level would be printed.
bool cask_log_enabled (cask_log_t *self, cask_log_level_t level);
//  Prints one line of level (printf style; no newline needed). Thread-safe.
void cask_log_print (cask_log_t *self, cask_log_level_t level, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

#endif
