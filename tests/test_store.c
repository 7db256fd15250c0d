/*  test_store.c - unit tests of the worker's store (worker/cask_store.c):
    keeping results, and spilling them to disk past a target.

    Values of every kind (bytes of known patterns, ints, lists, strings,
    lists holding bytes frames) go over a small target; the tests check the
    bytes in memory against the target, the files in the spill directory,
    the order values leave memory in, and every value read back bit for
    bit, also through GET on an inproc ROUTER/DEALER pair. Disk errors are
    made with a missing directory, a directory removed under the store, a
    file size limit (RLIMIT_FSIZE: a write that stops halfway) and spill
    files truncated or overwritten. Which values are on disk shows in the
    counters: looking up a spilled value counts an unspill.
*/
#include <check.h>
#include "cask_testutil.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cask_proto.h"
#include "cask_store.h"

#define KIB 1024u

//  ---------------------------------------------------------------------
//  Helpers

static void
s_free (void *data, void *hint)
{
    (void) hint;
    free (data);
}

//  size bytes of a pattern drawn from seed (xorshift), taken without a copy.
static cask_value_t *
s_pattern (uint64_t seed, size_t size)
{
    uint8_t *data = (uint8_t *) malloc (size + 1);
    ck_assert_ptr_nonnull (data);
    uint64_t state = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t index = 0; index < size; index++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        data [index] = (uint8_t) state;
    }
    return cask_bytes_take (data, size, s_free, NULL);
}

static cask_value_t *
s_text (uint64_t seed, size_t size)
{
    char *text = (char *) malloc (size + 1);
    ck_assert_ptr_nonnull (text);
    for (size_t index = 0; index < size; index++)
        text [index] = (char) ('a' + (seed + index * 7) % 26);
    text [size] = 0;
    cask_value_t *value = cask_string (text);
    free (text);
    return value;
}

//  The value of index: bytes of a pattern, an int (never spilled), a list
//  of ints, a string, or a list mixing small and large bytes frames with
//  scalars and a nested list. Made again to compare what comes back.
static cask_value_t *
s_make (unsigned index)
{
    switch (index % 5) {
        case 0:
            return s_pattern (index, 8 * KIB + index * 37 % 1000);
        case 1:
            return cask_int64 ((int64_t) index * 1000003);
        case 2: {
            int64_t numbers [1100];
            for (size_t item = 0; item < 1100; item++)
                numbers [item] = (int64_t) (index * 1100 + item) * -7;
            return cask_list_of_int64 (numbers, 1100);
        }
        case 3:
            return s_text (index, 6000);
        default:
            return cask_list (s_pattern (index, 20), s_pattern (index + 1, 9000),
                              cask_double (index / 3.0), cask_string ("x"), cask_null (),
                              cask_bool (true),
                              cask_list (cask_int64 (index), s_pattern (index + 2, 5000), NULL),
                              NULL);
    }
}

static cask_str_t
s_key (unsigned index, char *buf, size_t size)
{
    snprintf (buf, size, "key-%u", index);
    return cask_str (buf);
}

static void
s_put (cask_store_t *store, unsigned index)
{
    char buf [32];
    ck_assert_int_eq (cask_store_put (store, s_key (index, buf, sizeof buf), s_make (index)), 0);
}

//  The value of index comes back from the store, equal to a fresh one.
static void
s_check (cask_store_t *store, unsigned index)
{
    char buf [32];
    cask_value_t *found = cask_store_lookup (store, s_key (index, buf, sizeof buf));
    ck_assert_msg (found != NULL, "%s: %s", buf, cask_store_spill_error (store));
    cask_value_t *expected = s_make (index);
    ck_assert_msg (cask_value_equal (found, expected), "%s differs", buf);
    cask_value_destroy (&expected);
}

static cask_store_spill_stats_t
s_stats (cask_store_t *store)
{
    cask_store_spill_stats_t stats;
    cask_store_spill_stats (store, &stats);
    return stats;
}

//  Times looking index up read it back from disk (0 or 1).
static uint64_t
s_unspilled (cask_store_t *store, unsigned index)
{
    uint64_t before = s_stats (store).unspills;
    s_check (store, index);
    return s_stats (store).unspills - before;
}

