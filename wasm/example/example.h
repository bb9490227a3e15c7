/* example.h — the example application's parts, registered together by
 * wse_example_register() (chat.c). */
#ifndef WSE_EXAMPLE_H
#define WSE_EXAMPLE_H
#include "wsedge.h"

int wse_example_echo(wse_app_t *app); /* "/ws" */
int wse_example_chat(wse_app_t *app); /* "/chat/:room" + its HTTP routes */

#endif
