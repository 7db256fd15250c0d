/*  make_corpus.c - writes the seed corpus of the fuzz targets: real
    messages, made with the codec, in the input format of each target
    (fuzz_common.h, README.md).

        make_corpus DIR TASKLIB [STAMP]

    Writes DIR/broker/seed-*, DIR/worker/seed-* (scenarios: a few messages
    on the routes the target reads) and DIR/codec/seed-* (every message of
    those scenarios alone, and the broker's answers), replacing the seeds
    of an earlier run. TASKLIB is fuzz_tasklib.so, whose hash the worker's
    LIBRARY seeds carry. STAMP, when given, is touched at the end (for the
    build).
*/
#define _GNU_SOURCE                     //  memmem
#include <dirent.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <czmq.h>
#include "cask_proto.h"

#define S_PEER_TOKEN "ipc://@cask-fuzz-peer-000000"     //  see fuzz_worker.c
#define S_SELF_TOKEN "ipc://@cask-fuzz-self-000000"
#define S_BLOB "not a shared object: the broker only hashes it"

//  Function ids, as the targets announce them.
enum { S_ECHO = 1, S_PROBE, S_FAIL, S_SPIN, S_BLOB_FN };

//  Routes (fuzz_broker.c, fuzz_worker.c).
enum { S_TO_A = 0, S_TO_B = 1, S_TO_C = 2 };
enum { S_FROM_BROKER = 0, S_TO_PEER_SOCKET = 1, S_FROM_PEER = 2 };

typedef struct {
    const char *root;
    const char *target;         //  of the seed being built
    cask_buf_t seed;            //  the input being built
    size_t ncodec;              //  codec seeds written
    cask_buf_t body;            //  of the next message
    cask_message_t frames;      //  its payload frames
    char tasklib_hash [41];
} s_corpus_t;

static void
s_die (const char *what)
{
    fprintf (stderr, "make_corpus: %s: %s\n", what, strerror (errno));
    exit (EXIT_FAILURE);
}

static void
s_write (s_corpus_t *self, const char *target, const char *name, const cask_buf_t *data)
{
    char path [4096];
    snprintf (path, sizeof path, "%s/%s/seed-%s", self->root, target, name);
    FILE *file = fopen (path, "wb");
    if (!file || (data->size && fwrite (data->data, data->size, 1, file) != 1) || fclose (file))
        s_die (path);
}

//  Makes DIR/target, without the seeds of an earlier run.
static void
s_prepare (s_corpus_t *self, const char *target)
{
    char path [4096];
    snprintf (path, sizeof path, "%s/%s", self->root, target);
    mkdir (self->root, 0755);
    if (mkdir (path, 0755) && errno != EEXIST)
        s_die (path);
    DIR *dir = opendir (path);
    struct dirent *entry;
    while (dir && (entry = readdir (dir)))
        if (strncmp (entry->d_name, "seed-", 5) == 0) {
            char file [4096 + 256];
            snprintf (file, sizeof file, "%s/%s", path, entry->d_name);
            unlink (file);
        }
    if (dir)
        closedir (dir);
}

//  ---------------------------------------------------------------------
//  Inputs

static void
s_put_frame (cask_buf_t *buf, const void *data, size_t size, bool last)
{
    if (size > 0x7FFF) {
        errno = EMSGSIZE;
        s_die ("a seed frame over 32767 bytes");
    }
    cask_put_u16 (buf, (uint16_t) (size | (last ? 0x8000 : 0)));
    cask_put_raw (buf, data, size);
}

//  Starts a seed for target; setup < 0: the target reads no setup byte.
static void
s_begin (s_corpus_t *self, const char *target, int setup)
{
    self->target = target;
    cask_buf_reset (&self->seed);
    if (setup >= 0)
        cask_put_u8 (&self->seed, (uint8_t) setup);
}

static void
s_save (s_corpus_t *self, const char *name)
{
    s_write (self, self->target, name, &self->seed);
}

//  Appends raw frames as one message on route to the seed, and writes the
//  message alone as a codec seed.
static void
s_raw (s_corpus_t *self, int route, const void *const *data, const size_t *sizes, size_t count)
{
    cask_buf_t codec;
    cask_buf_init (&codec);
    cask_put_u8 (&codec, (uint8_t) (self->ncodec & 1));    //  PAIR and ROUTER in turns
    cask_put_u8 (&self->seed, (uint8_t) route);
    for (size_t index = 0; index < count; index++) {
        s_put_frame (&self->seed, data [index], sizes [index], index + 1 == count);
        s_put_frame (&codec, data [index], sizes [index], index + 1 == count);
    }
    char name [32];
    snprintf (name, sizeof name, "codec-%03zu", self->ncodec++);
    s_write (self, "codec", name, &codec);
    cask_buf_free (&codec);
}

