/*  cask_value.c - typed, reference-counted, immutable values.

    Values are shared between the worker's executor threads, its cache and
    outgoing messages, so the reference count is atomic; everything else is
    written only while the value has a single holder (construction, and
    appending to a list nobody else holds yet).

    Layout: the common part holds scalars inline and a pointer plus size for
    strings, bytes and lists. Strings and copied bytes live in the same
    allocation, right after the value. Bytes taken from the caller and bytes
    kept inside a received ZeroMQ frame need extra fields, so those values
    are allocated as a larger struct that starts with the common part. null,
    true and false are static: no allocation, and no reference counting on
    a cache line every thread would share.
*/
#include "cask_proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Where a value lives, and so how it goes away.
typedef enum {
    S_STORED_HEAP = 0,          //  one allocation (with inline string/bytes data)
    S_STORED_STATIC = 1,        //  a static singleton, never freed
    S_STORED_TAKEN = 2,         //  bytes: caller's data, released with free_fn
    S_STORED_FRAME = 3          //  bytes: inside a received zmq frame
} s_stored_t;

struct _cask_value_t {
    uint32_t refs;              //  atomic
    uint8_t type;               //  cask_type_t
    uint8_t stored;             //  s_stored_t
    union {
        bool b;
        int64_t i;
        double d;
        void *target;           //  CASK_REF
        struct {
            void *data;
            size_t size;
        } blob;                 //  CASK_STRING (NUL-terminated), CASK_BYTES
        struct {
            cask_value_t **items;
            size_t size;
            size_t cap;
        } list;
    } u;
};

typedef struct {
    cask_value_t base;
    void (*free_fn) (void *data, void *hint);
    void *hint;
} s_taken_t;

typedef struct {
    cask_value_t base;
    zmq_msg_t frame;
} s_framed_t;

static cask_value_t *
s_value_new (cask_type_t type, size_t alloc_size)
{
    cask_value_t *self = (cask_value_t *) malloc (alloc_size);
    if (self) {
        self->refs = 1;
        self->type = (uint8_t) type;
        self->stored = S_STORED_HEAP;
    }
    return self;
}

const char *
cask_type_name (cask_type_t type)
{
    switch (type) {
        case CASK_NULL: return "null";
        case CASK_BOOL: return "bool";
        case CASK_INT64: return "int64";
        case CASK_DOUBLE: return "double";
        case CASK_STRING: return "string";
        case CASK_BYTES: return "bytes";
        case CASK_LIST: return "list";
        case CASK_REF: return "ref";
    }
    return "unknown";
}

static cask_value_t s_null = { 1, CASK_NULL, S_STORED_STATIC, { .i = 0 } };
static cask_value_t s_false = { 1, CASK_BOOL, S_STORED_STATIC, { .b = false } };
static cask_value_t s_true = { 1, CASK_BOOL, S_STORED_STATIC, { .b = true } };

cask_value_t *
cask_null (void)
{
    return &s_null;
}

cask_value_t *
cask_bool (bool b)
{
    return b ? &s_true : &s_false;
}

cask_value_t *
cask_int64 (int64_t i)
{
    cask_value_t *self = s_value_new (CASK_INT64, sizeof (cask_value_t));
    if (self)
        self->u.i = i;
    return self;
}

cask_value_t *
cask_double (double d)
{
    cask_value_t *self = s_value_new (CASK_DOUBLE, sizeof (cask_value_t));
    if (self)
        self->u.d = d;
    return self;
}

//  A string or bytes value with its data copied right after the value; a
//  string gets a terminating NUL past size.
static cask_value_t *
s_blob_copy (cask_type_t type, const void *data, size_t size)
{
    if (size > SIZE_MAX - sizeof (cask_value_t) - 1)
        return NULL;
    cask_value_t *self = s_value_new (type, sizeof (cask_value_t) + size + 1);
    if (self) {
        self->u.blob.data = (uint8_t *) self + sizeof (cask_value_t);
        self->u.blob.size = size;
        if (size)
            memcpy (self->u.blob.data, data, size);
        ((uint8_t *) self->u.blob.data) [size] = 0;
    }
    return self;
}