static size_t
s_count_files (const char *path)
{
    DIR *dir = opendir (path);
    ck_assert_ptr_nonnull (dir);
    size_t count = 0;
    struct dirent *entry;
    while ((entry = readdir (dir)))
        count += strcmp (entry->d_name, ".") && strcmp (entry->d_name, "..");
    closedir (dir);
    return count;
}

//  The path of the one file in the store's spill directory.
static void
s_only_file (cask_store_t *store, char *path, size_t size)
{
    const char *dir_path = cask_store_spill_dir (store);
    ck_assert_uint_eq (s_count_files (dir_path), 1);
    DIR *dir = opendir (dir_path);
    struct dirent *entry;
    while ((entry = readdir (dir)))
        if (entry->d_name [0] != '.')
            snprintf (path, size, "%s/%s", dir_path, entry->d_name);
    closedir (dir);
}

//  A fresh directory for a test, which must be empty again at the end.
static char s_parent [64];

static void
s_parent_make (void)
{
    snprintf (s_parent, sizeof s_parent, "/tmp/test-store-XXXXXX");
    ck_assert_ptr_nonnull (mkdtemp (s_parent));
}

//  Destroying the store removes its spill directory: the parent is empty.
static void
s_store_end (cask_store_t **store_p)
{
    cask_store_destroy (store_p);
    ck_assert_ptr_null (*store_p);
    ck_assert_int_eq (rmdir (s_parent), 0);
}

static cask_store_t *
s_store_spilling (uint64_t target)
{
    s_parent_make ();
    cask_store_t *store = cask_store_new ();
    ck_assert_ptr_nonnull (store);
    ck_assert_int_eq (cask_store_set_spill (store, s_parent, target), 0);
    ck_assert_ptr_nonnull (cask_store_spill_dir (store));
    ck_assert_uint_eq (s_count_files (cask_store_spill_dir (store)), 0);
    return store;
}

//  ---------------------------------------------------------------------
//  Keeping results

START_TEST (test_keep_without_spilling)
{
    cask_store_t *store = cask_store_new ();
    ck_assert_ptr_nonnull (store);
    ck_assert_ptr_null (cask_store_spill_dir (store));
    ck_assert_int_eq (cask_store_spill (store, 0), -1);
    for (unsigned index = 0; index < 20; index++)
        s_put (store, index);
    ck_assert_uint_eq (cask_store_size (store), 20);
    ck_assert_uint_eq (cask_store_bytes_in_memory (store), cask_store_bytes (store));
    for (unsigned index = 0; index < 20; index++)
        ck_assert_uint_eq (s_unspilled (store, index), 0);

    uint64_t nbytes = 0;
    ck_assert (cask_store_holds (store, cask_str ("key-0"), &nbytes));
    ck_assert_uint_eq (nbytes, 8 * KIB);
    ck_assert (cask_store_holds (store, cask_str ("key-1"), NULL));
    ck_assert (!cask_store_holds (store, cask_str ("key-20"), &nbytes));
    ck_assert_ptr_null (cask_store_lookup (store, cask_str ("key-20")));
    ck_assert_int_eq (cask_store_remove (store, cask_str ("key-0")), 0);
    ck_assert_int_eq (cask_store_remove (store, cask_str ("key-0")), -1);
    ck_assert_uint_eq (cask_store_size (store), 19);
    //  Replacing changes the bytes held by the difference
    uint64_t before = cask_store_bytes (store);
    ck_assert_int_eq (cask_store_put (store, cask_str ("key-1"), cask_bytes ("abc", 3)), 0);
    ck_assert_uint_eq (cask_store_bytes (store), before - 8 + 3);
    ck_assert_int_eq (cask_store_put (store, cask_str ("key-1"), NULL), -1);
    cask_store_clear (store);
    ck_assert_uint_eq (cask_store_size (store), 0);
    ck_assert_uint_eq (cask_store_bytes (store), 0);
    ck_assert_uint_eq (cask_store_bytes_in_memory (store), 0);
    ck_assert_ptr_null (cask_store_spill_error (store));
    cask_store_destroy (&store);
    cask_store_destroy (&store);
}
END_TEST

