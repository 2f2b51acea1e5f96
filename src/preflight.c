/* What check and run verify before anything starts (preflight.h). */
#include "preflight.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "kafkaconf.h"
#include "store.h"

/* Whether address:port can be listened on now (as libmicrohttpd will). */
static int port_taken(const char *address, int port) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        if (inet_pton(AF_INET, address, &sa.sin_addr) != 1)
                return 0; /* admin.c reports it */
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
        if (fd < 0)
                return 0;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        int taken = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) && errno == EADDRINUSE;
        close(fd);
        return taken;
}

int dmp_preflight(dmp_conf_t *conf, dmp_buf_t *notes) {
        int before = conf->error_cnt;
        dmp_engine_t *e = dmp_engine_compile(conf);
        dmp_kafkaconf_check(conf, notes);
        if (e) { /* the store's identity is the compiled pipeline's */
                char err[1024];
                int holder = 0;
                if (dmp_store_probe(conf->state.dir, dmp_engine_fingerprint(e), &holder, err,
                                    sizeof(err)))
                        dmp_conf_error(conf, dmp_conf_line(conf, "state", "dir"),
                                       "[state] dir: %s", err);
                else if (holder > 0 && notes)
                        dmp_buf_printf(notes, "the state directory %s is in use by process %d "
                                       "(a running dmpflow?): run cannot start until it stops\n",
                                       conf->state.dir, holder);
                dmp_engine_destroy(e);
        }
        if (conf->http.port > 0 && notes && port_taken(conf->http.address, (int)conf->http.port))
                dmp_buf_printf(notes, "[http] port %d on %s is in use now: run cannot start its "
                               "endpoint until it is free\n", (int)conf->http.port,
                               conf->http.address);
        return conf->error_cnt - before;
}
