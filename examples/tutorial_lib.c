/*  tutorial_lib.c - the functions of the two Dask futures tutorials, as a
    cask task library (libtutorial.so).

    inc, double and add sleep a few random milliseconds, as the notebook's
    versions sleep up to a second, to look like real work. goes_wrong fails
    the way Python's 10 / 0 raises ZeroDivisionError: in C an integer
    division by zero would kill the worker, so it checks and fails instead.
*/
#include <cask/cask_task.h>

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "tutorial_primes.h"

//  Up to 5 ms; each executor thread has its own random state
static void
s_random_sleep (void)
{
    static __thread unsigned int seed;
    static __thread bool seeded;
    if (!seeded) {
        seed = (unsigned int) time (NULL) ^ (unsigned int) (uintptr_t) &seed;
        seeded = true;
    }
    usleep ((useconds_t) (rand_r (&seed) % 5000));
}

//  Reads the one int64 argument of a one-argument function
static int
s_one_int64 (cask_call_t *call, int64_t *x)
{
    return cask_arg_expect (call, 1) || cask_arg_int64 (call, 0, x) ? -1 : 0;
}

static int
s_two_int64 (cask_call_t *call, int64_t *x, int64_t *y)
{
    return cask_arg_expect (call, 2) || cask_arg_int64 (call, 0, x)
        || cask_arg_int64 (call, 1, y) ? -1 : 0;
}

static int
inc (cask_call_t *call)
{
    int64_t x;
    if (s_one_int64 (call, &x))
        return -1;
    s_random_sleep ();
    return cask_return_int64 (call, x + 1);
}

static int
s_double (cask_call_t *call)
{
    int64_t x;
    if (s_one_int64 (call, &x))
        return -1;
    s_random_sleep ();
    return cask_return_int64 (call, 2 * x);
}

static int
add (cask_call_t *call)
{
    int64_t x, y;
    if (s_two_int64 (call, &x, &y))
        return -1;
    s_random_sleep ();
    return cask_return_int64 (call, x + y);
}

static int
sum (cask_call_t *call)
{
    const cask_value_t *list;
    if (cask_arg_expect (call, 1) || cask_arg_list (call, 0, &list))
        return -1;
    int64_t total = 0;
    for (size_t index = 0; index < cask_value_size (list); index++) {
        int64_t item;
        if (cask_arg_list_int64 (call, 0, index, &item))
            return -1;
        total += item;
    }
    return cask_return_int64 (call, total);
}

static int
count_primes_less_than (cask_call_t *call)
{
    int64_t m;
    if (s_one_int64 (call, &m))
        return -1;
    return cask_return_int64 (call, tutorial_count_primes_less_than (m));
}

static int
add_them (cask_call_t *call)
{
    int64_t x, y;
    if (s_two_int64 (call, &x, &y))
        return -1;
    return cask_return_int64 (call, x + y);
}

static int
goes_wrong (cask_call_t *call)
{
    int64_t numerator = 10, denominator = 0;
    if (cask_arg_expect (call, 0))
        return -1;
    if (denominator == 0)
        return cask_fail (call, "division by zero");
    return cask_return_int64 (call, numerator / denominator);
}

CASK_LIBRARY (
    CASK_EXPORT (inc, "x + 1, after a short random sleep")
    CASK_EXPORT_AS ("double", s_double, "2 * x, after a short random sleep")
    CASK_EXPORT (add, "x + y, after a short random sleep")
    CASK_EXPORT (sum, "the sum of a list of int64")
    CASK_EXPORT (count_primes_less_than, "number of primes below m, the naive way")
    CASK_EXPORT (add_them, "x + y")
    CASK_EXPORT (goes_wrong, "10 / 0: fails with division by zero")
)
