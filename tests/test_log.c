/*  test_log.c - unit tests of the log of cask processes (proto/cask_log.c):
    its JSON lines (what log collectors read: each line one object with
    the fields README names, properly escaped, cut without breaking it,
    never mixed between threads), its levels, and the text lines of old.

    Each test points stderr at a pipe, logs, puts stderr back and reads
    what came through the pipe; the JSON is read back with cJSON.
*/
#define _GNU_SOURCE             //  strptime, timegm
#include <check.h>
#include "cask_testutil.h"
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cask_log.h"

#define S_THREADS 4
#define S_LINES_EACH 50

//  stderr on a pipe, and the stderr it replaced.
typedef struct {
    int saved;
    int pipe [2];
} s_capture_t;

static void
s_capture_start (s_capture_t *self)
{
    ck_assert_int_eq (pipe (self->pipe), 0);
    self->saved = dup (STDERR_FILENO);
    ck_assert_int_ge (self->saved, 0);
    ck_assert_int_eq (dup2 (self->pipe [1], STDERR_FILENO), STDERR_FILENO);
}

//  Puts stderr back and returns all that was written to the pipe (the
//  caller frees it). What a test writes must fit in the pipe (64 KiB).
static char *
s_capture_end (s_capture_t *self)
{
    ck_assert_int_eq (dup2 (self->saved, STDERR_FILENO), STDERR_FILENO);
    close (self->saved);
    close (self->pipe [1]);
    size_t size = 0, capacity = 65536;
    char *text = malloc (capacity + 1);
    ck_assert_ptr_nonnull (text);
    ssize_t got;
    while ((got = read (self->pipe [0], text + size, capacity - size)) > 0)
        size += (size_t) got;
    close (self->pipe [0]);
    text [size] = 0;
    return text;
}

//  A log of format ("text" or "json") and level (NULL: none in the
//  environment), made as cask-broker makes its own.
static cask_log_t *
s_log_new (const char *format, const char *level, cask_log_level_t verbosity)
{
    ck_assert_int_eq (cask_log_set_format (format), 0);
    if (level)
        ck_assert_int_eq (cask_log_set_level (level), 0);
    else
        unsetenv ("CASK_LOG_LEVEL");
    cask_log_t *log = cask_log_new ("cask-test", verbosity);
    ck_assert_ptr_nonnull (log);
    return log;
}

//  Reads one JSON line (up to its newline, which must be there), checks
//  the fields every line has, and returns it; *next is the next line.
static cJSON *
s_parse_line (const char *line, const char **next)
{
    const char *end = strchr (line, '\n');
    ck_assert_msg (end != NULL, "no newline after \"%s\"", line);
    ck_assert_uint_le ((size_t) (end - line) + 1, 4096);
    cJSON *object = cJSON_ParseWithLength (line, (size_t) (end - line));
    ck_assert_msg (object != NULL, "not JSON: %.*s", (int) (end - line), line);
    ck_assert (cJSON_IsObject (object));
    ck_assert_int_eq (cJSON_GetArraySize (object), 5);
    const char *when = cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (object, "time"));
    ck_assert_ptr_nonnull (when);
    struct tm tm;
    memset (&tm, 0, sizeof tm);
    const char *rest = strptime (when, "%Y-%m-%dT%H:%M:%S", &tm);
    ck_assert_msg (rest && strlen (rest) == 5 && rest [0] == '.' && rest [4] == 'Z',
                   "time \"%s\" is not YYYY-MM-DDTHH:MM:SS.mmmZ", when);
    ck_assert_int_le (labs ((long) (timegm (&tm) - time (NULL))), 5);
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive (object, "pid");
    ck_assert (cJSON_IsNumber (pid));
    ck_assert_int_eq (pid->valueint, getpid ());
    ck_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (object, "process")),
                      "cask-test");
    ck_assert_ptr_nonnull (cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (object,
                                                                                    "message")));
    *next = end + 1;
    return object;
}

static const char *
s_field (cJSON *object, const char *name)
{
    return cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (object, name));
}

START_TEST (test_json_line)
{
    cask_log_t *log = s_log_new ("json", NULL, CASK_LOG_WARNING);
    s_capture_t capture;
    s_capture_start (&capture);
    cask_log_print (log, CASK_LOG_WARNING, "worker %d said \"%s\"", 2,
                    "a \\ path\nnext line\ttab \x01 caf\xc3\xa9 \xff \xe2\x82 end");
    char *text = s_capture_end (&capture);
    const char *next;
    cJSON *object = s_parse_line (text, &next);
    ck_assert_str_eq (next, "");                    //  one line, one object
    ck_assert_str_eq (s_field (object, "level"), "warning");
    //  Not UTF-8: a byte alone (ff) and a character cut short (e2 82)
    ck_assert_str_eq (s_field (object, "message"),
                      "worker 2 said \"a \\ path\nnext line\ttab \x01 caf\xc3\xa9 "
                      "\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd end\"");
    cJSON_Delete (object);
    free (text);
    cask_log_destroy (&log);
    ck_assert_ptr_null (log);
}
END_TEST

