/*  test_call.c - unit tests of the task ABI (include/cask/cask_task.h) as the
    worker runs it (proto/cask_call.h): typed accessors, results, and the
    exact error messages task authors and users see.
*/
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "cask_call.h"
#include "cask_proto.h"
#include "cask_testutil.h"

static int
inc (cask_call_t *call)
{
    int64_t x;
    if (cask_arg_int64 (call, 0, &x))
        return -1;
    return cask_return_int64 (call, x + 1);
}

static int
add (cask_call_t *call)
{
    int64_t x, y;
    if (cask_arg_expect (call, 2) || cask_arg_int64 (call, 0, &x)
    ||  cask_arg_int64 (call, 1, &y))
        return -1;
    return cask_return_int64 (call, x + y);
}

static int
sum (cask_call_t *call)
{
    const cask_value_t *list;
    if (cask_arg_list (call, 0, &list))
        return -1;
    int64_t total = 0;
    for (size_t index = 0; index < cask_value_size (list); index++) {
        int64_t x;
        if (cask_arg_list_int64 (call, 0, index, &x))
            return -1;
        total += x;
    }
    return cask_return_int64 (call, total);
}

static int
divide (cask_call_t *call)
{
    double x, y;
    if (cask_arg_double (call, 0, &x) || cask_arg_double (call, 1, &y))
        return -1;
    if (y == 0)
        return cask_fail (call, "division by zero (%g / %g)", x, y);
    return cask_return_double (call, x / y);
}

static int
silent_failure (cask_call_t *call)
{
    (void) call;
    return -1;
}

static int
ignores_failure (cask_call_t *call)
{
    int64_t x;
    cask_arg_int64 (call, 0, &x);
    return 0;
}

static int
no_result (cask_call_t *call)
{
    (void) call;
    return 0;
}

static int
returns_twice (cask_call_t *call)
{
    cask_return_string (call, "first");
    return cask_return_value (call, cask_list (cask_int64 (1), NULL));
}

static int
returns_ref (cask_call_t *call)
{
    static int target;
    return cask_return_value (call, cask_value_new_ref (&target));
}

static int
fails_twice (cask_call_t *call)
{
    cask_fail (call, "first %s", "reason");
    return cask_fail (call, "second reason");
}

static int
long_message (cask_call_t *call)
{
    char text [5000];
    memset (text, 'z', sizeof text - 1);
    text [sizeof text - 1] = 0;
    return cask_fail (call, "%s!", text);
}

static int
every_type (cask_call_t *call)
{
    bool b;
    int64_t i;
    double d;
    const char *s;
    const void *data;
    size_t size;
    const cask_value_t *list;
    if (cask_arg_expect (call, 6)
    ||  cask_arg_bool (call, 0, &b) || cask_arg_int64 (call, 1, &i)
    ||  cask_arg_double (call, 2, &d) || cask_arg_string (call, 3, &s)
    ||  cask_arg_bytes (call, 4, &data, &size) || cask_arg_list (call, 5, &list))
        return -1;
    ck_assert (b);
    ck_assert (i == -7);
    ck_assert (d == 0.5);
    ck_assert_str_eq (s, "str");
    ck_assert_uint_eq (size, 3);
    ck_assert_mem_eq (data, "byt", 3);
    ck_assert_uint_eq (cask_value_size (list), 0);
    ck_assert_uint_eq (cask_arg_count (call), 6);
    ck_assert_int_eq (cask_value_type (cask_arg (call, 3)), CASK_STRING);
    ck_assert_str_eq (cask_call_function (call), "every_type");
    return cask_return_bytes (call, "out", 3);
}

