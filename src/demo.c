#include "demo.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "avro_enc.h"
#include "config.h"
#include "dmpflow.h"
#include "gen.h"
#include "log.h"
#include "util.h"

#define DEMO_PARTITIONS 4
#define DEMO_RATE 5000.0 /* events/s; event time runs at 5x wall-clock time */
#define TOP_N 5

static atomic_int demo_stop;
static dmp_daemon_t *demo_daemon;

static void demo_signal(int sig) {
        (void)sig;
        atomic_store(&demo_stop, 1);
        if (demo_daemon)
                dmp_daemon_stop(demo_daemon);
}

/* ---- the printer: reads the result topic like any consumer would ---- */

typedef struct shown_result {
        char key[64];
        int64_t count;
        double sum, mean;
} shown_result_t;

typedef struct window_view {
        int64_t start, end;
        char window[64];
        shown_result_t top[TOP_N];
        int ntop;
        int keys;
        int64_t events;
        int64_t last_ms; /* when the last record arrived */
} window_view_t;

typedef struct printer {
        const char *brokers;
        const char *topic;
        const char *window;        /* the window definition whose results are shown */
        const char *pattern_topic; /* NULL: no [pattern] */
        atomic_int stop;
        window_view_t views[64];
        int nviews;
        uint64_t records;
} printer_t;

static void view_add(window_view_t *v, const char *key, size_t kl, int64_t count, double sum,
                     double mean) {
        v->keys++;
        v->events += count;
        int pos = v->ntop;
        while (pos > 0 && v->top[pos - 1].sum < sum)
                pos--;
        if (pos >= TOP_N)
                return;
        if (v->ntop < TOP_N)
                v->ntop++;
        memmove(&v->top[pos + 1], &v->top[pos], sizeof(v->top[0]) * (size_t)(v->ntop - 1 - pos));
        shown_result_t *r = &v->top[pos];
        snprintf(r->key, sizeof(r->key), "%.*s", (int)kl, key);
        r->count = count;
        r->sum = sum;
        r->mean = mean;
}

static void fmt_time(char *buf, size_t n, int64_t ms) {
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, n, "%H:%M:%S", &tm);
}

static void view_print(const window_view_t *v) {
        char a[16], b[16];
        fmt_time(a, sizeof(a), v->start);
        fmt_time(b, sizeof(b), v->end);
        printf("\n window %s [%s, %s)  %d keys, %" PRId64 " events\n", v->window, a, b, v->keys,
               v->events);
        printf("   %-4s %-12s %12s %10s %8s\n", "rank", "key", "sum(score)", "mean", "events");
        for (int i = 0; i < v->ntop; i++)
                printf("   %-4d %-12s %12.2f %10.2f %8" PRId64 "\n", i + 1, v->top[i].key,
                       v->top[i].sum, v->top[i].mean, v->top[i].count);
        fflush(stdout);
}

/* Decodes schemas/window_result.avsc; only the "score" measure is shown. */
static void printer_record(printer_t *pr, const unsigned char *p, size_t len) {
        const unsigned char *end = p + len;
        const char *window, *kind, *key, *measure;
        size_t wl, kdl, kl, ml;
        int64_t start, wend, count;
        double sum, min, max, mean;
        if (!(p = dmp_avro_get_string(p, end, &window, &wl)) ||
            !(p = dmp_avro_get_string(p, end, &kind, &kdl)) ||
            !(p = dmp_avro_get_string(p, end, &key, &kl)) ||
            !(p = dmp_avro_get_long(p, end, &start)) || !(p = dmp_avro_get_long(p, end, &wend)) ||
            !(p = dmp_avro_get_string(p, end, &measure, &ml)) ||
            !(p = dmp_avro_get_long(p, end, &count)) || !(p = dmp_avro_get_double(p, end, &sum)) ||
            !(p = dmp_avro_get_double(p, end, &min)) || !(p = dmp_avro_get_double(p, end, &max)) ||
            !(p = dmp_avro_get_double(p, end, &mean)))
                return;
        pr->records++;
        if (ml != 5 || memcmp(measure, "score", 5) || wl != strlen(pr->window) ||
            memcmp(window, pr->window, wl))
                return;
        window_view_t *v = NULL;
        for (int i = 0; i < pr->nviews; i++)
                if (pr->views[i].start == start)
                        v = &pr->views[i];
        if (!v) {
                if (pr->nviews == (int)DMP_ARRAY_SIZE(pr->views))
                        return;
                v = &pr->views[pr->nviews++];
                memset(v, 0, sizeof(*v));
                v->start = start;
                v->end = wend;
                snprintf(v->window, sizeof(v->window), "%.*s", (int)wl, window);
        }
        view_add(v, key, kl, count, sum, mean);
        v->last_ms = dmp_mono_ms();
}

