/*
 * The runtime-level sync tests of tests/sync_runtime.c, five times bigger
 * (about 6 million mutex increments, 300 cancellation-storm rounds, 15,000
 * barrier generations ...). Labelled stress, so sanitizer runs skip it.
 */
/* blz-test: timeout=600 */
#define SYNC_HEAVY 5
#include "../sync_runtime.c"
