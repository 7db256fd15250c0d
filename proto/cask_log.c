/*  cask_log.c - the log of a cask process (see cask_log.h).

    The line is built in a buffer on the caller's stack and handed to the
    kernel in one write(), which a pipe keeps whole up to PIPE_BUF (4096
    bytes, the longest line): that, and localtime_r / gmtime_r, is all the
    thread safety it needs. The message is formatted first, then copied
    into the line (escaped, for JSON); what does not fit is cut, in JSON
    before the first character that does not fit whole, so that the line
    is always one valid object.
*/
#include "cask_log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S_LINE_MAX 4096         //  PIPE_BUF on Linux: one write, never mixed
#define S_MESSAGE_MAX 2048      //  the message as formatted, before escaping
#define S_TAIL 3                //  room kept for the end: "}\n of a JSON line

struct _cask_log_t {
    char *name;
    cask_log_level_t verbosity;
    bool json;                  //  $CASK_LOG_FORMAT=json
    int fd;
};

//  By level, most severe first.
static const char *s_level_names [] = { "error", "warning", "info", "debug" };

//  A line being built; its length stays under S_LINE_MAX - S_TAIL until
//  the end is put on.
typedef struct {
    char text [S_LINE_MAX];
    size_t length;
} s_line_t;

int
cask_log_level_parse (const char *name, cask_log_level_t *level)
{
    for (int index = CASK_LOG_ERROR; name && index <= CASK_LOG_DEBUG; index++)
        if (strcmp (name, s_level_names [index]) == 0) {
            *level = (cask_log_level_t) index;
            return 0;
        }
    return -1;
}

int
cask_log_set_format (const char *format)
{
    if (!format || (strcmp (format, "text") && strcmp (format, "json")))
        return -1;
    return setenv ("CASK_LOG_FORMAT", format, 1);
}

int
cask_log_set_level (const char *level)
{
    cask_log_level_t parsed;
    if (cask_log_level_parse (level, &parsed))
        return -1;
    return setenv ("CASK_LOG_LEVEL", level, 1);
}

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
    //  An unknown level's name leaves the program's own verbosity
    const char *level = getenv ("CASK_LOG_LEVEL");
    if (level)
        cask_log_level_parse (level, &verbosity);
    const char *format = getenv ("CASK_LOG_FORMAT");
    self->json = format && strcmp (format, "json") == 0;
    self->verbosity = verbosity;
    self->fd = STDERR_FILENO;
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

//  Appends as much of bytes as fits.
static void
s_put (s_line_t *line, const char *bytes, size_t size)
{
    size_t room = S_LINE_MAX - S_TAIL - line->length;
    if (size > room)
        size = room;
    memcpy (line->text + line->length, bytes, size);
    line->length += size;
}

//  Appends what snprintf made of a piece (its return value length).
static void
s_put_printed (s_line_t *line, const char *piece, int length, size_t size)
{
    if (length > 0)
        s_put (line, piece, (size_t) length < size ? (size_t) length : size - 1);
}

//  Length of the UTF-8 sequence that bytes (size of them) start with, or 0
//  when they start with none (RFC 3629: no overlong forms, no surrogates,
//  nothing past U+10FFFF, nothing cut short).
static size_t
s_utf8_length (const unsigned char *bytes, size_t size)
{
    unsigned char lead = bytes [0];
    size_t length = lead < 0x80 ? 1
                  : lead >= 0xC2 && lead <= 0xDF ? 2
                  : lead >= 0xE0 && lead <= 0xEF ? 3
                  : lead >= 0xF0 && lead <= 0xF4 ? 4 : 0;
    if (length == 0 || length > size)
        return 0;
    //  The second byte's range is narrower after these leads
    unsigned char low = lead == 0xE0 ? 0xA0 : lead == 0xF0 ? 0x90 : 0x80;
    unsigned char high = lead == 0xED ? 0x9F : lead == 0xF4 ? 0x8F : 0xBF;
    for (size_t index = 1; index < length; index++) {
        if (bytes [index] < (index == 1 ? low : 0x80)
        ||  bytes [index] > (index == 1 ? high : 0xBF))
            return 0;
    }
    return length;
}