//  ---------------------------------------------------------------------
//  Spilling

START_TEST (test_spill_under_target)
{
    const uint64_t target = 64 * KIB;
    cask_store_t *store = s_store_spilling (target);
    uint64_t total = 0;
    for (unsigned index = 0; index < 100; index++) {
        cask_value_t *value = s_make (index);
        total += cask_value_nbytes (value);
        char buf [32];
        ck_assert_int_eq (cask_store_put (store, s_key (index, buf, sizeof buf), value), 0);
        ck_assert_uint_le (cask_store_bytes_in_memory (store), target);
    }
    //  Spilled values stay held: size and bytes as without spilling
    ck_assert_uint_eq (cask_store_size (store), 100);
    ck_assert_uint_eq (cask_store_bytes (store), total);
    cask_store_spill_stats_t stats = s_stats (store);
    ck_assert_uint_gt (stats.values_on_disk, 60);
    ck_assert_uint_eq (stats.spills, stats.values_on_disk);
    ck_assert_uint_eq (s_count_files (cask_store_spill_dir (store)), stats.values_on_disk);
    ck_assert_uint_eq (stats.bytes_on_disk, stats.bytes_written);
    ck_assert_uint_gt (stats.bytes_on_disk, total - target - 1000);
    ck_assert_uint_eq (stats.spill_errors + stats.unspill_errors, 0);
    ck_assert_ptr_null (cask_store_spill_error (store));

    //  Every value comes back bit for bit, and memory stays under the target
    for (unsigned round = 0; round < 2; round++)
        for (unsigned index = 0; index < 100; index++) {
            s_check (store, index);
            ck_assert_uint_le (cask_store_bytes_in_memory (store), target);
        }
    stats = s_stats (store);
    ck_assert_uint_gt (stats.unspills, 100);
    ck_assert_uint_gt (stats.bytes_read, stats.bytes_written);
    //  Read back values keep their files: spilling them again writes
    //  nothing. By now every value but the ints has left memory once.
    ck_assert_uint_eq (stats.bytes_written, stats.bytes_on_disk);
    ck_assert_uint_eq (s_count_files (cask_store_spill_dir (store)), 80);
    s_store_end (&store);
}
END_TEST

START_TEST (test_least_recently_used_first)
{
    //  Four values of 8 KiB fit the target; a fifth spills the oldest
    cask_store_t *store = s_store_spilling (4 * 8 * KIB);
    char buf [32];
    for (unsigned index = 0; index < 4; index++)
        ck_assert_int_eq (cask_store_put (store, s_key (index, buf, sizeof buf),
                                          s_pattern (index, 8 * KIB)), 0);
    ck_assert_uint_eq (s_stats (store).spills, 0);
    //  0 used last: 1 is now the least recently used
    ck_assert_ptr_nonnull (cask_store_lookup (store, cask_str ("key-0")));
    ck_assert_int_eq (cask_store_put (store, cask_str ("key-4"), s_pattern (4, 8 * KIB)), 0);
    ck_assert_uint_eq (s_stats (store).values_on_disk, 1);
    ck_assert_uint_eq (s_stats (store).unspills, 0);
    cask_value_t *expected = s_pattern (1, 8 * KIB);
    cask_value_t *found = cask_store_lookup (store, cask_str ("key-1"));
    ck_assert (cask_value_equal (found, expected));
    cask_value_destroy (&expected);
    ck_assert_uint_eq (s_stats (store).unspills, 1);
    //  Reading 1 back spilled the oldest in memory, 2; then 3 and 0 are
    //  in memory, 2 is not
    ck_assert_uint_eq (s_stats (store).values_on_disk, 1);
    uint64_t unspills = s_stats (store).unspills;
    ck_assert_ptr_nonnull (cask_store_lookup (store, cask_str ("key-3")));
    ck_assert_ptr_nonnull (cask_store_lookup (store, cask_str ("key-0")));
    ck_assert_uint_eq (s_stats (store).unspills, unspills);
    ck_assert_ptr_nonnull (cask_store_lookup (store, cask_str ("key-2")));
    ck_assert_uint_eq (s_stats (store).unspills, unspills + 1);
    //  A lower target spills at once, oldest first: 1 (4 went when 2 came
    //  back; 3, 0 and 2 were used since)
    ck_assert_int_eq (cask_store_spill (store, 3 * 8 * KIB), 0);
    ck_assert_uint_eq (s_stats (store).values_on_disk, 2);
    unspills = s_stats (store).unspills;
    ck_assert_ptr_nonnull (cask_store_lookup (store, cask_str ("key-3")));
    ck_assert_ptr_nonnull (cask_store_lookup (store, cask_str ("key-0")));
    ck_assert_ptr_nonnull (cask_store_lookup (store, cask_str ("key-2")));
    ck_assert_uint_eq (s_stats (store).unspills, unspills);
    s_store_end (&store);
}
END_TEST

