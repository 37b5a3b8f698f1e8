/*
 * A Modbus TCP server on libmodbus, used by the harness as a third-party peer.
 *
 * Usage: libmodbus_server DATAFILE [HOST [PORT]]      (defaults 127.0.0.1, 0)
 *
 * DATAFILE is plain text written by harness/peers/libmodbus_server.py, one record a line:
 *     unit U                   unit id (libmodbus TCP servers answer every unit id anyway)
 *     extent T START COUNT     T = c (coils), d (discrete inputs), h (holding), i (input)
 *     T ADDRESS VALUE          initial value of one bit (0/1) or register (0..65535)
 * Extents must come before values.  A table without an extent has no addresses.
 *
 * Prints "version: X.Y.Z" (libmodbus at run time) and "listening on modbus+tcp://HOST:PORT" (the port read back
 * with getsockname() from the socket modbus_tcp_listen() returns, so port 0 works), then serves
 * any number of clients with select(), like libmodbus's tests/bandwidth-server-many-up.c: one
 * modbus_receive() + modbus_reply() per readable socket.  libmodbus's behaviour is not altered.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <modbus.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

static modbus_t *ctx = NULL;
static modbus_mapping_t *map = NULL;
static int server_socket = -1;

static void die(const char *what)
{
    fprintf(stderr, "libmodbus_server: %s\n", what);
    exit(1);
}

static void on_signal(int sig)
{
    (void)sig;
    if (server_socket != -1)
        close(server_socket);
    _exit(0);
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0;
    unsigned start[4] = {0, 0, 0, 0}, count[4] = {0, 0, 0, 0};
    int unit = 1;
    const char *tables = "cdhi";
    char kind[16];
    FILE *f;

    if (argc < 2 || argc > 4) {
        fprintf(stderr, "usage: %s DATAFILE [HOST [PORT]]\n", argv[0]);
        return 2;
    }
    if (argc >= 3)
        host = argv[2];
    if (argc >= 4)
        port = atoi(argv[3]);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    /* pass 1: unit and extents */
    f = fopen(argv[1], "r");
    if (!f) {
        fprintf(stderr, "libmodbus_server: cannot open %s: %s\n", argv[1], strerror(errno));
        return 2;
    }
    while (fscanf(f, "%15s", kind) == 1) {
        if (strcmp(kind, "unit") == 0) {
            if (fscanf(f, "%d", &unit) != 1) die("bad unit line");
        } else if (strcmp(kind, "extent") == 0) {
            char t[4];
            unsigned s, n;
            const char *p;
            if (fscanf(f, "%3s %u %u", t, &s, &n) != 3 || !(p = strchr(tables, t[0])) || t[0] == 0)
                die("bad extent line");
            start[p - tables] = s;
            count[p - tables] = n;
        } else {
            unsigned a, v;
            if (fscanf(f, "%u %u", &a, &v) != 2) die("bad value line");
        }
    }
    map = modbus_mapping_new_start_address(start[0], count[0], start[1], count[1],
                                           start[2], count[2], start[3], count[3]);
    if (!map) {
        fprintf(stderr, "libmodbus_server: modbus_mapping_new_start_address: %s\n", modbus_strerror(errno));
        return 1;
    }
    /* pass 2: values */
    rewind(f);
    while (fscanf(f, "%15s", kind) == 1) {
        unsigned a, v;
        const char *p;
        if (strcmp(kind, "unit") == 0) {
            if (fscanf(f, "%*d") != 0) die("bad unit line");
            continue;
        }
        if (strcmp(kind, "extent") == 0) {
            if (fscanf(f, "%*s %*u %*u") != 0) die("bad extent line");
            continue;
        }
        if (fscanf(f, "%u %u", &a, &v) != 2 || !(p = strchr(tables, kind[0])) || kind[0] == 0 || kind[1] != 0)
            die("bad value line");
        int t = p - tables;
        if (a < start[t] || a >= start[t] + count[t])
            die("value outside its table's extent");
        switch (t) {
        case 0: map->tab_bits[a - start[t]] = v ? 1 : 0; break;
        case 1: map->tab_input_bits[a - start[t]] = v ? 1 : 0; break;
        case 2: map->tab_registers[a - start[t]] = (uint16_t)v; break;
        case 3: map->tab_input_registers[a - start[t]] = (uint16_t)v; break;
        }
    }
    fclose(f);

    ctx = modbus_new_tcp(host, port);
    if (!ctx)
        die("modbus_new_tcp failed");
    modbus_set_slave(ctx, unit);
    server_socket = modbus_tcp_listen(ctx, 64);
    if (server_socket == -1) {
        fprintf(stderr, "libmodbus_server: cannot listen on %s:%d: %s\n", host, port, modbus_strerror(errno));
        return 1;
    }
    struct sockaddr_in bound;
    socklen_t blen = sizeof(bound);
    if (getsockname(server_socket, (struct sockaddr *)&bound, &blen) == -1)
        die("getsockname failed");
    printf("version: %u.%u.%u\n", libmodbus_version_major, libmodbus_version_minor,
           libmodbus_version_micro);
    printf("listening on modbus+tcp://%s:%d\n", host, ntohs(bound.sin_port));
    fflush(stdout);

    fd_set refset, rdset;
    int fdmax = server_socket;
    uint8_t query[MODBUS_TCP_MAX_ADU_LENGTH];
    FD_ZERO(&refset);
    FD_SET(server_socket, &refset);
    for (;;) {
        rdset = refset;
        if (select(fdmax + 1, &rdset, NULL, NULL, NULL) == -1) {
            if (errno == EINTR)
                continue;
            die("select failed");
        }
        for (int fd = 0; fd <= fdmax; fd++) {
            if (!FD_ISSET(fd, &rdset))
                continue;
            if (fd == server_socket) {
                struct sockaddr_in client;
                socklen_t len = sizeof(client);
                int s = accept(server_socket, (struct sockaddr *)&client, &len);
                if (s == -1)
                    continue;
                if (s >= FD_SETSIZE) { /* select() cannot watch it */
                    close(s);
                    continue;
                }
                FD_SET(s, &refset);
                if (s > fdmax)
                    fdmax = s;
            } else {
                modbus_set_socket(ctx, fd);
                int rc = modbus_receive(ctx, query);
                if (rc > 0) {
                    modbus_reply(ctx, query, rc, map);
                } else if (rc == -1) {
                    /* connection closed by the client or error: drop it */
                    close(fd);
                    FD_CLR(fd, &refset);
                    if (fd == fdmax)
                        while (fdmax > server_socket && !FD_ISSET(fdmax, &refset))
                            fdmax--;
                }
            }
        }
    }
    return 0;
}