//  Runs fn as name on args; returns the result (or NULL) and copies the
//  error into error (empty when none).
static cask_value_t *
s_run (const char *name, cask_fn_t *fn, cask_value_t *args, char *error, size_t size)
{
    cask_call_t call;
    cask_call_init (&call, name, args);
    int rc = cask_call_invoke (&call, fn);
    const char *message = cask_call_error (&call);
    ck_assert_int_eq (rc, message ? -1 : 0);
    snprintf (error, size, "%s", message ? message : "");
    cask_value_t *result = cask_call_take_result (&call);
    ck_assert_ptr_null (cask_call_take_result (&call));
    if (rc == 0)
        ck_assert_ptr_nonnull (result);
    else
        ck_assert_ptr_null (result);
    cask_call_fini (&call);
    cask_call_fini (&call);
    return result;
}

START_TEST (test_success)
{
    char error [256];
    cask_value_t *result = s_run ("inc", inc, cask_list (cask_int64 (41), NULL), error, sizeof error);
    int64_t i;
    ck_assert_int_eq (cask_value_int64 (result, &i), 0);
    ck_assert (i == 42);
    ck_assert_str_eq (error, "");
    cask_value_destroy (&result);

    result = s_run ("add", add, cask_list (cask_int64 (2), cask_int64 (3), NULL), error, sizeof error);
    ck_assert_int_eq (cask_value_int64 (result, &i), 0);
    ck_assert (i == 5);
    cask_value_destroy (&result);

    result = s_run ("sum", sum, cask_list (cask_list (cask_int64 (1), cask_int64 (2),
                                                      cask_int64 (3), NULL), NULL),
                    error, sizeof error);
    ck_assert_int_eq (cask_value_int64 (result, &i), 0);
    ck_assert (i == 6);
    cask_value_destroy (&result);

    result = s_run ("every_type", every_type,
                    cask_list (cask_bool (true), cask_int64 (-7), cask_double (0.5),
                               cask_string ("str"), cask_bytes ("byt", 3), cask_list (NULL), NULL),
                    error, sizeof error);
    ck_assert_str_eq (error, "");
    const void *data;
    size_t size;
    ck_assert_int_eq (cask_value_bytes (result, &data, &size), 0);
    ck_assert_mem_eq (data, "out", 3);
    cask_value_destroy (&result);
}
END_TEST

START_TEST (test_type_messages)
{
    char error [256];
    s_run ("inc", inc, cask_list (cask_string ("x"), NULL), error, sizeof error);
    ck_assert_str_eq (error, "inc: argument 1 is a string, expected int64");
    s_run ("inc", inc, cask_list (cask_double (1), NULL), error, sizeof error);
    ck_assert_str_eq (error, "inc: argument 1 is a double, expected int64");
    s_run ("div", divide, cask_list (cask_double (1), cask_int64 (2), NULL), error, sizeof error);
    ck_assert_str_eq (error, "div: argument 2 is an int64, expected double");
    s_run ("add", add, cask_list (cask_int64 (1), cask_null (), NULL), error, sizeof error);
    ck_assert_str_eq (error, "add: argument 2 is a null, expected int64");
    s_run ("sum", sum, cask_list (cask_list (cask_int64 (1), cask_int64 (2), cask_string ("3"),
                                             NULL), NULL), error, sizeof error);
    ck_assert_str_eq (error, "sum: argument 1 item 3 is a string, expected int64");
    s_run ("sum", sum, cask_list (cask_bytes ("", 0), NULL), error, sizeof error);
    ck_assert_str_eq (error, "sum: argument 1 is a bytes, expected list");
}
END_TEST

