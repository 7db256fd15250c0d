/*  test_value.c - unit tests of typed values (include/cask/cask_value.h).

    Constructors and accessors of every type, bit-exact doubles, strings
    holding NUL, bytes taken or kept in a zmq frame without a copy, lists,
    equality, printing, sizes, and reference counts shared across threads.
*/
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cask_proto.h"
#include "cask_testutil.h"

START_TEST (test_type_names)
{
    ck_assert_str_eq (cask_type_name (CASK_NULL), "null");
    ck_assert_str_eq (cask_type_name (CASK_BOOL), "bool");
    ck_assert_str_eq (cask_type_name (CASK_INT64), "int64");
    ck_assert_str_eq (cask_type_name (CASK_DOUBLE), "double");
    ck_assert_str_eq (cask_type_name (CASK_STRING), "string");
    ck_assert_str_eq (cask_type_name (CASK_BYTES), "bytes");
    ck_assert_str_eq (cask_type_name (CASK_LIST), "list");
    ck_assert_str_eq (cask_type_name (CASK_REF), "ref");
    ck_assert_str_eq (cask_type_name ((cask_type_t) 99), "unknown");
}
END_TEST

START_TEST (test_scalars)
{
    cask_value_t *null = cask_null ();
    cask_value_t *yes = cask_bool (true);
    cask_value_t *min = cask_int64 (INT64_MIN);
    cask_value_t *max = cask_int64 (INT64_MAX);
    cask_value_t *pi = cask_double (3.25);
    ck_assert_int_eq (cask_value_type (null), CASK_NULL);
    ck_assert_int_eq (cask_value_type (yes), CASK_BOOL);

    bool b = false;
    int64_t i = 0;
    double d = 0;
    ck_assert_int_eq (cask_value_bool (yes, &b), 0);
    ck_assert (b);
    ck_assert_int_eq (cask_value_int64 (min, &i), 0);
    ck_assert (i == INT64_MIN);
    ck_assert_int_eq (cask_value_int64 (max, &i), 0);
    ck_assert (i == INT64_MAX);
    ck_assert_int_eq (cask_value_double (pi, &d), 0);
    ck_assert (d == 3.25);

    //  Wrong type: -1 and out untouched
    i = 42;
    ck_assert_int_eq (cask_value_int64 (pi, &i), -1);
    ck_assert (i == 42);
    ck_assert_int_eq (cask_value_bool (null, &b), -1);
    ck_assert_int_eq (cask_value_double (min, &d), -1);
    const char *s;
    ck_assert_int_eq (cask_value_string (min, &s, NULL), -1);
    const void *data;
    ck_assert_int_eq (cask_value_bytes (min, &data, NULL), -1);
    ck_assert_uint_eq (cask_value_size (min), 0);
    ck_assert_ptr_null (cask_value_item (min, 0));

    cask_value_destroy (&null);
    cask_value_destroy (&yes);
    cask_value_destroy (&min);
    cask_value_destroy (&max);
    cask_value_destroy (&pi);
    ck_assert_ptr_null (pi);
    cask_value_destroy (&pi);         //  safe twice
    cask_value_destroy (NULL);
}
END_TEST

START_TEST (test_doubles_bit_exact)
{
    cask_value_t *nan1 = cask_double (cask_test_double_from_bits (0x7FF8000000000123ull));
    cask_value_t *nan2 = cask_double (cask_test_double_from_bits (0x7FF8000000000123ull));
    cask_value_t *nan3 = cask_double (cask_test_double_from_bits (0x7FF8000000000456ull));
    cask_value_t *zero = cask_double (0.0);
    cask_value_t *negzero = cask_double (-0.0);
    cask_value_t *inf = cask_double (INFINITY);
    cask_value_t *inf2 = cask_double (INFINITY);
    ck_assert (cask_value_equal (nan1, nan2));
    ck_assert (!cask_value_equal (nan1, nan3));
    ck_assert (!cask_value_equal (zero, negzero));
    ck_assert (cask_value_equal (inf, inf2));

    double d;
    uint64_t bits;
    cask_value_double (nan3, &d);
    memcpy (&bits, &d, sizeof bits);
    ck_assert (bits == 0x7FF8000000000456ull);

    cask_value_destroy (&nan1);
    cask_value_destroy (&nan2);
    cask_value_destroy (&nan3);
    cask_value_destroy (&zero);
    cask_value_destroy (&negzero);
    cask_value_destroy (&inf);
    cask_value_destroy (&inf2);
}
END_TEST

