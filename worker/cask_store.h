/*  cask_store.h - the worker's results: key -> value, and the GET service.

    The store keeps the result of every task this worker ran until the
    broker frees it, and answers GET requests from peers and clients on the
    worker's peer socket with DATA, handing bytes values to ZeroMQ by
    reference. It counts what it holds and what it served, for REPORT.
*/
#ifndef CASK_STORE_H_INCLUDED
#define CASK_STORE_H_INCLUDED

#include "cask_proto.h"

typedef struct _cask_store_t cask_store_t;

//  Creates an empty store, or NULL when out of memory.
cask_store_t *cask_store_new (void);
//  Drops every value held and nulls *self_p. Safe twice.
void cask_store_destroy (cask_store_t **self_p);

//  Keeps value under key, taking its ownership (also when it fails); a
//  value already held under key is replaced. Returns 0 or -1.
int cask_store_put (cask_store_t *self, cask_str_t key, cask_value_t *value);
//  The value held under key (borrowed), or NULL.
cask_value_t *cask_store_lookup (cask_store_t *self, cask_str_t key);
//  Drops the value held under key. Returns 0, or -1 when none was held.
int cask_store_remove (cask_store_t *self, cask_str_t key);
//  Drops every value held.
void cask_store_clear (cask_store_t *self);

//  Answers request, a GET received on router, with DATA. Returns 0, or -1
//  when the request is malformed (nothing was sent; why says what).
int cask_store_serve (cask_store_t *self, void *router,
                      cask_message_t *request, const char **why);

//  Counters for REPORT.
size_t cask_store_size (cask_store_t *self);            //  results held
uint64_t cask_store_bytes (cask_store_t *self);         //  their payload bytes
uint64_t cask_store_gets_served (cask_store_t *self);   //  values sent
uint64_t cask_store_bytes_served (cask_store_t *self);  //  their bytes
uint64_t cask_store_gets_missed (cask_store_t *self);   //  keys not held

#endif
