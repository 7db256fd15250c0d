/*  cask_task.h - the task ABI: how a library of task functions is written.

    A task library is a shared object that exports one table, made with
    CASK_LIBRARY, of functions of one signature:

        static int inc (cask_call_t *call)
        {
            int64_t x;
            if (cask_arg_int64 (call, 0, &x))
                return -1;                      //  call already failed
            return cask_return_int64 (call, x + 1);
        }
        CASK_LIBRARY (
            CASK_EXPORT (inc, "x + 1")
        )

    A function returns 0 after setting its result with one cask_return_*
    (no result set means null), or -1 after cask_fail (a -1 without a
    message fails with "<fn>: failed without a message"). The typed argument
    accessors fail the call themselves on a mismatch, with a message such as
    "inc: argument 1 is a string, expected int64" (arguments count from 1 in
    messages, from 0 in code). Functions run on the worker's executor
    threads, several at once: they must be thread-safe.

    Build one with: cc -shared -fPIC lib.c $(pkg-config --cflags cask) -o lib.so
*/
#ifndef CASK_TASK_H_INCLUDED
#define CASK_TASK_H_INCLUDED

#include "cask/cask_value.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CASK_ABI_VERSION 1

typedef struct _cask_call_t cask_call_t;
typedef int (cask_fn_t) (cask_call_t *call);

//  One exported function. The table ends with an entry whose name is NULL.
typedef struct {
    const char *name;
    cask_fn_t *fn;
    const char *doc;            //  one line
} cask_export_t;

#define CASK_EXPORT(fn, doc) { #fn, fn, doc },
//  The same under another name (for names C reserves, such as "double").
#define CASK_EXPORT_AS(name, fn, doc) { name, fn, doc },
//  Defines the exported symbols cask_exports and cask_abi_version.
#define CASK_LIBRARY(...) \
    const int cask_abi_version = CASK_ABI_VERSION; \
    const cask_export_t cask_exports[] = { __VA_ARGS__ { 0, 0, 0 } };

//  Number of arguments.
size_t cask_arg_count (cask_call_t *call);
//  Argument index (borrowed, valid during the call), or NULL when there is
//  no such argument (and the call fails saying so).
const cask_value_t *cask_arg (cask_call_t *call, size_t index);

//  Typed accessors: 0 and *out set, or -1 with the call failed ("fn:
//  argument N is a T, expected U" or "fn: takes N arguments, got M").
//  Borrowed pointers stay valid during the call.
int cask_arg_bool (cask_call_t *call, size_t index, bool *out);
int cask_arg_int64 (cask_call_t *call, size_t index, int64_t *out);
int cask_arg_double (cask_call_t *call, size_t index, double *out);
int cask_arg_string (cask_call_t *call, size_t index, const char **out);
int cask_arg_bytes (cask_call_t *call, size_t index, const void **out,
                    size_t *size);
int cask_arg_list (cask_call_t *call, size_t index, const cask_value_t **out);
//  Item item of list argument index as int64 ("fn: argument 1 item 3 is a
//  string, expected int64" on mismatch).
int cask_arg_list_int64 (cask_call_t *call, size_t index, size_t item,
                         int64_t *out);
//  Fails the call unless it has exactly n arguments.
int cask_arg_expect (cask_call_t *call, size_t n);

//  Results: each returns 0, or -1 if out of memory (the call fails). A
//  later return replaces an earlier one.
int cask_return_null (cask_call_t *call);
int cask_return_bool (cask_call_t *call, bool b);
int cask_return_int64 (cask_call_t *call, int64_t i);
int cask_return_double (cask_call_t *call, double d);
int cask_return_string (cask_call_t *call, const char *s);      //  copied
int cask_return_bytes (cask_call_t *call, const void *data, size_t size); // copied
//  Takes ownership of value (any type but CASK_REF).
int cask_return_value (cask_call_t *call, cask_value_t *value);

//  Fails the call with a printf-style message, prefixed "fn: ". Returns -1
//  so a function can end with `return cask_fail (call, "...")`.
int cask_fail (cask_call_t *call, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));
//  Name of the function being called.
const char *cask_call_function (cask_call_t *call);

#ifdef __cplusplus
}
#endif

#endif