//  Sends the message built in body and frames on route, and empties both.
static void
s_send (s_corpus_t *self, int route, uint8_t command)
{
    if (self->body.failed)
        s_die ("a message could not be built");
    size_t count = 2 + self->frames.nframes;
    const void **data = (const void **) calloc (count, sizeof (void *));
    size_t *sizes = (size_t *) calloc (count, sizeof (size_t));
    if (!data || !sizes)
        s_die ("out of memory");
    uint8_t header [4] = { CASK_SIG0, CASK_SIG1, CASK_PROTO_VERSION, command };
    data [0] = header;
    sizes [0] = sizeof header;
    data [1] = self->body.data;
    sizes [1] = self->body.size;
    for (size_t index = 0; index < self->frames.nframes; index++) {
        data [2 + index] = zmq_msg_data (&self->frames.frames [index]);
        sizes [2 + index] = zmq_msg_size (&self->frames.frames [index]);
    }
    s_raw (self, route, data, sizes, count);
    free (data);
    free (sizes);
    cask_buf_reset (&self->body);
    cask_message_close (&self->frames);
    cask_message_init (&self->frames);
}

//  ---------------------------------------------------------------------
//  Bodies

static void
s_keys (s_corpus_t *self, const char *const *keys, uint32_t count)
{
    cask_put_u32 (&self->body, count);
    for (uint32_t index = 0; index < count; index++)
        cask_put_str8 (&self->body, cask_str (keys [index]));
}

//  Refs are made with target = dependency index + 1.
static int
s_ref_index (void *arg, const cask_value_t *ref)
{
    (void) arg;
    return (int) (uintptr_t) cask_value_ref_target (ref) - 1;
}

//  A task record: deps with holders when holders is not NULL; restrictions
//  and a time limit of 250 ms when not NULL. args is destroyed.
static void
s_task (s_corpus_t *self, const char *key, uint32_t fn, cask_value_t *args,
        const char *const *deps, uint32_t ndeps, const char *const *holders,
        const cask_restrictions_t *restrictions)
{
    cask_buf_t encoded;
    cask_buf_init (&encoded);
    size_t before = self->frames.nframes;
    if (cask_value_encode (args, &encoded, &self->frames, s_ref_index, NULL))
        s_die ("cannot encode task arguments");
    cask_value_destroy (&args);
    uint8_t flags = restrictions ? CASK_TASK_RESTRICTED | CASK_TASK_TIMED : 0;
    cask_task_t rec = { .key = cask_str (key), .fn = fn, .flags = flags,
                        .retries = 1, .priority = -3, .ndeps = ndeps };
    cask_task_put_head (&self->body, &rec);
    for (uint32_t index = 0; index < ndeps; index++) {
        cask_put_str8 (&self->body, cask_str (deps [index]));
        if (holders)
            cask_put_str8 (&self->body, cask_str (holders [index]));
    }
    cask_task_put_tail (&self->body, (uint32_t) (self->frames.nframes - before),
                        (cask_str_t) { (const char *) encoded.data, encoded.size });
    if (restrictions) {
        cask_restrictions_put (&self->body, restrictions);
        cask_put_u32 (&self->body, 250);
    }
    cask_buf_free (&encoded);
}

//  Arguments of every type, two bytes values among them (a small one that
//  is copied, a large one that travels by reference).
static cask_value_t *
s_every_type (void)
{
    static const uint8_t large [100] = { 1, 2, 3 };
    return cask_list (cask_null (), cask_bool (true), cask_bool (false), cask_int64 (-42),
                      cask_double (-0.0), cask_string ("hello"), cask_bytes ("abc", 3),
                      cask_bytes (large, sizeof large),
                      cask_list (cask_int64 (1), cask_int64 (2), cask_list (NULL), NULL), NULL);
}

static cask_value_t *
s_ints (int64_t x)
{
    return cask_list (cask_int64 (x), NULL);
}

