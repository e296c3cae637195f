/*
 * Internal to src/fiber: how fiber.c takes a stack from its pool and gives it
 * back. A stack is the usable region [lo, lo + size); the page below lo is its
 * guard. Between take and give the caller owns every usable byte; the pool
 * never touches a stack that is out.
 */
#ifndef BLZ_FIBER_STACK_POOL_H
#define BLZ_FIBER_STACK_POOL_H

#include "fiber/fiber.h"

#include <stddef.h>

/* Takes a stack: a cached one if the pool has any, else a fresh mapping.
 * *lo receives its lowest usable byte (page aligned) and *size its usable
 * bytes (a page multiple, the same for every stack of the pool). Its contents
 * are whatever the last user left. 0, or -ENOMEM. Any thread. */
int blz__stack_take(blz__stack_pool *pool, void **lo, size_t *size);

/* Gives back a stack taken from the same pool: it is cached, or unmapped when
 * the cache is full. Any thread. */
void blz__stack_give(blz__stack_pool *pool, void *lo);

#endif
