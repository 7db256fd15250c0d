/*  cask_call.c - one invocation of a task function (the task ABI of
    include/cask/cask_task.h, worker side in proto/cask_call.h).

    The typed accessors fail the call themselves, with a message that names
    the function, the argument (counting from 1) and both types, so task
    authors need only `return -1`. The first failure is kept: it is the
    cause, anything after it is a consequence.
*/
#include "cask_call.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Used when even the error message cannot be allocated; never freed.
static char s_out_of_memory [] = "out of memory";

static void
s_fail_va (cask_call_t *self, const char *format, va_list args)
{
    if (self->error)
        return;
    va_list copy;
    va_copy (copy, args);
    int length = vsnprintf (NULL, 0, format, copy);
    va_end (copy);
    const char *function = self->function ? self->function : "?";
    size_t prefix = strlen (function) + 2;
    char *error = length < 0 ? NULL : (char *) malloc (prefix + (size_t) length + 1);
    if (!error) {
        self->error = s_out_of_memory;
        return;
    }
    snprintf (error, prefix + 1, "%s: ", function);
    vsnprintf (error + prefix, (size_t) length + 1, format, args);
    self->error = error;
}

int
cask_fail (cask_call_t *call, const char *format, ...)
{
    va_list args;
    va_start (args, format);
    s_fail_va (call, format, args);
    va_end (args);
    return -1;
}

void
cask_call_init (cask_call_t *self, const char *function, cask_value_t *args)
{
    self->function = function;
    self->args = args;
    self->result = NULL;
    self->error = NULL;
}

const char *
cask_call_function (cask_call_t *call)
{
    return call->function;
}

size_t
cask_arg_count (cask_call_t *call)
{
    return cask_value_size (call->args);
}

static const char *
s_plural (size_t n)
{
    return n == 1 ? "" : "s";
}

const cask_value_t *
cask_arg (cask_call_t *call, size_t index)
{
    const cask_value_t *arg = cask_value_item (call->args, index);
    if (!arg) {
        size_t count = cask_arg_count (call);
        cask_fail (call, "takes at least %zu argument%s, got %zu",
                index + 1, s_plural (index + 1), count);
    }
    return arg;
}

int
cask_arg_expect (cask_call_t *call, size_t n)
{
    size_t count = cask_arg_count (call);
    if (count == n)
        return 0;
    return cask_fail (call, "takes %zu argument%s, got %zu", n, s_plural (n), count);
}

//  "a string", "an int64".
static const char *
s_article (cask_type_t type)
{
    return type == CASK_INT64 ? "an" : "a";
}

//  The argument at index when it has the type wanted, else NULL with the
//  call failed.
static const cask_value_t *
s_arg_typed (cask_call_t *call, size_t index, cask_type_t wanted)
{
    const cask_value_t *arg = cask_arg (call, index);
    if (!arg)
        return NULL;
    cask_type_t type = cask_value_type (arg);
    if (type != wanted) {
        cask_fail (call, "argument %zu is %s %s, expected %s", index + 1,
                s_article (type), cask_type_name (type), cask_type_name (wanted));
        return NULL;
    }
    return arg;
}

int
cask_arg_bool (cask_call_t *call, size_t index, bool *out)
{
    const cask_value_t *arg = s_arg_typed (call, index, CASK_BOOL);
    return arg ? cask_value_bool (arg, out) : -1;
}

int
cask_arg_int64 (cask_call_t *call, size_t index, int64_t *out)
{
    const cask_value_t *arg = s_arg_typed (call, index, CASK_INT64);
    return arg ? cask_value_int64 (arg, out) : -1;
}

int
cask_arg_double (cask_call_t *call, size_t index, double *out)
{
    const cask_value_t *arg = s_arg_typed (call, index, CASK_DOUBLE);
    return arg ? cask_value_double (arg, out) : -1;
}

int
cask_arg_string (cask_call_t *call, size_t index, const char **out)
{
    const cask_value_t *arg = s_arg_typed (call, index, CASK_STRING);
    return arg ? cask_value_string (arg, out, NULL) : -1;
}

int
cask_arg_bytes (cask_call_t *call, size_t index, const void **out, size_t *size)
{
    const cask_value_t *arg = s_arg_typed (call, index, CASK_BYTES);
    return arg ? cask_value_bytes (arg, out, size) : -1;
}

int
cask_arg_list (cask_call_t *call, size_t index, const cask_value_t **out)
{
    const cask_value_t *arg = s_arg_typed (call, index, CASK_LIST);
    if (!arg)
        return -1;
    *out = arg;
    return 0;
}

int
cask_arg_list_int64 (cask_call_t *call, size_t index, size_t item, int64_t *out)
{
    const cask_value_t *list = s_arg_typed (call, index, CASK_LIST);
    if (!list)
        return -1;
    const cask_value_t *value = cask_value_item (list, item);
    if (!value) {
        size_t count = cask_value_size (list);
        return cask_fail (call, "argument %zu has %zu item%s, no item %zu",
                       index + 1, count, s_plural (count), item + 1);
    }
    if (cask_value_int64 (value, out)) {
        cask_type_t type = cask_value_type (value);
        return cask_fail (call, "argument %zu item %zu is %s %s, expected int64",
                       index + 1, item + 1, s_article (type), cask_type_name (type));
    }
    return 0;
}

int
cask_return_value (cask_call_t *call, cask_value_t *value)
{
    if (!value)
        return cask_fail (call, "out of memory for the result");
    if (cask_value_type (value) == CASK_REF) {
        cask_value_destroy (&value);
        return cask_fail (call, "returned a ref, which is not a result");
    }
    cask_value_destroy (&call->result);
    call->result = value;
    return 0;
}

int
cask_return_null (cask_call_t *call)
{
    return cask_return_value (call, cask_null ());
}

int
cask_return_bool (cask_call_t *call, bool b)
{
    return cask_return_value (call, cask_bool (b));
}

int
cask_return_int64 (cask_call_t *call, int64_t i)
{
    return cask_return_value (call, cask_int64 (i));
}

int
cask_return_double (cask_call_t *call, double d)
{
    return cask_return_value (call, cask_double (d));
}

int
cask_return_string (cask_call_t *call, const char *s)
{
    if (!s)
        return cask_fail (call, "returned a NULL string");
    return cask_return_value (call, cask_string (s));
}

int
cask_return_bytes (cask_call_t *call, const void *data, size_t size)
{
    if (!data && size)
        return cask_fail (call, "returned NULL bytes of size %zu", size);
    return cask_return_value (call, cask_bytes (data, size));
}

int
cask_call_invoke (cask_call_t *self, cask_fn_t *fn)
{
    int rc = fn (self);
    if (rc != 0 && !self->error)
        cask_fail (self, "failed without a message");
    if (!self->error && !self->result)
        cask_return_null (self);
    if (self->error) {
        cask_value_destroy (&self->result);
        return -1;
    }
    return 0;
}

cask_value_t *
cask_call_take_result (cask_call_t *self)
{
    cask_value_t *result = self->result;
    self->result = NULL;
    return result;
}

const char *
cask_call_error (cask_call_t *self)
{
    return self->error;
}

void
cask_call_fini (cask_call_t *self)
{
    cask_value_destroy (&self->args);
    cask_value_destroy (&self->result);
    if (self->error != s_out_of_memory)
        free (self->error);
    self->error = NULL;
}
