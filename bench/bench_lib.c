/*  bench_lib.c - task functions that do (almost) nothing, so a benchmark
    measures cask itself: noop returns its argument, inc adds one, add sums
    two. No sleeps, unlike the tutorial's library. For cask-bench's other
    workloads: make_bytes and nbytes (a large result made on one worker and
    taken by a task on another), and wait_file, a task that holds a worker
    until a file appears (what a million pending tasks wait on).
*/
#include <cask/cask_task.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

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

static void
s_free_bytes (void *data, void *hint)
{
    (void) hint;
    free (data);
}

//  n bytes of 0x5a, handed to cask without a copy. Every page is written,
//  as a real result's would be, so the move that follows reads memory
//  that exists.
static int
make_bytes (cask_call_t *call)
{
    int64_t n;
    if (cask_arg_int64 (call, 0, &n))
        return -1;
    if (n < 0)
        return cask_fail (call, "size %lld is negative", (long long) n);
    void *data = malloc (n > 0 ? (size_t) n : 1);
    if (!data)
        return cask_fail (call, "cannot allocate %lld bytes", (long long) n);
    memset (data, 0x5a, (size_t) n);
    return cask_return_value (call, cask_bytes_take (data, (size_t) n, s_free_bytes, NULL));
}

//  The size of a bytes argument, so its consumer must have it whole
static int
nbytes (cask_call_t *call)
{
    const void *data;
    size_t size;
    return cask_arg_bytes (call, 0, &data, &size)? -1: cask_return_int64 (call, (int64_t) size);
}

//  Returns 0 once path exists, after looking every 5 ms; fails after
//  timeout_ms so a benchmark that died cannot hold a worker for ever.
static int
wait_file (cask_call_t *call)
{
    const char *path;
    int64_t timeout_ms;
    if (cask_arg_string (call, 0, &path) || cask_arg_int64 (call, 1, &timeout_ms))
        return -1;
    struct stat info;
    for (int64_t waited = 0; stat (path, &info); waited += 5) {
        if (waited >= timeout_ms)
            return cask_fail (call, "%s did not appear within %lld ms", path,
                              (long long) timeout_ms);
        nanosleep (&(struct timespec) { .tv_nsec = 5000000 }, NULL);
    }
    return cask_return_int64 (call, 0);
}

CASK_LIBRARY (
    CASK_EXPORT (noop, "returns its argument")
    CASK_EXPORT (inc, "x + 1, at once")
    CASK_EXPORT_AS ("double", s_double, "2 * x, at once")
    CASK_EXPORT (add, "x + y, at once")
    CASK_EXPORT (make_bytes, "n bytes, every page written")
    CASK_EXPORT (nbytes, "the size of a bytes argument")
    CASK_EXPORT (wait_file, "0 once the file at path exists (polled every 5 ms)")
)
