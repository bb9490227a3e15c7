/* echo.h — the echo route, for apps that serve it beside their own. */
#ifndef EXAMPLES_ECHO_H
#define EXAMPLES_ECHO_H
#include "wsedge.h"

int echo_routes(wse_app_t *app); /* "/ws" */

#endif