START_TEST (test_strings)
{
    cask_value_t *hello = cask_string ("hello");
    const char *s;
    size_t size;
    ck_assert_int_eq (cask_value_string (hello, &s, &size), 0);
    ck_assert_str_eq (s, "hello");
    ck_assert_uint_eq (size, 5);

    cask_value_t *with_nul = cask_string_n ("a\0b", 3);
    ck_assert_int_eq (cask_value_string (with_nul, &s, &size), 0);
    ck_assert_uint_eq (size, 3);
    ck_assert_mem_eq (s, "a\0b", 4);          //  and NUL-terminated past size
    ck_assert (!cask_value_equal (hello, with_nul));

    cask_value_t *empty = cask_string ("");
    ck_assert_int_eq (cask_value_string (empty, &s, &size), 0);
    ck_assert_uint_eq (size, 0);
    ck_assert_str_eq (s, "");
    cask_value_t *empty_n = cask_string_n (NULL, 0);
    ck_assert (cask_value_equal (empty, empty_n));
    ck_assert_ptr_null (cask_string (NULL));

    //  A string and bytes with the same content differ
    cask_value_t *bytes = cask_bytes ("hello", 5);
    ck_assert (!cask_value_equal (hello, bytes));

    cask_value_destroy (&hello);
    cask_value_destroy (&with_nul);
    cask_value_destroy (&empty);
    cask_value_destroy (&empty_n);
    cask_value_destroy (&bytes);
}
END_TEST

static int s_freed;

static void
s_count_free (void *data, void *hint)
{
    ck_assert_ptr_eq (hint, &s_freed);
    free (data);
    s_freed++;
}

START_TEST (test_bytes)
{
    uint8_t raw [300];
    for (size_t index = 0; index < sizeof raw; index++)
        raw [index] = (uint8_t) index;
    cask_value_t *copied = cask_bytes (raw, sizeof raw);
    const void *data;
    size_t size;
    ck_assert_int_eq (cask_value_bytes (copied, &data, &size), 0);
    ck_assert_ptr_ne (data, raw);
    ck_assert_uint_eq (size, sizeof raw);
    ck_assert_mem_eq (data, raw, sizeof raw);

    //  Taken: no copy, freed once with the last reference
    s_freed = 0;
    void *heap = malloc (1000);
    memset (heap, 7, 1000);
    cask_value_t *taken = cask_bytes_take (heap, 1000, s_count_free, &s_freed);
    ck_assert_int_eq (cask_value_bytes (taken, &data, &size), 0);
    ck_assert_ptr_eq (data, heap);
    ck_assert_uint_eq (size, 1000);
    cask_value_t *second = cask_value_ref (taken);
    ck_assert_ptr_eq (second, taken);
    cask_value_destroy (&taken);
    ck_assert_int_eq (s_freed, 0);
    cask_value_destroy (&second);
    ck_assert_int_eq (s_freed, 1);

    //  Static data with no free function
    static const char fixed [] = "static";
    cask_value_t *fixed_value = cask_bytes_take ((void *) fixed, 6, NULL, NULL);
    ck_assert_int_eq (cask_value_bytes (fixed_value, &data, &size), 0);
    ck_assert_ptr_eq (data, fixed);
    cask_value_t *fixed_copy = cask_bytes ("static", 6);
    ck_assert (cask_value_equal (fixed_value, fixed_copy));

    cask_value_t *empty = cask_bytes (NULL, 0);
    ck_assert_int_eq (cask_value_bytes (empty, &data, &size), 0);
    ck_assert_uint_eq (size, 0);

    cask_value_destroy (&copied);
    cask_value_destroy (&fixed_value);
    cask_value_destroy (&fixed_copy);
    cask_value_destroy (&empty);
}
END_TEST