START_TEST (test_small_values_stay)
{
    cask_store_t *store = s_store_spilling (0);
    char buf [32];
    for (unsigned index = 0; index < 1000; index++) {
        cask_value_t *value = index % 2 ? cask_int64 (index) : s_text (index, 4095);
        ck_assert_int_eq (cask_store_put (store, s_key (index, buf, sizeof buf), value), 0);
    }
    ck_assert_uint_eq (cask_store_bytes_in_memory (store), cask_store_bytes (store));
    ck_assert_uint_eq (s_stats (store).spills, 0);
    ck_assert_uint_eq (s_count_files (cask_store_spill_dir (store)), 0);
    ck_assert_int_eq (cask_store_spill (store, 0), 0);
    //  One value of 4 KiB goes, whatever else is in memory
    ck_assert_int_eq (cask_store_put (store, cask_str ("big"), s_pattern (1, 4 * KIB)), 0);
    ck_assert_uint_eq (s_stats (store).values_on_disk, 1);
    s_store_end (&store);
}
END_TEST

START_TEST (test_large_values_exact)
{
    //  A 16 MB value alone over the target goes to disk as it is put
    cask_store_t *store = s_store_spilling (1 << 20);
    ck_assert_int_eq (cask_store_put (store, cask_str ("big"), s_pattern (7, 16u << 20)), 0);
    ck_assert_uint_eq (cask_store_bytes_in_memory (store), 0);
    ck_assert_uint_eq (s_stats (store).values_on_disk, 1);
    //  Looked up, it stays in memory though over the target (the pointer is
    //  the caller's to use)
    cask_value_t *found = cask_store_lookup (store, cask_str ("big"));
    ck_assert_ptr_nonnull (found);
    ck_assert_uint_eq (cask_store_bytes_in_memory (store), 16u << 20);
    cask_value_t *expected = s_pattern (7, 16u << 20);
    ck_assert (cask_value_equal (found, expected));
    cask_value_destroy (&expected);
    //  A list of bytes frames, small (copied) and large, with every scalar
    cask_value_t *list = cask_list (s_pattern (1, 1), s_pattern (2, 32), s_pattern (3, 33),
                                    s_pattern (4, 8192), s_pattern (5, 8193), cask_bytes ("", 0),
                                    cask_double (-0.0), cask_int64 (INT64_MIN),
                                    cask_string_n ("a\0b", 3), cask_list (NULL), NULL);
    cask_value_t *copy = cask_value_ref (list);
    ck_assert_int_eq (cask_store_put (store, cask_str ("list"), list), 0);
    ck_assert_int_eq (cask_store_spill (store, 0), 0);
    ck_assert_uint_eq (s_stats (store).values_on_disk, 2);
    found = cask_store_lookup (store, cask_str ("list"));
    ck_assert (cask_value_equal (found, copy));
    ck_assert_ptr_ne (found, copy);
    cask_value_destroy (&copy);
    s_store_end (&store);
}
END_TEST

