/* test_embed.c — the native server as a library, embedded in a program:
 * wse_server_new with an app entry point of the test's own, port 0, a real
 * WebSocket round trip on 127.0.0.1 (raw socket, RFC 6455 §1.3 handshake),
 * wse_server_stop from another thread -> the client gets 1001 and run
 * returns; and no process-wide side effects (no signal handler installed,
 * SIGPIPE and the fd limit untouched) unless the program asks. */
#define _DEFAULT_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "test.h"
#include "wsedge/native.h"

static int opened;

static void shout(wse_ctx_t *c, unsigned op, const uint8_t *p, size_t n) {
  char buf[64];
  size_t k = n < sizeof buf ? n : sizeof buf;
  for (size_t i = 0; i < k; i++)
    buf[i] = (char)(p[i] >= 'a' && p[i] <= 'z' ? p[i] - 32 : p[i]);
  wse_send(c, op, buf, k);
}

static void on_open(wse_ctx_t *c) {
  (void)c;
  opened++;
}

static int my_app(wse_app_t *app) {
  wse_route_t r = {0};
  r.pattern = "/shout";
  r.on_open = on_open;
  r.on_message = shout;
  return wse_app_route(app, &r);
}

static int failing_app(wse_app_t *app) {
  (void)app;
  return WSE_EINVAL;
}

static void *run_thread(void *srv) {
  wse_server_run(srv);
  return NULL;
}

static int read_exact(int fd, uint8_t *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t k = read(fd, p + got, n - got);
    if (k <= 0) return -1;
    got += (size_t)k;
  }
  return 0;
}

/* Read until "\r\n\r\n"; returns the head's length. */
static int read_head(int fd, char *buf, size_t cap) {
  size_t n = 0;
  while (n + 1 < cap) {
    if (read(fd, buf + n, 1) != 1) return -1;
    n++;
    if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0) break;
  }
  buf[n] = 0;
  return (int)n;
}

int main(void) {
  (void)guard_copy, (void)guard_free; /* test.h's parser guards: unused here */
  struct sigaction before_term, before_pipe, after;
  struct rlimit rl_before, rl_after;
  sigaction(SIGTERM, NULL, &before_term);
  sigaction(SIGPIPE, NULL, &before_pipe);
  getrlimit(RLIMIT_NOFILE, &rl_before);

  wse_native_options_t o;
  wse_native_options_default(&o);
  o.port = 0;
  o.threads = 2;
  o.log_level = WSE_LOG_ERROR;
  CHECK_EQ(o.handle_signals, 0);

  /* an entry point that fails: no server */
  wse_server_t *bad = (wse_server_t *)&o;
  CHECK_EQ(wse_server_new(&bad, &o, failing_app), 1);
  CHECK(bad == NULL);

  wse_server_t *srv = NULL;
  CHECK_EQ(wse_server_new(&srv, &o, my_app), 0);
  CHECK(srv != NULL);
  int port = wse_server_port(srv);
  CHECK(port > 0);

  /* nothing process-wide changed */
  sigaction(SIGTERM, NULL, &after);
  CHECK(after.sa_handler == before_term.sa_handler);
  sigaction(SIGPIPE, NULL, &after);
  CHECK(after.sa_handler == before_pipe.sa_handler);
  getrlimit(RLIMIT_NOFILE, &rl_after);
  CHECK(rl_after.rlim_cur == rl_before.rlim_cur);

  pthread_t th;
  CHECK_EQ(pthread_create(&th, NULL, run_thread, srv), 0);

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct timeval tv = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  struct sockaddr_in sa = {0};
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_EQ(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
  static const char req[] =
      "GET /shout HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n";
  CHECK_EQ(write(fd, req, sizeof req - 1), (ssize_t)(sizeof req - 1));
  char head[1024];
  CHECK(read_head(fd, head, sizeof head) > 0);
  CHECK(strncmp(head, "HTTP/1.1 101 Switching Protocols\r\n", 34) == 0);
  CHECK(strstr(head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL);

  /* masked text "hi!" -> "HI!" */
  const uint8_t frame[] = {0x81, 0x83, 1, 2, 3, 4, 'h' ^ 1, 'i' ^ 2, '!' ^ 3};
  CHECK_EQ(write(fd, frame, sizeof frame), (ssize_t)sizeof frame);
  uint8_t got[5];
  CHECK_EQ(read_exact(fd, got, 5), 0);
  const uint8_t want[] = {0x81, 3, 'H', 'I', '!'};
  CHECK_MEM(got, 5, want, 5);
  CHECK_EQ(opened, 1);

  /* stop from this thread: the client gets Close 1001, run returns */
  wse_server_stop(srv);
  uint8_t cl[4];
  CHECK_EQ(read_exact(fd, cl, 4), 0);
  CHECK_EQ(cl[0], 0x88);
  CHECK_EQ((cl[2] << 8) | cl[3], 1001);
  const uint8_t reply[] = {0x88, 0x82, 0, 0, 0, 0, 0x03, 0xE9};
  CHECK_EQ(write(fd, reply, sizeof reply), (ssize_t)sizeof reply);
  CHECK_EQ(pthread_join(th, NULL), 0);
  close(fd);
  wse_server_free(srv);

  /* a server created and freed without running: no leak, no hang */
  CHECK_EQ(wse_server_new(&srv, &o, my_app), 0);
  wse_server_free(srv);
  TEST_REPORT();
}
