/*  test_keymap.c - unit tests of the map of task keys (proto/cask_keymap.c)
    and of the hash under it (proto/cask_hash.c).

    The map is checked against a plain array over a small universe of keys,
    so that random inserts and removals pack long probe runs that wrap
    around the end of the slots, which is where backward-shift removal can
    go wrong.
*/
#include <check.h>
#include "cask_testutil.h"
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cask_hash.h"
#include "cask_keymap.h"

typedef struct {
    size_t size;
    char key [64];
    bool in;                    //  in the map, as the model sees it
    unsigned visits;            //  by the last walk
} item_t;

static const void *
s_item_key (const void *item, size_t *size)
{
    const item_t *self = (const item_t *) item;
    *size = self->size;
    return self->key;
}

static void
s_item_set (item_t *item, size_t index)
{
    memset (item, 0, sizeof (item_t));
    item->size = (size_t) snprintf (item->key, sizeof item->key,
                                    "inc-%016zx%016zx", index * 2654435761u, index);
}

//  Every item the model holds is found, every other is not, the size
//  agrees and a walk visits each held item once.
static void
s_check_model (cask_keymap_t *map, item_t *items, size_t count)
{
    size_t held = 0;
    for (size_t index = 0; index < count; index++) {
        void *found = cask_keymap_lookup (map, items [index].key, items [index].size);
        ck_assert_ptr_eq (found, items [index].in ? &items [index] : NULL);
        held += items [index].in;
        items [index].visits = 0;
    }
    ck_assert_uint_eq (cask_keymap_size (map), held);
    size_t cursor = 0;
    item_t *item;
    size_t walked = 0;
    while ((item = (item_t *) cask_keymap_next (map, &cursor))) {
        ck_assert (item->in);
        item->visits++;
        walked++;
    }
    ck_assert_uint_eq (walked, held);
    for (size_t index = 0; index < count; index++)
        ck_assert_uint_eq (items [index].visits, items [index].in ? 1 : 0);
}

START_TEST (test_insert_lookup_remove)
{
    cask_keymap_t *map = cask_keymap_new (s_item_key);
    ck_assert_ptr_nonnull (map);
    ck_assert_uint_eq (cask_keymap_size (map), 0);
    ck_assert_ptr_null (cask_keymap_lookup (map, "a", 1));
    ck_assert_ptr_null (cask_keymap_remove (map, "a", 1));
    size_t cursor = 0;
    ck_assert_ptr_null (cask_keymap_next (map, &cursor));

    item_t a = { 1, "a", false, 0 }, b = { 2, "ab", false, 0 }, empty = { 0, "", false, 0 };
    item_t nul = { 3, { 'a', 0, 'b' }, false, 0 }, other_a = { 1, "a", false, 0 };
    ck_assert_int_eq (cask_keymap_insert (map, &a), 0);
    ck_assert_int_eq (cask_keymap_insert (map, &b), 0);
    ck_assert_int_eq (cask_keymap_insert (map, &empty), 0);
    ck_assert_int_eq (cask_keymap_insert (map, &nul), 0);
    //  One item per key, and no NULL items
    ck_assert_int_eq (cask_keymap_insert (map, &other_a), -1);
    ck_assert_int_eq (cask_keymap_insert (map, NULL), -1);
    ck_assert_uint_eq (cask_keymap_size (map), 4);

    ck_assert_ptr_eq (cask_keymap_lookup (map, "a", 1), &a);
    ck_assert_ptr_eq (cask_keymap_lookup (map, "ab", 2), &b);
    ck_assert_ptr_eq (cask_keymap_lookup (map, "", 0), &empty);
    ck_assert_ptr_eq (cask_keymap_lookup (map, "a\0b", 3), &nul);
    ck_assert_ptr_null (cask_keymap_lookup (map, "a\0c", 3));
    ck_assert_ptr_null (cask_keymap_lookup (map, "abc", 3));

    //  The hash the map gives is the one it finds keys by
    uint64_t hash = cask_keymap_hash (map, "ab", 2);
    ck_assert_ptr_eq (cask_keymap_lookup_hashed (map, "ab", 2, hash), &b);
    item_t c = { 1, "c", false, 0 };
    hash = cask_keymap_hash (map, "c", 1);
    ck_assert_ptr_null (cask_keymap_lookup_hashed (map, "c", 1, hash));
    ck_assert_int_eq (cask_keymap_insert_hashed (map, &c, hash), 0);
    ck_assert_ptr_eq (cask_keymap_lookup (map, "c", 1), &c);

    ck_assert_ptr_eq (cask_keymap_remove (map, "a", 1), &a);
    ck_assert_ptr_null (cask_keymap_remove (map, "a", 1));
    ck_assert_ptr_null (cask_keymap_lookup (map, "a", 1));
    ck_assert_int_eq (cask_keymap_insert (map, &other_a), 0);
    ck_assert_ptr_eq (cask_keymap_lookup (map, "a", 1), &other_a);
    ck_assert_uint_eq (cask_keymap_size (map), 5);

    cask_keymap_destroy (&map);
    ck_assert_ptr_null (map);
    cask_keymap_destroy (&map);
    cask_keymap_destroy (NULL);
}
END_TEST

