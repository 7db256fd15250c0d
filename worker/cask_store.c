/*  cask_store.c - the worker's results: key -> value, and the GET service.

    Values are reference counted, so serving one shares it with ZeroMQ
    (bytes travel as zero-copy frames) and with running tasks instead of
    copying it; dropping it from the store only drops the store's hold.
    Payload sizes are recomputed on removal rather than remembered per key:
    values are immutable, so cask_value_nbytes gives the same answer twice.

    Each result is one entry, its value and its key in one allocation, in
    a cask_keymap that reads the key in place.
*/
#include "cask_store.h"
#include "cask_keymap.h"

#include <stdlib.h>
#include <string.h>

//  DATA replies are split so that no message nears the protocol's limits.
#define S_DATA_BODY_MAX (16u << 20)
#define S_DATA_FRAMES_MAX (CASK_MAX_FRAMES / 2)
#define S_RECORD_BODY_MAX (CASK_MAX_BODY - S_DATA_BODY_MAX - 1024)

//  One DATA message being built for a GET.
typedef struct {
    cask_buf_t body;
    cask_message_t msg;         //  payload frames
    uint32_t count;             //  records in body
} s_reply_t;

//  A result held.
typedef struct {
    cask_value_t *value;
    size_t key_len;
    char key [];
} s_entry_t;

struct _cask_store_t {
    cask_keymap_t *entries;     //  by key
    uint64_t bytes;             //  payload bytes of the values held
    uint64_t gets_served;
    uint64_t bytes_served;
    uint64_t gets_missed;
    s_reply_t reply;            //  kept from one GET to the next
};
static const void *
s_entry_key (const void *item, size_t *size)
{
    const s_entry_t *entry = (const s_entry_t *) item;
    *size = entry->key_len;
    return entry->key;
}

static void
s_entry_destroy (s_entry_t **entry_p)
{
    cask_value_destroy (&(*entry_p)->value);
    free (*entry_p);
    *entry_p = NULL;
}

cask_store_t *
cask_store_new (void)
{
    cask_store_t *self = (cask_store_t *) calloc (1, sizeof (cask_store_t));
    if (self) {
        self->entries = cask_keymap_new (s_entry_key);
        if (!self->entries) {
            free (self);
            return NULL;
        }
        cask_buf_init (&self->reply.body);
        cask_message_init (&self->reply.msg);
    }
    return self;
}

void
cask_store_destroy (cask_store_t **self_p)
{
    if (self_p && *self_p) {
        cask_store_t *self = *self_p;
        cask_store_clear (self);
        cask_keymap_destroy (&self->entries);
        cask_message_close (&self->reply.msg);
        cask_buf_free (&self->reply.body);
        free (self);
        *self_p = NULL;
    }
}

//  A new entry holding value under key, in the map; NULL when out of
//  memory (the value is left to the caller).
static s_entry_t *
s_entry_new (cask_store_t *self, cask_str_t key, uint64_t hash, cask_value_t *value)
{
    s_entry_t *entry = (s_entry_t *) malloc (sizeof (s_entry_t) + key.len);
    if (!entry)
        return NULL;
    entry->value = value;
    entry->key_len = key.len;
    if (key.len)
        memcpy (entry->key, key.ptr, key.len);
    if (cask_keymap_insert_hashed (self->entries, entry, hash)) {
        free (entry);
        return NULL;
    }
    return entry;
}

int
cask_store_put (cask_store_t *self, cask_str_t key, cask_value_t *value)
{
    if (!value)
        return -1;
    uint64_t hash = cask_keymap_hash (self->entries, key.ptr, key.len);
    s_entry_t *entry = cask_keymap_lookup_hashed (self->entries, key.ptr, key.len, hash);
    if (entry) {
        self->bytes -= cask_value_nbytes (entry->value);
        cask_value_destroy (&entry->value);
        entry->value = value;
    }
    else
    if (!s_entry_new (self, key, hash, value)) {
        cask_value_destroy (&value);
        return -1;
    }
    self->bytes += cask_value_nbytes (value);
    return 0;
}

cask_value_t *
cask_store_lookup (cask_store_t *self, cask_str_t key)
{
    s_entry_t *entry = cask_keymap_lookup (self->entries, key.ptr, key.len);
    return entry ? entry->value : NULL;
}

int
cask_store_remove (cask_store_t *self, cask_str_t key)
{
    s_entry_t *entry = cask_keymap_remove (self->entries, key.ptr, key.len);
    if (!entry)
        return -1;
    self->bytes -= cask_value_nbytes (entry->value);
    s_entry_destroy (&entry);
    return 0;
}