/* Decodes schemas/pattern.avsc and prints it on one line. */
static void printer_pattern(const unsigned char *p, size_t len) {
        const unsigned char *end = p + len;
        const char *name, *kind, *window, *source, *subject, *measure, *stat, *dir;
        size_t nl, kl, wl, sl, jl, ml, tl, dl;
        int64_t start, wend, rank, count, obs;
        double value, score, mean, sd;
        if (!(p = dmp_avro_get_string(p, end, &name, &nl)) ||
            !(p = dmp_avro_get_string(p, end, &kind, &kl)) ||
            !(p = dmp_avro_get_string(p, end, &window, &wl)) ||
            !(p = dmp_avro_get_long(p, end, &start)) || !(p = dmp_avro_get_long(p, end, &wend)) ||
            !(p = dmp_avro_get_string(p, end, &source, &sl)) ||
            !(p = dmp_avro_get_string(p, end, &subject, &jl)) ||
            !(p = dmp_avro_get_string(p, end, &measure, &ml)) ||
            !(p = dmp_avro_get_string(p, end, &stat, &tl)) ||
            !(p = dmp_avro_get_long(p, end, &rank)) || !(p = dmp_avro_get_double(p, end, &value)) ||
            !(p = dmp_avro_get_double(p, end, &score)) ||
            !(p = dmp_avro_get_double(p, end, &mean)) || !(p = dmp_avro_get_double(p, end, &sd)) ||
            !(p = dmp_avro_get_long(p, end, &count)) || !(p = dmp_avro_get_long(p, end, &obs)) ||
            !(p = dmp_avro_get_string(p, end, &dir, &dl)))
                return;
        char a[16], b[16];
        fmt_time(a, sizeof(a), start);
        fmt_time(b, sizeof(b), wend);
        if (kl == 4 && !memcmp(kind, "topk", 4))
                printf(" pattern %.*s [%s, %s)  #%" PRId64 " %.*s %.*s: %.*s(%.*s) = %.2f over "
                       "%" PRId64 " events\n", (int)nl, name, a, b, rank, (int)sl, source,
                       (int)jl, subject, (int)tl, stat, (int)ml, measure, value, count);
        else if (kl == 7 && !memcmp(kind, "anomaly", 7))
                printf(" pattern %.*s [%s, %s)  %.*s %.*s: %.*s(%.*s) = %.2f, z = %+.1f against "
                       "%.2f +- %.2f over its %" PRId64 " previous windows\n", (int)nl, name, a,
                       b, (int)sl, source, (int)jl, subject, (int)tl, stat, (int)ml, measure,
                       value, score, mean, sd, obs);
        else
                printf(" pattern %.*s [%s, %s)  %.*s %.*s: %.*s(%.*s) = %.2f, %.*s the bound by "
                       "%.2f (%" PRId64 " windows in a row)\n", (int)nl, name, a, b, (int)sl,
                       source, (int)jl, subject, (int)tl, stat, (int)ml, measure, value, (int)dl,
                       dir, score, obs);
        fflush(stdout);
}

/* Prints (and forgets) windows that received nothing for quiet_ms. */
static void printer_flush(printer_t *pr, int64_t quiet_ms) {
        int64_t now = dmp_mono_ms();
        for (;;) {
                int oldest = -1;
                for (int i = 0; i < pr->nviews; i++)
                        if (now - pr->views[i].last_ms >= quiet_ms &&
                            (oldest < 0 || pr->views[i].start < pr->views[oldest].start))
                                oldest = i;
                if (oldest < 0)
                        return;
                view_print(&pr->views[oldest]);
                pr->views[oldest] = pr->views[--pr->nviews];
        }
}

