/* json.h — internal: the public JSON API (wsedge/json.h) plus the hex digit
 * helper the query parser shares with the JSON reader. */
#ifndef WSE_JSON_INTERNAL_H
#define WSE_JSON_INTERNAL_H

#include "internal.h"

/* Two hex digits (any case) at p[0..2) as a byte, or -1. */
int wse__hex2(const char *p);

#endif
