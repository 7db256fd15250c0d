/*  cask_hash.h - the one hash of cask: task keys and hash maps.

    MurmurHash3 x64 128, made incremental so the pieces of a task are hashed
    where they lie. It runs at several GB/s and costs tens of nanoseconds
    for a short key. One difference from the reference code: a partial last
    block is padded with zeros and mixed as a whole block, which is what
    lets the hash be fed in pieces of any size (the reference mixes the
    tail differently, so digests of lengths that are not a multiple of 16
    differ from the published ones).

    cask_hash64 is the first half of the same digest in one call, for hash
    maps; give it a seed of the map's own when the keys come off the wire,
    so that nobody can choose keys that collide.
*/
#ifndef CASK_HASH_H_INCLUDED
#define CASK_HASH_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

//  An incremental hash; a value on the caller's stack, no allocation.
typedef struct {
    uint64_t h1, h2;
    uint64_t length;
    uint8_t tail [16];
    size_t ntail;
} cask_hash_t;

//  Starts a hash with seed.
void cask_hash_init (cask_hash_t *self, uint64_t seed);
//  Feeds size bytes of data.
void cask_hash_update (cask_hash_t *self, const void *data, size_t size);
//  Feeds size as 8 bytes and then the data, so that no two different
//  sequences of fields hash the same stream.
void cask_hash_field (cask_hash_t *self, const void *data, size_t size);
//  The 128-bit digest of what was fed. Ends the hash.
void cask_hash_final (cask_hash_t *self, uint64_t digest [2]);

//  The first 64 bits of the digest of data with seed, in one call.
uint64_t cask_hash64 (uint64_t seed, const void *data, size_t size);

#endif