START_TEST (test_bytes_from_frame)
{
    //  A large frame: the value keeps the frame's data where it is
    size_t big = 10u << 20;
    zmq_msg_t frame;
    ck_assert_int_eq (zmq_msg_init_size (&frame, big), 0);
    memset (zmq_msg_data (&frame), 0xAB, big);
    void *frame_data = zmq_msg_data (&frame);
    cask_value_t *value = cask_value_from_frame (&frame);
    ck_assert_uint_eq (zmq_msg_size (&frame), 0);     //  moved out
    zmq_msg_close (&frame);
    const void *data;
    size_t size;
    ck_assert_int_eq (cask_value_bytes (value, &data, &size), 0);
    ck_assert_ptr_eq (data, frame_data);
    ck_assert_uint_eq (size, big);
    ck_assert_uint_eq (cask_value_nbytes (value), big);
    cask_value_destroy (&value);

    //  Small frames are copied (the frame may share a receive buffer) and
    //  left empty all the same
    size_t sizes [] = { 0, 5, 100, 8192, 8193 };
    for (size_t index = 0; index < 5; index++) {
        size_t small = sizes [index];
        ck_assert_int_eq (zmq_msg_init_size (&frame, small), 0);
        memset (zmq_msg_data (&frame), 'a' + (int) index, small);
        frame_data = zmq_msg_data (&frame);
        value = cask_value_from_frame (&frame);
        ck_assert_uint_eq (zmq_msg_size (&frame), 0);
        zmq_msg_close (&frame);
        ck_assert_int_eq (cask_value_bytes (value, &data, &size), 0);
        ck_assert_uint_eq (size, small);
        if (small > 8192)
            ck_assert_ptr_eq (data, frame_data);
        for (size_t at = 0; at < small; at++)
            ck_assert_int_eq (((const char *) data) [at], 'a' + (int) index);
        cask_value_destroy (&value);
    }
}
END_TEST

START_TEST (test_lists)
{
    cask_value_t *empty = cask_list (NULL);
    ck_assert_int_eq (cask_value_type (empty), CASK_LIST);
    ck_assert_uint_eq (cask_value_size (empty), 0);
    ck_assert_ptr_null (cask_value_item (empty, 0));

    cask_value_t *list = cask_list (cask_int64 (1), cask_double (2.5),
                                    cask_string ("x"),
                                    cask_list (cask_null (), cask_bool (false), NULL),
                                    NULL);
    ck_assert_uint_eq (cask_value_size (list), 4);
    int64_t i;
    ck_assert_int_eq (cask_value_int64 (cask_value_item (list, 0), &i), 0);
    ck_assert (i == 1);
    const cask_value_t *inner = cask_value_item (list, 3);
    ck_assert_uint_eq (cask_value_size (inner), 2);
    ck_assert_int_eq (cask_value_type (cask_value_item (inner, 1)), CASK_BOOL);
    ck_assert_ptr_null (cask_value_item (list, 4));

    //  Growing past the initial capacity
    cask_value_t *grown = cask_list_new (0);
    for (int64_t index = 0; index < 1000; index++)
        ck_assert_int_eq (cask_list_append (grown, cask_int64 (index)), 0);
    ck_assert_uint_eq (cask_value_size (grown), 1000);
    ck_assert_int_eq (cask_value_int64 (cask_value_item (grown, 999), &i), 0);
    ck_assert (i == 999);

    int64_t xs [1000];
    for (size_t index = 0; index < 1000; index++)
        xs [index] = (int64_t) index;
    cask_value_t *of_int64 = cask_list_of_int64 (xs, 1000);
    ck_assert (cask_value_equal (grown, of_int64));

    //  A shared list is immutable: append fails and drops the item
    cask_value_t *shared = cask_value_ref (grown);
    ck_assert_int_eq (cask_list_append (grown, cask_int64 (5)), -1);
    cask_value_destroy (&shared);
    ck_assert_int_eq (cask_list_append (grown, cask_int64 (5)), 0);
    ck_assert (!cask_value_equal (grown, of_int64));

    //  Append to a non-list fails and drops the item; a NULL item fails
    cask_value_t *scalar = cask_int64 (3);
    ck_assert_int_eq (cask_list_append (scalar, cask_int64 (5)), -1);
    ck_assert_int_eq (cask_list_append (grown, NULL), -1);

    cask_value_destroy (&empty);
    cask_value_destroy (&list);
    cask_value_destroy (&grown);
    cask_value_destroy (&of_int64);
    cask_value_destroy (&scalar);
}
END_TEST

START_TEST (test_equal)
{
    cask_value_t *a = cask_list (cask_int64 (1), cask_list (cask_string ("x"), NULL), NULL);
    cask_value_t *b = cask_list (cask_int64 (1), cask_list (cask_string ("x"), NULL), NULL);
    cask_value_t *c = cask_list (cask_int64 (1), cask_list (cask_string ("y"), NULL), NULL);
    cask_value_t *d = cask_list (cask_int64 (1), NULL);
    cask_value_t *t = cask_bool (true);
    cask_value_t *f = cask_bool (false);
    cask_value_t *n1 = cask_null ();
    cask_value_t *n2 = cask_null ();
    ck_assert (cask_value_equal (a, b));
    ck_assert (!cask_value_equal (a, c));
    ck_assert (!cask_value_equal (a, d));
    ck_assert (!cask_value_equal (t, f));
    ck_assert (cask_value_equal (n1, n2));
    ck_assert (!cask_value_equal (n1, NULL));
    ck_assert (cask_value_equal (NULL, NULL));
    cask_value_destroy (&a);
    cask_value_destroy (&b);
    cask_value_destroy (&c);
    cask_value_destroy (&d);
    cask_value_destroy (&t);
    cask_value_destroy (&f);
    cask_value_destroy (&n1);
    cask_value_destroy (&n2);
}
END_TEST