//  A single value (PUT, DATA) after key [found] nframes.
static void
s_keyed_value (s_corpus_t *self, const char *key, bool with_found, cask_value_t *value)
{
    cask_put_str8 (&self->body, cask_str (key));
    if (with_found)
        cask_put_u8 (&self->body, 1);
    size_t at = self->body.size;
    cask_put_u32 (&self->body, 0);
    size_t before = self->frames.nframes;
    if (cask_value_encode (value, &self->body, &self->frames, NULL, NULL))
        s_die ("cannot encode a value");
    cask_buf_patch_u32 (&self->body, at, (uint32_t) (self->frames.nframes - before));
    cask_value_destroy (&value);
}

static void
s_hello (s_corpus_t *self, uint8_t role)
{
    cask_hello_t hello = { .role = role, .name = cask_str ("seed") };
    if (role == CASK_ROLE_WORKER) {
        hello = (cask_hello_t) { .role = role, .name = cask_str ("w9"), .nthreads = 4,
                                 .memory_limit = 1 << 30, .endpoint = cask_str ("tcp://127.0.0.1:2"),
                                 .nresources = 2 };
        hello.resources [0] = (cask_resource_t) { cask_str ("GPU"), 1 };
        hello.resources [1] = (cask_resource_t) { cask_str ("MEM"), 1e9 };
    }
    cask_hello_put (&self->body, &hello);
}

//  A library head and its functions; payload frame so when not NULL.
static void
s_library (s_corpus_t *self, const char *hash, uint32_t first_id, const void *so, size_t size)
{
    static const char *names [] = { "echo", "probe", "fail", "spin", "blob" };
    cask_library_t head = { cask_str ("seedlib"), cask_str (hash), 5 };
    cask_library_put (&self->body, &head);
    for (uint32_t index = 0; index < 5; index++) {
        cask_func_t func = { first_id ? first_id + index : 0, cask_str (names [index]),
                             cask_str ("a function") };
        cask_func_put (&self->body, &func);
    }
    if (so)
        cask_message_add_frame (&self->frames, so, size);
}

static void
s_done (s_corpus_t *self, const char *key, bool ok)
{
    cask_put_u32 (&self->body, 1);
    cask_done_t done = { .key = cask_str (key), .ok = ok, .type = ok ? CASK_INT64 : 0,
                         .nbytes = ok ? 8 : 0, .duration_us = 17,
                         .message = cask_str (ok ? "" : "it failed"), .start_us = 1763800000000000 };
    cask_done_put (&self->body, &done);
}

static void
s_dataset (s_corpus_t *self, const char *name, const char *key)
{
    cask_dataset_t rec = { cask_str (name), cask_str (key) };
    cask_dataset_put (&self->body, &rec);
}

static void
s_error (s_corpus_t *self, uint16_t code, const char *about, const char *message)
{
    cask_error_t rec = { code, cask_str (about), cask_str (message) };
    cask_error_put (&self->body, &rec);
}

static cask_restrictions_t
s_restricted (const char *worker, const char *resource, double amount)
{
    cask_restrictions_t rec = { 0 };
    if (worker)
        rec.workers [rec.nworkers++] = cask_str (worker);
    if (resource)
        rec.resources [rec.nresources++] = (cask_resource_t) { cask_str (resource), amount };
    return rec;
}

//  ---------------------------------------------------------------------
//  The broker's seeds.

//  Setup: A in bits 0-1, B in bits 2-3, C in bits 4-5 (1 client, 2
//  worker); bits 6 and 7: A and B leave by closing their connection.
#define S_A_CLIENT 1
#define S_A_WORKER 2
#define S_B_CLIENT (1 << 2)
#define S_B_WORKER (2 << 2)
#define S_C_WORKER (2 << 4)
#define S_A_CLOSES 0x40
#define S_B_CLOSES 0x80

static void
s_broker_graph (s_corpus_t *self)
{
    s_begin (self, "broker", S_A_CLIENT);
    cask_put_u32 (&self->body, 3);
    s_task (self, "k1", S_ECHO, s_every_type (), NULL, 0, NULL, NULL);
    s_task (self, "k2", S_PROBE, cask_list (cask_value_new_ref ((void *) 1), NULL),
            (const char *[]) { "k1" }, 1, NULL, NULL);
    s_task (self, "k3", 99, s_ints (3), NULL, 0, NULL, NULL);
    s_send (self, S_TO_A, CASK_MSG_SUBMIT);
    s_keys (self, (const char *[]) { "k1" }, 1);
    s_send (self, S_TO_A, CASK_MSG_FIRE);
    s_keys (self, (const char *[]) { "k2", "nope" }, 2);
    s_send (self, S_TO_A, CASK_MSG_RELEASE);
    s_keys (self, (const char *[]) { "k1" }, 1);
    s_send (self, S_TO_A, CASK_MSG_CANCEL);
    s_save (self, "graph");
}