START_TEST (test_files_deleted)
{
    cask_store_t *store = s_store_spilling (0);
    const char *dir = cask_store_spill_dir (store);
    //  Bytes, a list, a string, a mixed list, bytes
    for (unsigned index = 2; index < 7; index++)
        s_put (store, index % 6);
    ck_assert_uint_eq (s_stats (store).values_on_disk, 5);
    ck_assert_uint_eq (s_count_files (dir), 5);
    //  Removing a spilled key deletes its file
    ck_assert_int_eq (cask_store_remove (store, cask_str ("key-0")), 0);
    ck_assert_uint_eq (s_count_files (dir), 4);
    ck_assert_uint_eq (s_stats (store).values_on_disk, 4);
    //  Replacing one deletes it; the new value gets a file of its own
    ck_assert_int_eq (cask_store_put (store, cask_str ("key-2"), s_pattern (99, 5000)), 0);
    ck_assert_uint_eq (s_count_files (dir), 4);
    ck_assert_int_eq (cask_store_put (store, cask_str ("key-2"), cask_int64 (2)), 0);
    ck_assert_uint_eq (s_count_files (dir), 3);
    //  A value read back keeps its file until it goes
    s_check (store, 4);
    ck_assert_uint_eq (s_count_files (dir), 3);
    ck_assert_int_eq (cask_store_remove (store, cask_str ("key-4")), 0);
    ck_assert_uint_eq (s_count_files (dir), 2);
    ck_assert_uint_eq (s_stats (store).values_on_disk, 2);
    cask_store_clear (store);
    ck_assert_uint_eq (s_count_files (dir), 0);
    ck_assert_uint_eq (cask_store_size (store), 0);
    cask_store_spill_stats_t stats = s_stats (store);
    ck_assert_uint_eq (stats.values_on_disk + stats.bytes_on_disk + stats.bytes_in_memory, 0);
    ck_assert_uint_eq (cask_store_bytes (store), 0);
    //  Destroy deletes the files left, and the directory
    s_put (store, 3);
    ck_assert_uint_eq (s_count_files (dir), 1);
    s_store_end (&store);
}
END_TEST

START_TEST (test_held_values_survive)
{
    cask_store_t *store = s_store_spilling (64 * KIB);
    s_put (store, 0);
    s_put (store, 5);
    //  A reference taken before the store spills stays good
    cask_value_t *held = cask_value_ref (cask_store_lookup (store, cask_str ("key-5")));
    ck_assert_int_eq (cask_store_spill (store, 0), 0);
    ck_assert_uint_eq (s_stats (store).values_on_disk, 2);
    cask_value_t *expected = s_make (5);
    ck_assert (cask_value_equal (held, expected));
    //  Read back, it is a copy of its own
    cask_value_t *again = cask_store_lookup (store, cask_str ("key-5"));
    ck_assert_ptr_ne (again, held);
    ck_assert (cask_value_equal (again, expected));
    cask_value_destroy (&held);
    //  With a target of 0, a lookup still returns its value in memory
    ck_assert_int_eq (cask_store_set_spill (store, NULL, 0), 0);
    cask_value_t *first = cask_store_lookup (store, cask_str ("key-0"));
    ck_assert_ptr_nonnull (first);
    ck_assert_uint_eq (s_stats (store).values_on_disk, 1);
    cask_value_destroy (&expected);
    expected = s_make (0);
    ck_assert (cask_value_equal (first, expected));
    cask_value_destroy (&expected);
    s_store_end (&store);
}
END_TEST

START_TEST (test_codec_refuses)
{
    //  Nested deeper than the codec writes: never spilled, and not in the
    //  way of the others
    cask_value_t *deep = s_pattern (1, 5000);
    for (int depth = 0; depth < CASK_MAX_DEPTH + 1; depth++)
        deep = cask_list (deep, NULL);
    cask_store_t *store = s_store_spilling (0);
    ck_assert_int_eq (cask_store_put (store, cask_str ("deep"), deep), 0);
    s_put (store, 0);
    cask_store_spill_stats_t stats = s_stats (store);
    ck_assert_uint_eq (stats.spill_errors, 1);
    ck_assert_uint_eq (stats.values_on_disk, 1);
    ck_assert_uint_eq (stats.bytes_in_memory, 5000);
    ck_assert_ptr_nonnull (strstr (cask_store_spill_error (store), "codec"));
    ck_assert_ptr_nonnull (cask_store_lookup (store, cask_str ("deep")));
    s_put (store, 5);
    ck_assert_uint_eq (s_stats (store).spill_errors, 1);
    ck_assert_uint_eq (s_stats (store).values_on_disk, 2);
    s_store_end (&store);
}
END_TEST

