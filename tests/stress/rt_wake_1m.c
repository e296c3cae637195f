/* The wake-race tests at full size: a million lock-step cross-thread wakes.
 * blz-test: timeout=300 */
#define PINGPONGS 1000000
#include "../rt_wake.c"
