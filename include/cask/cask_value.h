/*  cask_value.h - typed values: what tasks take as arguments and return.

    A value is one of null, bool, int64, double, string, bytes, a list of
    values, or (only inside a submit's arguments) a reference to a future.
    Values are immutable once built and reference counted, so the worker's
    cache, a running task and an outgoing message can share one without a
    copy. Large bytes are never copied: a bytes value built from a received
    frame keeps that frame, and a bytes value sent out is handed to ZeroMQ
    by reference.

    Constructors return a new value with one reference, or NULL when out of
    memory. Functions that take a value "and its ownership" consume that
    reference, also when they fail.
*/
#ifndef CASK_VALUE_H_INCLUDED
#define CASK_VALUE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    CASK_NULL = 0,
    CASK_BOOL = 1,
    CASK_INT64 = 2,
    CASK_DOUBLE = 3,
    CASK_STRING = 4,
    CASK_BYTES = 5,
    CASK_LIST = 6,
    CASK_REF = 7          //  a future, as a submit argument (client side only)
} cask_type_t;

typedef struct _cask_value_t cask_value_t;

//  Name of a type ("int64", "string", ...), never NULL.
const char *cask_type_name (cask_type_t type);

//  Constructors. Each returns a new value owned by the caller, or NULL.
cask_value_t *cask_null (void);
cask_value_t *cask_bool (bool b);
cask_value_t *cask_int64 (int64_t i);
cask_value_t *cask_double (double d);
//  Copies the NUL-terminated string s.
cask_value_t *cask_string (const char *s);
//  Copies size bytes from data; the string may hold NUL bytes.
cask_value_t *cask_string_n (const char *data, size_t size);
//  Copies size bytes from data.
cask_value_t *cask_bytes (const void *data, size_t size);
//  Takes data without copying; free_fn(data, hint) is called once the last
//  reference is gone (free_fn may be NULL for static data). That may be on
//  another thread, such as ZeroMQ's I/O thread after the bytes were sent.
cask_value_t *cask_bytes_take (void *data, size_t size,
                               void (*free_fn) (void *data, void *hint), void *hint);
//  A list of the given values, ending at the first NULL argument; takes
//  ownership of each. cask_list (NULL) is the empty list.
cask_value_t *cask_list (cask_value_t *first, ...);
//  An empty list with room for capacity items (it grows as needed).
cask_value_t *cask_list_new (size_t capacity);
//  Appends item to list, taking ownership of item. 0, or -1 if list is not
//  a list being built (one not yet shared) or memory ran out.
int cask_list_append (cask_value_t *list, cask_value_t *item);
//  A list of n int64 values copied from xs.
cask_value_t *cask_list_of_int64 (const int64_t *xs, size_t n);

//  References: another holder of the same value. Returns value.
cask_value_t *cask_value_ref (cask_value_t *value);
//  Drops one reference and nulls *self_p. Safe on NULL and twice.
void cask_value_destroy (cask_value_t **self_p);

//  Accessors. Each returns 0, or -1 when the value is not of that type
//  (then *out is untouched). Pointers handed out stay valid while the value
//  lives; strings are NUL-terminated.
cask_type_t cask_value_type (const cask_value_t *self);
int cask_value_bool (const cask_value_t *self, bool *out);
int cask_value_int64 (const cask_value_t *self, int64_t *out);
int cask_value_double (const cask_value_t *self, double *out);
int cask_value_string (const cask_value_t *self, const char **out, size_t *size);
int cask_value_bytes (const cask_value_t *self, const void **out, size_t *size);
//  Number of items of a list; 0 for anything else.
size_t cask_value_size (const cask_value_t *self);
//  Item index of a list (borrowed), or NULL when out of range or not a list.
const cask_value_t *cask_value_item (const cask_value_t *self, size_t index);

//  Deep equality: same type and content (doubles compared bit for bit).
bool cask_value_equal (const cask_value_t *a, const cask_value_t *b);
//  Writes a short human form ("[1, 2.5, \"x\", <bytes 1048576>]") into buf,
//  truncated to size; returns the length it wanted, like snprintf.
int cask_value_print (const cask_value_t *self, char *buf, size_t size);
//  Bytes of payload the value holds (strings, bytes and items summed); what
//  the broker counts for data locality.
uint64_t cask_value_nbytes (const cask_value_t *self);

#ifdef __cplusplus
}
#endif

#endif
