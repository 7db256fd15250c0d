/*  cask_testlib.h - what the integration tests and their task library
    (cask_testlib.c) must agree on: the byte pattern make_bytes produces and
    the digest that checks it arrived intact.
*/
#ifndef CASK_TESTLIB_H_INCLUDED
#define CASK_TESTLIB_H_INCLUDED

#include <stddef.h>
#include <stdint.h>
#include <string.h>

//  Fills data with size bytes of a pattern that depends on seed and on the
//  position of every 8-byte block (so a moved or lost block shows).
static inline void cask_testlib_fill (uint8_t *data, size_t size, uint64_t seed)
{
    for (size_t at = 0; at < size; at += 8) {
        uint64_t z = seed * 0x9E3779B97F4A7C15ull + at / 8 + 1;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        memcpy (data + at, &z, size - at < 8 ? size - at : 8);
    }
}

//  FNV-1a over size bytes, continuing from hash (start with
//  CASK_TESTLIB_DIGEST_START).
#define CASK_TESTLIB_DIGEST_START 0xCBF29CE484222325ull
static inline uint64_t cask_testlib_digest (uint64_t hash, const void *data, size_t size)
{
    const uint8_t *byte = (const uint8_t *) data;
    for (size_t i = 0; i < size; i++)
        hash = (hash ^ byte [i]) * 0x100000001B3ull;
    return hash;
}

//  What digest returns for the bytes of make_bytes (size, seed) followed by
//  those of make_bytes (size, seed + 1); scratch holds size bytes.
static inline uint64_t cask_testlib_pair_digest (uint8_t *scratch, size_t size, uint64_t seed)
{
    uint64_t hash = CASK_TESTLIB_DIGEST_START;
    for (uint64_t at = seed; at <= seed + 1; at++) {
        cask_testlib_fill (scratch, size, at);
        hash = cask_testlib_digest (hash, scratch, size);
    }
    return hash;
}

#endif
