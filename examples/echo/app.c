/* app.c — the echo example as an app of its own: its entry point. */
#include "wsedge.h"

#include "echo.h"

int wsedge_app(wse_app_t *app) {
  int rc = echo_routes(app);
  return rc < 0 ? rc : WSE_OK;
}
