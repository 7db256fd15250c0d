/*  cask_keymap.h - a hash map from keys (bytes) to items, made for task keys.

    The map holds item pointers and never copies a key: each item carries
    its own key, which the map reads through a function its owner gives.
    Open addressing with linear probing over one array of slots, each slot
    keeping the key's 64-bit hash beside the item, so a probe looks at an
    item only when the hashes are equal, and growing or removing never
    hashes again. Removal shifts the entries behind it back (no tombstones),
    so a map that churns stays as fast as a fresh one. Nothing is allocated
    per entry; the array doubles when it gets too full.

    Keys come off the wire, so every map hashes with a seed of its own
    (cask_hash64). A caller that looks a key up and then inserts it can
    hash it once with cask_keymap_hash and use the _hashed calls.

    Not thread-safe: one owner thread per map.
*/
#ifndef CASK_KEYMAP_H_INCLUDED
#define CASK_KEYMAP_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

typedef struct _cask_keymap_t cask_keymap_t;

//  The key of item: returns its bytes and sets *size.
typedef const void *(cask_keymap_key_fn) (const void *item, size_t *size);

//  Creates an empty map whose items give their keys through key_fn, or
//  NULL when out of memory.
cask_keymap_t *cask_keymap_new (cask_keymap_key_fn *key_fn);
//  Frees the map, not its items (walk them first); nulls *self_p. Safe on
//  NULL and twice.
void cask_keymap_destroy (cask_keymap_t **self_p);

//  The hash this map gives key, for the _hashed calls.
uint64_t cask_keymap_hash (cask_keymap_t *self, const void *key, size_t size);

//  The item whose key is key, or NULL.
void *cask_keymap_lookup (cask_keymap_t *self, const void *key, size_t size);
void *cask_keymap_lookup_hashed (cask_keymap_t *self, const void *key, size_t size,
                                 uint64_t hash);

//  Adds item (not NULL) under its key. Returns 0, or -1 when out of memory
//  or when an item with that key is in the map already (the map is then
//  unchanged).
int cask_keymap_insert (cask_keymap_t *self, void *item);
//  The same with the item's key hashed by cask_keymap_hash.
int cask_keymap_insert_hashed (cask_keymap_t *self, void *item, uint64_t hash);

//  Removes the item whose key is key and returns it, or NULL if none.
void *cask_keymap_remove (cask_keymap_t *self, const void *key, size_t size);

//  Number of items.
size_t cask_keymap_size (cask_keymap_t *self);

//  Walks the items in no particular order: set *cursor to 0, then each
//  call returns the next item, and NULL at the end. The map must not gain
//  or lose items during a walk (collect them first, remove them after).
void *cask_keymap_next (cask_keymap_t *self, size_t *cursor);

#endif
