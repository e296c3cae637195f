/* Internal: recover the struct that embeds a member (intrusive nodes). */
#ifndef BLZ_CORE_CONTAINER_H
#define BLZ_CORE_CONTAINER_H

#include <stddef.h>

#define blz__container_of(ptr, type, member) \
 ((type *) (void *) ((char *) (ptr) -offsetof(type, member)))

#ifdef NDEBUG
# define BLZ_ASSERT(x) ((void) 0)
#else
# include <assert.h>
# define BLZ_ASSERT(x) assert(x)
#endif

#endif
