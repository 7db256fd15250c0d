/*  cask.h - everything a cask client program needs: values and the client.

    Task libraries include cask/cask_task.h instead (or as well).
*/
#ifndef CASK_H_INCLUDED
#define CASK_H_INCLUDED

#include "cask/cask_value.h"
#include "cask/cask_client.h"

#endif