START_TEST (test_grows_and_keeps_everything)
{
    size_t count = 100000;
    item_t *items = (item_t *) calloc (count, sizeof (item_t));
    ck_assert_ptr_nonnull (items);
    cask_keymap_t *map = cask_keymap_new (s_item_key);
    for (size_t index = 0; index < count; index++) {
        s_item_set (&items [index], index);
        ck_assert_int_eq (cask_keymap_insert (map, &items [index]), 0);
        items [index].in = true;
    }
    s_check_model (map, items, count);
    //  Remove every other one, then the rest
    for (size_t pass = 0; pass < 2; pass++) {
        for (size_t index = pass; index < count; index += 2) {
            ck_assert_ptr_eq (cask_keymap_remove (map, items [index].key, items [index].size),
                              &items [index]);
            items [index].in = false;
        }
        s_check_model (map, items, count);
    }
    ck_assert_uint_eq (cask_keymap_size (map), 0);
    cask_keymap_destroy (&map);
    free (items);
}
END_TEST

START_TEST (test_random_operations_match_a_model)
{
    //  A small universe keeps the map near its fullest, with runs that wrap
    size_t count = 40 + (size_t) _i * 37;
    item_t *items = (item_t *) calloc (count, sizeof (item_t));
    ck_assert_ptr_nonnull (items);
    for (size_t index = 0; index < count; index++)
        s_item_set (&items [index], index + (size_t) _i * 1000);
    cask_keymap_t *map = cask_keymap_new (s_item_key);
    srand (1234 + (unsigned) _i);
    for (int step = 0; step < 20000; step++) {
        item_t *item = &items [(size_t) rand () % count];
        if (rand () % 2) {
            ck_assert_int_eq (cask_keymap_insert (map, item), item->in ? -1 : 0);
            item->in = true;
        }
        else {
            ck_assert_ptr_eq (cask_keymap_remove (map, item->key, item->size),
                              item->in ? item : NULL);
            item->in = false;
        }
        if (step % 500 == 0)
            s_check_model (map, items, count);
    }
    s_check_model (map, items, count);
    cask_keymap_destroy (&map);
    free (items);
}
END_TEST

START_TEST (test_hash_pieces_and_one_call_agree)
{
    uint8_t data [300];
    for (size_t index = 0; index < sizeof data; index++)
        data [index] = (uint8_t) (index * 7 + 3);
    for (size_t size = 0; size <= sizeof data; size += size < 40 ? 1 : 13) {
        for (size_t split = 0; split <= size; split += 5) {
            cask_hash_t hash;
            cask_hash_init (&hash, 99);
            cask_hash_update (&hash, data, split);
            cask_hash_update (&hash, data + split, size - split);
            uint64_t digest [2];
            cask_hash_final (&hash, digest);
            ck_assert (digest [0] == cask_hash64 (99, data, size));
        }
    }
    ck_assert (cask_hash64 (1, "key", 3) != cask_hash64 (2, "key", 3));
    ck_assert (cask_hash64 (0, NULL, 0) == cask_hash64 (0, "", 0));
}
END_TEST

START_TEST (test_hash_keeps_task_keys)
{
    //  Task keys hash length-prefixed fields; this digest was made by the
    //  client's own hash before it moved here, so keys did not change
    cask_hash_t hash;
    cask_hash_init (&hash, 0);
    cask_hash_field (&hash, "inc", 3);
    cask_hash_field (&hash, "\x07\x01\x00\x00\x00", 5);
    uint64_t digest [2];
    cask_hash_final (&hash, digest);
    ck_assert (digest [0] == 0x4a52e394c40bddc9ULL);
    ck_assert (digest [1] == 0xdeee3d50b947fe18ULL);

    //  Fields keep "ab" + "c" apart from "a" + "bc"
    uint64_t other [2];
    cask_hash_init (&hash, 0);
    cask_hash_field (&hash, "ab", 2);
    cask_hash_field (&hash, "c", 1);
    cask_hash_final (&hash, digest);
    cask_hash_init (&hash, 0);
    cask_hash_field (&hash, "a", 1);
    cask_hash_field (&hash, "bc", 2);
    cask_hash_final (&hash, other);
    ck_assert (digest [0] != other [0] || digest [1] != other [1]);
}
END_TEST

int
main (void)
{
    TCase *map = tcase_create ("map");
    tcase_add_test (map, test_insert_lookup_remove);
    tcase_add_test (map, test_grows_and_keeps_everything);
    tcase_add_loop_test (map, test_random_operations_match_a_model, 0, 6);
    TCase *hash = tcase_create ("hash");
    tcase_add_test (hash, test_hash_pieces_and_one_call_agree);
    tcase_add_test (hash, test_hash_keeps_task_keys);
    return cask_test_run ("keymap", map, hash, NULL);
}
