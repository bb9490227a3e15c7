/* native_main.c — the `serve` command line around the server library: what
 * a program's main opts in to (SIGPIPE ignored, the whole fd limit,
 * SIGTERM/SIGINT → graceful stop), then wse_server_new/run/free.
 * Exit codes: 0 clean (including after SIGTERM/SIGINT), 1 a runtime
 * failure (cannot listen, the app's entry point failed), 2 invalid command
 * line or environment. */
#include <stdio.h>
#include <string.h>

#include "server.h"

int wse_native_main_with(int argc, char **argv, wse_app_entry_t entry,
                         const wse_native_options_t *defaults) {
  wse_native_options_t o;
  if (defaults) o = *defaults;
  else wse_native_options_default(&o);
  if (argc < 2) {
    wse_native_usage(&o, stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
    printf("%s %s\n", o.program, WSE_VERSION_STRING);
    return 0;
  }
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    wse_native_usage(&o, stdout);
    return 0;
  }
  if (strcmp(cmd, "serve") != 0) {
    fprintf(stderr, "%s: unknown command '%s' (expected: serve)\n", o.program, cmd);
    wse_native_usage(&o, stderr);
    return 2;
  }
  int rc = wse_native_options_parse(&o, argc - 2, argv + 2);
  if (rc == 1) return 0;
  if (rc) return 2;
  wse_native_ignore_sigpipe();
  wse_native_raise_fd_limit();
  o.handle_signals = 1;
  wse_server_t *srv;
  if ((rc = wse_server_new(&srv, &o, entry))) return rc;
  rc = wse_server_run(srv);
  wse_server_free(srv);
  return rc;
}

int wse_native_main(int argc, char **argv, wse_app_entry_t entry) {
  return wse_native_main_with(argc, argv, entry, NULL);
}
