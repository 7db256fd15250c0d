/*  cask_keymap.c - a hash map from keys to items (see cask_keymap.h).

    An empty slot has a NULL item. An entry's home is hash & mask; every
    slot between its home and itself is full, which is what lookups rely on
    to stop at the first empty slot and what removal keeps true by shifting
    back the entries that probed past the hole.
*/
#include "cask_keymap.h"
#include "cask_hash.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  Slots of a new map's first array
#define S_MIN_SLOTS 64
//  The array doubles before it is fuller than S_LOAD_NUM / S_LOAD_DEN
#define S_LOAD_NUM 3
#define S_LOAD_DEN 4

typedef struct {
    uint64_t hash;
    void *item;                 //  NULL: the slot is free
} s_slot_t;

struct _cask_keymap_t {
    cask_keymap_key_fn *key_fn;
    uint64_t seed;
    s_slot_t *slots;            //  NULL until the first insert
    size_t mask;                //  number of slots less one
    size_t size;
};

cask_keymap_t *
cask_keymap_new (cask_keymap_key_fn *key_fn)
{
    cask_keymap_t *self = (cask_keymap_t *) calloc (1, sizeof (cask_keymap_t));
    if (!self)
        return NULL;
    self->key_fn = key_fn;
    //  Unpredictable enough for a peer that would flood one probe run:
    //  the clock and where this process put the map
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    uint64_t stamp = (uint64_t) now.tv_sec * 1000000000u + (uint64_t) now.tv_nsec;
    uintptr_t where = (uintptr_t) self;
    self->seed = cask_hash64 (stamp, &where, sizeof where);
    return self;
}

void
cask_keymap_destroy (cask_keymap_t **self_p)
{
    if (self_p && *self_p) {
        free ((*self_p)->slots);
        free (*self_p);
        *self_p = NULL;
    }
}

uint64_t
cask_keymap_hash (cask_keymap_t *self, const void *key, size_t size)
{
    return cask_hash64 (self->seed, key, size);
}

static bool
s_has_key (cask_keymap_t *self, const void *item, const void *key, size_t size)
{
    size_t item_size;
    const void *item_key = self->key_fn (item, &item_size);
    return item_size == size && (size == 0 || memcmp (item_key, key, size) == 0);
}

//  The slot of the item with key, or NULL.
static s_slot_t *
s_find (cask_keymap_t *self, const void *key, size_t size, uint64_t hash)
{
    if (!self->slots)
        return NULL;
    for (size_t index = hash & self->mask; self->slots [index].item;
         index = (index + 1) & self->mask) {
        s_slot_t *slot = &self->slots [index];
        if (slot->hash == hash && s_has_key (self, slot->item, key, size))
            return slot;
    }
    return NULL;
}

void *
cask_keymap_lookup_hashed (cask_keymap_t *self, const void *key, size_t size, uint64_t hash)
{
    s_slot_t *slot = s_find (self, key, size, hash);
    return slot ? slot->item : NULL;
}

void *
cask_keymap_lookup (cask_keymap_t *self, const void *key, size_t size)
{
    return cask_keymap_lookup_hashed (self, key, size, cask_keymap_hash (self, key, size));
}

static void
s_place (s_slot_t *slots, size_t mask, uint64_t hash, void *item)
{
    size_t index = hash & mask;
    while (slots [index].item)
        index = (index + 1) & mask;
    slots [index].hash = hash;
    slots [index].item = item;
}

//  Room for one more entry: grows the array when it would be too full.
static int
s_reserve (cask_keymap_t *self)
{
    size_t count = self->slots ? self->mask + 1 : 0;
    if ((self->size + 1) * S_LOAD_DEN <= count * S_LOAD_NUM)
        return 0;
    size_t grown = count ? count * 2 : S_MIN_SLOTS;
    s_slot_t *slots = (s_slot_t *) calloc (grown, sizeof (s_slot_t));
    if (!slots)
        return -1;
    for (size_t index = 0; index < count; index++)
        if (self->slots [index].item)
            s_place (slots, grown - 1, self->slots [index].hash, self->slots [index].item);
    free (self->slots);
    self->slots = slots;
    self->mask = grown - 1;
    return 0;
}

int
cask_keymap_insert_hashed (cask_keymap_t *self, void *item, uint64_t hash)
{
    if (!item)
        return -1;
    size_t size;
    const void *key = self->key_fn (item, &size);
    if (s_find (self, key, size, hash) || s_reserve (self))
        return -1;
    s_place (self->slots, self->mask, hash, item);
    self->size++;
    return 0;
}

int
cask_keymap_insert (cask_keymap_t *self, void *item)
{
    if (!item)
        return -1;
    size_t size;
    const void *key = self->key_fn (item, &size);
    return cask_keymap_insert_hashed (self, item, cask_keymap_hash (self, key, size));
}

void *
cask_keymap_remove (cask_keymap_t *self, const void *key, size_t size)
{
    s_slot_t *slot = s_find (self, key, size, cask_keymap_hash (self, key, size));
    if (!slot)
        return NULL;
    void *item = slot->item;
    size_t mask = self->mask;
    size_t hole = (size_t) (slot - self->slots);
    for (size_t next = (hole + 1) & mask; self->slots [next].item; next = (next + 1) & mask) {
        size_t home = self->slots [next].hash & mask;
        //  An entry may fill the hole when its home is not in (hole, next]
        if (((next - home) & mask) >= ((next - hole) & mask)) {
            self->slots [hole] = self->slots [next];
            hole = next;
        }
    }
    self->slots [hole].item = NULL;
    self->size--;
    return item;
}

size_t
cask_keymap_size (cask_keymap_t *self)
{
    return self->size;
}

void *
cask_keymap_next (cask_keymap_t *self, size_t *cursor)
{
    size_t count = self->slots ? self->mask + 1 : 0;
    while (*cursor < count) {
        void *item = self->slots [(*cursor)++].item;
        if (item)
            return item;
    }
    return NULL;
}