static void
s_broker_worker_done (s_corpus_t *self, bool ok)
{
    s_begin (self, "broker", S_A_CLIENT | S_B_WORKER);
    cask_put_u32 (&self->body, 2);
    s_task (self, "t1", S_ECHO, s_ints (1), NULL, 0, NULL, NULL);
    cask_restrictions_t restrictions = s_restricted ("fuzz-b", "GPU", 1);
    s_task (self, "t2", S_SPIN, s_ints (2), (const char *[]) { "t1" }, 1, NULL, &restrictions);
    s_send (self, S_TO_A, CASK_MSG_SUBMIT);
    s_done (self, "t1", ok);
    s_send (self, S_TO_B, CASK_MSG_DONE);
    cask_put_u32 (&self->body, 1);
    cask_stolen_t stolen = { cask_str ("t2"), 1 };
    cask_stolen_put (&self->body, &stolen);
    s_send (self, S_TO_B, CASK_MSG_STOLEN);
    cask_put_u8 (&self->body, 1);
    s_send (self, S_TO_B, CASK_MSG_PAUSE);
    cask_put_u8 (&self->body, 0);
    s_send (self, S_TO_B, CASK_MSG_PAUSE);
    s_keys (self, (const char *[]) { "t2" }, 1);
    s_send (self, S_TO_A, CASK_MSG_RELEASE);
    s_save (self, ok ? "worker-done" : "worker-failed");
}

static void
s_broker_datasets (s_corpus_t *self)
{
    s_begin (self, "broker", S_A_CLIENT | S_B_CLIENT);
    cask_put_u32 (&self->body, 1);
    s_task (self, "d1", S_BLOB_FN, s_ints (5000), NULL, 0, NULL, NULL);
    s_send (self, S_TO_A, CASK_MSG_SUBMIT);
    s_dataset (self, "name", "d1");
    s_send (self, S_TO_A, CASK_MSG_PUBLISH);
    s_dataset (self, "name", "");
    s_send (self, S_TO_B, CASK_MSG_LOOKUP);
    s_dataset (self, "name", "");
    s_send (self, S_TO_B, CASK_MSG_UNPUBLISH);
    cask_put_u32 (&self->body, 1);
    cask_scatter_t scatter = { cask_str ("s1"), 1 };
    cask_scatter_put (&self->body, &scatter);
    s_send (self, S_TO_B, CASK_MSG_SCATTER);
    s_save (self, "datasets");
}

static void
s_broker_register (s_corpus_t *self)
{
    char hash [41];
    zdigest_t *digest = zdigest_new ();
    zdigest_update (digest, (const byte *) "another library", 15);
    snprintf (hash, sizeof hash, "%s", zdigest_string (digest));
    zdigest_destroy (&digest);
    for (char *at = hash; *at; at++)
        *at = (char) tolower ((unsigned char) *at);
    s_begin (self, "broker", S_A_WORKER | S_B_CLIENT);
    s_library (self, hash, 0, "another library", 15);
    s_send (self, S_TO_B, CASK_MSG_REGISTER);
    s_error (self, CASK_ERR_LIBRARY, hash, "cannot load it");
    s_send (self, S_TO_A, CASK_MSG_LIBFAIL);
    s_send (self, S_TO_A, CASK_MSG_RESTARTED);
    s_save (self, "register");
}

static void
s_broker_retire (s_corpus_t *self)
{
    s_begin (self, "broker", S_A_WORKER | S_B_CLIENT);
    cask_retire_put (&self->body, 0, NULL, 0);
    s_send (self, S_TO_B, CASK_MSG_RETIRE);
    cask_retire_put (&self->body, 1, (const uint32_t []) { 1, 2, 3 }, 3);
    s_send (self, S_TO_B, CASK_MSG_RETIRE);
    s_send (self, S_TO_B, CASK_MSG_RESTART);
    s_send (self, S_TO_A, CASK_MSG_BYE);
    s_save (self, "retire");
}

