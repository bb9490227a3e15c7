/* main.c — the `wsedge` command: `wsedge serve [options]`, `--help`,
 * `--version`. Exit codes: 0 clean (including after SIGTERM/SIGINT), 1 a
 * runtime failure (cannot listen), 2 invalid command line or environment. */
#include <stdio.h>
#include <string.h>

#include "server.h"

int main(int argc, char **argv) {
  if (argc < 2) {
    wsn_cli_usage(stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
    printf("wsedge %s\n", WSE_VERSION_STRING);
    return 0;
  }
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    wsn_cli_usage(stdout);
    return 0;
  }
  if (strcmp(cmd, "serve") != 0) {
    fprintf(stderr, "wsedge: unknown command '%s' (expected: serve)\n", cmd);
    wsn_cli_usage(stderr);
    return 2;
  }
  wsn_opts_t o;
  int rc = wsn_cli_parse(argc - 2, argv + 2, &o);
  if (rc == 1) return 0;
  if (rc) return 2;
  return wsn_serve(&o);
}
