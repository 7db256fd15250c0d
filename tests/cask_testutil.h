/*  cask_testutil.h - what every Check test program of cask shares: running
    its test cases as a suite, and small helpers of the unit tests (a
    connected pair of ZeroMQ sockets among them).
*/
#ifndef CASK_TESTUTIL_H_INCLUDED
#define CASK_TESTUTIL_H_INCLUDED

#include <check.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

//  Runs the test cases given (a NULL-terminated list, tc first) as one
//  suite called name, with Check's normal output. Returns EXIT_SUCCESS
//  when no test failed, else EXIT_FAILURE: main's exit status.
int cask_test_run (const char *name, TCase *tc, ...);

//  The double whose IEEE 754 bits are bits.
double cask_test_double_from_bits (uint64_t bits);

//  A ROUTER and a DEALER connected to it, in a context of their own, each
//  giving up a receive after 5 s.
typedef struct {
    void *ctx;
    void *router;
    void *dealer;
} cask_test_pair_t;
//  Opens the pair over transport, "tcp" (loopback) or "inproc"; fails the
//  test when it cannot.
void cask_test_pair_open (cask_test_pair_t *self, const char *transport);
void cask_test_pair_close (cask_test_pair_t *self);

#ifdef __cplusplus
}
#endif

#endif