//  Two workers: the result moves when one retires, queued tasks are
//  stolen, and a worker leaves by closing its connection.
static void
s_broker_two_workers (s_corpus_t *self)
{
    s_begin (self, "broker", S_A_CLIENT | S_B_WORKER | S_C_WORKER | S_A_CLOSES | S_B_CLOSES);
    cask_put_u32 (&self->body, 6);
    for (int index = 0; index < 6; index++) {
        char key [8];
        snprintf (key, sizeof key, "r%d", index);
        s_task (self, key, S_SPIN, s_ints (index), NULL, 0, NULL, NULL);
    }
    s_send (self, S_TO_A, CASK_MSG_SUBMIT);
    for (int route = S_TO_B; route <= S_TO_C; route++) {
        s_done (self, route == S_TO_B ? "r0" : "r1", true);
        s_send (self, route, CASK_MSG_DONE);
    }
    cask_retire_put (&self->body, 1, NULL, 0);
    s_send (self, S_TO_A, CASK_MSG_RETIRE);
    for (int route = S_TO_B; route <= S_TO_C; route++) {
        cask_put_u32 (&self->body, 2);
        cask_stolen_t stolen = { cask_str ("r2"), 1 };
        cask_stolen_put (&self->body, &stolen);
        stolen = (cask_stolen_t) { cask_str ("r3"), 0 };
        cask_stolen_put (&self->body, &stolen);
        s_send (self, route, CASK_MSG_STOLEN);
        s_done (self, "r0", true);
        s_send (self, route, CASK_MSG_DONE);
    }
    s_save (self, "two-workers");
}

//  Badly framed messages, keys no record may hold, counts that lie.
static void
s_broker_hostile (s_corpus_t *self)
{
    static const uint8_t v2 [] = { CASK_SIG0, CASK_SIG1, 2, CASK_MSG_STATUS };
    static const uint8_t unknown [] = { CASK_SIG0, CASK_SIG1, 1, 0x7F };
    static const uint8_t submit [] = { CASK_SIG0, CASK_SIG1, 1, CASK_MSG_SUBMIT };
    static const uint8_t lying [] = { 0xFF, 0xFF, 0xFF, 0xFF, 2, 'k', 'x' };
    s_begin (self, "broker", S_A_CLIENT);
    s_raw (self, S_TO_A, (const void *[]) { v2, "" }, (size_t []) { 4, 0 }, 2);
    s_raw (self, S_TO_A, (const void *[]) { unknown, "" }, (size_t []) { 4, 0 }, 2);
    s_raw (self, S_TO_A, (const void *[]) { "\xCA" }, (size_t []) { 1 }, 1);
    s_raw (self, S_TO_A, (const void *[]) { submit }, (size_t []) { 4 }, 1);
    s_raw (self, S_TO_A, (const void *[]) { submit, lying }, (size_t []) { 4, sizeof lying }, 2);
    char long_key [256];
    memset (long_key, 'k', 255);
    long_key [255] = 0;
    cask_put_u32 (&self->body, 2);
    s_task (self, "nulXkey", S_ECHO, s_ints (1), NULL, 0, NULL, NULL);
    ((char *) memmem (self->body.data, self->body.size, "nulXkey", 7)) [3] = 0;
    s_task (self, long_key, S_ECHO, s_ints (1), (const char *[]) { "missing" }, 1, NULL, NULL);
    s_send (self, S_TO_A, CASK_MSG_SUBMIT);
    s_done (self, "k", true);
    s_send (self, S_TO_A, CASK_MSG_DONE);
    s_send (self, S_TO_B, CASK_MSG_SUBMIT);
    s_save (self, "hostile");
}

//  ---------------------------------------------------------------------
//  The worker's seeds: routes 0 (from the broker), 1 (to its peer
//  socket), 2 (from the fake peer).

