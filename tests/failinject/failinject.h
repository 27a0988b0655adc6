/* SPDX-License-Identifier: MIT */
/*
 * Control of the allocation failure injector (failinject.c) for a test
 * program linked with it.
 */
#ifndef TROUPE_FAILINJECT_H
#define TROUPE_FAILINJECT_H

#include <stdint.h>

/* From now on, fail every `every`th allocation made inside libtroupe after
 * the first `after` (every = 0: none), `limit` of them at most (0: no
 * limit). Any thread. */
void failinject_set(uint64_t every, uint64_t after, uint64_t limit);

/* How many allocations it has failed since failinject_set. */
uint64_t failinject_failed(void);

/* 1 if allocations can be made to fail here; 0 in sanitizer builds,
 * where the control calls do nothing. */
int failinject_active(void);

#endif
