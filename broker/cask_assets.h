/*  cask_assets.h - the dashboard's files (broker/dashboard/), built into
    the broker by broker/dashboard/embed.py, so a broker binary needs no
    data directory to serve them.
*/
#ifndef CASK_ASSETS_H_INCLUDED
#define CASK_ASSETS_H_INCLUDED

#include <stddef.h>

typedef struct {
    const char *name;           //  file name: "status.html", "cask.js"
    const char *type;           //  its Content-Type
    const unsigned char *data;
    size_t size;
} cask_asset_t;

//  The files, and how many.
extern const cask_asset_t cask_assets [];
extern const size_t cask_nassets;

#endif