cask_value_t *
cask_string (const char *s)
{
    return s ? s_blob_copy (CASK_STRING, s, strlen (s)) : NULL;
}

cask_value_t *
cask_string_n (const char *data, size_t size)
{
    return data || size == 0 ? s_blob_copy (CASK_STRING, data, size) : NULL;
}

cask_value_t *
cask_bytes (const void *data, size_t size)
{
    return data || size == 0 ? s_blob_copy (CASK_BYTES, data, size) : NULL;
}

cask_value_t *
cask_bytes_take (void *data, size_t size,
                 void (*free_fn) (void *data, void *hint), void *hint)
{
    s_taken_t *taken = (s_taken_t *) s_value_new (CASK_BYTES, sizeof (s_taken_t));
    if (!taken)
        return NULL;
    taken->base.stored = S_STORED_TAKEN;
    taken->base.u.blob.data = data;
    taken->base.u.blob.size = size;
    taken->free_fn = free_fn;
    taken->hint = hint;
    return &taken->base;
}

//  Received frames up to this size are copied rather than kept: ZeroMQ
//  receives small messages into one shared 8 KiB buffer, and a value kept
//  in a cache would pin all of that buffer for its few bytes.
#define S_FRAME_COPY_MAX 8192

cask_value_t *
cask_value_from_frame (zmq_msg_t *frame)
{
    if (zmq_msg_size (frame) <= S_FRAME_COPY_MAX) {
        cask_value_t *copy = cask_bytes (zmq_msg_data (frame), zmq_msg_size (frame));
        if (copy) {
            zmq_msg_close (frame);
            zmq_msg_init (frame);
        }
        return copy;
    }
    s_framed_t *framed = (s_framed_t *) s_value_new (CASK_BYTES, sizeof (s_framed_t));
    if (!framed)
        return NULL;
    framed->base.stored = S_STORED_FRAME;
    zmq_msg_init (&framed->frame);
    zmq_msg_move (&framed->frame, frame);
    framed->base.u.blob.data = zmq_msg_data (&framed->frame);
    framed->base.u.blob.size = zmq_msg_size (&framed->frame);
    return &framed->base;
}

cask_value_t *
cask_value_new_ref (void *target)
{
    cask_value_t *self = s_value_new (CASK_REF, sizeof (cask_value_t));
    if (self)
        self->u.target = target;
    return self;
}

void *
cask_value_ref_target (const cask_value_t *self)
{
    return self && self->type == CASK_REF ? self->u.target : NULL;
}

cask_value_t *
cask_list_new (size_t capacity)
{
    if (capacity > SIZE_MAX / sizeof (cask_value_t *))
        return NULL;
    cask_value_t *self = s_value_new (CASK_LIST, sizeof (cask_value_t));
    if (!self)
        return NULL;
    self->u.list.size = 0;
    self->u.list.cap = capacity;
    self->u.list.items = NULL;
    if (capacity) {
        self->u.list.items = (cask_value_t **) malloc (capacity * sizeof (cask_value_t *));
        if (!self->u.list.items) {
            free (self);
            return NULL;
        }
    }
    return self;
}

static int
s_list_grow (cask_value_t *self)
{
    size_t cap = self->u.list.cap ? self->u.list.cap * 2 : 4;
    if (cap > SIZE_MAX / sizeof (cask_value_t *))
        return -1;
    cask_value_t **items = (cask_value_t **) realloc (self->u.list.items,
                                                       cap * sizeof (cask_value_t *));
    if (!items)
        return -1;
    self->u.list.items = items;
    self->u.list.cap = cap;
    return 0;
}

int
cask_list_append (cask_value_t *self, cask_value_t *item)
{
    if (!item)
        return -1;
    if (!self || self->type != CASK_LIST
    ||  __atomic_load_n (&self->refs, __ATOMIC_ACQUIRE) != 1
    ||  (self->u.list.size == self->u.list.cap && s_list_grow (self))) {
        cask_value_destroy (&item);
        return -1;
    }
    self->u.list.items [self->u.list.size++] = item;
    return 0;
}