static void
s_worker_tasks (s_corpus_t *self)
{
    s_begin (self, "worker", -1);
    cask_put_u32 (&self->body, 5);
    s_task (self, "w1", S_ECHO, s_every_type (), NULL, 0, NULL, NULL);
    s_task (self, "w2", S_PROBE, cask_list (cask_list (cask_int64 (1), cask_int64 (2), NULL),
            cask_value_new_ref ((void *) 1), cask_string ("s"), NULL),
            (const char *[]) { "w1" }, 1, (const char *[]) { "" }, NULL);
    s_task (self, "w3", S_FAIL, cask_list (cask_string ("it went wrong"), NULL),
            NULL, 0, NULL, NULL);
    s_task (self, "w4", S_BLOB_FN, s_ints (20000), NULL, 0, NULL, NULL);
    s_task (self, "w5", 77, s_ints (1), NULL, 0, NULL, NULL);
    s_send (self, S_FROM_BROKER, CASK_MSG_TASK);
    s_keys (self, (const char *[]) { "w1", "w2", "w4", "nope" }, 4);
    s_send (self, S_TO_PEER_SOCKET, CASK_MSG_GET);
    s_keys (self, (const char *[]) { "w1" }, 1);
    s_send (self, S_FROM_BROKER, CASK_MSG_FREE);
    s_save (self, "tasks");
}

static void
s_worker_steal (s_corpus_t *self)
{
    s_begin (self, "worker", -1);
    cask_put_u32 (&self->body, 4);
    for (int index = 0; index < 4; index++) {
        char key [8];
        snprintf (key, sizeof key, "s%d", index);
        cask_restrictions_t restrictions = s_restricted (NULL, "GPU", 1);
        s_task (self, key, S_SPIN, s_ints (1500), NULL, 0, NULL,
                index == 3 ? &restrictions : NULL);
    }
    s_send (self, S_FROM_BROKER, CASK_MSG_TASK);
    s_keys (self, (const char *[]) { "s3", "s2", "s3" }, 3);
    s_send (self, S_FROM_BROKER, CASK_MSG_STEAL);
    s_keys (self, (const char *[]) { "s0", "s1" }, 2);
    s_send (self, S_FROM_BROKER, CASK_MSG_FREE);
    s_send (self, S_FROM_BROKER, CASK_MSG_RESTART);
    s_save (self, "steal");
}

//  A task whose dependency is at the fake peer, and a copy from it.
static void
s_worker_fetch (s_corpus_t *self, bool found)
{
    s_begin (self, "worker", -1);
    cask_put_u32 (&self->body, 1);
    s_task (self, "f1", S_PROBE, cask_list (cask_value_new_ref ((void *) 1), NULL),
            (const char *[]) { "dep" }, 1, (const char *[]) { S_PEER_TOKEN }, NULL);
    s_send (self, S_FROM_BROKER, CASK_MSG_TASK);
    cask_put_u32 (&self->body, 1);
    cask_copy_t copy = { cask_str ("kept"), cask_str (S_PEER_TOKEN) };
    cask_copy_put (&self->body, &copy);
    s_send (self, S_FROM_BROKER, CASK_MSG_COPY);
    cask_put_u32 (&self->body, found ? 2 : 1);
    if (found) {
        s_keyed_value (self, "dep", true, cask_list (cask_int64 (4), cask_int64 (5), NULL));
        s_keyed_value (self, "kept", true, cask_bytes ("0123456789012345678901234567890123456789", 40));
    }
    else {
        cask_put_str8 (&self->body, cask_str ("dep"));
        cask_put_u8 (&self->body, 0);
    }
    s_send (self, S_FROM_PEER, CASK_MSG_DATA);
    s_keys (self, (const char *[]) { "f1", "kept" }, 2);
    s_send (self, S_TO_PEER_SOCKET, CASK_MSG_GET);
    s_save (self, found ? "fetch" : "fetch-missing");
}

static void
s_worker_put (s_corpus_t *self)
{
    s_begin (self, "worker", -1);
    cask_put_u32 (&self->body, 2);
    s_keyed_value (self, "p1", false, cask_bytes ("scattered", 9));
    s_keyed_value (self, "p2", false, cask_list (cask_double (1.5), cask_string ("x"), NULL));
    s_send (self, S_TO_PEER_SOCKET, CASK_MSG_PUT);
    cask_put_u32 (&self->body, 1);
    s_task (self, "p3", S_ECHO, cask_list (cask_value_new_ref ((void *) 1), NULL),
            (const char *[]) { "p1" }, 1, (const char *[]) { S_SELF_TOKEN }, NULL);
    s_send (self, S_FROM_BROKER, CASK_MSG_TASK);
    cask_put_u32 (&self->body, 1);
    cask_copy_t copy = { cask_str ("p2"), cask_str (S_SELF_TOKEN) };
    cask_copy_put (&self->body, &copy);
    s_send (self, S_FROM_BROKER, CASK_MSG_COPY);
    s_keys (self, (const char *[]) { "p1", "p2", "p3" }, 3);
    s_send (self, S_TO_PEER_SOCKET, CASK_MSG_GET);
    s_save (self, "put");
}