static void *printer_main(void *arg) {
        printer_t *pr = arg;
        char errstr[512];
        rd_kafka_conf_t *kc = rd_kafka_conf_new();
        rd_kafka_conf_set(kc, "bootstrap.servers", pr->brokers, NULL, 0);
        rd_kafka_conf_set(kc, "group.id", "dmpflow-demo-printer", NULL, 0);
        rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, errstr, sizeof(errstr));
        if (!rk) {
                dmp_error("demo printer: %s", errstr);
                return NULL;
        }
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);
        rd_kafka_topic_partition_list_add(l, pr->topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
        if (pr->pattern_topic)
                rd_kafka_topic_partition_list_add(l, pr->pattern_topic, 0)->offset =
                        RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_assign(rk, l);
        rd_kafka_topic_partition_list_destroy(l);
        while (!atomic_load(&pr->stop)) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
                if (m) {
                        if (m->err)
                                ;
                        else if (pr->pattern_topic &&
                                 !strcmp(rd_kafka_topic_name(m->rkt), pr->pattern_topic))
                                printer_pattern(m->payload, m->len);
                        else
                                printer_record(pr, m->payload, m->len);
                        rd_kafka_message_destroy(m);
                }
                printer_flush(pr, 300);
        }
        printer_flush(pr, 0);
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
        return NULL;
}

/* ---- the generator thread ---- */

typedef struct gen_thread {
        dmp_gen_opts_t opts;
        int rc;
        char errstr[512];
} gen_thread_t;

static void *gen_main(void *arg) {
        gen_thread_t *gt = arg;
        gt->rc = dmp_gen_produce(&gt->opts, &demo_stop, gt->errstr, sizeof(gt->errstr));
        return NULL;
}

static void *timer_main(void *arg) {
        int seconds = *(int *)arg;
        int64_t end = dmp_mono_ms() + (int64_t)seconds * 1000;
        while (!atomic_load(&demo_stop) && (seconds == 0 || dmp_mono_ms() < end))
                usleep(50000);
        atomic_store(&demo_stop, 1);
        if (demo_daemon)
                dmp_daemon_stop(demo_daemon);
        return NULL;
}

/* The first port from `port` on (20 tried) that 127.0.0.1 can bind now,
 * or -1. */
static int free_port(int port) {
        for (int p = port; p < port + 20 && p < 65536; p++) {
                int fd = socket(AF_INET, SOCK_STREAM, 0);
                if (fd < 0)
                        return -1;
                int one = 1;
                setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p),
                                         .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
                int ok = !bind(fd, (struct sockaddr *)&sa, sizeof(sa));
                close(fd);
                if (ok)
                        return p;
        }
        return -1;
}

