/*
 * Pipelined Modbus TCP load generator for benchmarks/modbus_throughput.py.
 *
 * Usage: loadgen HOST PORT CONNECTIONS DEPTH DURATION_S UNIT ADDRESS QUANTITY [LOSS_TIMEOUT_MS]
 *
 * Opens CONNECTIONS sockets, keeps DEPTH FC3 requests (read QUANTITY holding registers at
 * ADDRESS) outstanding on each with distinct transaction ids, and runs for DURATION_S seconds
 * with no warm-up.  Latency is measured per request (send -> matching reply, CLOCK_MONOTONIC).
 * A server that drops pipelined requests but answers one at a time is detected: a request with
 * no reply after LOSS_TIMEOUT_MS (default 1000) is counted as lost, and its connection falls
 * back to depth 1.  If such a request is answered after all ("late"), the server was only slow
 * (a busy machine): the connection returns to full depth and the event counts as a "stall".
 * Prints one JSON object on stdout:
 *   {"count":N, "rps":R, "p50_us":X, "p99_us":Y, "max_us":Z, "exceptions":E, "bad":B,
 *    "lost":L, "late":T, "disconnects":D, "stalls":S, "fallback_connections":F, ...}
 * fallback_connections counts the connections still at depth 1 at the end.
 * Exit status 0 on success, 1 if no connection could be made, 2 for bad arguments.
 * Single thread, poll(); no dependencies beyond libc.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 256
#define INBUF 65536

typedef struct {
    int fd;
    int depth;
    int outstanding;
    uint16_t next_tid;
    uint64_t *sent_ns; /* by transaction id; 0 = not outstanding */
    uint8_t in[INBUF];
    size_t inlen;
    uint8_t out[INBUF];
    size_t outlen;
    uint16_t oldest; /* oldest transaction id that may still be outstanding */
    int fell_back;
    int full_depth;
} conn_t;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct sockaddr_in server;
static int unit_id, address, quantity;
static uint64_t *lat = NULL;
static size_t nlat = 0, caplat = 0;
static unsigned long long exceptions = 0, bad = 0, lost = 0, late = 0, disconnects = 0, stalls = 0;

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int open_conn(conn_t *c)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&server, sizeof(server)) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    c->fd = fd;
    c->inlen = c->outlen = 0;
    c->outstanding = 0;
    memset(c->sent_ns, 0, 65536 * sizeof(uint64_t));
    c->oldest = c->next_tid;
    return 0;
}

static void flush_out(conn_t *c)
{
    while (c->outlen > 0) {
        ssize_t n = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            return; /* error surfaces on the next read */
        }
        memmove(c->out, c->out + n, c->outlen - (size_t)n);
        c->outlen -= (size_t)n;
    }
}

static void queue_request(conn_t *c)
{
    uint16_t tid = c->next_tid++;
    if (c->sent_ns[tid]) /* wrapped onto a request still outstanding: skip that id */
        tid = c->next_tid++;
    uint8_t *p = c->out + c->outlen;
    p[0] = tid >> 8; p[1] = tid & 0xff;
    p[2] = 0; p[3] = 0;
    p[4] = 0; p[5] = 6;
    p[6] = (uint8_t)unit_id;
    p[7] = 3;
    p[8] = address >> 8; p[9] = address & 0xff;
    p[10] = quantity >> 8; p[11] = quantity & 0xff;
    c->outlen += 12;
    c->sent_ns[tid] = now_ns();
    c->outstanding++;
}

static void fill(conn_t *c)
{
    while (c->outstanding < c->depth && c->outlen + 12 <= INBUF)
        queue_request(c);
    flush_out(c);
}

static void record(uint64_t ns)
{
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 1 << 16;
        lat = realloc(lat, caplat * sizeof(uint64_t));
        if (!lat) {
            fprintf(stderr, "loadgen: out of memory\n");
            exit(1);
        }
    }
    lat[nlat++] = ns;
}

