/*  cask_testutil.c - what every Check test program of cask shares. */
#include "cask_testutil.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cask_test_run (const char *name, TCase *tc, ...)
{
    Suite *suite = suite_create (name);
    va_list cases;
    va_start (cases, tc);
    for (; tc; tc = va_arg (cases, TCase *))
        suite_add_tcase (suite, tc);
    va_end (cases);
    SRunner *runner = srunner_create (suite);
    srunner_run_all (runner, CK_NORMAL);
    int failed = srunner_ntests_failed (runner);
    srunner_free (runner);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

double cask_test_double_from_bits (uint64_t bits)
{
    double d;
    memcpy (&d, &bits, sizeof d);
    return d;
}
