/*  tutorial_client.h - what the two tutorial examples share: connecting
    and registering the tutorial library, printing futures the way the
    notebooks show them, and checking results so that a wrong answer makes
    the example exit non-zero.
*/
#ifndef TUTORIAL_CLIENT_H_INCLUDED
#define TUTORIAL_CLIENT_H_INCLUDED

#include <cask/cask_client.h>

//  Long enough for the slowest prime count on a small machine
#define TUTORIAL_TIMEOUT_MS 300000

//  Connects to argv[1], else $CASK_BROKER, else starts a local cluster
//  (cask_client_new (NULL), stopped by cask_client_destroy); waits for a
//  worker; registers the tutorial library from argv[2], else
//  $CASK_TUTORIAL_LIB, else libtutorial.so next to the executable. Prints
//  the client. Returns the client, or NULL after printing why.
cask_client_t *tutorial_connect (int argc, char **argv);
//  Prints "label = <Future: ...>".
void tutorial_print_future (const char *label, cask_future_t *future);
//  Prints futures as a list, one per line.
void tutorial_print_futures (const char *label, cask_future_t **futures, size_t count);
//  Waits (up to a few seconds) until the future is no longer pending.
void tutorial_wait_done (cask_future_t *future);
//  Prints "label = value" for the future's int64 result and checks it is
//  expected; returns the result (or -1 after reporting the failure).
int64_t tutorial_expect (const char *label, cask_future_t *future, int64_t expected);
//  Reports a failed check (printf style).
void tutorial_fail (const char *format, ...) __attribute__ ((format (printf, 1, 2)));
//  Number of failed checks so far.
int tutorial_failures (void);
//  Wall-clock seconds, for timings.
double tutorial_now (void);

#endif