int dmp_demo_run(const char *config_path, int seconds, int http_port) {
        char errstr[512];
        int rc = DMP_EXIT_FAILURE;

        dmp_conf_t *conf = dmp_conf_new();
        if (dmp_conf_load_file(conf, config_path)) {
                fputs(conf->errors, stderr);
                dmp_conf_destroy(conf);
                return DMP_EXIT_USAGE;
        }

        /* The embedded cluster: librdkafka's mock brokers, in this process. */
        rd_kafka_conf_t *mc_conf = rd_kafka_conf_new();
        rd_kafka_conf_set_log_cb(mc_conf, NULL);
        rd_kafka_t *mc_rk = rd_kafka_new(RD_KAFKA_PRODUCER, mc_conf, errstr, sizeof(errstr));
        if (!mc_rk) {
                fprintf(stderr, "dmpflow demo: %s\n", errstr);
                dmp_conf_destroy(conf);
                return DMP_EXIT_FAILURE;
        }
        rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(mc_rk, 1);
        const char *brokers = rd_kafka_mock_cluster_bootstraps(mc);
        rd_kafka_mock_topic_create(mc, conf->input.topic, DEMO_PARTITIONS, 1);
        rd_kafka_mock_topic_create(mc, conf->output.topic, 1, 1);
        for (int i = 0; i < conf->group_cnt; i++) /* one partition: the printer reads it all */
                rd_kafka_mock_topic_create(mc, conf->groups[i].topic, 1, 1);
        for (int i = 0; i < conf->pattern_cnt; i++)
                rd_kafka_mock_topic_create(mc, conf->patterns[i].topic, 1, 1);

        char state_dir[] = "/tmp/dmpflow-demo-XXXXXX";
        if (!mkdtemp(state_dir)) {
                perror("dmpflow demo: mkdtemp");
                goto out_cluster;
        }
        char override[600];
        snprintf(override, sizeof(override), "kafka.bootstrap.servers=%s", brokers);
        dmp_conf_set_override(conf, override);
        snprintf(override, sizeof(override), "state.dir=%s", state_dir);
        dmp_conf_set_override(conf, override);
        /* One instance on a throwaway cluster: no changelog (the mock cluster
         * creates no topics and answers no DescribeConfigs, whose wait would
         * cost the demo its first 5 s). */
        dmp_conf_set_override(conf, "state.changelog.enable=false");
        int port = http_port >= 0 ? free_port(http_port) : -1;
        if (http_port >= 0 && port < 0)
                fprintf(stderr, "dmpflow demo: no free port from %d on: no live page\n",
                        http_port);
        if (port > 0) { /* the page, where the demo's user is: this machine only */
                snprintf(override, sizeof(override), "http.port=%d", port);
                dmp_conf_set_override(conf, override);
                dmp_conf_set_override(conf, "http.address=127.0.0.1");
        }
        if (dmp_conf_validate(conf)) {
                fputs(conf->errors, stderr);
                rc = DMP_EXIT_USAGE;
                goto out_state;
        }
        dmp_log_set_repeat_interval(conf->log.repeat_interval_ms);
        if (dmp_log_level == DMP_LOG_INFO) /* keep the screen for the results */
                dmp_log_level = DMP_LOG_WARN;

        int config_error;
        demo_daemon = dmp_daemon_new(conf, &config_error, errstr, sizeof(errstr));
        if (!demo_daemon) {
                if (config_error)
                        fputs(conf->errors, stderr);
                else
                        fprintf(stderr, "dmpflow demo: %s\n", errstr);
                rc = config_error ? DMP_EXIT_USAGE : DMP_EXIT_FAILURE;
                goto out_state;
        }

        if (seconds)
                printf("dmpflow demo: embedded Kafka at %s, %d partitions; %.0f synthetic "
                       "events/s for %d s\n", brokers, DEMO_PARTITIONS, DEMO_RATE, seconds);
        else
                printf("dmpflow demo: embedded Kafka at %s, %d partitions; %.0f synthetic "
                       "events/s until Ctrl-C\n", brokers, DEMO_PARTITIONS, DEMO_RATE);
        if (port > 0)
                printf("live page: http://127.0.0.1:%d/ (served while the demo runs)\n", port);
        printf("pipeline: score = 0.7*price + 0.3*quantity per event; 10 s tumbling windows "
               "per user (event time, 1 s grace); top %d users of each closed window, and the "
               "patterns mined (config/demo.conf):\n", TOP_N);
        fflush(stdout);

        gen_thread_t gt;
        dmp_gen_opts_init(&gt.opts);
        gt.opts.brokers = brokers;
        gt.opts.topic = conf->input.topic;
        gt.opts.count = -1;
        gt.opts.rate = DEMO_RATE;
        gt.opts.keys = 200;
        gt.opts.ooo = 0.02;
        gt.opts.max_delay_ms = 3000;
        gt.opts.start_ms = dmp_now_ms() / 10000 * 10000;
        gt.opts.quiet = 1;
        printer_t pr = {.brokers = brokers, .topic = conf->output.topic,
                        .window = conf->windows[0].name,
                        .pattern_topic = conf->pattern_cnt ? conf->patterns[0].topic : NULL};

        struct sigaction sa = {.sa_handler = demo_signal};
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);

        pthread_t gen_tid, pr_tid;
        pthread_create(&gen_tid, NULL, gen_main, &gt);
        pthread_create(&pr_tid, NULL, printer_main, &pr);

        /* The daemon runs on this thread; a timer stops it. */
        pthread_t timer_tid;
        pthread_create(&timer_tid, NULL, timer_main, &seconds);

        int run_rc = dmp_daemon_run(demo_daemon, errstr, sizeof(errstr));
        atomic_store(&demo_stop, 1);
        pthread_join(timer_tid, NULL);
        pthread_join(gen_tid, NULL);
        sleep(1); /* let the printer read the last results */
        atomic_store(&pr.stop, 1);
        pthread_join(pr_tid, NULL);

        dmp_daemon_counters_t c;
        dmp_daemon_counters(demo_daemon, &c);
        printf("\nsummary: %" PRIu64 " events processed, %" PRIu64 " results published (%" PRIu64
               " read back), %" PRIu64 " late events dropped, %" PRIu64 " decode errors\n",
               c.events_in, c.results_out, pr.records, c.late_events, c.decode_errors);
        if (run_rc)
                fprintf(stderr, "dmpflow demo: %s\n", errstr);
        else if (gt.rc)
                fprintf(stderr, "dmpflow demo: generator: %s\n", gt.errstr);
        rc = run_rc || gt.rc ? DMP_EXIT_FAILURE : DMP_EXIT_OK;
        dmp_daemon_destroy(demo_daemon);
        demo_daemon = NULL;

out_state:
        if (dmp_rmtree(state_dir))
                dmp_warn("could not remove %s", state_dir);
out_cluster:
        rd_kafka_mock_cluster_destroy(mc);
        rd_kafka_destroy(mc_rk);
        dmp_conf_destroy(conf);
        return rc;
}

