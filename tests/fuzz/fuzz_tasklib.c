/*  fuzz_tasklib.c - the task library fuzz_worker loads, so that fuzzed
    TASKs run real functions on hostile arguments.

    Every function is cheap and bounded whatever its arguments: the
    fuzzer decides the arguments, and a slow function would read as a hang.
    Ids as fuzz_worker announces them: echo 1, probe 2, fail 3, spin 4,
    blob 5 (the order of the table).
*/
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include "cask/cask_task.h"

#define S_SPIN_MAX_US 2000              //  longest a spin may run
#define S_BLOB_MAX (256u << 10)         //  largest bytes blob makes

//  Returns its first argument (null without one): a result of any type,
//  bytes frames too, for GET to serve back.
static int
echo (cask_call_t *call)
{
    if (cask_arg_count (call) == 0)
        return cask_return_null (call);
    cask_value_t *first = (cask_value_t *) cask_arg (call, 0);
    return cask_return_value (call, cask_value_ref (first));
}

//  Reads argument index with the accessor of its type. Returns 0 or -1.
static int
s_probe_arg (cask_call_t *call, size_t index, int64_t *total)
{
    const cask_value_t *arg = cask_arg (call, index);
    bool b;
    int64_t i;
    double d;
    const char *s;
    const void *data;
    size_t size;
    const cask_value_t *list;
    switch (cask_value_type (arg)) {
        case CASK_BOOL: return cask_arg_bool (call, index, &b);
        case CASK_INT64:
            *total += cask_arg_int64 (call, index, &i) ? 0 : (i & 0xff);
            return 0;
        case CASK_DOUBLE: return cask_arg_double (call, index, &d);
        case CASK_STRING: return cask_arg_string (call, index, &s);
        case CASK_BYTES: return cask_arg_bytes (call, index, &data, &size);
        case CASK_LIST:
            if (cask_arg_list (call, index, &list))
                return -1;
            for (size_t item = 0; item < cask_value_size (list); item++)
                if (cask_arg_list_int64 (call, index, item, &i) == 0)
                    *total += i & 0xff;
            return 0;
        default:
            return 0;
    }
}

//  Reads every argument with its typed accessor; lists must hold int64s.
//  Returns the number of arguments plus the low bytes of their integers.
static int
probe (cask_call_t *call)
{
    int64_t total = (int64_t) cask_arg_count (call);
    for (size_t index = 0; index < cask_arg_count (call); index++)
        if (s_probe_arg (call, index, &total))
            return -1;
    return cask_return_int64 (call, total);
}

//  Fails with its first argument as the message when it is a string.
static int
fail (cask_call_t *call)
{
    const cask_value_t *first = cask_arg_count (call) ? cask_arg (call, 0) : NULL;
    const char *message = "fuzzed failure";
    if (first && cask_value_type (first) == CASK_STRING)
        cask_value_string (first, &message, NULL);
    return cask_fail (call, "%s", message);
}

//  Sleeps its first argument in microseconds (at most S_SPIN_MAX_US):
//  keeps an executor busy while STEAL, FREE or RESTART come.
static int
spin (cask_call_t *call)
{
    int64_t us = 0;
    if (cask_arg_count (call) && cask_value_type (cask_arg (call, 0)) == CASK_INT64)
        cask_arg_int64 (call, 0, &us);
    if (us > 0)
        usleep ((useconds_t) (us < S_SPIN_MAX_US ? us : S_SPIN_MAX_US));
    return cask_return_int64 (call, us);
}

//  Makes bytes of its first argument's size (at most S_BLOB_MAX): results
//  big enough to travel as frames of their own.
static int
blob (cask_call_t *call)
{
    static const uint8_t s_zeros [S_BLOB_MAX];
    int64_t size = 0;
    if (cask_arg_count (call) && cask_value_type (cask_arg (call, 0)) == CASK_INT64)
        cask_arg_int64 (call, 0, &size);
    size = size < 0 ? 0 : size > (int64_t) S_BLOB_MAX ? (int64_t) S_BLOB_MAX : size;
    return cask_return_bytes (call, s_zeros, (size_t) size);
}

CASK_LIBRARY (
    CASK_EXPORT (echo, "its first argument")
    CASK_EXPORT (probe, "reads every argument by its type")
    CASK_EXPORT (fail, "fails with its first argument")
    CASK_EXPORT (spin, "sleeps up to 2 ms")
    CASK_EXPORT (blob, "bytes of the size asked, up to 256 KiB")
)