/* parse complete frames; returns -1 if the stream is garbage */
static int parse(conn_t *c, uint64_t t)
{
    size_t off = 0;
    while (c->inlen - off >= 7) {
        uint8_t *f = c->in + off;
        unsigned len = (f[4] << 8) | f[5];
        if (len < 2 || len > 254)
            return -1;
        if (c->inlen - off < 6 + len)
            break;
        uint16_t tid = (f[0] << 8) | f[1];
        if (c->sent_ns[tid]) {
            record(t - c->sent_ns[tid]);
            c->sent_ns[tid] = 0;
            c->outstanding--;
            if (f[7] & 0x80)
                exceptions++;
            else if (f[7] != 3 || len != 3 + 2u * (unsigned)quantity || f[8] != 2 * quantity)
                bad++;
        } else {
            /* a reply we had given up on: the server was slow, not dropping requests */
            late++;
            if (lost)
                lost--;
            if (c->fell_back) {
                c->depth = c->full_depth;
                c->fell_back = 0;
                stalls++;
            }
        }
        off += 6 + len;
    }
    memmove(c->in, c->in + off, c->inlen - off);
    c->inlen -= off;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 9 || argc > 10) {
        fprintf(stderr, "usage: %s HOST PORT CONNECTIONS DEPTH DURATION_S UNIT ADDRESS QUANTITY [LOSS_TIMEOUT_MS]\n", argv[0]);
        return 2;
    }
    int nconn = atoi(argv[3]), depth = atoi(argv[4]);
    double duration = atof(argv[5]);
    unit_id = atoi(argv[6]);
    address = atoi(argv[7]);
    quantity = atoi(argv[8]);
    uint64_t loss_timeout = (argc == 10 ? (uint64_t)atoi(argv[9]) : 1000) * 1000000ull;
    if (nconn < 1 || nconn > MAX_CONNS || depth < 1 || depth > 1000 || duration <= 0 || quantity < 1 || quantity > 125) {
        fprintf(stderr, "loadgen: argument out of range\n");
        return 2;
    }
    memset(&server, 0, sizeof(server));
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1) {
        fprintf(stderr, "loadgen: HOST must be an IPv4 address\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    alarm((unsigned)duration + 30); /* hard guard: never hang */

    conn_t *conns = calloc((size_t)nconn, sizeof(conn_t));
    struct pollfd *pfd = calloc((size_t)nconn, sizeof(struct pollfd));
    if (!conns || !pfd)
        return 1;
    for (int i = 0; i < nconn; i++) {
        conns[i].sent_ns = calloc(65536, sizeof(uint64_t));
        conns[i].depth = conns[i].full_depth = depth;
        conns[i].next_tid = 1;
        if (!conns[i].sent_ns || open_conn(&conns[i]) < 0) {
            printf("{\"error\": \"connect to %s:%s failed: %s\"}\n", argv[1], argv[2], strerror(errno));
            return 1;
        }
    }
    uint64_t start = now_ns();
    uint64_t end = start + (uint64_t)(duration * 1e9);
    for (int i = 0; i < nconn; i++)
        fill(&conns[i]);

    uint64_t t = start;
    while ((t = now_ns()) < end) {
        for (int i = 0; i < nconn; i++) {
            pfd[i].fd = conns[i].fd;
            pfd[i].events = POLLIN | (conns[i].outlen ? POLLOUT : 0);
            pfd[i].revents = 0;
        }
        int timeout_ms = (int)((end - t) / 1000000ull) + 1;
        if (timeout_ms > 20)
            timeout_ms = 20;
        int n = poll(pfd, (nfds_t)nconn, timeout_ms);
        if (n < 0 && errno != EINTR)
            break;
        t = now_ns();
        for (int i = 0; i < nconn; i++) {
            conn_t *c = &conns[i];
            int broken = 0;
            if (pfd[i].revents & POLLOUT)
                flush_out(c);
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t r = recv(c->fd, c->in + c->inlen, INBUF - c->inlen, 0);
                if (r > 0) {
                    c->inlen += (size_t)r;
                    if (parse(c, t) < 0) {
                        bad++;
                        broken = 1;
                    }
                } else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                    broken = 1;
                }
            }
            if (!broken) {
                /* requests older than the loss timeout vanished: count them, and stop
                 * pipelining on this connection */
                int expired = 0;
                while (c->oldest != c->next_tid && c->sent_ns[c->oldest] == 0)
                    c->oldest++;
                while (c->oldest != c->next_tid && t - c->sent_ns[c->oldest] > loss_timeout) {
                    c->sent_ns[c->oldest] = 0;
                    c->outstanding--;
                    lost++;
                    expired = 1;
                    while (c->oldest != c->next_tid && c->sent_ns[c->oldest] == 0)
                        c->oldest++;
                }
                if (expired && c->depth > 1) {
                    c->depth = 1;
                    c->fell_back = 1;
                }
            }
            if (broken) {
                disconnects++;
                lost += (unsigned long long)c->outstanding;
                close(c->fd);
                if (open_conn(c) < 0) {
                    printf("{\"error\": \"reconnect failed after the server closed a connection: %s\"}\n", strerror(errno));
                    return 1;
                }
            }
            fill(c);
        }
    }
    double elapsed = (double)(t - start) / 1e9;
    int fallbacks = 0;
    for (int i = 0; i < nconn; i++)
        fallbacks += conns[i].fell_back;
    double p50 = 0, p99 = 0, pmax = 0;
    if (nlat) {
        qsort(lat, nlat, sizeof(uint64_t), cmp_u64);
        p50 = lat[(size_t)(0.50 * (double)(nlat - 1))] / 1000.0;
        p99 = lat[(size_t)(0.99 * (double)(nlat - 1))] / 1000.0;
        pmax = lat[nlat - 1] / 1000.0;
    }
    printf("{\"count\": %zu, \"duration_s\": %.3f, \"rps\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, "
           "\"max_us\": %.1f, \"exceptions\": %llu, \"bad\": %llu, \"lost\": %llu, \"late\": %llu, "
           "\"disconnects\": %llu, \"stalls\": %llu, \"connections\": %d, \"depth\": %d, "
           "\"fallback_connections\": %d}\n",
           nlat, elapsed, nlat / elapsed, p50, p99, pmax, exceptions, bad, lost, late, disconnects, stalls, nconn,
           depth, fallbacks);
    return 0;
}
