/*  cask_call.h - the worker's side of the task ABI (include/cask/cask_task.h).

    A cask_call_t is one invocation of a task function: its name, its
    arguments (a list value) and, after the run, its result or its error.
    The worker builds one per task on its executor thread, invokes the
    function and takes the outcome; the typed accessors task libraries use
    live in cask_call.c beside it.
*/
#ifndef CASK_CALL_H_INCLUDED
#define CASK_CALL_H_INCLUDED

#include "cask/cask_task.h"

struct _cask_call_t {
    const char *function;       //  borrowed, for messages
    cask_value_t *args;         //  list value, owned
    cask_value_t *result;       //  owned, NULL until set
    char *error;                //  owned, NULL unless failed
};

//  Prepares a call of function with args (a list; ownership taken).
void cask_call_init (cask_call_t *self, const char *function, cask_value_t *args);
//  Runs fn on the call. Returns 0 when it succeeded (result set; null when
//  the function set none), -1 when it failed (error set, never NULL).
int cask_call_invoke (cask_call_t *self, cask_fn_t *fn);
//  Hands the result to the caller (NULL if none) and leaves the call's empty.
cask_value_t *cask_call_take_result (cask_call_t *self);
//  The error message, or NULL.
const char *cask_call_error (cask_call_t *self);
//  Frees args, result and error.
void cask_call_fini (cask_call_t *self);

#endif
