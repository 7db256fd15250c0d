/*  cask_testutil.h - what every Check test program of cask shares: running
    its test cases as a suite, and small helpers of the unit tests.
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

#ifdef __cplusplus
}
#endif

#endif