cask_value_t *
cask_list (cask_value_t *first, ...)
{
    //  A NULL from a failed constructor ends the argument list early, so
    //  the items after it are lost: acceptable for an out-of-memory case
    cask_value_t *self = cask_list_new (4);
    va_list args;
    va_start (args, first);
    for (cask_value_t *item = first; item; item = va_arg (args, cask_value_t *)) {
        if (!self)
            cask_value_destroy (&item);
        else
        if (cask_list_append (self, item))
            cask_value_destroy (&self);     //  the append dropped item
    }
    va_end (args);
    return self;
}

cask_value_t *
cask_list_of_int64 (const int64_t *xs, size_t n)
{
    cask_value_t *self = cask_list_new (n);
    for (size_t index = 0; self && index < n; index++)
        if (cask_list_append (self, cask_int64 (xs [index])))
            cask_value_destroy (&self);
    return self;
}

cask_value_t *
cask_value_ref (cask_value_t *self)
{
    if (self && self->stored != S_STORED_STATIC)
        __atomic_add_fetch (&self->refs, 1, __ATOMIC_RELAXED);
    return self;
}

static void
s_value_free (cask_value_t *self)
{
    if (self->type == CASK_LIST) {
        for (size_t index = 0; index < self->u.list.size; index++)
            cask_value_destroy (&self->u.list.items [index]);
        free (self->u.list.items);
    }
    else
    if (self->stored == S_STORED_TAKEN) {
        s_taken_t *taken = (s_taken_t *) self;
        if (taken->free_fn)
            taken->free_fn (self->u.blob.data, taken->hint);
    }
    else
    if (self->stored == S_STORED_FRAME)
        zmq_msg_close (&((s_framed_t *) self)->frame);
    free (self);
}

void
cask_value_destroy (cask_value_t **self_p)
{
    if (self_p && *self_p) {
        cask_value_t *self = *self_p;
        *self_p = NULL;
        if (self->stored != S_STORED_STATIC
        &&  __atomic_sub_fetch (&self->refs, 1, __ATOMIC_ACQ_REL) == 0)
            s_value_free (self);
    }
}

cask_type_t
cask_value_type (const cask_value_t *self)
{
    return self ? (cask_type_t) self->type : CASK_NULL;
}

int
cask_value_bool (const cask_value_t *self, bool *out)
{
    if (!self || self->type != CASK_BOOL)
        return -1;
    *out = self->u.b;
    return 0;
}

int
cask_value_int64 (const cask_value_t *self, int64_t *out)
{
    if (!self || self->type != CASK_INT64)
        return -1;
    *out = self->u.i;
    return 0;
}

int
cask_value_double (const cask_value_t *self, double *out)
{
    if (!self || self->type != CASK_DOUBLE)
        return -1;
    *out = self->u.d;
    return 0;
}

int
cask_value_string (const cask_value_t *self, const char **out, size_t *size)
{
    if (!self || self->type != CASK_STRING)
        return -1;
    *out = (const char *) self->u.blob.data;
    if (size)
        *size = self->u.blob.size;
    return 0;
}

int
cask_value_bytes (const cask_value_t *self, const void **out, size_t *size)
{
    if (!self || self->type != CASK_BYTES)
        return -1;
    *out = self->u.blob.data;
    if (size)
        *size = self->u.blob.size;
    return 0;
}

size_t
cask_value_size (const cask_value_t *self)
{
    return self && self->type == CASK_LIST ? self->u.list.size : 0;
}

const cask_value_t *
cask_value_item (const cask_value_t *self, size_t index)
{
    if (!self || self->type != CASK_LIST || index >= self->u.list.size)
        return NULL;
    return self->u.list.items [index];
}

