/*  bench_lib.c - task functions that do (almost) nothing, so a benchmark
    measures cask itself: noop returns its argument, inc adds one, add sums
    two, sum adds a list. No sleeps, unlike the tutorial's library.
*/
#include <cask/cask_task.h>

static int
noop (cask_call_t *call)
{
    const cask_value_t *x = cask_arg (call, 0);
    return x? cask_return_value (call, cask_value_ref ((cask_value_t *) x)): -1;
}

static int
inc (cask_call_t *call)
{
    int64_t x;
    return cask_arg_int64 (call, 0, &x)? -1: cask_return_int64 (call, x + 1);
}

static int
s_double (cask_call_t *call)
{
    int64_t x;
    return cask_arg_int64 (call, 0, &x)? -1: cask_return_int64 (call, 2 * x);
}

static int
add (cask_call_t *call)
{
    int64_t x, y;
    if (cask_arg_int64 (call, 0, &x) || cask_arg_int64 (call, 1, &y))
        return -1;
    return cask_return_int64 (call, x + y);
}

CASK_LIBRARY (
    CASK_EXPORT (noop, "returns its argument")
    CASK_EXPORT (inc, "x + 1, at once")
    CASK_EXPORT_AS ("double", s_double, "2 * x, at once")
    CASK_EXPORT (add, "x + y, at once")
)
