/*  cask_testlib.c - a task library for the integration tests: big bytes
    results to move between workers, a digest to check they arrived intact,
    and a nap to keep a worker busy for a while.
*/
#include <errno.h>
#include <stdlib.h>
#include <time.h>
#include "cask/cask_task.h"
#include "cask_testlib.h"

static void s_free (void *data, void *hint)
{
    (void) hint;
    free (data);
}

static void s_nap (int64_t ms)
{
    struct timespec ts = { (time_t) (ms / 1000), (long) (ms % 1000) * 1000000 };
    while (ms > 0 && nanosleep (&ts, &ts) == -1 && errno == EINTR)
        ;
}

//  make_bytes (size, seed[, nap_ms]): size bytes of the seed's pattern,
//  made after a nap of nap_ms.
static int make_bytes (cask_call_t *call)
{
    int64_t size, seed, ms = 0;
    size_t nargs = cask_arg_count (call);
    if (nargs < 2 || nargs > 3)
        return cask_fail (call, "takes 2 or 3 arguments, got %zu", nargs);
    if (cask_arg_int64 (call, 0, &size) || cask_arg_int64 (call, 1, &seed)
    ||  (nargs == 3 && cask_arg_int64 (call, 2, &ms)))
        return -1;
    if (size < 0 || size > (1 << 30))
        return cask_fail (call, "size %lld out of range", (long long) size);
    s_nap (ms);
    uint8_t *data = malloc (size ? (size_t) size : 1);
    if (!data)
        return cask_fail (call, "out of memory");
    cask_testlib_fill (data, (size_t) size, (uint64_t) seed);
    cask_value_t *value = cask_bytes_take (data, (size_t) size, s_free, NULL);
    return value ? cask_return_value (call, value) : cask_fail (call, "out of memory");
}

//  digest (bytes...): FNV-1a of all its bytes arguments, one after the other.
static int digest (cask_call_t *call)
{
    uint64_t hash = CASK_TESTLIB_DIGEST_START;
    for (size_t i = 0; i < cask_arg_count (call); i++) {
        const void *data;
        size_t size;
        if (cask_arg_bytes (call, i, &data, &size))
            return -1;
        hash = cask_testlib_digest (hash, data, size);
    }
    return cask_return_int64 (call, (int64_t) hash);
}

//  nap (ms, x): x, after sleeping ms milliseconds.
static int nap (cask_call_t *call)
{
    int64_t ms, x;
    if (cask_arg_expect (call, 2) || cask_arg_int64 (call, 0, &ms)
    ||  cask_arg_int64 (call, 1, &x))
        return -1;
    s_nap (ms);
    return cask_return_int64 (call, x);
}

CASK_LIBRARY (
    CASK_EXPORT (make_bytes, "make_bytes(size, seed[, nap_ms]): bytes of a known pattern")
    CASK_EXPORT (digest, "digest(bytes...): FNV-1a of the bytes, as int64")
    CASK_EXPORT (nap, "nap(ms, x): x after sleeping ms milliseconds")
)
