/* echo.c — "/ws": every text and binary message goes back unchanged (what
 * conformance suites expect). The default config: no subprotocol.
 * echo_routes() is also used by the chat example, which serves /ws too. */
#include "wsedge.h"

#include "echo.h"

static void echo_message(wse_ctx_t *c, unsigned opcode, const uint8_t *p,
                         size_t n) {
  wse_send(c, opcode, p, n);
}

int echo_routes(wse_app_t *app) {
  wse_route_t r = {0};
  r.pattern = "/ws";
  r.on_message = echo_message;
  return wse_app_route(app, &r);
}