//  A fresh map also gives back the slots the old one had grown to; without
//  memory for one, the entries leave the old map one by one.
void
cask_store_clear (cask_store_t *self)
{
    cask_keymap_t *fresh = cask_keymap_new (s_entry_key);
    s_entry_t *entry;
    size_t cursor = 0;
    while ((entry = cask_keymap_next (self->entries, &cursor))) {
        if (!fresh) {
            cask_keymap_remove (self->entries, entry->key, entry->key_len);
            cursor = 0;
        }
        s_entry_destroy (&entry);
    }
    if (fresh) {
        cask_keymap_destroy (&self->entries);
        self->entries = fresh;
    }
    self->bytes = 0;
}

size_t
cask_store_size (cask_store_t *self)
{
    return cask_keymap_size (self->entries);
}

uint64_t
cask_store_bytes (cask_store_t *self)
{
    return self->bytes;
}

uint64_t
cask_store_gets_served (cask_store_t *self)
{
    return self->gets_served;
}

uint64_t
cask_store_bytes_served (cask_store_t *self)
{
    return self->bytes_served;
}

uint64_t
cask_store_gets_missed (cask_store_t *self)
{
    return self->gets_missed;
}

//  ---------------------------------------------------------------------
//  GET -> DATA

static void
s_reply_start (s_reply_t *reply)
{
    cask_buf_reset (&reply->body);
    cask_put_u32 (&reply->body, 0);
    reply->count = 0;
}

static void
s_reply_send (s_reply_t *reply, void *router, cask_message_t *request)
{
    cask_buf_patch_u32 (&reply->body, 0, reply->count);
    cask_send (router, &request->routing, CASK_MSG_DATA, &reply->body, &reply->msg);
}

//  Adds a found record for key. A value too large for one message is
//  refused (-1) rather than breaking the protocol's limits, so its frames
//  go to a message of their own first and join the reply only once the
//  record is known to fit (frame indices are relative to the record's
//  first frame, so moving them needs no renumbering).
static int
s_reply_add_value (s_reply_t *reply, cask_str_t key, cask_value_t *value)
{
    size_t mark = reply->body.size;
    cask_put_str8 (&reply->body, key);
    cask_put_u8 (&reply->body, 1);
    size_t nframes_at = reply->body.size;
    cask_put_u32 (&reply->body, 0);

    cask_message_t own;
    cask_message_init (&own);
    int rc = cask_value_encode (value, &reply->body, &own, NULL, NULL);
    if (reply->body.failed
    ||  reply->body.size - mark > S_RECORD_BODY_MAX
    ||  own.nframes > S_DATA_FRAMES_MAX)
        rc = -1;
    for (size_t index = 0; rc == 0 && index < own.nframes; index++)
        if (cask_message_move_frame (&reply->msg, &own.frames [index]) < 0)
            rc = -1;
    if (rc == 0)
        cask_buf_patch_u32 (&reply->body, nframes_at, (uint32_t) own.nframes);
    else {
        reply->body.size = mark;
        reply->body.failed = false;
    }
    cask_message_close (&own);
    return rc;
}

static void
s_reply_add_missing (s_reply_t *reply, cask_str_t key)
{
    cask_put_str8 (&reply->body, key);
    cask_put_u8 (&reply->body, 0);
}

static bool
s_reply_full (s_reply_t *reply)
{
    return reply->body.size >= S_DATA_BODY_MAX
        || reply->msg.nframes >= S_DATA_FRAMES_MAX;
}

static void
s_serve_key (cask_store_t *self, s_reply_t *reply, cask_str_t key)
{
    cask_value_t *value = cask_store_lookup (self, key);
    if (value && s_reply_add_value (reply, key, value) == 0) {
        self->gets_served++;
        self->bytes_served += cask_value_nbytes (value);
    }
    else {
        s_reply_add_missing (reply, key);
        self->gets_missed++;
    }
    reply->count++;
}

//  Reads the keys of a GET body; all or nothing, so that a malformed
//  request gets ERROR and no partial DATA.
static int
s_check_keys (cask_message_t *request, uint32_t *count)
{
    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&request->body), zmq_msg_size (&request->body));
    *count = cask_get_u32 (&rd);
    for (uint32_t index = 0; index < *count && !rd.failed; index++)
        cask_get_str8 (&rd);
    return cask_rd_done (&rd) ? 0 : -1;
}

int
cask_store_serve (cask_store_t *self, void *router, cask_message_t *request,
                  const char **why)
{
    uint32_t count;
    if (s_check_keys (request, &count) || request->nframes) {
        *why = "malformed GET";
        return -1;
    }
    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&request->body), zmq_msg_size (&request->body));
    cask_get_u32 (&rd);

    s_reply_t *reply = &self->reply;
    s_reply_start (reply);
    for (uint32_t index = 0; index < count; index++) {
        s_serve_key (self, reply, cask_get_str8 (&rd));
        if (s_reply_full (reply) && index + 1 < count) {
            s_reply_send (reply, router, request);
            s_reply_start (reply);
        }
    }
    s_reply_send (reply, router, request);
    return 0;
}
