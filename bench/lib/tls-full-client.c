// Full-handshake TLS load for `bench/tls.sh` (scenario "full"): every request is a new
// TCP connection with a new TLS handshake and NO session resumption (no session is ever
// handed to a new connection; the client session cache is off). It offers ALPN
// `http/1.1` and sends SNI, like a browser's first visit, sends one GET with
// `Connection: close`, reads the response and waits for the server to close (so the
// server side, not the client, holds TIME_WAIT). CONNECTIONS connections are kept in
// flight at once (one thread, epoll, non-blocking sockets) for SECONDS seconds.
//
// wrk can't produce this load: it resumes TLS sessions on reconnect.
//
// Build: gcc -O2 -o tls-full-client tls-full-client.c -lssl -lcrypto   (OpenSSL >= 1.1.1)
// Usage: tls-full-client HOST PORT SERVERNAME HOST_HEADER CONNECTIONS SECONDS [TAG]
//   TAG, if given, is sent as an `X-Bench-Tag` header (bench/tls.sh uses it to count the
//   nginx side's resumed sessions from a log).
// With TLS_CLIENT_REUSE=1 in the environment it does the opposite, for experiments: it
// keeps the session of its first connection and offers it on every later connection
// (the same ticket again and again, which a browser would not do), to measure the
// server's cost of a resumed handshake alone.
// Prints one JSON line: {"ok", "errors", "status_errors", "resumed", "seconds", "rate",
//   "p50_ms", "p99_ms", "protocol", "cipher", "group", "alpn", "first_error"}.
// "ok" counts requests answered 200 with the whole body, completed within SECONDS; each
// is one full handshake. Exit 0 when at least one request succeeded, 1 otherwise.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum state { CONNECTING, HANDSHAKE, WRITING, READING };

struct conn {
  int fd;
  SSL *ssl;
  enum state st;
  double started;
  int connect_errno;  // connect() failed at once
  size_t sent;
  size_t got;
  char buf[8192];
};

static SSL_CTX *ctx;
static int reuse;             // TLS_CLIENT_REUSE=1: offer the first session on every connection
static SSL_SESSION *saved;
static int ep;
static struct sockaddr_in addr;
static const char *servername;
static char request[1024];
static size_t request_len;

static long ok, errors, status_errors, resumed;
static double *lat;      // latencies (ms) of successful requests
static size_t lat_n, lat_cap;
static char protocol[32] = "", cipher[64] = "", group[32] = "", alpn[32] = "", first_error[160] = "";

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void note_error(const char *what, int code) {
  errors++;
  if (!first_error[0]) {
    unsigned long e = ERR_peek_last_error();
    if (e) snprintf(first_error, sizeof first_error, "%s: %s", what, ERR_reason_error_string(e));
    else snprintf(first_error, sizeof first_error, "%s: %s", what, code ? strerror(code) : "connection closed");
  }
  ERR_clear_error();
}

static void set_interest(struct conn *c, uint32_t events) {
  struct epoll_event ev = {.events = events, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

// Starts a new connection in the slot (non-blocking connect).
static void start(struct conn *c) {
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    perror("socket");
    exit(2);
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  c->ssl = NULL;
  c->sent = c->got = 0;
  c->connect_errno = 0;
  c->started = now();
  c->st = CONNECTING;
  struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
  if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS)
    c->connect_errno = errno;  // reported by step(), from the event loop
  epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void finish(struct conn *c) {
  if (c->ssl) SSL_free(c->ssl);
  c->ssl = NULL;
  close(c->fd);  // epoll forgets a closed fd by itself
  c->fd = -1;
}

// The response is complete: 200 with Content-Length bytes of body.
static int response_ok(struct conn *c) {
  c->buf[c->got < sizeof c->buf ? c->got : sizeof c->buf - 1] = 0;
  if (strncmp(c->buf, "HTTP/1.1 200", 12) != 0 && strncmp(c->buf, "HTTP/1.0 200", 12) != 0) return 0;
  char *end = strstr(c->buf, "\r\n\r\n");
  if (!end) return 0;
  char *cl = strcasestr(c->buf, "\r\ncontent-length:");
  if (!cl || cl > end) return 1;  // chunked or close-delimited: a 200 with its headers will do
  long want = strtol(cl + 17, NULL, 10);
  return (long)(c->got - (size_t)(end + 4 - c->buf)) >= want;
}

static void record_first(struct conn *c) {
  if (protocol[0]) return;
  snprintf(protocol, sizeof protocol, "%s", SSL_get_version(c->ssl));
  snprintf(cipher, sizeof cipher, "%s", SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl)));
#ifdef SSL_get_negotiated_group
  int nid = SSL_get_negotiated_group(c->ssl);
  const char *g = nid > 0 ? OBJ_nid2sn(nid) : NULL;
  snprintf(group, sizeof group, "%s", g ? g : "?");
#endif
  const unsigned char *a;
  unsigned int alen;
  SSL_get0_alpn_selected(c->ssl, &a, &alen);
  snprintf(alpn, sizeof alpn, "%.*s", (int)alen, a ? (const char *)a : "");
}

