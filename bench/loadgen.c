/* loadgen.c — WebSocket load generator for bench/ (Linux, epoll, threads).
 *
 * A real RFC 6455 client: random Sec-WebSocket-Key from getrandom(2), the
 * Sec-WebSocket-Accept verified with its own SHA-1 (independent of the core
 * it measures), every frame masked with a fresh mask, every payload checked.
 * Scenarios: echo, connect, broadcast, idle (see usage()). One JSON line per
 * run on stdout; diagnostics on stderr. Every run is bounded: a hard alarm
 * ends the process whatever the server does.
 *
 * Masks come from a wyrand generator seeded per thread by getrandom(2): a
 * syscall per frame would make the client, not the server, the thing being
 * measured. Keys use getrandom(2) directly.
 *
 * --deflate offers permessage-deflate (RFC 7692) with client_no_context_takeover:
 * every client message is compressed on its own (echo payloads are
 * compressed once at start), every compressed server message is inflated
 * with the connection's persistent inflater and verified like any other. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

/* ------------------------------------------------------------------ utils */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *msg) {
  fprintf(stderr, "loadgen: %s\n", msg);
  exit(2);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) die("out of memory");
  return p;
}

static void *xcalloc(size_t a, size_t b) {
  void *p = calloc(a ? a : 1, b ? b : 1);
  if (!p) die("out of memory");
  return p;
}

static void fill_random(void *p, size_t n) {
  uint8_t *b = p;
  while (n) {
    ssize_t r = getrandom(b, n, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      die("getrandom failed");
    }
    b += r;
    n -= (size_t)r;
  }
}

typedef struct rng { uint64_t s; } rng_t;

static inline uint64_t rng_next(rng_t *r) {
  r->s += 0xa0761d6478bd642full;
  __uint128_t t = (__uint128_t)r->s * (r->s ^ 0xe7037ed1a0b428dbull);
  return (uint64_t)(t >> 64) ^ (uint64_t)t;
}

/* ------------------------------------------------------ SHA-1 and base64 */

static uint32_t rol32(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const uint8_t *p) {
  uint32_t w[80];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
           (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 80; i++) w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
    else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
    else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
    else { f = b ^ c ^ d; k = 0xCA62C1D6; }
    uint32_t t = rol32(a, 5) + f + e + k + w[i];
    e = d; d = c; c = rol32(b, 30); b = a; a = t;
  }
  h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
}

static void sha1(const uint8_t *data, size_t n, uint8_t out[20]) {
  uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  size_t i = 0;
  for (; i + 64 <= n; i += 64) sha1_block(h, data + i);
  uint8_t last[128] = {0};
  size_t rem = n - i;
  memcpy(last, data + i, rem);
  last[rem] = 0x80;
  size_t tot = rem + 9 <= 64 ? 64 : 128;
  uint64_t bits = (uint64_t)n * 8;
  for (int k = 0; k < 8; k++) last[tot - 1 - k] = (uint8_t)(bits >> (8 * k));
  sha1_block(h, last);
  if (tot == 128) sha1_block(h, last + 64);
  for (int k = 0; k < 5; k++) {
    out[4 * k] = (uint8_t)(h[k] >> 24); out[4 * k + 1] = (uint8_t)(h[k] >> 16);
    out[4 * k + 2] = (uint8_t)(h[k] >> 8); out[4 * k + 3] = (uint8_t)h[k];
  }
}

static size_t b64(const uint8_t *in, size_t n, char *out) {
  static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t o = 0, i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
    out[o++] = T[v >> 18]; out[o++] = T[(v >> 12) & 63];
    out[o++] = T[(v >> 6) & 63]; out[o++] = T[v & 63];
  }
  if (n - i == 1) {
    uint32_t v = (uint32_t)in[i] << 16;
    out[o++] = T[v >> 18]; out[o++] = T[(v >> 12) & 63]; out[o++] = '='; out[o++] = '=';
  } else if (n - i == 2) {
    uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
    out[o++] = T[v >> 18]; out[o++] = T[(v >> 12) & 63];
    out[o++] = T[(v >> 6) & 63]; out[o++] = '=';
  }
  out[o] = 0;
  return o;
}