static void
s_worker_library (s_corpus_t *self)
{
    static const char junk [] = "\x7f" "ELF but nothing a loader takes";
    char hash [41];
    zdigest_t *digest = zdigest_new ();
    zdigest_update (digest, (const byte *) junk, sizeof junk - 1);
    snprintf (hash, sizeof hash, "%s", zdigest_string (digest));
    zdigest_destroy (&digest);
    s_begin (self, "worker", -1);
    s_library (self, self->tasklib_hash, 11, "x", 1);        //  loaded: new ids only
    s_send (self, S_FROM_BROKER, CASK_MSG_LIBRARY);
    s_library (self, hash, 21, junk, sizeof junk - 1);
    s_send (self, S_FROM_BROKER, CASK_MSG_LIBRARY);
    cask_put_u32 (&self->body, 2);
    s_task (self, "l1", 12, s_ints (1), NULL, 0, NULL, NULL);
    s_task (self, "l2", 21, s_ints (1), NULL, 0, NULL, NULL);
    s_send (self, S_FROM_BROKER, CASK_MSG_TASK);
    cask_put_u32 (&self->body, 9);
    cask_put_u32 (&self->body, 0);
    cask_put_u32 (&self->body, 0);
    s_send (self, S_FROM_BROKER, CASK_MSG_WELCOME);
    s_error (self, CASK_ERR_COMMAND, "", "the broker is cross");
    s_send (self, S_FROM_BROKER, CASK_MSG_ERROR);
    s_save (self, "library");
}

static void
s_worker_hostile (s_corpus_t *self)
{
    static const uint8_t v2 [] = { CASK_SIG0, CASK_SIG1, 2, CASK_MSG_GET };
    static const uint8_t submit [] = { CASK_SIG0, CASK_SIG1, 1, CASK_MSG_SUBMIT };
    static const uint8_t get [] = { CASK_SIG0, CASK_SIG1, 1, CASK_MSG_GET };
    static const uint8_t put [] = { CASK_SIG0, CASK_SIG1, 1, CASK_MSG_PUT };
    static const uint8_t lying [] = { 0xFF, 0xFF, 0xFF, 0x0F, 1, 'k' };
    s_begin (self, "worker", -1);
    s_raw (self, S_TO_PEER_SOCKET, (const void *[]) { v2, "" }, (size_t []) { 4, 0 }, 2);
    s_raw (self, S_TO_PEER_SOCKET, (const void *[]) { submit, "" }, (size_t []) { 4, 0 }, 2);
    s_raw (self, S_TO_PEER_SOCKET, (const void *[]) { get, lying, "frame" },
           (size_t []) { 4, sizeof lying, 5 }, 3);
    s_raw (self, S_TO_PEER_SOCKET, (const void *[]) { put, lying }, (size_t []) { 4, sizeof lying }, 2);
    s_raw (self, S_TO_PEER_SOCKET, (const void *[]) { "\xCA\x5C" }, (size_t []) { 2 }, 1);
    s_raw (self, S_FROM_BROKER, (const void *[]) { submit, lying }, (size_t []) { 4, sizeof lying }, 2);
    cask_put_u32 (&self->body, 2);
    s_task (self, "h1", S_ECHO, cask_list (cask_value_new_ref ((void *) 1), NULL),
            (const char *[]) { "x" }, 1, (const char *[]) { "tcp://192.0.2.1:9" }, NULL);
    s_task (self, "h2", S_ECHO, s_ints (1), NULL, 0, NULL, NULL);
    s_send (self, S_FROM_BROKER, CASK_MSG_TASK);
    s_save (self, "hostile");
}

//  ---------------------------------------------------------------------
//  What the broker and the worker answer, for the codec alone.