bool
cask_value_equal (const cask_value_t *a, const cask_value_t *b)
{
    if (a == b)
        return true;
    if (!a || !b || a->type != b->type)
        return false;
    switch ((cask_type_t) a->type) {
        case CASK_NULL:
            return true;
        case CASK_BOOL:
            return a->u.b == b->u.b;
        case CASK_INT64:
            return a->u.i == b->u.i;
        case CASK_DOUBLE:
            return memcmp (&a->u.d, &b->u.d, sizeof (double)) == 0;
        case CASK_STRING:
        case CASK_BYTES:
            return a->u.blob.size == b->u.blob.size
                && (a->u.blob.size == 0
                    || memcmp (a->u.blob.data, b->u.blob.data, a->u.blob.size) == 0);
        case CASK_LIST:
            if (a->u.list.size != b->u.list.size)
                return false;
            for (size_t index = 0; index < a->u.list.size; index++)
                if (!cask_value_equal (a->u.list.items [index], b->u.list.items [index]))
                    return false;
            return true;
        case CASK_REF:
            return a->u.target == b->u.target;
    }
    return false;
}

//  snprintf-like writer: counts everything, stores what fits.
typedef struct {
    char *buf;
    size_t size;
    size_t length;
} s_printer_t;

static void
s_print (s_printer_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_print (s_printer_t *self, const char *format, ...)
{
    char *at = self->length < self->size ? self->buf + self->length : NULL;
    size_t room = at ? self->size - self->length : 0;
    va_list args;
    va_start (args, format);
    int wanted = vsnprintf (at, room, format, args);
    va_end (args);
    if (wanted > 0)
        self->length += (size_t) wanted;
}

//  Strings longer than this print as their start and an ellipsis.
#define S_PRINT_STRING_MAX 64

static void
s_print_value (s_printer_t *self, const cask_value_t *value)
{
    switch (cask_value_type (value)) {
        case CASK_NULL:
            s_print (self, "null");
            break;
        case CASK_BOOL:
            s_print (self, "%s", value->u.b ? "true" : "false");
            break;
        case CASK_INT64:
            s_print (self, "%lld", (long long) value->u.i);
            break;
        case CASK_DOUBLE: {
            //  Shortest of the usual forms that reads back to the same double
            char text [32];
            snprintf (text, sizeof text, "%.15g", value->u.d);
            if (strtod (text, NULL) != value->u.d)
                snprintf (text, sizeof text, "%.17g", value->u.d);
            s_print (self, "%s", text);
            break;
        }
        case CASK_STRING: {
            size_t size = value->u.blob.size;
            int shown = size > S_PRINT_STRING_MAX ? S_PRINT_STRING_MAX : (int) size;
            s_print (self, "\"%.*s%s\"", shown, (const char *) value->u.blob.data,
                     (size_t) shown < size ? "..." : "");
            break;
        }
        case CASK_BYTES:
            s_print (self, "<bytes %zu>", value->u.blob.size);
            break;
        case CASK_LIST:
            s_print (self, "[");
            for (size_t index = 0; index < value->u.list.size; index++) {
                if (index)
                    s_print (self, ", ");
                s_print_value (self, value->u.list.items [index]);
            }
            s_print (self, "]");
            break;
        case CASK_REF:
            s_print (self, "<ref>");
            break;
    }
}

int
cask_value_print (const cask_value_t *self, char *buf, size_t size)
{
    s_printer_t printer = { buf, buf ? size : 0, 0 };
    if (printer.size)
        buf [0] = 0;
    s_print_value (&printer, self);
    return printer.length > INT32_MAX ? INT32_MAX : (int) printer.length;
}

uint64_t
cask_value_nbytes (const cask_value_t *self)
{
    //  Scalars count their in-memory size, so that a long list of numbers
    //  weighs what it costs to move
    switch (cask_value_type (self)) {
        case CASK_NULL:
        case CASK_REF:
            return 0;
        case CASK_BOOL:
            return 1;
        case CASK_INT64:
        case CASK_DOUBLE:
            return 8;
        case CASK_STRING:
        case CASK_BYTES:
            return self->u.blob.size;
        case CASK_LIST: {
            uint64_t total = 0;
            for (size_t index = 0; index < self->u.list.size; index++)
                total += cask_value_nbytes (self->u.list.items [index]);
            return total;
        }
    }
    return 0;
}