// Advances one connection as far as it can go; returns 1 when it is over (done or failed).
static int step(struct conn *c, double deadline) {
  int r, e;
  switch (c->st) {
    case CONNECTING: {
      int err = c->connect_errno;
      socklen_t len = sizeof err;
      if (!err) getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err) {
        note_error("connect", err);
        return 1;
      }
      c->ssl = SSL_new(ctx);
      SSL_set_fd(c->ssl, c->fd);
      SSL_set_tlsext_host_name(c->ssl, servername);
      if (reuse && saved) {
        // A copy each time, for the same reason as below: the connection's session object
        // is the one that SSL_free() marks.
        SSL_SESSION *copy = SSL_SESSION_dup(saved);
        SSL_set_session(c->ssl, copy);
        SSL_SESSION_free(copy);
      }
      SSL_set_connect_state(c->ssl);
      c->st = HANDSHAKE;
    }
      /* fall through */
    case HANDSHAKE:
      r = SSL_do_handshake(c->ssl);
      if (r != 1) {
        e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ) { set_interest(c, EPOLLIN); return 0; }
        if (e == SSL_ERROR_WANT_WRITE) { set_interest(c, EPOLLOUT); return 0; }
        note_error("handshake", errno);
        return 1;
      }
      if (SSL_session_reused(c->ssl)) resumed++;
      record_first(c);
      c->st = WRITING;
      /* fall through */
    case WRITING:
      while (c->sent < request_len) {
        r = SSL_write(c->ssl, request + c->sent, (int)(request_len - c->sent));
        if (r <= 0) {
          e = SSL_get_error(c->ssl, r);
          if (e == SSL_ERROR_WANT_READ) { set_interest(c, EPOLLIN); return 0; }
          if (e == SSL_ERROR_WANT_WRITE) { set_interest(c, EPOLLOUT); return 0; }
          note_error("write", errno);
          return 1;
        }
        c->sent += (size_t)r;
      }
      c->st = READING;
      set_interest(c, EPOLLIN);
      /* fall through */
    case READING:
      for (;;) {
        char scratch[4096];
        char *dst = c->got < sizeof c->buf - 1 ? c->buf + c->got : scratch;
        int room = c->got < sizeof c->buf - 1 ? (int)(sizeof c->buf - 1 - c->got) : (int)sizeof scratch;
        r = SSL_read(c->ssl, dst, room);
        if (r > 0) {
          c->got += (size_t)r;
          // The tickets come before the response: its first bytes mean the session is final.
          // A copy: SSL_free() without a close_notify sent marks the connection's own session
          // not resumable.
          if (reuse && !saved && SSL_SESSION_is_resumable(SSL_get0_session(c->ssl))) saved = SSL_SESSION_dup(SSL_get0_session(c->ssl));
          continue;
        }
        e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ) return 0;
        if (e == SSL_ERROR_WANT_WRITE) { set_interest(c, EPOLLOUT); return 0; }
        // The server closed (close_notify, or a plain FIN/RST after the response).
        if (e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL) {
          ERR_clear_error();
          if (c->got == 0) { note_error("read", errno); return 1; }
          if (!response_ok(c)) { status_errors++; return 1; }
          double t = now();
          if (t <= deadline) {
            ok++;
            if (lat_n == lat_cap) {
              lat_cap = lat_cap ? lat_cap * 2 : 65536;
              lat = realloc(lat, lat_cap * sizeof *lat);
              if (!lat) { perror("realloc"); exit(2); }
            }
            lat[lat_n++] = (t - c->started) * 1000;
          }
          return 1;
        }
        note_error("read", errno);
        return 1;
      }
  }
  return 1;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void json_str(const char *name, const char *v, int comma) {
  printf("\"%s\":\"", name);
  for (; *v; v++) {
    if (*v == '"' || *v == '\\') putchar('\\');
    putchar((unsigned char)*v >= 0x20 ? *v : '?');
  }
  printf("\"%s", comma ? "," : "");
}

