/*  cask_testlib.c - a task library for the integration tests: big bytes
    results to move between workers, a digest to check they arrived intact,
    a nap to keep a worker busy for a while, a no-op for runs of many tasks,
    and tasks whose runs leave a trace in a file (to tell whether, when and
    in what order they ran, or to fail the first runs).
*/
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
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

//  noop (x): the int64 x, at once.
static int noop (cask_call_t *call)
{
    int64_t x;
    if (cask_arg_expect (call, 1) || cask_arg_int64 (call, 0, &x))
        return -1;
    return cask_return_int64 (call, x);
}

//  hog (mb, ms): mb, after holding mb megabytes (touched) for ms
//  milliseconds. The memory is mapped and unmapped directly, so that it
//  leaves the process at once, whatever the allocator (AddressSanitizer's
//  keeps freed blocks in quarantine).
static int hog (cask_call_t *call)
{
    int64_t mb, ms;
    if (cask_arg_expect (call, 2) || cask_arg_int64 (call, 0, &mb) || cask_arg_int64 (call, 1, &ms))
        return -1;
    if (mb < 0 || mb > 65536 || ms < 0 || ms > 600000)
        return cask_fail (call, "hog: mb or ms out of range");
    size_t size = (size_t) mb << 20;
    char *memory = mb ? mmap (NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                              -1, 0) : NULL;
    if (mb && memory == MAP_FAILED)
        return cask_fail (call, "hog: out of memory");
    if (!mb)
        return cask_return_int64 (call, 0);
    memset (memory, 1, (size_t) mb << 20);
    struct timespec pause = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep (&pause, NULL);
    int64_t sum = memory [0] + memory [size - 1];
    munmap (memory, size);
    return cask_return_int64 (call, mb + sum - 2);
}

//  crash (how): kills the worker that runs it: "abort", "segv", "kill"
//  (SIGKILL to itself) or "exit" (status 3); anything else fails the task.
static int crash (cask_call_t *call)
{
    const char *how;
    if (cask_arg_expect (call, 1) || cask_arg_string (call, 0, &how))
        return -1;
    if (strcmp (how, "abort") == 0)
        abort ();
    if (strcmp (how, "segv") == 0)
        raise (SIGSEGV);
    if (strcmp (how, "kill") == 0)
        raise (SIGKILL);
    if (strcmp (how, "exit") == 0)
        _exit (3);
    return cask_fail (call, "crash: unknown way to crash");
}

//  append_line (path, x): x, after appending its decimal digits and a
//  newline to the file at path (one write, O_APPEND: lines never mix).
static int append_line (cask_call_t *call)
{
    const char *path;
    int64_t x;
    if (cask_arg_expect (call, 2) || cask_arg_string (call, 0, &path)
    ||  cask_arg_int64 (call, 1, &x))
        return -1;
    char line [32];
    int len = snprintf (line, sizeof line, "%lld\n", (long long) x);
    int fd = open (path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return cask_fail (call, "cannot open %s: %s", path, strerror (errno));
    ssize_t written = write (fd, line, (size_t) len);
    close (fd);
    if (written != len)
        return cask_fail (call, "cannot write to %s", path);
    return cask_return_int64 (call, x);
}

//  Adds one to the count kept in the file at path (under a lock, as runs
//  may be on several workers) and returns the new count, or -1.
static int64_t s_count_run (const char *path)
{
    int fd = open (path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    int64_t count = -1;
    if (flock (fd, LOCK_EX) == 0) {
        char text [32] = "";
        ssize_t size = pread (fd, text, sizeof text - 1, 0);
        count = (size > 0 ? atoll (text) : 0) + 1;
        int len = snprintf (text, sizeof text, "%lld\n", (long long) count);
        if (pwrite (fd, text, (size_t) len, 0) != len)
            count = -1;
    }
    close (fd);
    return count;
}

//  fail_times (path, n, x): fails the first n runs (counted in the file at
//  path), then returns x.
static int fail_times (cask_call_t *call)
{
    const char *path;
    int64_t n, x;
    if (cask_arg_expect (call, 3) || cask_arg_string (call, 0, &path)
    ||  cask_arg_int64 (call, 1, &n) || cask_arg_int64 (call, 2, &x))
        return -1;
    int64_t run = s_count_run (path);
    if (run < 0)
        return cask_fail (call, "cannot count runs in %s: %s", path, strerror (errno));
    if (run <= n)
        return cask_fail (call, "run %lld of the %lld meant to fail",
                          (long long) run, (long long) n);
    return cask_return_int64 (call, x);
}

//  bytes_size (bytes): its size in bytes, as int64.
static int bytes_size (cask_call_t *call)
{
    const void *data;
    size_t size;
    if (cask_arg_expect (call, 1) || cask_arg_bytes (call, 0, &data, &size))
        return -1;
    return cask_return_int64 (call, (int64_t) size);
}

CASK_LIBRARY (
    CASK_EXPORT (make_bytes, "make_bytes(size, seed[, nap_ms]): bytes of a known pattern")
    CASK_EXPORT (digest, "digest(bytes...): FNV-1a of the bytes, as int64")
    CASK_EXPORT (nap, "nap(ms, x): x after sleeping ms milliseconds")
    CASK_EXPORT (noop, "noop(x): the int64 x, at once")
    CASK_EXPORT (crash, "crash(how): kills its worker: abort, segv, kill or exit")
    CASK_EXPORT (hog, "hog(mb, ms): mb, after holding mb MB for ms milliseconds")
    CASK_EXPORT (append_line, "append_line(path, x): x, after appending x as a line to path")
    CASK_EXPORT (fail_times, "fail_times(path, n, x): fails the first n runs, then x")
    CASK_EXPORT (bytes_size, "bytes_size(bytes): its size, as int64")
)
