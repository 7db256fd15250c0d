/*  cask_log.h - the log of a cask process (broker, worker).

    One line per event on stderr, with its level, the time to the
    millisecond and the name of whoever logs, as text (local time):

        W: 2026-11-22 05:09:03.123 cask-broker: could not send TASK to worker 2: ...

    or, with CASK_LOG_FORMAT=json in the environment, as one JSON object
    per line (UTC; the message JSON-escaped, bytes that are not UTF-8
    replaced by U+FFFD) for log collectors:

        {"time": "2026-11-22T05:09:03.123Z", "level": "warning", "process": "cask-broker", "pid": 123, "message": "could not send TASK to worker 2: ..."}

    CASK_LOG_LEVEL=error|warning|info|debug in the environment replaces the
    verbosity the program asks for. Both are read when a log is made;
    cask-broker and cask-worker set them from --log-format and --log-level
    (cask_log_set_format, cask_log_set_level), so a nanny's worker process
    and anything else they start log the same way.

    A line is formatted whole, at most 4096 bytes (a longer one is cut),
    and written in one write(), so lines from several threads or processes
    sharing a pipe never mix. Lines above the log's verbosity are dropped
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

//  Creates a log for name (copied) that prints levels up to verbosity
//  ($CASK_LOG_LEVEL instead when set to a level's name), as text or, with
//  $CASK_LOG_FORMAT=json, as JSON lines. NULL when out of memory.
cask_log_t *cask_log_new (const char *name, cask_log_level_t verbosity);
//  Frees the log and nulls *self_p. Safe on NULL and twice.
void cask_log_destroy (cask_log_t **self_p);

//  True when a line of level would be printed.
bool cask_log_enabled (cask_log_t *self, cask_log_level_t level);
//  Prints one line of level (printf style; no newline needed). Thread-safe.
void cask_log_print (cask_log_t *self, cask_log_level_t level, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

//  The level called name ("error", "warning", "info", "debug") into
//  *level. Returns 0, or -1 when name is none of those.
int cask_log_level_parse (const char *name, cask_log_level_t *level);
//  For a command line option: sets $CASK_LOG_FORMAT to format, "text" or
//  "json", for the logs made from now on, by this process and those it
//  starts. Returns 0, or -1 (nothing set) when format is neither. Call it
//  before other threads run (setenv).
int cask_log_set_format (const char *format);
//  Likewise $CASK_LOG_LEVEL, to a level's name. Returns 0 or -1.
int cask_log_set_level (const char *level);

#endif