START_TEST (test_refs)
{
    int target;
    cask_value_t *ref = cask_value_new_ref (&target);
    ck_assert_int_eq (cask_value_type (ref), CASK_REF);
    ck_assert_ptr_eq (cask_value_ref_target (ref), &target);
    cask_value_t *same = cask_value_new_ref (&target);
    ck_assert (cask_value_equal (ref, same));
    cask_value_t *other = cask_int64 (1);
    ck_assert_ptr_null (cask_value_ref_target (other));
    ck_assert_ptr_null (cask_value_ref_target (NULL));
    cask_value_destroy (&ref);
    cask_value_destroy (&same);
    cask_value_destroy (&other);
}
END_TEST

START_TEST (test_print)
{
    uint8_t *big = (uint8_t *) calloc (1, 1048576);
    cask_value_t *list = cask_list (cask_int64 (1), cask_double (2.5), cask_string ("x"),
                                    cask_bytes_take (big, 1048576, NULL, NULL), NULL);
    char text [100];
    int length = cask_value_print (list, text, sizeof text);
    ck_assert_str_eq (text, "[1, 2.5, \"x\", <bytes 1048576>]");
    ck_assert_int_eq (length, (int) strlen (text));

    //  Truncated like snprintf: the length wanted, a NUL-terminated prefix
    char small [6];
    ck_assert_int_eq (cask_value_print (list, small, sizeof small), length);
    ck_assert_str_eq (small, "[1, 2");
    ck_assert_int_eq (cask_value_print (list, NULL, 0), length);

    cask_value_t *misc = cask_list (cask_null (), cask_bool (true), cask_bool (false),
                                    cask_double (0.1), cask_int64 (INT64_MIN),
                                    cask_list (NULL), NULL);
    cask_value_print (misc, text, sizeof text);
    ck_assert_str_eq (text, "[null, true, false, 0.1, -9223372036854775808, []]");

    cask_value_destroy (&list);
    cask_value_destroy (&misc);
    free (big);
}
END_TEST

START_TEST (test_nbytes)
{
    cask_value_t *list = cask_list (cask_string ("abc"), cask_bytes ("12345", 5),
                                    cask_int64 (1), cask_double (1), cask_null (),
                                    cask_list (cask_string ("zz"), NULL), NULL);
    ck_assert_uint_eq (cask_value_nbytes (list), 3 + 5 + 8 + 8 + 0 + 2);
    ck_assert_uint_eq (cask_value_nbytes (NULL), 0);
    cask_value_destroy (&list);
}
END_TEST

//  Many threads take and drop references to one value at once.
static void *
s_ref_churn (void *arg)
{
    cask_value_t *value = (cask_value_t *) arg;
    for (int round = 0; round < 100000; round++) {
        cask_value_t *held = cask_value_ref (value);
        cask_value_destroy (&held);
    }
    cask_value_destroy (&value);
    return NULL;
}

START_TEST (test_refcount_threads)
{
    s_freed = 0;
    cask_value_t *value = cask_bytes_take (malloc (64), 64, s_count_free, &s_freed);
    pthread_t threads [8];
    for (int index = 0; index < 8; index++)
        pthread_create (&threads [index], NULL, s_ref_churn, cask_value_ref (value));
    for (int index = 0; index < 8; index++)
        pthread_join (threads [index], NULL);
    ck_assert_int_eq (s_freed, 0);
    cask_value_destroy (&value);
    ck_assert_int_eq (s_freed, 1);
}
END_TEST

int
main (void)
{
    TCase *tc = tcase_create ("value");
    tcase_add_test (tc, test_type_names);
    tcase_add_test (tc, test_scalars);
    tcase_add_test (tc, test_doubles_bit_exact);
    tcase_add_test (tc, test_strings);
    tcase_add_test (tc, test_bytes);
    tcase_add_test (tc, test_bytes_from_frame);
    tcase_add_test (tc, test_lists);
    tcase_add_test (tc, test_equal);
    tcase_add_test (tc, test_refs);
    tcase_add_test (tc, test_print);
    tcase_add_test (tc, test_nbytes);
    tcase_add_test (tc, test_refcount_threads);
    return cask_test_run ("value", tc, NULL);
}
