/*  cask_store.h - the worker's results: key -> value, the GET service, and
    spilling to disk.

    The store keeps the result of every task this worker ran until the
    broker frees it, and answers GET requests from peers and clients on the
    worker's peer socket with DATA, handing bytes values to ZeroMQ by
    reference. It counts what it holds and what it served, for REPORT.

    Given a directory and a target (cask_store_set_spill), it keeps the
    payload bytes of the values it holds in memory at most at the target:
    the least recently used values (put, looked up or served) go to files
    and come back when looked up or served. A spilled value is still held:
    size, bytes and keys do not change. Values under 4 KiB are never
    spilled, nor the value a lookup just returned, so these may keep the
    bytes in memory over the target. Spilling and reading back block on
    file I/O, in the calling thread. The store belongs to one thread.

    Borrowed values: cask_store_lookup returns the store's own reference.
    The store may drop that reference (spilling the value) in any later
    call that can spill: put, lookup, serve, set_spill, spill. Take a
    reference of your own (cask_value_ref) before such a call to keep the
    value: spilling only drops the store's reference, never one anyone
    else holds.
*/
#ifndef CASK_STORE_H_INCLUDED
#define CASK_STORE_H_INCLUDED

#include "cask_proto.h"

typedef struct _cask_store_t cask_store_t;

//  Creates an empty store that does not spill, or NULL when out of memory.
cask_store_t *cask_store_new (void);
//  Drops every value held, deletes every spill file and the store's spill
//  directory, and nulls *self_p. Safe twice.
void cask_store_destroy (cask_store_t **self_p);

//  Keeps value under key, taking its ownership (also when it fails); a
//  value already held under key is replaced (its spill file deleted). May
//  spill, this value too: do not use value after the call. Returns 0 or -1.
int cask_store_put (cask_store_t *self, cask_str_t key, cask_value_t *value);
//  The value held under key (borrowed, see above), or NULL. A spilled value
//  is read back into memory (blocking) and may spill others, never the one
//  returned. NULL also when reading it back failed: the key stays held,
//  cask_store_spill_error says why (the caller treats the value as lost).
cask_value_t *cask_store_lookup (cask_store_t *self, cask_str_t key);
//  True when a value is held under key, in memory or on disk; its payload
//  bytes go to *nbytes when nbytes is not NULL. Never reads a file.
bool cask_store_holds (cask_store_t *self, cask_str_t key, uint64_t *nbytes);
//  Drops the value held under key and deletes its spill file. Returns 0,
//  or -1 when none was held.
int cask_store_remove (cask_store_t *self, cask_str_t key);
//  Drops every value held and deletes every spill file.
void cask_store_clear (cask_store_t *self);

//  Answers request, a GET received on router, with DATA; spilled values are
//  read back as by lookup (one that cannot be is answered as not found).
//  Returns 0, or -1 when the request is malformed (nothing was sent; why
//  says what).
int cask_store_serve (cask_store_t *self, void *router,
                      cask_message_t *request, const char **why);

//  Spills values whenever the payload bytes held in memory exceed
//  target_bytes, least recently used first, into a directory of the
//  store's own made in dir ("cask-spill-PID-XXXXXX", removed by destroy).
//  dir NULL keeps the current directory; a new dir is taken only while no
//  spill file exists (else -1, EBUSY). Ends the rest that follows a disk
//  error (see below) and spills at once down to the target (blocking).
//  Returns 0, or -1 (errno set, cask_store_spill_error says why) with
//  spilling as it was.
int cask_store_set_spill (cask_store_t *self, const char *dir, uint64_t target_bytes);
//  Spills values now, least recently used first, until the bytes in memory
//  are at most target_bytes or no value is left to spill (values under
//  4 KiB stay in memory), e.g. when the process as a whole uses too much.
//  Returns 0, or -1 when spilling is not set up, or rests after a disk
//  error, or a write failed now.
int cask_store_spill (cask_store_t *self, uint64_t target_bytes);
//  The store's spill directory, or NULL when spilling is not set up.
const char *cask_store_spill_dir (cask_store_t *self);
//  What went wrong last with a spill file (or setting one up), or NULL.
//  A value that could not be written stays in memory, and spilling rests
//  for a second (it would likely fail again: disk full); a value that
//  could not be read back stays on disk.
const char *cask_store_spill_error (cask_store_t *self);

//  Counters for REPORT.
size_t cask_store_size (cask_store_t *self);            //  results held
uint64_t cask_store_bytes (cask_store_t *self);         //  their payload bytes
uint64_t cask_store_gets_served (cask_store_t *self);   //  values sent
uint64_t cask_store_bytes_served (cask_store_t *self);  //  their bytes
uint64_t cask_store_gets_missed (cask_store_t *self);   //  keys not held (or unreadable)
//  Payload bytes of the values held in memory (what the target bounds).
uint64_t cask_store_bytes_in_memory (cask_store_t *self);

//  What spilling did, for REPORT: one snapshot.
typedef struct {
    uint64_t bytes_in_memory;   //  payload bytes of the values held in memory
    uint64_t values_on_disk;    //  values held on disk only
    uint64_t bytes_on_disk;     //  bytes of the spill files; a value read back
                                //  keeps its file, so respilling it is free
    uint64_t spills;            //  times a value left memory for disk
    uint64_t unspills;          //  times a value was read back
    uint64_t bytes_written;     //  to spill files
    uint64_t bytes_read;        //  from spill files
    uint64_t spill_errors;      //  values that could not be written
    uint64_t unspill_errors;    //  values that could not be read back
} cask_store_spill_stats_t;
void cask_store_spill_stats (cask_store_t *self, cask_store_spill_stats_t *stats);

#endif