int main(int argc, char **argv) {
  if (argc < 7) {
    fprintf(stderr, "usage: tls-full-client HOST PORT SERVERNAME HOST_HEADER CONNECTIONS SECONDS [TAG]\n");
    return 2;
  }
  const char *host = argv[1];
  int port = atoi(argv[2]);
  servername = argv[3];
  const char *host_header = argv[4];
  int n = atoi(argv[5]);
  double seconds = atof(argv[6]);
  const char *tag = argc > 7 ? argv[7] : NULL;
  if (n < 1 || seconds <= 0 || port < 1) {
    fprintf(stderr, "tls-full-client: bad CONNECTIONS, SECONDS or PORT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  alarm((unsigned)seconds + 30);  // a hard bound, whatever happens

  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_port = htons((uint16_t)port);
  if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
    fprintf(stderr, "tls-full-client: HOST must be an IPv4 address\n");
    return 2;
  }
  request_len = (size_t)snprintf(request, sizeof request,
                                 "GET / HTTP/1.1\r\nHost: %s\r\nUser-Agent: fairway-bench-tls-full\r\n%s%s%sConnection: close\r\n\r\n",
                                 host_header, tag ? "X-Bench-Tag: " : "", tag ? tag : "", tag ? "\r\n" : "");

  ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);  // the bench's self-signed certificate
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);  // and no SSL_set_session: never resume
  reuse = getenv("TLS_CLIENT_REUSE") && strcmp(getenv("TLS_CLIENT_REUSE"), "1") == 0;
  static const unsigned char protos[] = "\x08http/1.1";
  SSL_CTX_set_alpn_protos(ctx, protos, sizeof protos - 1);

  ep = epoll_create1(EPOLL_CLOEXEC);
  struct conn *conns = calloc((size_t)n, sizeof *conns);
  struct epoll_event *events = calloc((size_t)n, sizeof *events);
  double t0 = now(), deadline = t0 + seconds;
  for (int i = 0; i < n; i++) start(&conns[i]);
  while (now() < deadline) {
    int k = epoll_wait(ep, events, n, 100);
    if (k < 0 && errno != EINTR) { perror("epoll_wait"); return 2; }
    for (int i = 0; i < k; i++) {
      struct conn *c = events[i].data.ptr;
      if (step(c, deadline)) {
        finish(c);
        if (now() < deadline) start(c);
      }
    }
  }
  double elapsed = now() - t0;

  qsort(lat, lat_n, sizeof *lat, cmp);
  double p50 = lat_n ? lat[(size_t)(0.50 * (lat_n - 1))] : 0, p99 = lat_n ? lat[(size_t)(0.99 * (lat_n - 1))] : 0;
  printf("{\"ok\":%ld,\"errors\":%ld,\"status_errors\":%ld,\"resumed\":%ld,\"seconds\":%.3f,\"rate\":%.1f,"
         "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"connections\":%d,\"client\":\"c\",",
         ok, errors, status_errors, resumed, elapsed, ok / seconds, p50, p99, n);
  json_str("protocol", protocol, 1);
  json_str("cipher", cipher, 1);
  json_str("group", group, 1);
  json_str("alpn", alpn, 1);
  json_str("first_error", first_error, 0);
  printf("}\n");
  return ok > 0 ? 0 : 1;
}
