/* tcp_echo.c — raw TCP echo on 127.0.0.1:PORT (epoll, one thread): the
 * physical limit for the echo benchmarks. No HTTP, no WebSocket: every byte
 * read is written back. loadgen --raw sends it the same masked frames it
 * sends a WebSocket server and verifies what comes back.
 * Per-connection state exists only while a write is pending, so the idle
 * figure is the kernel's socket cost plus nothing. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct pending {
  size_t off, len;
  uint8_t data[];
} pending_t;

static pending_t **PEND; /* by fd */
static int NPEND;
static int EP;
static volatile sig_atomic_t STOP;

static void on_term(int s) { (void)s; STOP = 1; }

static void drop(int fd) {
  epoll_ctl(EP, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  if (fd < NPEND) { free(PEND[fd]); PEND[fd] = NULL; }
}

static void set_out(int fd, int on) {
  struct epoll_event ev = {.events = on ? EPOLLOUT : EPOLLIN, .data.fd = fd};
  epoll_ctl(EP, EPOLL_CTL_MOD, fd, &ev);
}

/* Write what is pending; returns 1 when drained, 0 when still pending, -1 on error. */
static int drain(int fd) {
  pending_t *p = PEND[fd];
  while (p->off < p->len) {
    ssize_t w = send(fd, p->data + p->off, p->len - p->off, MSG_NOSIGNAL);
    if (w > 0) { p->off += (size_t)w; continue; }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    return -1;
  }
  free(p);
  PEND[fd] = NULL;
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2) { fprintf(stderr, "usage: tcp_echo PORT\n"); return 2; }
  int port = atoi(argv[1]);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0) { perror("tcp_echo: bind/listen"); return 1; }
  EP = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
  epoll_ctl(EP, EPOLL_CTL_ADD, ls, &ev);
  static uint8_t buf[256 * 1024];
  struct epoll_event evs[512];
  while (!STOP) {
    int n = epoll_wait(EP, evs, 512, 200);
    if (n < 0 && errno != EINTR) { perror("tcp_echo: epoll_wait"); return 1; }
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        for (;;) {
          int c = accept4(ls, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          if (c >= NPEND) {
            int nn = NPEND ? NPEND : 1024;
            while (nn <= c) nn *= 2;
            PEND = realloc(PEND, (size_t)nn * sizeof *PEND);
            if (!PEND) { fputs("tcp_echo: out of memory\n", stderr); return 1; }
            memset(PEND + NPEND, 0, (size_t)(nn - NPEND) * sizeof *PEND);
            NPEND = nn;
          }
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
          epoll_ctl(EP, EPOLL_CTL_ADD, c, &cev);
        }
        continue;
      }
      if (PEND[fd]) { /* writable again */
        int r = drain(fd);
        if (r < 0) drop(fd);
        else if (r > 0) set_out(fd, 0);
        continue;
      }
      ssize_t r = recv(fd, buf, sizeof buf, 0);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r <= 0) { drop(fd); continue; }
      size_t off = 0;
      while (off < (size_t)r) {
        ssize_t w = send(fd, buf + off, (size_t)r - off, MSG_NOSIGNAL);
        if (w > 0) { off += (size_t)w; continue; }
        if (w < 0 && errno == EINTR) continue;
        break;
      }
      if (off < (size_t)r) {
        if (errno != EAGAIN && errno != EWOULDBLOCK) { drop(fd); continue; }
        pending_t *p = malloc(sizeof *p + (size_t)r - off);
        if (!p) { drop(fd); continue; }
        p->off = 0;
        p->len = (size_t)r - off;
        memcpy(p->data, buf + off, p->len);
        PEND[fd] = p;
        set_out(fd, 1); /* stop reading until the echo is out */
      }
    }
  }
  return 0;
}