START_TEST (test_levels)
{
    cask_log_t *log = s_log_new ("json", NULL, CASK_LOG_INFO);
    ck_assert (cask_log_enabled (log, CASK_LOG_INFO));
    ck_assert (!cask_log_enabled (log, CASK_LOG_DEBUG));
    s_capture_t capture;
    s_capture_start (&capture);
    cask_log_print (log, CASK_LOG_DEBUG, "dropped");
    cask_log_print (log, CASK_LOG_ERROR, "an error");
    cask_log_print (log, CASK_LOG_INFO, "some news");
    cask_log_destroy (&log);
    //  $CASK_LOG_LEVEL overrides what the program asks for
    log = s_log_new ("json", "debug", CASK_LOG_WARNING);
    cask_log_print (log, CASK_LOG_DEBUG, "a detail");
    cask_log_destroy (&log);
    log = s_log_new ("json", "error", CASK_LOG_DEBUG);
    cask_log_print (log, CASK_LOG_WARNING, "dropped too");
    cask_log_destroy (&log);
    char *text = s_capture_end (&capture);
    const char *levels [] = { "error", "info", "debug" };
    const char *messages [] = { "an error", "some news", "a detail" };
    const char *line = text;
    for (int index = 0; index < 3; index++) {
        cJSON *object = s_parse_line (line, &line);
        ck_assert_str_eq (s_field (object, "level"), levels [index]);
        ck_assert_str_eq (s_field (object, "message"), messages [index]);
        cJSON_Delete (object);
    }
    ck_assert_str_eq (line, "");
    free (text);
    //  Names that are no level or format are refused; NULL logs nothing
    ck_assert_int_eq (cask_log_set_level ("loud"), -1);
    ck_assert_int_eq (cask_log_set_format ("xml"), -1);
    ck_assert_str_eq (getenv ("CASK_LOG_FORMAT"), "json");
    cask_log_level_t level = CASK_LOG_INFO;
    ck_assert_int_eq (cask_log_level_parse ("warning", &level), 0);
    ck_assert_int_eq (level, CASK_LOG_WARNING);
    ck_assert (!cask_log_enabled (NULL, CASK_LOG_ERROR));
    cask_log_print (NULL, CASK_LOG_ERROR, "nowhere");
}
END_TEST

//  A message longer than a line is cut before a character that does not
//  fit whole: the line stays one object under 4096 bytes.
START_TEST (test_long_line)
{
    cask_log_t *log = s_log_new ("json", NULL, CASK_LOG_INFO);
    char message [6000];
    memset (message, '"', sizeof message - 1);      //  two bytes each, escaped
    message [sizeof message - 1] = 0;
    s_capture_t capture;
    s_capture_start (&capture);
    cask_log_print (log, CASK_LOG_INFO, "%s", message);
    memset (message, 1, sizeof message - 1);        //  six bytes each: \u0001
    cask_log_print (log, CASK_LOG_INFO, "%s", message);
    char *text = s_capture_end (&capture);
    const char *line = text;
    cJSON *object = s_parse_line (line, &line);
    const char *cut = s_field (object, "message");
    ck_assert_uint_gt (strlen (cut), 1900);
    ck_assert_uint_eq (strspn (cut, "\""), strlen (cut));
    cJSON_Delete (object);
    object = s_parse_line (line, &line);
    cut = s_field (object, "message");
    ck_assert_uint_gt (strlen (cut), 600);
    ck_assert_uint_eq (strspn (cut, "\x01"), strlen (cut));
    cJSON_Delete (object);
    ck_assert_str_eq (line, "");
    free (text);
    cask_log_destroy (&log);
}
END_TEST

static void *
s_logger (void *arg)
{
    for (int index = 0; index < S_LINES_EACH; index++)
        cask_log_print ((cask_log_t *) arg, CASK_LOG_INFO,
                        "line %d of a thread, long enough to be written in pieces if it were: %s",
                        index, "0123456789abcdef0123456789abcdef0123456789abcdef");
    return NULL;
}

//  Lines of threads logging at once come out whole (one write each).
START_TEST (test_threads)
{
    cask_log_t *log = s_log_new ("json", NULL, CASK_LOG_INFO);
    s_capture_t capture;
    s_capture_start (&capture);
    pthread_t threads [S_THREADS];
    for (int index = 0; index < S_THREADS; index++)
        ck_assert_int_eq (pthread_create (&threads [index], NULL, s_logger, log), 0);
    for (int index = 0; index < S_THREADS; index++)
        pthread_join (threads [index], NULL);
    char *text = s_capture_end (&capture);
    const char *line = text;
    int count = 0;
    while (*line) {
        cJSON *object = s_parse_line (line, &line);
        ck_assert_str_eq (s_field (object, "level"), "info");
        cJSON_Delete (object);
        count++;
    }
    ck_assert_int_eq (count, S_THREADS * S_LINES_EACH);
    free (text);
    cask_log_destroy (&log);
}
END_TEST

//  The text format is as it was: "W: 2026-11-22 05:09:03.123 name: message".
START_TEST (test_text_line)
{
    cask_log_t *log = s_log_new ("text", NULL, CASK_LOG_INFO);
    s_capture_t capture;
    s_capture_start (&capture);
    cask_log_print (log, CASK_LOG_WARNING, "hello %s", "there");
    char *text = s_capture_end (&capture);
    struct tm tm;
    memset (&tm, 0, sizeof tm);
    ck_assert_msg (strncmp (text, "W: ", 3) == 0, "text line \"%s\"", text);
    const char *rest = strptime (text + 3, "%Y-%m-%d %H:%M:%S", &tm);
    ck_assert_ptr_nonnull (rest);
    ck_assert_str_eq (rest + 4, " cask-test: hello there\n");
    ck_assert_int_eq (rest [0], '.');
    free (text);
    cask_log_destroy (&log);
}
END_TEST

int
main (void)
{
    TCase *tc = tcase_create ("log");
    tcase_add_test (tc, test_json_line);
    tcase_add_test (tc, test_levels);
    tcase_add_test (tc, test_long_line);
    tcase_add_test (tc, test_threads);
    tcase_add_test (tc, test_text_line);
    return cask_test_run ("cask_log", tc, NULL);
}