/* Sec-WebSocket-Accept for key (RFC 6455 §4.2.2). */
static void accept_for(const char *key, char out[29]) {
  static const char G[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  uint8_t buf[128], dig[20];
  size_t kl = strlen(key);
  memcpy(buf, key, kl);
  memcpy(buf + kl, G, sizeof G - 1);
  sha1(buf, kl + sizeof G - 1, dig);
  b64(dig, 20, out);
}

/* -------------------------------------------------------------- histogram */
/* Log-linear (HDR-style): 64 sub-buckets per power of two, ~1.5% error. */
#define HB 3840
typedef struct hist { uint64_t n, max; uint64_t b[HB]; } hist_t;

static inline unsigned hidx(uint64_t v) {
  if (v < 64) return (unsigned)v;
  unsigned e = 63u - (unsigned)__builtin_clzll(v);
  return (e - 5) * 64 + (unsigned)((v >> (e - 6)) & 63);
}
static uint64_t hval(unsigned i) {
  if (i < 64) return i;
  unsigned e = i / 64 + 5, m = i % 64;
  uint64_t lo = (uint64_t)(64 + m) << (e - 6);
  return lo + ((1ull << (e - 6)) >> 1); /* bucket midpoint */
}
static inline void hadd(hist_t *h, uint64_t v) {
  h->b[hidx(v)]++;
  h->n++;
  if (v > h->max) h->max = v;
}
static void hmerge(hist_t *a, const hist_t *b) {
  for (unsigned i = 0; i < HB; i++) a->b[i] += b->b[i];
  a->n += b->n;
  if (b->max > a->max) a->max = b->max;
}
static double hq(const hist_t *h, double q) {
  if (!h->n) return 0;
  uint64_t want = (uint64_t)(q * (double)h->n);
  if (want >= h->n) want = h->n - 1;
  uint64_t c = 0;
  for (unsigned i = 0; i < HB; i++) {
    c += h->b[i];
    if (c > want) {
      uint64_t v = hval(i);
      return (double)(v > h->max ? h->max : v);
    }
  }
  return (double)h->max;
}

/* ---------------------------------------------------------------- options */

enum { SC_ECHO, SC_CONNECT, SC_BROADCAST, SC_IDLE };
static const char *const SC_NAMES[] = {"echo", "connect", "broadcast", "idle"};

static struct opts {
  int scen;
  char host[64];
  int port;
  int port2;               /* --port2: odd connections go to this port */
  char path[512];
  int conns, inflight, size, threads, concurrency, senders, window;
  double duration, warmup, settle, setup_timeout;
  int raw, text, idle_echo, open_conc, src_addrs, deflate;
  int server_pids[8], n_server_pids;
  double server_cores;
  const char *label;
} O;

static void usage(void) {
  fprintf(stderr,
    "usage: loadgen SCENARIO --url ws://127.0.0.1:PORT/PATH [options]\n"
    "scenarios:\n"
    "  echo       N conns x D in flight x S bytes; msgs/s and latency\n"
    "  connect    open + handshake + close handshake cycles/s at concurrency C\n"
    "  broadcast  N members of one room (the URL), K of them send; deliveries/s\n"
    "  idle       N idle conns; server RSS per conn (needs --server-pid)\n"
    "options:\n"
    "  --conns N (100)  --inflight D (16)  --size S (32)  --duration SEC (5)\n"
    "  --warmup SEC (1)  --settle SEC (broadcast/idle: 1)  --threads T (1)\n"
    "  --concurrency C (connect: 50)  --senders K (broadcast: 2)\n"
    "  --window W (broadcast: messages in flight per sender, 32)\n"
    "  --deflate (offer permessage-deflate; compressible word-like payloads;\n"
    "  the run fails if the server declines)\n"
    "  --text (echo with text frames)  --raw (plain TCP echo peer: no handshake,\n"
    "  the same masked frames echoed back as-is)  --idle-echo 0|1 (1: one echo per\n"
    "  idle conn before measuring)  --open-concurrency N (64)\n"
    "  --src-addrs N (connect: spread sources over 127.0.0.1..N, 16)\n"
    "  --server-pid PID[,PID...] (server CPU and RSS)  --server-cores X (1)\n"
    "  --label NAME (copied to the JSON)  --setup-timeout SEC (60)\n"
    "  --port2 P (odd-numbered connections go to port P: a second server process)\n");
  exit(2);
}

static void parse_url(const char *u) {
  const char *p = u;
  if (!strncmp(p, "ws://", 5)) p += 5;
  else die("--url must start with ws://");
  const char *colon = strchr(p, ':');
  const char *slash = strchr(p, '/');
  if (!colon || (slash && slash < colon)) die("--url needs an explicit port");
  size_t hl = (size_t)(colon - p);
  if (hl >= sizeof O.host) die("host too long");
  memcpy(O.host, p, hl);
  O.host[hl] = 0;
  O.port = atoi(colon + 1);
  if (O.port <= 0 || O.port > 65535) die("bad port");
  snprintf(O.path, sizeof O.path, "%s", slash ? slash : "/");
}

static void parse_args(int argc, char **argv) {
  if (argc < 2) usage();
  O.scen = -1;
  for (int i = 0; i < 4; i++)
    if (!strcmp(argv[1], SC_NAMES[i])) O.scen = i;
  if (O.scen < 0) usage();
  O.conns = -1; O.inflight = 16; O.size = 32; O.threads = 1; O.concurrency = 50;
  O.senders = 2; O.window = 32; O.duration = 5; O.warmup = 1; O.settle = 1;
  O.setup_timeout = 60; O.idle_echo = 1; O.open_conc = 64; O.src_addrs = 16;
  O.server_cores = 1; O.label = "";
  const char *url = NULL;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
#define ARG() (i + 1 < argc ? argv[++i] : (usage(), ""))
    if (!strcmp(a, "--url")) url = ARG();
    else if (!strcmp(a, "--conns")) O.conns = atoi(ARG());
    else if (!strcmp(a, "--inflight")) O.inflight = atoi(ARG());
    else if (!strcmp(a, "--size")) O.size = atoi(ARG());
    else if (!strcmp(a, "--duration")) O.duration = atof(ARG());
    else if (!strcmp(a, "--warmup")) O.warmup = atof(ARG());
    else if (!strcmp(a, "--settle")) O.settle = atof(ARG());
    else if (!strcmp(a, "--threads")) O.threads = atoi(ARG());
    else if (!strcmp(a, "--concurrency")) O.concurrency = atoi(ARG());
    else if (!strcmp(a, "--senders")) O.senders = atoi(ARG());
    else if (!strcmp(a, "--window")) O.window = atoi(ARG());
    else if (!strcmp(a, "--text")) O.text = 1;
    else if (!strcmp(a, "--deflate")) O.deflate = 1;
    else if (!strcmp(a, "--raw")) O.raw = 1;
    else if (!strcmp(a, "--idle-echo")) O.idle_echo = atoi(ARG());
    else if (!strcmp(a, "--open-concurrency")) O.open_conc = atoi(ARG());
    else if (!strcmp(a, "--src-addrs")) O.src_addrs = atoi(ARG());
    else if (!strcmp(a, "--server-cores")) O.server_cores = atof(ARG());
    else if (!strcmp(a, "--label")) O.label = ARG();
    else if (!strcmp(a, "--port2")) O.port2 = atoi(ARG());
    else if (!strcmp(a, "--setup-timeout")) O.setup_timeout = atof(ARG());
    else if (!strcmp(a, "--server-pid")) {
      char *s = ARG(), *save = NULL;
      for (char *t = strtok_r(s, ",", &save); t && O.n_server_pids < 8; t = strtok_r(NULL, ",", &save))
        O.server_pids[O.n_server_pids++] = atoi(t);
    } else {
      fprintf(stderr, "loadgen: unknown option %s\n", a);
      usage();
    }
#undef ARG
  }
  if (!url) usage();
  parse_url(url);
  if (O.conns < 0) O.conns = O.scen == SC_BROADCAST ? 500 : O.scen == SC_IDLE ? 10000 : 100;
  if (O.scen == SC_CONNECT) O.conns = O.concurrency;
  if (O.threads < 1 || O.threads > 64) die("--threads 1..64");
  if (O.port2 < 0 || O.port2 > 65535) die("bad --port2");
  if (O.conns < 1 || O.inflight < 1 || O.size < 0 || O.size > (16 << 20)) die("bad sizes");
  if (O.duration <= 0 || O.duration > 600) die("--duration must be in (0, 600]");
  if (O.scen == SC_BROADCAST) {
    if (O.size < 20) die("broadcast needs --size >= 20 (sender, seq, timestamp)");
    if (O.senders < 1 || O.senders > O.conns) die("--senders must be 1..conns");
    if (O.conns < 2) die("broadcast needs >= 2 members");
    if (O.window < 1 || O.window > 4096) die("--window 1..4096");
  }
  if (O.raw && O.scen != SC_ECHO && O.scen != SC_IDLE) die("--raw only for echo and idle");
  if (O.raw && O.deflate) die("--raw and --deflate exclude each other");
  if (O.scen == SC_IDLE && O.idle_echo && O.size < 1) O.size = 32;
  if (O.open_conc < 1) O.open_conc = 1;
  if (O.src_addrs < 1 || O.src_addrs > 250) O.src_addrs = 1;
}

/* -------------------------------------------------------- process probes */

static long read_rss_kb(void) {
  long tot = 0;
  for (int i = 0; i < O.n_server_pids; i++) {
    char fn[64], line[256];
    snprintf(fn, sizeof fn, "/proc/%d/status", O.server_pids[i]);
    FILE *f = fopen(fn, "r");
    if (!f) return -1;
    long v = -1;
    while (fgets(line, sizeof line, f))
      if (!strncmp(line, "VmRSS:", 6)) v = atol(line + 6);
    fclose(f);
    if (v < 0) return -1;
    tot += v;
  }
  return O.n_server_pids ? tot : -1;
}

