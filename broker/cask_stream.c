/*  cask_stream.c - the task stream ring (see cask_stream.h). */
#include "cask_stream.h"

#include <stdlib.h>
#include <string.h>

//  Keys up to this long live in the slot; longer ones on the heap.
#define S_KEY_INLINE 88

typedef struct {
    cask_stream_rec_t rec;      //  rec.key points at key_inline or key_heap
    char *key_heap;
    char key_inline [S_KEY_INLINE];
} s_slot_t;

struct _cask_stream_t {
    s_slot_t *slots;
    size_t capacity;
    uint64_t total;             //  records ever added; the next goes to total % capacity
};

cask_stream_t *
cask_stream_new (size_t capacity)
{
    cask_stream_t *self = (cask_stream_t *) calloc (1, sizeof (cask_stream_t));
    if (!self)
        return NULL;
    self->capacity = capacity ? capacity : 1;
    //  calloc of a large block maps zero pages: only slots used cost memory
    self->slots = (s_slot_t *) calloc (self->capacity, sizeof (s_slot_t));
    if (!self->slots)
        cask_stream_destroy (&self);
    return self;
}

void
cask_stream_destroy (cask_stream_t **self_p)
{
    cask_stream_t *self = *self_p;
    if (!self)
        return;
    if (self->slots)
        cask_stream_clear (self);
    free (self->slots);
    free (self);
    *self_p = NULL;
}

//  Copies key into slot; a long key that finds no memory is cut to the
//  inline room rather than lose the record.
static void
s_slot_key (s_slot_t *slot, cask_str_t key)
{
    free (slot->key_heap);
    slot->key_heap = NULL;
    char *text = slot->key_inline;
    if (key.len > S_KEY_INLINE && (slot->key_heap = (char *) malloc (key.len)))
        text = slot->key_heap;
    size_t len = text == slot->key_heap ? key.len
               : key.len < S_KEY_INLINE ? key.len : S_KEY_INLINE;
    memcpy (text, key.ptr, len);
    slot->rec.key = (cask_str_t) { text, len };
}

void
cask_stream_add (cask_stream_t *self, uint32_t worker, uint32_t fn,
                 const cask_done_t *done, uint64_t now_us)
{
    s_slot_t *slot = &self->slots [self->total++ % self->capacity];
    s_slot_key (slot, done->key);
    cask_stream_rec_t *rec = &slot->rec;
    rec->fn = fn;
    rec->worker = worker;
    rec->thread = done->thread;
    rec->ok = done->ok;
    rec->nbytes = done->nbytes;
    rec->fetch_start_us = done->fetch_start_us;
    rec->fetch_stop_us = done->fetch_start_us ? done->fetch_start_us + done->fetch_us : 0;
    //  A task that never ran (a copy, a failed fetch) is an instant at its end
    rec->start_us = done->start_us ? done->start_us
                  : rec->fetch_stop_us ? rec->fetch_stop_us : now_us;
    rec->stop_us = rec->start_us + (done->start_us ? done->duration_us : 0);
}

size_t
cask_stream_since (cask_stream_t *self, uint64_t since_us, size_t limit,
                   cask_stream_fn *fn, void *arg)
{
    uint64_t kept = self->total < self->capacity ? self->total : self->capacity;
    uint64_t first = self->total - kept;
    //  Walk back from the newest to find where the answer starts
    uint64_t from = self->total, matches = 0;
    for (uint64_t at = self->total; at > first && (!limit || matches < limit); at--)
        if (self->slots [(at - 1) % self->capacity].rec.stop_us > since_us) {
            from = at - 1;
            matches++;
        }
    size_t visited = 0;
    for (uint64_t at = from; at < self->total && visited < matches; at++) {
        const cask_stream_rec_t *rec = &self->slots [at % self->capacity].rec;
        if (rec->stop_us > since_us) {
            fn (arg, rec);
            visited++;
        }
    }
    return visited;
}

uint64_t
cask_stream_total (cask_stream_t *self)
{
    return self->total;
}

void
cask_stream_clear (cask_stream_t *self)
{
    uint64_t kept = self->total < self->capacity ? self->total : self->capacity;
    for (uint64_t at = 0; at < kept; at++) {
        free (self->slots [at].key_heap);
        self->slots [at].key_heap = NULL;
    }
    self->total = 0;
}
