/* size.c - sizes as people write them (see size.h). */
#include "util/size.h"

#include <math.h>
#include <stdlib.h>
#include <strings.h>

#include "util/macro.h"

int64_t size_parse(const char *s)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v) || v < 0)
        return -1;
    static const struct {
        const char *unit;
        double factor;
    } units[] = {{"", 1},
                 {"b", 1},
                 {"kb", 1024.0},
                 {"mb", 1024.0 * 1024},
                 {"gb", 1024.0 * 1024 * 1024},
                 {"tb", 1024.0 * 1024 * 1024 * 1024}};
    for (size_t i = 0; i < ELEMENTSOF(units); i++)
        if (strcasecmp(end, units[i].unit) == 0)
            return v * units[i].factor <= 1e18 ? (int64_t)(v * units[i].factor) : -1;
    return -1;
}
