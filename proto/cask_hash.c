/*  cask_hash.c - the one hash of cask (see cask_hash.h).

    The incremental form keeps a partial block in the state; the one-call
    form reads whole blocks straight from the data and pads only the last,
    so both give the same digest for the same bytes.
*/
#include "cask_hash.h"

#include <string.h>

static inline uint64_t
s_rotl (uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t
s_fmix (uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static inline void
s_mix (uint64_t *h1, uint64_t *h2, uint64_t k1, uint64_t k2)
{
    const uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL;
    k1 *= c1; k1 = s_rotl (k1, 31); k1 *= c2; *h1 ^= k1;
    *h1 = s_rotl (*h1, 27); *h1 += *h2;
    *h1 = *h1 * 5 + 0x52dce729;
    k2 *= c2; k2 = s_rotl (k2, 33); k2 *= c1; *h2 ^= k2;
    *h2 = s_rotl (*h2, 31); *h2 += *h1;
    *h2 = *h2 * 5 + 0x38495ab5;
}

static inline void
s_block (uint64_t *h1, uint64_t *h2, const uint8_t *block)
{
    uint64_t k1, k2;
    memcpy (&k1, block, 8);
    memcpy (&k2, block + 8, 8);
    s_mix (h1, h2, k1, k2);
}

//  The size (below 8) bytes at bytes as a little-endian word, in at most
//  three loads that stay inside them (overlapping loads OR in the same
//  bytes twice).
static inline uint64_t
s_partial (const uint8_t *bytes, size_t size)
{
    if (size >= 4) {
        uint32_t low, high;
        memcpy (&low, bytes, 4);
        memcpy (&high, bytes + size - 4, 4);
        return low | (uint64_t) high << (8 * (size - 4));
    }
    if (size == 0)
        return 0;
    return bytes [0] | (uint64_t) bytes [size / 2] << (8 * (size / 2))
                     | (uint64_t) bytes [size - 1] << (8 * (size - 1));
}

//  Mixes the last ntail bytes (zero-padded) and the length into the digest.
static inline void
s_finish (uint64_t h1, uint64_t h2, const uint8_t *tail, size_t ntail,
          uint64_t length, uint64_t digest [2])
{
    if (ntail) {
        //  Assembled in registers: a copy into a zeroed block on the stack
        //  would stall the loads that read it back
        uint64_t k1 = 0, k2 = 0;
        if (ntail >= 8) {
            memcpy (&k1, tail, 8);
            k2 = s_partial (tail + 8, ntail - 8);
        }
        else
            k1 = s_partial (tail, ntail);
        s_mix (&h1, &h2, k1, k2);
    }
    h1 ^= length;
    h2 ^= length;
    h1 += h2; h2 += h1;
    h1 = s_fmix (h1); h2 = s_fmix (h2);
    h1 += h2; h2 += h1;
    digest [0] = h1;
    digest [1] = h2;
}

void
cask_hash_init (cask_hash_t *self, uint64_t seed)
{
    memset (self, 0, sizeof (cask_hash_t));
    self->h1 = self->h2 = seed;
}

void
cask_hash_update (cask_hash_t *self, const void *data, size_t size)
{
    const uint8_t *bytes = (const uint8_t *) data;
    if (size == 0)
        return;                 //  data may be NULL
    self->length += size;
    if (self->ntail) {
        size_t take = 16 - self->ntail < size ? 16 - self->ntail : size;
        memcpy (self->tail + self->ntail, bytes, take);
        self->ntail += take;
        bytes += take;
        size -= take;
        if (self->ntail < 16)
            return;
        s_block (&self->h1, &self->h2, self->tail);
        self->ntail = 0;
    }
    for (; size >= 16; bytes += 16, size -= 16)
        s_block (&self->h1, &self->h2, bytes);
    if (size)
        memcpy (self->tail, bytes, size);
    self->ntail = size;
}

void
cask_hash_field (cask_hash_t *self, const void *data, size_t size)
{
    uint64_t length = size;
    cask_hash_update (self, &length, sizeof length);
    cask_hash_update (self, data, size);
}

void
cask_hash_final (cask_hash_t *self, uint64_t digest [2])
{
    s_finish (self->h1, self->h2, self->tail, self->ntail, self->length, digest);
}

uint64_t
cask_hash64 (uint64_t seed, const void *data, size_t size)
{
    const uint8_t *bytes = (const uint8_t *) data;
    uint64_t h1 = seed, h2 = seed;
    size_t whole = size & ~(size_t) 15;
    for (size_t at = 0; at < whole; at += 16)
        s_block (&h1, &h2, bytes + at);
    uint64_t digest [2];
    s_finish (h1, h2, size > whole ? bytes + whole : NULL, size - whole, size, digest);
    return digest [0];
}