/* utime + stime of the server processes (all their threads), in seconds. */
static double read_server_cpu(void) {
  double tot = 0;
  long hz = sysconf(_SC_CLK_TCK);
  for (int i = 0; i < O.n_server_pids; i++) {
    char fn[64], buf[2048];
    snprintf(fn, sizeof fn, "/proc/%d/stat", O.server_pids[i]);
    FILE *f = fopen(fn, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    /* after ") ": field 3 is state; utime is field 14, stime 15 */
    unsigned long ut = 0, st = 0;
    int field = 2;
    for (char *s = p + 1; *s && field < 15; s++) {
      if (*s == ' ') {
        field++;
        if (field == 14) ut = strtoul(s + 1, NULL, 10);
        if (field == 15) st = strtoul(s + 1, NULL, 10);
      }
    }
    tot += (double)(ut + st) / (double)hz;
  }
  return tot;
}

static double self_cpu(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
         (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* ----------------------------------------------------------- connections */

enum { PH_SETUP, PH_SETTLE, PH_WARMUP, PH_MEASURE, PH_STOP };
static int g_phase = PH_SETUP; /* written by main, read by threads (atomics) */
static int g_open_limit;       /* connections with idx below it may open */

enum { C_FREE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSING, C_WAIT_EOF, C_DEAD };

typedef struct stats {
  uint64_t msgs, bytes, cycles, deliveries, completed, wire_in, wire_out, compressed_in;
  uint64_t e_connect, e_handshake, e_accept, e_proto, e_verify, e_order, e_self,
      e_lost, e_server_close, e_close_timeout, e_deflate;
  uint64_t text_ignored, pings;
  unsigned last_server_close_code;
  hist_t h;
} stats_t;

struct thr;

typedef struct conn {
  int fd;
  uint8_t state, epout, ready, counted_open;
  uint32_t idx;            /* global index */
  struct thr *t;
  char accept[29];
  uint8_t *pend;           /* unparsed input carried to the next read */
  uint32_t plen, pcap;
  uint8_t *wbuf;
  uint32_t wlen, woff, wcap;
  uint8_t *frag;           /* fragmented message being reassembled */
  uint32_t flen, fcap;
  uint8_t frag_op, dirty, frag_z, pmd; /* pmd: permessage-deflate negotiated */
  z_stream *inf;           /* inflater for the server's messages */
  z_stream *def;           /* broadcast senders: deflater, reset per message */
  uint64_t t0;             /* connect scenario: cycle start */
  uint64_t tw;             /* when we began waiting for the server's FIN */
  uint64_t sent, recvd;    /* echo */
  uint64_t *ts;            /* echo: send times, ring of `inflight` */
  uint64_t *next_seq;      /* broadcast: next expected seq per sender */
  struct conn *next_dirty;
} conn_t;

typedef struct bsender {   /* broadcast bookkeeping for one sender */
  conn_t *c;
  uint64_t next, head;
  int32_t *left;           /* ring[window]: deliveries still expected */
} bsender_t;

typedef struct thr {
  int id, ep, evfd;
  pthread_t th;
  conn_t **conns;
  int nconns, next_open, opening, open_count, closed_count;
  bsender_t **senders;
  int nsenders;
  uint8_t *rbuf;
  size_t rcap;
  uint8_t *zbuf;           /* inflate/deflate output */
  size_t zcap;
  rng_t rng;
  conn_t *dirty;
  int ready_count;
  uint64_t now;
  stats_t st;
} thr_t;

static thr_t *T;
static uint8_t *PAT;       /* random pattern, size + 512 bytes */
static size_t PATN;
static bsender_t *BS;      /* O.senders entries */
static uint8_t *ZPAT[251]; /* --deflate echo: compressed pattern slices */
static size_t ZPATN[251];
static struct sockaddr_in SA, SA2;
static const char *REQ_SEP; /* "?" or "&" before the broadcast member name */

static int phase(void) { return __atomic_load_n(&g_phase, __ATOMIC_ACQUIRE); }
static int measuring(void) { return phase() == PH_MEASURE; }

static void ep_mod(conn_t *c, int want_out) {
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (want_out ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(c->t->ep, EPOLL_CTL_MOD, c->fd, &ev);
  c->epout = (uint8_t)want_out;
}

static void wreserve(conn_t *c, size_t add) {
  if ((size_t)c->wlen + add <= c->wcap) return;
  if (c->woff) { /* compact first */
    memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
    c->wlen -= c->woff;
    c->woff = 0;
    if ((size_t)c->wlen + add <= c->wcap) return;
  }
  size_t nc = c->wcap ? c->wcap : 256;
  while (nc < (size_t)c->wlen + add) nc *= 2;
  uint8_t *nb = realloc(c->wbuf, nc);
  if (!nb) die("out of memory");
  c->wbuf = nb;
  c->wcap = (uint32_t)nc;
}

static void mark_dirty(conn_t *c) {
  if (c->dirty) return;
  c->dirty = 1;
  c->next_dirty = c->t->dirty;
  c->t->dirty = c;
}

/* Masked client frame of `op` carrying p[0..n), appended to c->wbuf. */
static void put_frame_rsv(conn_t *c, unsigned op, int rsv1, const uint8_t *p, size_t n) {
  wreserve(c, n + 14);
  uint8_t *o = c->wbuf + c->wlen;
  size_t h;
  o[0] = (uint8_t)(0x80 | (rsv1 ? 0x40 : 0) | op);
  if (n < 126) { o[1] = (uint8_t)(0x80 | n); h = 2; }
  else if (n < 65536) { o[1] = 0x80 | 126; o[2] = (uint8_t)(n >> 8); o[3] = (uint8_t)n; h = 4; }
  else { o[1] = 0x80 | 127; for (int k = 0; k < 8; k++) o[2 + k] = (uint8_t)((uint64_t)n >> (56 - 8 * k)); h = 10; }
  uint32_t m = (uint32_t)rng_next(&c->t->rng);
  memcpy(o + h, &m, 4);
  uint8_t *d = o + h + 4;
  uint64_t m64 = (uint64_t)m << 32 | m;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v;
    memcpy(&v, p + i, 8);
    v ^= m64;
    memcpy(d + i, &v, 8);
  }
  const uint8_t *mb = o + h;
  for (; i < n; i++) d[i] = p[i] ^ mb[i & 3];
  c->wlen += (uint32_t)(h + 4 + n);
  mark_dirty(c);
}

static void put_frame(conn_t *c, unsigned op, const uint8_t *p, size_t n) {
  put_frame_rsv(c, op, 0, p, n);
}

static void zgrow(thr_t *t, size_t need) {
  if (need <= t->zcap) return;
  size_t nc = t->zcap ? t->zcap : 65536;
  while (nc < need) nc *= 2;
  t->zbuf = realloc(t->zbuf, nc);
  if (!t->zbuf) die("out of memory");
  t->zcap = nc;
}

/* Raw deflate of p[0..n) as one permessage-deflate message (tail 00 00 ff ff
 * stripped) into *out (malloc'd or t->zbuf). Returns the length. */
static size_t deflate_msg(z_stream *z, thr_t *t, const uint8_t *p, size_t n, uint8_t **out) {
  size_t cap = deflateBound(z, (uLong)n) + 16, have;
  uint8_t *b;
  if (t) { zgrow(t, cap); b = t->zbuf; } else b = xmalloc(cap);
  z->next_in = (Bytef *)(uintptr_t)p;
  z->avail_in = (uInt)n;
  z->next_out = b;
  z->avail_out = (uInt)cap;
  if (deflate(z, Z_SYNC_FLUSH) != Z_OK || z->avail_in) die("deflate failed");
  have = cap - z->avail_out;
  if (have < 4 || memcmp(b + have - 4, "\0\0\xff\xff", 4)) die("deflate: no sync tail");
  deflateReset(z); /* client_no_context_takeover */
  *out = b;
  return have - 4;
}

static z_stream *new_deflater(void) {
  z_stream *z = xcalloc(1, sizeof *z);
  if (deflateInit2(z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK) die("deflateInit2");
  return z;
}

/* Inflate one compressed message (payload + the stripped 00 00 ff ff) with
 * the connection's inflater into t->zbuf. Returns its length or -1. */
static long inflate_msg(conn_t *c, const uint8_t *p, size_t n) {
  static const uint8_t tail[4] = {0, 0, 0xff, 0xff};
  thr_t *t = c->t;
  z_stream *z = c->inf;
  size_t have = 0;
  int step = 0;
  z->next_in = (Bytef *)(uintptr_t)p;
  z->avail_in = (uInt)n;
  zgrow(t, n * 4 + 1024);
  for (;;) {
    if (z->avail_in == 0 && step == 0) {
      z->next_in = (Bytef *)(uintptr_t)tail;
      z->avail_in = 4;
      step = 1;
    }
    if (have == t->zcap) {
      if (t->zcap >= (64u << 20)) return -1;
      zgrow(t, t->zcap * 2);
    }
    z->next_out = t->zbuf + have;
    z->avail_out = (uInt)(t->zcap - have);
    int r = inflate(z, Z_SYNC_FLUSH);
    have = t->zcap - z->avail_out;
    if (r == Z_STREAM_END) { inflateReset(z); if (z->avail_in == 0 && step == 1) break; continue; }
    if (r != Z_OK && r != Z_BUF_ERROR) return -1;
    if (z->avail_in == 0 && step == 1 && z->avail_out != 0) break;
    if (r == Z_BUF_ERROR && z->avail_out != 0) return -1; /* no progress */
  }
  return (long)have;
}
static void put_close(conn_t *c, unsigned code) {
  uint8_t pl[2] = {(uint8_t)(code >> 8), (uint8_t)code};
  put_frame(c, 0x8, pl, 2);
}

static void unmask(uint8_t *p, size_t n, const uint8_t m[4]) {
  for (size_t i = 0; i < n; i++) p[i] ^= m[i & 3];
}

static void conn_free_z(conn_t *c) {
  if (c->inf) { inflateEnd(c->inf); free(c->inf); c->inf = NULL; }
  if (c->def) { deflateEnd(c->def); free(c->def); c->def = NULL; }
  c->pmd = 0;
}

static void conn_free_bufs(conn_t *c) {
  conn_free_z(c);
  free(c->pend); c->pend = NULL; c->plen = c->pcap = 0;
  free(c->wbuf); c->wbuf = NULL; c->wlen = c->woff = c->wcap = 0;
  free(c->frag); c->frag = NULL; c->flen = c->fcap = 0;
}

static void conn_close(conn_t *c, int newstate) {
  if (c->fd >= 0) {
    epoll_ctl(c->t->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
  }
  if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) c->t->opening--;
  c->state = (uint8_t)newstate;
  c->epout = 0;
  c->plen = 0;
  conn_free_z(c);
  c->wlen = c->woff = 0;
  c->flen = 0;
  if (O.scen != SC_CONNECT) {
    conn_free_bufs(c);
    c->t->closed_count++;
  }
}

/* A connection we relied on went away during the run. */
static void conn_lost(conn_t *c) {
  if (phase() < PH_STOP) c->t->st.e_lost++;
  conn_close(c, C_DEAD);
}

static int flush(conn_t *c) {
  while (c->woff < c->wlen) {
    ssize_t w = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
    if (w > 0) {
      c->woff += (uint32_t)w;
      if (measuring()) c->t->st.wire_out += (uint64_t)w;
      continue;
    }
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!c->epout) ep_mod(c, 1);
      return 0;
    }
    return -1;
  }
  c->wlen = c->woff = 0;
  if (c->epout) ep_mod(c, 0);
  return 0;
}

static void start_connect(conn_t *c);

static void make_key(conn_t *c, char key[25]) {
  uint8_t raw[16];
  fill_random(raw, 16);
  b64(raw, 16, key);
  accept_for(key, c->accept);
}

static void send_request(conn_t *c) {
  char key[25], name[32] = "";
  make_key(c, key);
  if (O.scen == SC_BROADCAST) snprintf(name, sizeof name, "%sname=m%u", REQ_SEP, c->idx);
  wreserve(c, sizeof O.path + sizeof O.host + 256);
  int n = snprintf((char *)c->wbuf + c->wlen, c->wcap - c->wlen,
                   "GET %s%s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                   "Sec-WebSocket-Version: 13\r\n%s\r\n", O.path, name, O.host, O.port, key,
                   O.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover\r\n" : "");
  c->wlen += (uint32_t)n;
  c->state = C_HANDSHAKE;
  mark_dirty(c);
}

/* ------------------------------------------------------- scenario logic */

/* Payload k: one of 251 slices of PAT. Plain runs use overlapping slices
 * (offset k % 251); --deflate runs use disjoint ones, so a compressor with
 * context takeover sees different text in every message, as in a real chat. */
static size_t PSTRIDE = 1;
static const uint8_t *pat_at(uint64_t k) { return PAT + (k % 251) * PSTRIDE; }

static void echo_send(conn_t *c) {
  uint64_t s = c->sent++;
  c->ts[s % (uint64_t)O.inflight] = c->t->now;
  if (c->pmd) put_frame_rsv(c, O.text ? 0x1 : 0x2, 1, ZPAT[s % 251], ZPATN[s % 251]);
  else put_frame(c, O.text ? 0x1 : 0x2, pat_at(s), (size_t)O.size);
}

static void on_open(conn_t *c) {
  thr_t *t = c->t;
  t->opening--;
  c->state = C_OPEN;
  if (c->pmd) {
    c->inf = xcalloc(1, sizeof *c->inf);
    if (inflateInit2(c->inf, -15) != Z_OK) die("inflateInit2");
    if (O.scen == SC_BROADCAST)
      for (int i = 0; i < t->nsenders; i++)
        if (t->senders[i]->c == c) c->def = new_deflater();
  }
  if (O.scen == SC_CONNECT) {
    put_close(c, 1000);
    c->state = C_CLOSING;
    return;
  }
  t->open_count++;
  int ph = phase();
  if (O.scen == SC_ECHO && (ph == PH_WARMUP || ph == PH_MEASURE))
    for (int i = 0; i < O.inflight; i++) echo_send(c);
  if (O.scen == SC_IDLE) {
    if (O.idle_echo) echo_send(c);
    else { c->ready = 1; t->ready_count++; }
  }
}

static void bsend_topup(thr_t *t);

static void on_message(conn_t *c, unsigned op, uint8_t *p, size_t n) {
  thr_t *t = c->t;
  if (O.scen == SC_ECHO || O.scen == SC_IDLE) {
    if (c->recvd >= c->sent) { t->st.e_proto++; return; } /* unsolicited */
    uint64_t s = c->recvd++;
    unsigned want_op = O.text ? 0x1 : 0x2;
    if (op != want_op || n != (size_t)O.size || memcmp(p, pat_at(s), n)) {
      t->st.e_verify++;
      if (t->st.e_verify <= 3)
        fprintf(stderr, "loadgen: echo mismatch on conn %u seq %llu (op %u, %zu bytes)\n",
                c->idx, (unsigned long long)s, op, n);
    }
    if (O.scen == SC_IDLE) {
      if (!c->ready) { c->ready = 1; t->ready_count++; }
      return;
    }
    int ph = phase();
    if (ph == PH_MEASURE) {
      t->st.msgs++;
      t->st.bytes += n;
      hadd(&t->st.h, t->now - c->ts[s % (uint64_t)O.inflight]);
    }
    if (ph == PH_WARMUP || ph == PH_MEASURE) echo_send(c);
    return;
  }
  if (O.scen == SC_BROADCAST) {
    if (op == 0x1) { t->st.text_ignored++; return; } /* join/leave notices */
    if (op != 0x2 || n != (size_t)O.size) { t->st.e_verify++; return; }
    uint32_t sid; uint64_t seq, ts;
    memcpy(&sid, p, 4); memcpy(&seq, p + 4, 8); memcpy(&ts, p + 12, 8);
    if (sid >= (uint32_t)O.senders) { t->st.e_verify++; return; }
    bsender_t *b = &BS[sid];
    if (b->c == c) { t->st.e_self++; return; }
    if (seq != c->next_seq[sid]) {
      t->st.e_order++;
      if (t->st.e_order <= 3)
        fprintf(stderr, "loadgen: member %u got seq %llu from sender %u, expected %llu\n",
                c->idx, (unsigned long long)seq, sid, (unsigned long long)c->next_seq[sid]);
    }
    c->next_seq[sid] = seq + 1;
    if (memcmp(p + 20, pat_at(seq * 7 + sid), n - 20)) { t->st.e_verify++; return; }
    if (measuring()) {
      t->st.deliveries++;
      t->st.bytes += n;
      hadd(&t->st.h, t->now > ts ? t->now - ts : 0);
    }
    int32_t *slot = &b->left[seq % (uint64_t)O.window];
    int32_t left = O.threads == 1 ? --*slot : __atomic_sub_fetch(slot, 1, __ATOMIC_ACQ_REL);
    if (left == 0) {
      if (measuring()) t->st.completed++;
      if (b->c->t != t) {
        uint64_t one = 1;
        if (write(b->c->t->evfd, &one, 8) < 0) { /* counter saturated: already woken */ }
      }
    }
    return;
  }
  t->st.text_ignored++; /* connect: notices a route may send (chat join) */
}

static void bsend_topup(thr_t *t) {
  int ph = phase();
  if (ph != PH_WARMUP && ph != PH_MEASURE) return;
  for (int i = 0; i < t->nsenders; i++) {
    bsender_t *b = t->senders[i];
    conn_t *c = b->c;
    if (c->state != C_OPEN) continue;
    while (b->head < b->next &&
           (O.threads == 1 ? b->left[b->head % (uint64_t)O.window]
                           : __atomic_load_n(&b->left[b->head % (uint64_t)O.window], __ATOMIC_ACQUIRE)) <= 0)
      b->head++;
    while (b->next - b->head < (uint64_t)O.window) {
      uint64_t seq = b->next++;
      int32_t *slot = &b->left[seq % (uint64_t)O.window];
      if (O.threads == 1) *slot = O.conns - 1;
      else __atomic_store_n(slot, O.conns - 1, __ATOMIC_RELEASE);
      uint8_t msg[64];
      uint8_t *p = (size_t)O.size <= sizeof msg ? msg : xmalloc((size_t)O.size);
      uint32_t sid = (uint32_t)(b - BS);
      uint64_t ts = now_ns();
      memcpy(p, &sid, 4); memcpy(p + 4, &seq, 8); memcpy(p + 12, &ts, 8);
      memcpy(p + 20, pat_at(seq * 7 + sid), (size_t)O.size - 20);
      if (c->pmd) {
        uint8_t *z;
        size_t zn = deflate_msg(c->def, c->t, p, (size_t)O.size, &z);
        put_frame_rsv(c, 0x2, 1, z, zn);
      } else {
        put_frame(c, 0x2, p, (size_t)O.size);
      }
      if (p != msg) free(p);
    }
  }
}

/* ---------------------------------------------------------- frame input */

static int ieq_prefix(const char *s, size_t n, const char *lit) {
  size_t l = strlen(lit);
  return n >= l && !strncasecmp(s, lit, l);
}

static int has_token(const char *v, size_t n, const char *tok) {
  size_t tl = strlen(tok);
  size_t i = 0;
  while (i < n) {
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
    size_t s = i;
    while (i < n && v[i] != ',') i++;
    size_t e = i;
    while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
    if (e - s == tl && !strncasecmp(v + s, tok, tl)) return 1;
  }
  return 0;
}

/* The server's answer to our offer "permessage-deflate;
 * client_no_context_takeover" (RFC 7692 §7.1): one extension, parameters
 * from its set only, no duplicates, server_max_window_bits 8..15, and no
 * client_max_window_bits (not offered). Returns 0 when acceptable. */
static int check_pmd(const char *v, size_t n) {
  if (memchr(v, ',', n)) return -1;
  size_t i = 0, seen = 0;
  int first = 1;
  while (i <= n) {
    size_t st = i;
    while (i < n && v[i] != ';') i++;
    size_t a = st, b = i;
    while (a < b && (v[a] == ' ' || v[a] == '\t')) a++;
    while (b > a && (v[b - 1] == ' ' || v[b - 1] == '\t')) b--;
    const char *t = v + a;
    size_t tl = b - a;
    if (first) {
      if (tl != 18 || strncasecmp(t, "permessage-deflate", 18)) return -1;
      first = 0;
    } else if (tl == 26 && !strncasecmp(t, "server_no_context_takeover", 26)) {
      if (seen & 1) return -1;
      seen |= 1;
    } else if (tl == 26 && !strncasecmp(t, "client_no_context_takeover", 26)) {
      if (seen & 2) return -1;
      seen |= 2;
    } else if (tl > 22 && !strncasecmp(t, "server_max_window_bits", 22)) {
      const char *e = t + 22;
      size_t el = tl - 22;
      while (el && (*e == ' ' || *e == '=')) { e++; el--; }
      if (el && *e == '"' && el >= 2 && e[el - 1] == '"') { e++; el -= 2; }
      if (!el || el > 2 || (seen & 4)) return -1;
      int bits = 0;
      for (size_t k = 0; k < el; k++) {
        if (e[k] < '0' || e[k] > '9') return -1;
        bits = bits * 10 + (e[k] - '0');
      }
      if (bits < 8 || bits > 15) return -1;
      seen |= 4;
    } else {
      return -1;
    }
    i++;
  }
  return 0;
}

/* Check the 101 response head [p, p+n). Returns 0 when valid. */
static int check_response(conn_t *c, const char *p, size_t n) {
  if (n < 12 || memcmp(p, "HTTP/1.1 101", 12)) return -1;
  int up = 0, conn = 0, acc = 0, ext = 0;
  const char *e = p + n, *l = memchr(p, '\n', n);
  while (l && l + 1 < e) {
    const char *s = l + 1;
    l = memchr(s, '\n', (size_t)(e - s));
    if (!l) break;
    size_t ln = (size_t)(l - s);
    if (ln && s[ln - 1] == '\r') ln--;
    if (!ln) break;
    const char *colon = memchr(s, ':', ln);
    if (!colon) return -1;
    size_t nl = (size_t)(colon - s);
    const char *v = colon + 1;
    size_t vl = ln - nl - 1;
    while (vl && (*v == ' ' || *v == '\t')) { v++; vl--; }
    while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
    if (nl == 7 && ieq_prefix(s, nl, "upgrade")) up = vl == 9 && !strncasecmp(v, "websocket", 9);
    else if (nl == 10 && ieq_prefix(s, nl, "connection")) conn = has_token(v, vl, "upgrade");
    else if (nl == 20 && ieq_prefix(s, nl, "sec-websocket-accept")) {
      acc = vl == 28 && !memcmp(v, c->accept, 28);
    } else if (nl == 24 && ieq_prefix(s, nl, "sec-websocket-extensions")) {
      if (ext || !O.deflate || check_pmd(v, vl)) ext = -1; /* unasked, repeated or bad */
      else ext = 1;
    }
  }
  if (!acc) c->t->st.e_accept++; /* missing or wrong */
  if (O.deflate && ext != 1) {
    c->t->st.e_deflate++;
    if (c->t->st.e_deflate == 1)
      fprintf(stderr, "loadgen: %s\n", ext ? "bad permessage-deflate response" : "server declined permessage-deflate");
    return -1;
  }
  c->pmd = ext == 1;
  return up && conn && acc && ext >= 0 ? 0 : -1;
}

/* Handle complete frames in buf[0..n); returns bytes consumed or -1 when
 * the connection was closed. */
static long parse_frames(conn_t *c, uint8_t *buf, size_t n) {
  thr_t *t = c->t;
  size_t off = 0;
  while (n - off >= 2) {
    uint8_t b0 = buf[off], b1 = buf[off + 1];
    unsigned op = b0 & 0x0F;
    int fin = b0 >> 7, masked = b1 >> 7;
    uint64_t len = b1 & 0x7F;
    size_t h = 2;
    if (len == 126) {
      if (n - off < 4) break;
      len = (uint64_t)buf[off + 2] << 8 | buf[off + 3];
      h = 4;
    } else if (len == 127) {
      if (n - off < 10) break;
      len = 0;
      for (int k = 0; k < 8; k++) len = len << 8 | buf[off + 2 + k];
      h = 10;
    }
    int rsv1 = (b0 & 0x40) != 0;
    if ((b0 & 0x30) || (rsv1 && (!c->pmd || op == 0x0 || op >= 0x8)) ||
        (masked && !O.raw) || len > (64u << 20)) {
      t->st.e_proto++;
      conn_lost(c);
      return -1;
    }
    if (masked) h += 4;
    if (n - off < h + len) break;
    uint8_t *p = buf + off + h;
    if (masked) unmask(p, (size_t)len, p - 4);
    off += h + (size_t)len;
    if (op >= 0x8) {
      if (!fin || len > 125) { t->st.e_proto++; conn_lost(c); return -1; }
      if (op == 0x9) { t->st.pings++; if (c->state == C_OPEN) put_frame(c, 0xA, p, (size_t)len); }
      else if (op == 0x8) {
        if (c->state == C_CLOSING) { /* reply to our Close: wait for TCP close */
          c->state = C_WAIT_EOF;
          c->tw = t->now;
        } else if (c->state == C_OPEN) {
          unsigned code = len >= 2 ? (unsigned)p[0] << 8 | p[1] : 1005;
          t->st.e_server_close++;
          t->st.last_server_close_code = code;
          if (phase() < PH_STOP)
            fprintf(stderr, "loadgen: server closed conn %u with %u\n", c->idx, code);
          put_frame(c, 0x8, p, len >= 2 ? 2 : 0);
          flush(c);
          conn_lost(c);
          return -1;
        }
      } else if (op != 0xA) { t->st.e_proto++; conn_lost(c); return -1; }
      continue;
    }
    if (op != 0x0 && op != 0x1 && op != 0x2) { t->st.e_proto++; conn_lost(c); return -1; }
    if (op == 0x0 ? !c->frag_op : !!c->frag_op) { t->st.e_proto++; conn_lost(c); return -1; }
    if (fin && op) {
      if (rsv1) {
        long m = inflate_msg(c, p, (size_t)len);
        if (m < 0) { t->st.e_deflate++; conn_lost(c); return -1; }
        if (measuring()) t->st.compressed_in++;
        on_message(c, op, t->zbuf, (size_t)m);
      } else {
        on_message(c, op, p, (size_t)len);
      }
      continue;
    }
    if (op) { c->frag_op = (uint8_t)op; c->frag_z = (uint8_t)rsv1; }
    if (c->flen + len > c->fcap) {
      size_t nc = c->fcap ? c->fcap : 4096;
      while (nc < c->flen + len) nc *= 2;
      c->frag = realloc(c->frag, nc);
      if (!c->frag) die("out of memory");
      c->fcap = (uint32_t)nc;
    }
    memcpy(c->frag + c->flen, p, (size_t)len);
    c->flen += (uint32_t)len;
    if (fin) {
      if (c->frag_z) {
        long m = inflate_msg(c, c->frag, c->flen);
        if (m < 0) { t->st.e_deflate++; conn_lost(c); return -1; }
        if (measuring()) t->st.compressed_in++;
        on_message(c, c->frag_op, t->zbuf, (size_t)m);
      } else {
        on_message(c, c->frag_op, c->frag, c->flen);
      }
      c->frag_op = 0;
      c->flen = 0;
    }
  }
  return (long)off;
}

/* Returns bytes consumed or -1 when the connection was closed. */
static long consume(conn_t *c, uint8_t *buf, size_t n) {
  if (c->state == C_HANDSHAKE) {
    uint8_t *e = memmem(buf, n, "\r\n\r\n", 4);
    if (!e) {
      if (n > 16384) { c->t->st.e_handshake++; conn_lost(c); return -1; }
      return 0;
    }
    size_t hl = (size_t)(e - buf) + 4;
    if (check_response(c, (const char *)buf, hl)) {
      c->t->st.e_handshake++;
      if (c->t->st.e_handshake <= 3) {
        size_t sl = 0;
        while (sl < hl && buf[sl] != '\r') sl++;
        fprintf(stderr, "loadgen: bad handshake response: %.*s\n", (int)sl, (const char *)buf);
      }
      if (O.scen == SC_CONNECT) { conn_close(c, C_FREE); start_connect(c); return -1; }
      conn_lost(c);
      return -1;
    }
    on_open(c);
    long r = parse_frames(c, buf + hl, n - hl);
    return r < 0 ? -1 : (long)hl + r;
  }
  return parse_frames(c, buf, n);
}

static void cycle_done(conn_t *c) {
  thr_t *t = c->t;
  if (measuring()) {
    t->st.cycles++;
    hadd(&t->st.h, t->now - c->t0);
  }
  conn_close(c, C_FREE);
  if (phase() < PH_STOP) start_connect(c);
}

static void on_readable(conn_t *c) {
  thr_t *t = c->t;
  size_t have = 0;
  if (c->plen) {
    if (c->plen > t->rcap / 2) {
      size_t nc = t->rcap;
      while (nc < (size_t)c->plen * 2) nc *= 2;
      t->rbuf = realloc(t->rbuf, nc);
      if (!t->rbuf) die("out of memory");
      t->rcap = nc;
    }
    memcpy(t->rbuf, c->pend, c->plen);
    have = c->plen;
    c->plen = 0;
  }
  ssize_t r = recv(c->fd, t->rbuf + have, t->rcap - have, 0);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
    c->plen = (uint32_t)have; /* still in c->pend */
    return;
  }
  if (r <= 0) { /* EOF or error */
    if (O.scen == SC_CONNECT) {
      if (c->state == C_WAIT_EOF && r == 0) { cycle_done(c); return; }
      t->st.e_lost++;
      conn_close(c, C_FREE);
      if (phase() < PH_STOP) start_connect(c);
      return;
    }
    if (c->state == C_WAIT_EOF || c->state == C_CLOSING) { conn_close(c, C_DEAD); return; }
    conn_lost(c);
    return;
  }
  have += (size_t)r;
  if (measuring()) t->st.wire_in += (uint64_t)r;
  long used = consume(c, t->rbuf, have);
  if (used < 0) return;
  size_t left = have - (size_t)used;
  if (left) {
    if (left > c->pcap) {
      c->pend = realloc(c->pend, left);
      if (!c->pend) die("out of memory");
      c->pcap = (uint32_t)left;
    }
    memcpy(c->pend, t->rbuf + used, left);
    c->plen = (uint32_t)left;
  }
}

static void start_connect(conn_t *c) {
  thr_t *t = c->t;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
  if (fd < 0) { t->st.e_connect++; c->state = C_DEAD; return; }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (O.scen == SC_CONNECT && O.src_addrs > 1) {
    /* Spread sources over 127.0.0.x so TIME_WAIT pairs do not exhaust ports. */
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(0x7F000001u + (c->idx + (uint32_t)t->st.cycles) % (uint32_t)O.src_addrs);
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&src, sizeof src) < 0) { /* fall back to default source */ }
  }
  c->fd = fd;
  c->t0 = now_ns();
  c->state = C_CONNECTING;
  c->ready = 0;
  c->sent = c->recvd = 0;
  c->frag_op = 0;
  t->opening++;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = c};
  c->epout = 1;
  if (epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
  const struct sockaddr_in *sa = O.port2 && (c->idx & 1) ? &SA2 : &SA;
  if (connect(fd, (const struct sockaddr *)sa, sizeof *sa) < 0 && errno != EINPROGRESS) {
    t->st.e_connect++;
    if (t->st.e_connect <= 3) fprintf(stderr, "loadgen: connect: %s\n", strerror(errno));
    conn_close(c, O.scen == SC_CONNECT ? C_FREE : C_DEAD);
    return;
  }
}