//  ---------------------------------------------------------------------
//  Disk errors

START_TEST (test_bad_spill_dir)
{
    s_parent_make ();
    cask_store_t *store = cask_store_new ();
    ck_assert_int_eq (cask_store_set_spill (store, NULL, 0), -1);
    ck_assert_int_eq (errno, EINVAL);
    char path [128];
    snprintf (path, sizeof path, "%s/missing", s_parent);
    ck_assert_int_eq (cask_store_set_spill (store, path, 0), -1);
    ck_assert_int_eq (errno, ENOENT);
    ck_assert_ptr_nonnull (strstr (cask_store_spill_error (store), "missing"));
    //  A file where the directory should be
    snprintf (path, sizeof path, "%s/file", s_parent);
    int fd = open (path, O_WRONLY | O_CREAT, 0600);
    ck_assert_int_ge (fd, 0);
    close (fd);
    ck_assert_int_eq (cask_store_set_spill (store, path, 0), -1);
    ck_assert_int_eq (errno, ENOTDIR);
    //  A read-only directory (root writes anywhere)
    snprintf (path, sizeof path, "%s/ro", s_parent);
    ck_assert_int_eq (mkdir (path, 0500), 0);
    if (geteuid () != 0) {
        ck_assert_int_eq (cask_store_set_spill (store, path, 0), -1);
        ck_assert_int_eq (errno, EACCES);
    }
    ck_assert_int_eq (rmdir (path), 0);
    snprintf (path, sizeof path, "%s/file", s_parent);
    ck_assert_int_eq (unlink (path), 0);

    //  Not spilling: values stay in memory
    ck_assert_ptr_null (cask_store_spill_dir (store));
    for (unsigned index = 0; index < 10; index++)
        s_put (store, index);
    ck_assert_uint_eq (cask_store_bytes_in_memory (store), cask_store_bytes (store));
    ck_assert_int_eq (cask_store_spill (store, 0), -1);
    for (unsigned index = 0; index < 10; index++)
        s_check (store, index);
    s_store_end (&store);
}
END_TEST

START_TEST (test_write_fails)
{
    cask_store_t *store = s_store_spilling (20 * KIB);
    s_put (store, 0);
    char dir [256];
    snprintf (dir, sizeof dir, "%s", cask_store_spill_dir (store));
    ck_assert_int_eq (rmdir (dir), 0);
    //  Over the target: the write fails, the values stay in memory
    s_put (store, 5);
    s_put (store, 10);
    cask_store_spill_stats_t stats = s_stats (store);
    ck_assert_uint_eq (stats.spill_errors, 1);
    ck_assert_uint_eq (stats.values_on_disk + stats.spills + stats.bytes_on_disk, 0);
    ck_assert_uint_eq (stats.bytes_in_memory, cask_store_bytes (store));
    ck_assert_ptr_nonnull (strstr (cask_store_spill_error (store), "key-0"));
    ck_assert_ptr_nonnull (strstr (cask_store_spill_error (store), strerror (ENOENT)));
    //  Spilling rests: no write is tried again at once
    s_put (store, 15);
    ck_assert_int_eq (cask_store_spill (store, 0), -1);
    ck_assert_uint_eq (s_stats (store).spill_errors, 1);
    for (unsigned index = 0; index <= 15; index += 5)
        s_check (store, index);
    //  A new directory (no file was kept in the old one) ends the rest
    ck_assert_int_eq (cask_store_set_spill (store, s_parent, 20 * KIB), 0);
    ck_assert_uint_le (cask_store_bytes_in_memory (store), 20 * KIB);
    ck_assert_uint_eq (s_stats (store).values_on_disk, 2);
    //  ... which may not change while files are in it
    ck_assert_int_eq (cask_store_set_spill (store, "/tmp", 0), -1);
    ck_assert_int_eq (errno, EBUSY);
    for (unsigned index = 0; index <= 15; index += 5)
        s_check (store, index);
    s_store_end (&store);
}
END_TEST