static void
s_codec_answers (s_corpus_t *self)
{
    s_begin (self, "unused", -1);
    cask_put_u32 (&self->body, 3);
    cask_put_u32 (&self->body, 1);
    cask_func_t func = { 1, cask_str ("echo"), cask_str ("doc") };
    cask_func_put (&self->body, &func);
    cask_put_u32 (&self->body, 1);
    cask_worker_info_t worker = { 1, cask_str ("tcp://127.0.0.1:5"), 2, 1 };
    cask_worker_info_put (&self->body, &worker);
    s_send (self, 0, CASK_MSG_WELCOME);
    s_library (self, "0123456789abcdef0123456789abcdef01234567", 1, NULL, 0);
    s_send (self, 0, CASK_MSG_REGISTERED);
    cask_put_u32 (&self->body, 2);
    cask_state_rec_t state = { cask_str ("k"), CASK_STATE_MEMORY, 1, CASK_BYTES, 100,
                               cask_str (""), cask_str (""), cask_str ("") };
    cask_state_put (&self->body, &state);
    state = (cask_state_rec_t) { cask_str ("e"), CASK_STATE_ERRED, 0, 0, 0, cask_str ("k"),
                                 cask_str ("echo"), cask_str ("division by zero") };
    cask_state_put (&self->body, &state);
    s_send (self, 0, CASK_MSG_STATE);
    cask_worker_info_put (&self->body, &worker);
    s_send (self, 0, CASK_MSG_WORKER);
    cask_put_raw (&self->body, "{\"workers\":[],\"tasks\":{}}", 25);
    s_send (self, 0, CASK_MSG_REPORT);
    s_dataset (self, "name", "k");
    s_send (self, 0, CASK_MSG_DATASET);
    cask_retire_put (&self->body, 0, (const uint32_t []) { 4 }, 1);
    s_send (self, 0, CASK_MSG_RETIRED);
    s_error (self, CASK_ERR_NOT_FOUND, "name", "no such dataset");
    s_send (self, 0, CASK_MSG_ERROR);
    cask_put_u32 (&self->body, 1);
    cask_stored_t stored = { cask_str ("p"), 0, cask_str ("over the memory limit") };
    cask_stored_put (&self->body, &stored);
    s_send (self, 0, CASK_MSG_STORED);
    s_hello (self, CASK_ROLE_WORKER);
    s_send (self, 0, CASK_MSG_HELLO);
}

//  ---------------------------------------------------------------------

static void
s_hash_file (const char *path, char *hex)
{
    zchunk_t *chunk = zchunk_slurp (path, 0);
    if (!chunk)
        s_die (path);
    zdigest_t *digest = zdigest_new ();
    zdigest_update (digest, zchunk_data (chunk), zchunk_size (chunk));
    snprintf (hex, 41, "%s", zdigest_string (digest));
    for (char *at = hex; *at; at++)
        *at = (char) tolower ((unsigned char) *at);
    zdigest_destroy (&digest);
    zchunk_destroy (&chunk);
}

int
main (int argc, char *argv [])
{
    if (argc < 3) {
        fprintf (stderr, "usage: make_corpus DIR TASKLIB [STAMP]\n");
        return EXIT_FAILURE;
    }
    s_corpus_t self = { .root = argv [1] };
    cask_buf_init (&self.seed);
    cask_buf_init (&self.body);
    cask_message_init (&self.frames);
    s_hash_file (argv [2], self.tasklib_hash);
    s_prepare (&self, "codec");
    s_prepare (&self, "broker");
    s_prepare (&self, "worker");

    s_broker_graph (&self);
    s_broker_worker_done (&self, true);
    s_broker_worker_done (&self, false);
    s_broker_datasets (&self);
    s_broker_register (&self);
    s_broker_retire (&self);
    s_broker_two_workers (&self);
    s_broker_hostile (&self);
    s_begin (&self, "broker", 0);                //  a seed that says HELLO itself
    s_hello (&self, CASK_ROLE_CLIENT);
    s_send (&self, S_TO_A, CASK_MSG_HELLO);
    s_send (&self, S_TO_A, CASK_MSG_STATUS);
    s_save (&self, "hello");

    s_worker_tasks (&self);
    s_worker_steal (&self);
    s_worker_fetch (&self, true);
    s_worker_fetch (&self, false);
    s_worker_put (&self);
    s_worker_library (&self);
    s_worker_hostile (&self);
    s_codec_answers (&self);

    cask_buf_free (&self.seed);
    cask_buf_free (&self.body);
    cask_message_close (&self.frames);
    if (argc > 3) {
        FILE *stamp = fopen (argv [3], "w");
        if (!stamp || fclose (stamp))
            s_die (argv [3]);
    }
    printf ("make_corpus: %zu codec seeds, broker and worker scenarios in %s\n",
            self.ncodec, self.root);
    return EXIT_SUCCESS;
}