START_TEST (test_count_messages)
{
    char error [256];
    s_run ("add", add, cask_list (cask_int64 (1), NULL), error, sizeof error);
    ck_assert_str_eq (error, "add: takes 2 arguments, got 1");
    s_run ("add", add, cask_list (cask_int64 (1), cask_int64 (1), cask_int64 (1), NULL),
           error, sizeof error);
    ck_assert_str_eq (error, "add: takes 2 arguments, got 3");
    s_run ("inc", inc, cask_list (NULL), error, sizeof error);
    ck_assert_str_eq (error, "inc: takes at least 1 argument, got 0");
    s_run ("div", divide, cask_list (cask_double (1), NULL), error, sizeof error);
    ck_assert_str_eq (error, "div: takes at least 2 arguments, got 1");
    //  No argument list at all counts as none
    s_run ("inc", inc, NULL, error, sizeof error);
    ck_assert_str_eq (error, "inc: takes at least 1 argument, got 0");

    cask_call_t call;
    cask_call_init (&call, "f", cask_list (cask_list (cask_int64 (1), NULL), NULL));
    int64_t x;
    ck_assert_int_eq (cask_arg_list_int64 (&call, 0, 1, &x), -1);
    ck_assert_str_eq (cask_call_error (&call), "f: argument 1 has 1 item, no item 2");
    ck_assert_ptr_null (cask_arg (&call, 5));
    cask_call_fini (&call);
}
END_TEST

START_TEST (test_failures)
{
    char error [6000];
    cask_value_t *result = s_run ("div", divide, cask_list (cask_double (1), cask_double (0), NULL),
                                  error, sizeof error);
    ck_assert_ptr_null (result);
    ck_assert_str_eq (error, "div: division by zero (1 / 0)");

    s_run ("quiet", silent_failure, cask_list (NULL), error, sizeof error);
    ck_assert_str_eq (error, "quiet: failed without a message");

    //  Returning 0 does not undo a failed accessor
    s_run ("sloppy", ignores_failure, cask_list (cask_string ("x"), NULL), error, sizeof error);
    ck_assert_str_eq (error, "sloppy: argument 1 is a string, expected int64");

    //  The first failure is the cause
    s_run ("twice", fails_twice, cask_list (NULL), error, sizeof error);
    ck_assert_str_eq (error, "twice: first reason");

    s_run ("ref", returns_ref, cask_list (NULL), error, sizeof error);
    ck_assert_str_eq (error, "ref: returned a ref, which is not a result");

    s_run ("long", long_message, cask_list (NULL), error, sizeof error);
    ck_assert_uint_eq (strlen (error), strlen ("long: ") + 4999 + 1);
    ck_assert_int_eq (error [strlen (error) - 1], '!');
}
END_TEST

START_TEST (test_results)
{
    char error [256];
    cask_value_t *result = s_run ("none", no_result, cask_list (NULL), error, sizeof error);
    ck_assert_int_eq (cask_value_type (result), CASK_NULL);
    cask_value_destroy (&result);

    result = s_run ("twice", returns_twice, cask_list (NULL), error, sizeof error);
    ck_assert_int_eq (cask_value_type (result), CASK_LIST);
    cask_value_destroy (&result);

    cask_call_t call;
    cask_call_init (&call, "direct", cask_list (NULL));
    ck_assert_int_eq (cask_return_null (&call), 0);
    ck_assert_int_eq (cask_return_bool (&call, true), 0);
    ck_assert_int_eq (cask_return_double (&call, 1.5), 0);
    ck_assert_int_eq (cask_return_string (&call, "s"), 0);
    ck_assert_int_eq (cask_value_type (call.result), CASK_STRING);
    ck_assert_int_eq (cask_return_bytes (&call, NULL, 0), 0);
    ck_assert_int_eq (cask_value_type (call.result), CASK_BYTES);
    ck_assert_ptr_null (cask_call_error (&call));
    ck_assert_int_eq (cask_return_string (&call, NULL), -1);
    ck_assert_str_eq (cask_call_error (&call), "direct: returned a NULL string");
    cask_call_fini (&call);
}
END_TEST

int
main (void)
{
    TCase *tc = tcase_create ("call");
    tcase_add_test (tc, test_success);
    tcase_add_test (tc, test_type_messages);
    tcase_add_test (tc, test_count_messages);
    tcase_add_test (tc, test_failures);
    tcase_add_test (tc, test_results);
    return cask_test_run ("call", tc, NULL);
}