START_TEST (test_write_stops_halfway)
{
    //  Files may not grow past 1 MB: a 2 MB value's write stops halfway
    signal (SIGXFSZ, SIG_IGN);
    struct rlimit limit;
    getrlimit (RLIMIT_FSIZE, &limit);
    struct rlimit small = { 1 << 20, limit.rlim_max };
    cask_store_t *store = s_store_spilling (1 << 20);
    ck_assert_int_eq (setrlimit (RLIMIT_FSIZE, &small), 0);
    ck_assert_int_eq (cask_store_put (store, cask_str ("big"), s_pattern (3, 2 << 20)), 0);
    ck_assert_int_eq (setrlimit (RLIMIT_FSIZE, &limit), 0);
    ck_assert_uint_eq (s_stats (store).spill_errors, 1);
    ck_assert_uint_eq (s_count_files (cask_store_spill_dir (store)), 0);
    ck_assert_uint_eq (cask_store_bytes_in_memory (store), 2 << 20);
    ck_assert_ptr_nonnull (strstr (cask_store_spill_error (store), strerror (EFBIG)));
    cask_value_t *expected = s_pattern (3, 2 << 20);
    ck_assert (cask_value_equal (cask_store_lookup (store, cask_str ("big")), expected));
    cask_value_destroy (&expected);
    s_store_end (&store);
}
END_TEST

START_TEST (test_read_fails)
{
    cask_store_t *store = s_store_spilling (0);
    s_put (store, 0);
    char path [512];
    s_only_file (store, path, sizeof path);
    //  Truncated: lookup fails, the key stays held, the error says why
    ck_assert_int_eq (truncate (path, 100), 0);
    ck_assert_ptr_null (cask_store_lookup (store, cask_str ("key-0")));
    ck_assert_uint_eq (s_stats (store).unspill_errors, 1);
    ck_assert_ptr_nonnull (strstr (cask_store_spill_error (store), "file truncated"));
    ck_assert (cask_store_holds (store, cask_str ("key-0"), NULL));
    ck_assert_uint_eq (cask_store_size (store), 1);
    ck_assert_uint_eq (s_stats (store).values_on_disk, 1);
    //  Overwritten: the layout does not match
    int fd = open (path, O_WRONLY | O_TRUNC);
    ck_assert_int_ge (fd, 0);
    char junk [9000];
    memset (junk, 'j', sizeof junk);
    ck_assert_int_eq (write (fd, junk, sizeof junk), sizeof junk);
    close (fd);
    ck_assert_ptr_null (cask_store_lookup (store, cask_str ("key-0")));
    ck_assert_ptr_nonnull (strstr (cask_store_spill_error (store), "not as written"));
    //  Gone: a system error
    ck_assert_int_eq (unlink (path), 0);
    ck_assert_ptr_null (cask_store_lookup (store, cask_str ("key-0")));
    ck_assert_ptr_nonnull (strstr (cask_store_spill_error (store), strerror (ENOENT)));
    ck_assert_uint_eq (s_stats (store).unspill_errors, 3);
    //  Removing it still works
    ck_assert_int_eq (cask_store_remove (store, cask_str ("key-0")), 0);
    cask_store_spill_stats_t stats = s_stats (store);
    ck_assert_uint_eq (stats.values_on_disk + stats.bytes_on_disk, 0);
    s_store_end (&store);
}
END_TEST

//  ---------------------------------------------------------------------
//  GET of spilled values

