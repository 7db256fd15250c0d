/*  cask_testclient.h - what the client programs of the shell tests
    (netcut_client, dashboard_client) share: their clock, their failures,
    and their numeric arguments.

    A client counts what it finds wrong and carries on, so that one run
    reports every wrong value; its exit status says whether there was any.
*/
#ifndef CASK_TESTCLIENT_H_INCLUDED
#define CASK_TESTCLIENT_H_INCLUDED

#include <stdint.h>

//  Starts the clock; name prefixes every message ("netcut_client").
void cask_testclient_start (const char *name);
//  Milliseconds since cask_testclient_start.
int64_t cask_testclient_elapsed_ms (void);
//  Prints "NAME: MS ms: message" on stderr and counts one failure.
void cask_testclient_fail (const char *format, ...) __attribute__ ((format (printf, 1, 2)));
//  Failures counted so far.
int cask_testclient_failures (void);
//  text as a whole number of at least least, named what in the message;
//  exits with status 2 (bad usage) when it is not.
int64_t cask_testclient_arg (const char *text, const char *what, int64_t least);

#endif