//  The JSON escape of character c (a quote, a backslash or a control
//  character) into escape; returns its length.
static size_t
s_escape (unsigned char c, char *escape, size_t size)
{
    char letter = c == '"' ? '"' : c == '\\' ? '\\' : c == '\n' ? 'n' : c == '\t' ? 't'
                : c == '\r' ? 'r' : c == '\b' ? 'b' : c == '\f' ? 'f' : 0;
    int length = letter ? snprintf (escape, size, "\\%c", letter)
                        : snprintf (escape, size, "\\u%04x", c);
    return length > 0 ? (size_t) length : 0;
}

//  Appends text as the inside of a JSON string: quote, backslash and
//  control characters escaped, each byte that is not part of a UTF-8
//  character as U+FFFD. Stops before a character that does not fit whole.
static void
s_put_json (s_line_t *line, const char *text)
{
    const unsigned char *bytes = (const unsigned char *) text;
    size_t size = strlen (text);
    while (size) {
        char escape [8];
        const char *piece = (const char *) bytes;
        size_t used = s_utf8_length (bytes, size), length = used;
        if (used == 0) {
            piece = "\\ufffd";
            length = 6;
            used = 1;
        }
        else
        if (*bytes == '"' || *bytes == '\\' || *bytes < 0x20) {
            length = s_escape (*bytes, escape, sizeof escape);
            piece = escape;
        }
        if (line->length + length > S_LINE_MAX - S_TAIL)
            return;
        s_put (line, piece, length);
        bytes += used;
        size -= used;
    }
}

//  W: 2026-11-22 05:09:03.123 name: message
static void
s_text_line (cask_log_t *self, cask_log_level_t level, const struct timespec *now,
             const char *message, s_line_t *line)
{
    struct tm tm;
    char when [32] = "";
    strftime (when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime_r (&now->tv_sec, &tm));
    char prefix [320];
    int length = snprintf (prefix, sizeof prefix, "%c: %s.%03ld %s: ", "EWID" [level], when,
                           now->tv_nsec / 1000000, self->name);
    s_put_printed (line, prefix, length, sizeof prefix);
    s_put (line, message, strlen (message));
    line->text [line->length++] = '\n';
}

//  {"time": "2026-11-22T05:09:03.123Z", "level": "warning", "process":
//  "name", "pid": 123, "message": "message"}
static void
s_json_line (cask_log_t *self, cask_log_level_t level, const struct timespec *now,
             const char *message, s_line_t *line)
{
    struct tm tm;
    char when [32] = "";
    strftime (when, sizeof when, "%Y-%m-%dT%H:%M:%S", gmtime_r (&now->tv_sec, &tm));
    char piece [128];
    int length = snprintf (piece, sizeof piece,
                           "{\"time\": \"%s.%03ldZ\", \"level\": \"%s\", \"process\": \"",
                           when, now->tv_nsec / 1000000, s_level_names [level]);
    s_put_printed (line, piece, length, sizeof piece);
    s_put_json (line, self->name);
    length = snprintf (piece, sizeof piece, "\", \"pid\": %ld, \"message\": \"", (long) getpid ());
    s_put_printed (line, piece, length, sizeof piece);
    s_put_json (line, message);
    memcpy (line->text + line->length, "\"}\n", S_TAIL);
    line->length += S_TAIL;
}

//  All of bytes to fd, in one write unless a signal or a full disk cuts it.
static void
s_write (int fd, const char *bytes, size_t size)
{
    while (size) {
        ssize_t written = write (fd, bytes, size);
        if (written < 0 && errno == EINTR)
            continue;
        if (written <= 0)
            return;             //  nowhere to log to: nothing more to do
        bytes += written;
        size -= (size_t) written;
    }
}

void
cask_log_print (cask_log_t *self, cask_log_level_t level, const char *format, ...)
{
    if (!cask_log_enabled (self, level))
        return;
    int saved_errno = errno;    //  callers may log, then look at errno
    char message [S_MESSAGE_MAX];
    va_list args;
    va_start (args, format);
    if (vsnprintf (message, sizeof message, format, args) < 0)
        message [0] = 0;
    va_end (args);
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    s_line_t line;
    line.length = 0;
    if (self->json)
        s_json_line (self, level, &now, message, &line);
    else
        s_text_line (self, level, &now, message, &line);
    s_write (self->fd, line.text, line.length);
    errno = saved_errno;
}
