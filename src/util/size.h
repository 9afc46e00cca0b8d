/* size.h - sizes as people write them ("4gb"). */
#ifndef BERTH_SIZE_H
#define BERTH_SIZE_H

#include <stdint.h>

/* "4gb", "512mb", "1.5gb", "1024" (bytes) to bytes, the units in any case
 * and counted in 1024s; -1 when malformed, negative or above 10^18 bytes. */
int64_t size_parse(const char *s);

#endif