static void on_connected(conn_t *c) {
  int err = 0;
  socklen_t el = sizeof err;
  getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
  if (err) {
    c->t->st.e_connect++;
    if (c->t->st.e_connect <= 3) fprintf(stderr, "loadgen: connect: %s\n", strerror(err));
    conn_close(c, O.scen == SC_CONNECT ? C_FREE : C_DEAD);
    return;
  }
  ep_mod(c, 0);
  if (O.raw) {
    c->state = C_HANDSHAKE; /* on_open expects it */
    on_open(c);
    return;
  }
  send_request(c);
}

static void handle_event(conn_t *c, uint32_t evs) {
  if (c->state == C_CONNECTING) {
    if (evs & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_connected(c);
    if (c->state == C_CONNECTING || c->fd < 0) return;
  }
  if (evs & EPOLLOUT && c->woff < c->wlen) {
    if (flush(c) < 0) { conn_lost(c); return; }
  }
  if (evs & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) on_readable(c);
}

static void flush_dirty(thr_t *t) {
  conn_t *c = t->dirty;
  t->dirty = NULL;
  while (c) {
    conn_t *nx = c->next_dirty;
    c->dirty = 0;
    c->next_dirty = NULL;
    if (c->fd >= 0 && c->wlen > c->woff && flush(c) < 0) {
      if (O.scen == SC_CONNECT) { t->st.e_lost++; conn_close(c, C_FREE); if (phase() < PH_STOP) start_connect(c); }
      else conn_lost(c);
    }
    c = nx;
  }
}

static void open_more(thr_t *t) {
  int lim = __atomic_load_n(&g_open_limit, __ATOMIC_ACQUIRE);
  while (t->next_open < t->nconns && t->opening < O.open_conc &&
         (int)t->conns[t->next_open]->idx < lim) {
    conn_t *c = t->conns[t->next_open++];
    start_connect(c);
  }
}

static void *thr_main(void *arg) {
  thr_t *t = arg;
  struct epoll_event evs[512];
  int last_ph = -1;
  uint64_t stop_at = 0;
  if (O.scen == SC_CONNECT) {
    t->next_open = t->nconns; /* cycles start at WARMUP */
  }
  for (;;) {
    int ph = phase();
    t->now = now_ns();
    if (ph != last_ph) {
      /* traffic starts at WARMUP, or at MEASURE when a --warmup 0 run went
       * past WARMUP between two looks at the phase */
      int start = (ph == PH_WARMUP || ph == PH_MEASURE) && last_ph < PH_WARMUP;
      last_ph = ph;
      if (start && O.scen == SC_ECHO)
        for (int i = 0; i < t->nconns; i++)
          if (t->conns[i]->state == C_OPEN)
            for (int k = 0; k < O.inflight; k++) echo_send(t->conns[i]);
      if (start && O.scen == SC_CONNECT)
        for (int i = 0; i < t->nconns; i++) start_connect(t->conns[i]);
      if (ph == PH_STOP) {
        stop_at = t->now + 2000000000ull;
        for (int i = 0; i < t->nconns; i++) {
          conn_t *c = t->conns[i];
          if (c->state == C_OPEN && !O.raw) { put_close(c, 1000); c->state = C_CLOSING; }
          else if (c->state == C_OPEN || c->state == C_CONNECTING || c->state == C_HANDSHAKE)
            conn_close(c, C_DEAD);
        }
      }
    }
    if (ph == PH_SETUP) open_more(t);
    if (O.scen == SC_BROADCAST) bsend_topup(t);
    flush_dirty(t);
    if (ph == PH_STOP) {
      int live = 0;
      for (int i = 0; i < t->nconns; i++)
        if (t->conns[i]->fd >= 0) live++;
      if (!live) break;
      if (t->now > stop_at) {
        for (int i = 0; i < t->nconns; i++)
          if (t->conns[i]->fd >= 0) { t->st.e_close_timeout++; conn_close(t->conns[i], C_DEAD); }
        break;
      }
    }
    int n = epoll_wait(t->ep, evs, 512, 5);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    t->now = now_ns();
    for (int i = 0; i < n; i++) {
      if (!evs[i].data.ptr) { uint64_t v; if (read(t->evfd, &v, 8) < 0) {} continue; }
      handle_event(evs[i].data.ptr, evs[i].events);
    }
    if (O.scen == SC_CONNECT) {
      /* a server that never closes TCP after the close handshake */
      for (int i = 0; i < t->nconns; i++) {
        conn_t *c = t->conns[i];
        if (c->state == C_WAIT_EOF && t->now - c->tw > 1000000000ull) {
          t->st.e_close_timeout++;
          conn_close(c, C_FREE);
          if (phase() < PH_STOP) start_connect(c);
        }
      }
    }
  }
  return NULL;
}

/* ------------------------------------------------------------------ main */

static void on_alarm(int sig) {
  (void)sig;
  static const char m[] = "loadgen: hard time limit reached, exiting\n";
  if (write(2, m, sizeof m - 1) < 0) {}
  _exit(3);
}

static void set_phase(int ph) { __atomic_store_n(&g_phase, ph, __ATOMIC_RELEASE); }

static void sleep_s(double s) {
  if (s <= 0) return;
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
}

static int sum_open(void) { int s = 0; for (int i = 0; i < O.threads; i++) s += __atomic_load_n(&T[i].open_count, __ATOMIC_RELAXED); return s; }
static int sum_dead(void) {
  int s = 0;
  for (int i = 0; i < O.threads; i++)
    for (int k = 0; k < T[i].nconns; k++) s += __atomic_load_n(&T[i].conns[k]->state, __ATOMIC_RELAXED) == C_DEAD;
  return s;
}
static int sum_ready(void) { int s = 0; for (int i = 0; i < O.threads; i++) s += __atomic_load_n(&T[i].ready_count, __ATOMIC_RELAXED); return s; }

int main(int argc, char **argv) {
  parse_args(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  double hard = O.setup_timeout + O.settle + O.warmup + O.duration + 15;
  signal(SIGALRM, on_alarm);
  alarm((unsigned)hard + 1);

  SA.sin_family = AF_INET;
  SA.sin_port = htons((uint16_t)O.port);
  if (inet_pton(AF_INET, O.host, &SA.sin_addr) != 1) die("host must be an IPv4 address");
  SA2 = SA;
  SA2.sin_port = htons((uint16_t)O.port2);

  REQ_SEP = strchr(O.path, '?') ? "&" : "?";

  if (O.deflate) PSTRIDE = (size_t)O.size + 13;
  PATN = 251 * PSTRIDE + (size_t)O.size + 512;
  PAT = xmalloc(PATN);
  fill_random(PAT, PATN);
  if (O.deflate) {
    /* chat-like text: random words from a small vocabulary compress the way
     * real messages do (random bytes would not compress at all) */
    static const char *const W[] = {
      "the", "room", "message", "hello", "world", "edge", "durable", "object", "socket", "send",
      "chat", "user", "name", "type", "text", "and", "is", "to", "of", "a", "in", "we", "you",
      "that", "it", "for", "on", "with", "this", "are", "be", "at", "or", "from", "join", "left",
      "\"type\":\"message\"", "\"name\":", "\"text\":", "{", "}", "ok", "yes", "no", "later",
      "tomorrow", "today", "deploy", "wrangler", "worker", "native", "server", "fast", "small"};
    rng_t r;
    fill_random(&r.s, sizeof r.s);
    size_t i = 0;
    while (i < PATN) {
      const char *w = W[rng_next(&r) % (sizeof W / sizeof *W)];
      for (size_t k = 0; w[k] && i < PATN; k++) PAT[i++] = (uint8_t)w[k];
      if (i < PATN) PAT[i++] = ' ';
    }
  } else if (O.text) {
    for (size_t i = 0; i < PATN; i++) PAT[i] = (uint8_t)('a' + PAT[i] % 26);
  }
  if (O.deflate && (O.scen == SC_ECHO || O.scen == SC_IDLE)) {
    z_stream *z = new_deflater();
    for (int k = 0; k < 251; k++) ZPATN[k] = deflate_msg(z, NULL, pat_at((uint64_t)k), (size_t)O.size, &ZPAT[k]);
    deflateEnd(z);
    free(z);
  }

  T = xcalloc((size_t)O.threads, sizeof *T);
  conn_t *conns = xcalloc((size_t)O.conns, sizeof *conns);
  for (int i = 0; i < O.threads; i++) {
    thr_t *t = &T[i];
    t->id = i;
    t->ep = epoll_create1(EPOLL_CLOEXEC);
    t->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (t->ep < 0 || t->evfd < 0) die("epoll/eventfd");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(t->ep, EPOLL_CTL_ADD, t->evfd, &ev);
    t->conns = xcalloc((size_t)O.conns / (size_t)O.threads + 1, sizeof(conn_t *));
    t->rcap = 256 * 1024;
    if ((size_t)O.size * 4 + 64 > t->rcap) t->rcap = (size_t)O.size * 4 + 64;
    t->rbuf = xmalloc(t->rcap);
    fill_random(&t->rng.s, sizeof t->rng.s);
  }
  for (int i = 0; i < O.conns; i++) {
    conn_t *c = &conns[i];
    thr_t *t = &T[i % O.threads];
    c->fd = -1;
    c->idx = (uint32_t)i;
    c->t = t;
    t->conns[t->nconns++] = c;
    if (O.scen == SC_ECHO || O.scen == SC_IDLE) c->ts = xcalloc((size_t)O.inflight, 8);
    if (O.scen == SC_BROADCAST) c->next_seq = xcalloc((size_t)O.senders, 8);
  }
  if (O.scen == SC_BROADCAST) {
    /* Senders are members too; each member sends its own name. */
    BS = xcalloc((size_t)O.senders, sizeof *BS);
    for (int i = 0; i < O.threads; i++) T[i].senders = xcalloc((size_t)O.senders, sizeof(bsender_t *));
    for (int s = 0; s < O.senders; s++) {
      /* senders spread over the member list */
      conn_t *c = &conns[(size_t)s * (size_t)O.conns / (size_t)O.senders];
      BS[s].c = c;
      BS[s].left = xcalloc((size_t)O.window, sizeof(int32_t));
      c->t->senders[c->t->nsenders++] = &BS[s];
    }
  }

  long rss0 = O.n_server_pids ? read_rss_kb() : -1, rss_mid = -1;
  int n_mid = O.conns / 10;
  /* idle: first a tenth of the connections, RSS, then the rest. The growth
   * between the two is the marginal cost per connection, free of one-time
   * costs (first-connection allocations, JIT, thread pools). */
  __atomic_store_n(&g_open_limit, O.scen == SC_IDLE && n_mid > 0 ? n_mid : O.conns, __ATOMIC_RELEASE);
  uint64_t t_setup0 = now_ns();
  for (int i = 0; i < O.threads; i++)
    if (pthread_create(&T[i].th, NULL, thr_main, &T[i])) die("pthread_create");

  const char *fail = NULL;
  double setup_s = 0;
  if (O.scen == SC_IDLE && n_mid > 0 && O.n_server_pids) {
    while (sum_ready() < n_mid && !sum_dead() &&
           (double)(now_ns() - t_setup0) / 1e9 < O.setup_timeout) sleep_s(0.01);
    if (sum_ready() >= n_mid) {
      sleep_s(O.settle);
      rss_mid = read_rss_kb();
    }
  }
  __atomic_store_n(&g_open_limit, O.conns, __ATOMIC_RELEASE);
  if (O.scen != SC_CONNECT) {
    for (;;) {
      int open = sum_open(), dead = sum_dead();
      if (open >= O.conns) break;
      if (dead) { fail = "connections failed during setup"; break; }
      if ((double)(now_ns() - t_setup0) / 1e9 > O.setup_timeout) { fail = "setup timeout"; break; }
      sleep_s(0.01);
    }
    if (!fail && O.scen == SC_IDLE) {
      while (sum_ready() < O.conns && !sum_dead() &&
             (double)(now_ns() - t_setup0) / 1e9 < O.setup_timeout) sleep_s(0.01);
      if (sum_ready() < O.conns) fail = "idle connections not ready (echo missing)";
    }
    setup_s = (double)(now_ns() - t_setup0) / 1e9;
    set_phase(PH_SETTLE);
    if (!fail && (O.scen == SC_BROADCAST || O.scen == SC_IDLE)) sleep_s(O.settle);
  }

  long rss1 = -1;
  double wall = 0, ccpu = 0, scpu = -1;
  if (!fail && O.scen == SC_IDLE) {
    for (int k = 0; k < 3; k++) { rss1 = read_rss_kb(); sleep_s(0.25); }
    rss1 = read_rss_kb();
  } else if (!fail) {
    set_phase(PH_WARMUP);
    sleep_s(O.warmup);
    double c0 = self_cpu(), s0 = O.n_server_pids ? read_server_cpu() : -1;
    uint64_t w0 = now_ns();
    set_phase(PH_MEASURE);
    sleep_s(O.duration);
    set_phase(PH_STOP);
    uint64_t w1 = now_ns();
    double c1 = self_cpu(), s1 = O.n_server_pids ? read_server_cpu() : -1;
    wall = (double)(w1 - w0) / 1e9;
    ccpu = c1 - c0;
    if (s0 >= 0 && s1 >= 0) scpu = s1 - s0;
  }
  set_phase(PH_STOP);
  for (int i = 0; i < O.threads; i++) pthread_join(T[i].th, NULL);

  stats_t S;
  memset(&S, 0, sizeof S);
  for (int i = 0; i < O.threads; i++) {
    stats_t *s = &T[i].st;
    S.msgs += s->msgs; S.bytes += s->bytes; S.cycles += s->cycles;
    S.deliveries += s->deliveries; S.completed += s->completed;
    S.e_connect += s->e_connect; S.e_handshake += s->e_handshake; S.e_accept += s->e_accept;
    S.e_proto += s->e_proto; S.e_verify += s->e_verify; S.e_order += s->e_order;
    S.e_self += s->e_self; S.e_lost += s->e_lost; S.e_server_close += s->e_server_close;
    S.e_close_timeout += s->e_close_timeout; S.text_ignored += s->text_ignored; S.pings += s->pings;
    S.e_deflate += s->e_deflate; S.wire_in += s->wire_in; S.wire_out += s->wire_out;
    S.compressed_in += s->compressed_in;
    if (s->last_server_close_code) S.last_server_close_code = s->last_server_close_code;
    hmerge(&S.h, &s->h);
  }
  /* Errors that make a figure wrong. Close timeouts at STOP are reported but
   * do not invalidate a throughput figure; in connect they are cycles lost. */
  uint64_t hard_err = S.e_handshake + S.e_proto + S.e_verify + S.e_order + S.e_self + S.e_lost + S.e_deflate;
  if (O.scen == SC_CONNECT) hard_err += S.e_connect;
  if (S.e_deflate && (!fail || !strcmp(fail, "connections failed during setup")))
    fail = "permessage-deflate declined or answered wrongly by the server";
  if (!fail && hard_err) fail = "protocol or verification errors";

  double value = 0;
  const char *unit = "";
  if (O.scen == SC_ECHO) { value = wall > 0 ? (double)S.msgs / wall : 0; unit = "msgs/s"; }
  if (O.scen == SC_CONNECT) { value = wall > 0 ? (double)S.cycles / wall : 0; unit = "cycles/s"; }
  if (O.scen == SC_BROADCAST) { value = wall > 0 ? (double)S.deliveries / wall : 0; unit = "deliveries/s"; }
  double kb_per_conn = -1, kb_marginal = -1;
  if (O.scen == SC_IDLE) {
    unit = "KB/conn";
    if (rss0 >= 0 && rss1 >= 0) value = kb_per_conn = (double)(rss1 - rss0) / O.conns;
    if (rss_mid >= 0 && rss1 >= 0) kb_marginal = (double)(rss1 - rss_mid) / (O.conns - n_mid);
    else if (!fail) fail = "idle needs --server-pid";
  }
  int cpus = 0;
  cpu_set_t cs;
  if (!sched_getaffinity(0, sizeof cs, &cs)) cpus = CPU_COUNT(&cs);
  double client_cores = O.threads < cpus ? O.threads : cpus;
  double cfrac = wall > 0 ? ccpu / wall : 0, sfrac = wall > 0 && scpu >= 0 ? scpu / wall : -1;
  const char *bound = "n/a";
  if (wall > 0) {
    int cb = cfrac >= 0.9 * client_cores, sb = sfrac >= 0.9 * O.server_cores;
    bound = cb && sb ? "both" : cb ? "client-bound" : sb ? "server-bound" : "neither";
  }

  printf("{\"scenario\":\"%s\",\"label\":\"%s\",\"ok\":%s", SC_NAMES[O.scen], O.label, fail ? "false" : "true");
  if (fail) printf(",\"error\":\"%s\"", fail);
  printf(",\"value\":%.3f,\"unit\":\"%s\"", value, unit);
  printf(",\"url\":\"ws://%s:%d%s\",\"raw\":%d,\"threads\":%d,\"conns\":%d", O.host, O.port, O.path, O.raw, O.threads, O.conns);
  if (O.scen == SC_ECHO) printf(",\"inflight\":%d,\"size\":%d,\"text\":%d,\"msgs\":%llu", O.inflight, O.size, O.text, (unsigned long long)S.msgs);
  if (O.scen == SC_CONNECT) printf(",\"concurrency\":%d,\"cycles\":%llu,\"msgs_ignored\":%llu", O.concurrency, (unsigned long long)S.cycles, (unsigned long long)S.text_ignored);
  if (O.scen == SC_BROADCAST)
    printf(",\"senders\":%d,\"window\":%d,\"size\":%d,\"deliveries\":%llu,\"messages\":%llu,\"messages_per_s\":%.1f,\"text_ignored\":%llu",
           O.senders, O.window, O.size, (unsigned long long)S.deliveries, (unsigned long long)S.completed,
           wall > 0 ? (double)S.completed / wall : 0, (unsigned long long)S.text_ignored);
  if (O.scen == SC_IDLE)
    printf(",\"idle_echo\":%d,\"rss_before_kb\":%ld,\"rss_mid_kb\":%ld,\"rss_after_kb\":%ld,\"kb_per_conn\":%.3f,\"kb_per_conn_marginal\":%.3f",
           O.idle_echo, rss0, rss_mid, rss1, kb_per_conn, kb_marginal);
  if (O.scen != SC_CONNECT) printf(",\"setup_s\":%.3f", setup_s);
  printf(",\"deflate\":%d", O.deflate);
  if (wall > 0 && O.scen != SC_CONNECT) {
    /* bytes on the wire per message (frames, headers, masks included) */
    double nm = (double)(O.scen == SC_BROADCAST ? S.deliveries : S.msgs);
    double ns = (double)(O.scen == SC_BROADCAST ? S.completed : S.msgs);
    printf(",\"wire_in_bytes\":%llu,\"wire_out_bytes\":%llu,\"compressed_in\":%llu",
           (unsigned long long)S.wire_in, (unsigned long long)S.wire_out, (unsigned long long)S.compressed_in);
    if (nm > 0) printf(",\"wire_in_per_msg\":%.1f", (double)S.wire_in / nm);
    if (ns > 0) printf(",\"wire_out_per_msg\":%.1f", (double)S.wire_out / ns);
  }
  if (wall > 0) {
    printf(",\"wall_s\":%.3f,\"client_cpu\":%.3f,\"server_cpu\":%.3f,\"bound\":\"%s\"", wall, cfrac, sfrac, bound);
    printf(",\"lat_us\":{\"n\":%llu,\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f}",
           (unsigned long long)S.h.n, hq(&S.h, 0.5) / 1e3, hq(&S.h, 0.99) / 1e3, hq(&S.h, 0.999) / 1e3, (double)S.h.max / 1e3);
  }
  printf(",\"errors\":{\"connect\":%llu,\"handshake\":%llu,\"accept\":%llu,\"protocol\":%llu,\"verify\":%llu,\"order\":%llu,\"self\":%llu,\"lost\":%llu,\"server_close\":%llu,\"close_timeout\":%llu,\"deflate\":%llu}",
         (unsigned long long)S.e_connect, (unsigned long long)S.e_handshake, (unsigned long long)S.e_accept,
         (unsigned long long)S.e_proto, (unsigned long long)S.e_verify, (unsigned long long)S.e_order,
         (unsigned long long)S.e_self, (unsigned long long)S.e_lost, (unsigned long long)S.e_server_close,
         (unsigned long long)S.e_close_timeout, (unsigned long long)S.e_deflate);
  if (S.last_server_close_code) printf(",\"last_server_close_code\":%u", S.last_server_close_code);
  printf("}\n");
  fflush(stdout);
  return fail ? 1 : 0;
}