//  GETs keys [0 .. count) from store over pair and checks the DATA
//  records: index found (as s_make made it) unless listed as missing.
static void
s_get_and_check (cask_store_t *store, cask_test_pair_t *pair, const unsigned *keys, size_t count,
                 unsigned missing)
{
    cask_buf_t body;
    cask_buf_init (&body);
    cask_put_u32 (&body, (uint32_t) count);
    char buf [32];
    for (size_t index = 0; index < count; index++)
        cask_put_str8 (&body, s_key (keys [index], buf, sizeof buf));
    ck_assert_int_eq (cask_send (pair->dealer, NULL, CASK_MSG_GET, &body, NULL), 0);
    cask_buf_free (&body);

    cask_message_t msg;
    cask_message_init (&msg);
    const char *why = NULL;
    ck_assert_int_eq (cask_message_recv (&msg, pair->router, true, 0, &why), CASK_RECV_OK);
    ck_assert_int_eq (cask_store_serve (store, pair->router, &msg, &why), 0);
    ck_assert_int_eq (cask_message_recv (&msg, pair->dealer, false, 0, &why), CASK_RECV_OK);
    ck_assert_uint_eq (msg.command, CASK_MSG_DATA);

    cask_rd_t rd;
    cask_rd_init (&rd, zmq_msg_data (&msg.body), zmq_msg_size (&msg.body));
    ck_assert_uint_eq (cask_get_u32 (&rd), count);
    size_t frame_base = 0;
    for (size_t index = 0; index < count; index++) {
        s_key (keys [index], buf, sizeof buf);
        ck_assert (cask_str_eq (cask_get_str8 (&rd), buf));
        uint8_t found = cask_get_u8 (&rd);
        ck_assert_uint_eq (found, keys [index] != missing);
        if (!found)
            continue;
        uint32_t nframes = cask_get_u32 (&rd);
        cask_value_t *value = cask_value_decode (&rd, &msg, frame_base, nframes, NULL, 0, &why);
        ck_assert_ptr_nonnull (value);
        frame_base += nframes;
        cask_value_t *expected = s_make (keys [index]);
        ck_assert_msg (cask_value_equal (value, expected), "%s differs", buf);
        cask_value_destroy (&expected);
        cask_value_destroy (&value);
    }
    ck_assert (cask_rd_done (&rd));
    ck_assert_uint_eq (frame_base, msg.nframes);
    cask_message_close (&msg);
}

START_TEST (test_serve_spilled)
{
    cask_store_t *store = s_store_spilling (16 * KIB);
    for (unsigned index = 0; index < 20; index++)
        s_put (store, index);
    ck_assert_uint_gt (s_stats (store).values_on_disk, 10);
    cask_test_pair_t pair;
    cask_test_pair_open (&pair, "inproc");
    //  Spilled bytes, list of ints, string, mixed list; an int; a missing key
    const unsigned keys [] = { 0, 2, 3, 4, 1, 99, 10, 14, 19 };
    uint64_t unspills = s_stats (store).unspills;
    s_get_and_check (store, &pair, keys, sizeof keys / sizeof keys [0], 99);
    ck_assert_uint_ge (s_stats (store).unspills, unspills + 4);
    ck_assert_uint_eq (cask_store_gets_served (store), 8);
    ck_assert_uint_eq (cask_store_gets_missed (store), 1);
    ck_assert_uint_le (cask_store_bytes_in_memory (store), 16 * KIB);
    //  An unreadable value is answered as not found
    cask_store_clear (store);
    s_put (store, 5);
    ck_assert_int_eq (cask_store_spill (store, 0), 0);
    char path [512];
    s_only_file (store, path, sizeof path);
    ck_assert_int_eq (truncate (path, 100), 0);
    const unsigned unreadable [] = { 5 };
    s_get_and_check (store, &pair, unreadable, 1, 5);
    ck_assert_uint_eq (cask_store_gets_missed (store), 2);
    ck_assert_uint_eq (s_stats (store).unspill_errors, 1);
    cask_test_pair_close (&pair);
    s_store_end (&store);
}
END_TEST

int
main (void)
{
    TCase *keep = tcase_create ("keep");
    tcase_add_test (keep, test_keep_without_spilling);
    TCase *spill = tcase_create ("spill");
    tcase_set_timeout (spill, 120);
    tcase_add_test (spill, test_spill_under_target);
    tcase_add_test (spill, test_least_recently_used_first);
    tcase_add_test (spill, test_small_values_stay);
    tcase_add_test (spill, test_large_values_exact);
    tcase_add_test (spill, test_files_deleted);
    tcase_add_test (spill, test_held_values_survive);
    tcase_add_test (spill, test_codec_refuses);
    TCase *errors = tcase_create ("disk errors");
    tcase_add_test (errors, test_bad_spill_dir);
    tcase_add_test (errors, test_write_fails);
    tcase_add_test (errors, test_write_stops_halfway);
    tcase_add_test (errors, test_read_fails);
    TCase *serve = tcase_create ("serve");
    tcase_add_test (serve, test_serve_spilled);
    return cask_test_run ("store", keep, spill, errors, serve, NULL);
}
