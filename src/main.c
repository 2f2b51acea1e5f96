/* The dmpflow command: a thin main over the library. Exit codes: 0 ok,
 * 1 runtime failure, 2 bad configuration or usage. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cat.h"
#include "config.h"
#include "demo.h"
#include "engine.h"
#include "dmpflow.h"
#include "gen.h"
#include "log.h"
#include "preflight.h"
#include "statecmd.h"

static dmp_daemon_t *running;
static atomic_int cat_stop;

static void on_signal(int sig) {
        if (sig == SIGHUP) {
                dmp_log_request_reopen();
                return;
        }
        if (running)
                dmp_daemon_stop(running);
        atomic_store(&cat_stop, 1);
}

/* The usage of each command: `dmpflow --help` prints them all, `dmpflow
 * CMD --help` (or -h) its own, both to stdout with exit 0. */
static const struct {
        const char *cmd, *text;
} usages[] = {
        {"run", "  dmpflow run -c FILE [-o section.name=value]...\n"
                "        run the pipeline of FILE until SIGINT/SIGTERM\n"},
        {"check", "  dmpflow check -c FILE [-o section.name=value]...\n"
                  "        validate FILE (and the input schema) and exit\n"},
        {"demo", "  dmpflow demo [-c FILE] [--seconds N] [--http-port P | --no-http]\n"
                 "        run the pipeline on an embedded Kafka with synthetic events\n"
                 "        (default config/demo.conf, 20 s; 0: until Ctrl-C), its live page on\n"
                 "        http://127.0.0.1:P/ (default 8464, or the next free port)\n"},
        {"gen", "  dmpflow gen [-b BROKERS] [-t TOPIC] [-n COUNT] [--rate N] [--keys N]\n"
                "              [--keys-in-order] [--groups N] [--seed N] [--ooo FRACTION]\n"
                "              [--max-delay-ms N] [--start-ms N] [--step-ms N] [--null-clicks FRACTION]\n"
                "              [--registry URL] [--nexmark]\n"
                "        produce synthetic events (schemas/event.avsc) keyed by user_id, or\n"
                "        Nexmark bids (schemas/nexmark_bid.avsc) keyed by auction\n"},
        {"state", "  dmpflow state list|verify -c FILE [-p PARTITION] [-o section.name=value]...\n"
                  "  dmpflow state dump -c FILE -p PARTITION -k KEY\n"
                  "        inspect the state store of FILE (read-only): partitions with offsets,\n"
                  "        stream times and entry counts; a key's entries; verify every value\n"},
        {"cat", "  dmpflow cat [-b BROKERS] -t TOPIC [--schema FILE | --registry URL] [-c FILE]\n"
                "              [--from-beginning | --offset N] [-n COUNT] [--follow]\n"
                "              [--partition P] [--hex]\n"
                "        print a topic's records as JSON lines, decoded: with -c FILE the\n"
                "        result, group, pattern, late and dead-letter topics it writes;\n"
                "        --offset N < 0: the last -N records of each partition\n"},
};

static void usage(FILE *fp) {
        fprintf(fp, "dmpflow %s: real-time windowed aggregation of Avro events on Kafka\n\nusage:\n",
                DMPFLOW_VERSION);
        for (size_t i = 0; i < sizeof(usages) / sizeof(usages[0]); i++)
                fputs(usages[i].text, fp);
        fputs("  dmpflow CMD --help   the usage of one command\n"
              "  dmpflow --help-config [--markdown]   the configuration reference\n"
              "  dmpflow --version\n"
              "\n"
              "exit codes: 0 ok, 1 runtime failure, 2 bad configuration or usage\n",
              fp);
}

/* `dmpflow CMD --help`: whether argv (CMD's arguments) asks for CMD's
 * usage; if so prints it. Any position, as getopt would accept it. */
static int cmd_help(const char *cmd, int argc, char **argv) {
        int asked = 0;
        for (int i = 1; i < argc && !asked; i++)
                asked = !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
        if (!asked)
                return 0;
        for (size_t i = 0; i < sizeof(usages) / sizeof(usages[0]); i++)
                if (!strcmp(usages[i].cmd, cmd))
                        printf("usage:\n%s", usages[i].text);
        return 1;
}

/* Loads and validates -c FILE with -o overrides; returns NULL after
 * printing the errors. */
static dmp_conf_t *load_conf(const char *path, char **overrides, int noverrides) {
        dmp_conf_t *conf = dmp_conf_new();
        dmp_conf_load_file(conf, path);
        for (int i = 0; i < noverrides; i++)
                dmp_conf_set_override(conf, overrides[i]);
        if (!conf->error_cnt)
                dmp_conf_validate(conf);
        if (conf->error_cnt) {
                fputs(conf->errors, stderr);
                dmp_conf_destroy(conf);
                return NULL;
        }
        dmp_log_level = conf->log.level;
        dmp_log_set_repeat_interval(conf->log.repeat_interval_ms);
        char err[512];
        if (dmp_log_configure(conf->log.format == DMP_LOG_JSON, conf->log.file, err,
                              sizeof(err))) {
                fprintf(stderr, "%s: %s\n", path, err);
                dmp_conf_destroy(conf);
                return NULL;
        }
        return conf;
}

static int cmd_run(int argc, char **argv, int check_only) {
        const char *path = NULL;
        char **overrides = calloc((size_t)argc, sizeof(char *));
        int noverrides = 0, c;
        static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                             {"set", required_argument, NULL, 'o'},
                                             {NULL, 0, NULL, 0}};
        while ((c = getopt_long(argc, argv, "c:o:", opts, NULL)) != -1) {
                if (c == 'c')
                        path = optarg;
                else if (c == 'o')
                        overrides[noverrides++] = optarg;
                else {
                        free(overrides);
                        return DMP_EXIT_USAGE;
                }
        }
        if (!path) {
                fprintf(stderr, "dmpflow: -c FILE is required\n");
                free(overrides);
                return DMP_EXIT_USAGE;
        }
        dmp_conf_t *conf = load_conf(path, overrides, noverrides);
        free(overrides);
        if (!conf)
                return DMP_EXIT_USAGE;

        /* The same checks for both: run rejects what check rejects, with the
         * same messages (src/preflight.h). */
        dmp_buf_t notes = {0};
        if (dmp_preflight(conf, check_only ? &notes : NULL)) {
                fputs(conf->errors, stderr);
                dmp_conf_destroy(conf);
                return DMP_EXIT_USAGE;
        }
        if (check_only) {
                for (char *l = notes.p, *nl; l && (nl = strchr(l, '\n')); l = nl + 1)
                        fprintf(stderr, "%s: note: %.*s\n", path, (int)(nl - l), l);
                printf("%s: ok\n", path);
                dmp_buf_free(&notes);
                dmp_conf_destroy(conf);
                return DMP_EXIT_OK;
        }

        char errstr[512];
        int config_error, rc;
        running = dmp_daemon_new(conf, &config_error, errstr, sizeof(errstr));
        if (!running) {
                if (config_error && conf->errors) {
                        fputs(conf->errors, stderr);
                        rc = DMP_EXIT_USAGE;
                } else if (config_error) { /* (a bug: the error not added to conf) */
                        fprintf(stderr, "dmpflow: %s\n", errstr);
                        rc = DMP_EXIT_USAGE;
                } else {
                        fprintf(stderr, "dmpflow: %s\n", errstr);
                        rc = DMP_EXIT_FAILURE;
                }
        } else {
                struct sigaction sa = {.sa_handler = on_signal};
                sigaction(SIGINT, &sa, NULL);
                sigaction(SIGTERM, &sa, NULL);
                sigaction(SIGHUP, &sa, NULL);
                signal(SIGPIPE, SIG_IGN);
                int r = dmp_daemon_run(running, errstr, sizeof(errstr));
                rc = r == -2 ? DMP_EXIT_USAGE : r ? DMP_EXIT_FAILURE : DMP_EXIT_OK;
                if (rc)
                        fprintf(stderr, "dmpflow: %s\n", errstr);
        }
        dmp_daemon_destroy(running);
        running = NULL;
        dmp_log_repeats_tick(INT64_MAX); /* the counts of repeated lines not yet written */
        dmp_conf_destroy(conf);
        return rc;
}

static int cmd_state(int argc, char **argv) {
        const char *path = NULL, *key = NULL;
        int partition = -1, c;
        char **overrides = calloc((size_t)argc, sizeof(char *));
        int noverrides = 0;
        static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                             {"set", required_argument, NULL, 'o'},
                                             {"partition", required_argument, NULL, 'p'},
                                             {"key", required_argument, NULL, 'k'},
                                             {NULL, 0, NULL, 0}};
        dmp_state_action_t action;
        const char *what = argc > 1 ? argv[1] : "";
        if (!strcmp(what, "list"))
                action = DMP_STATE_LIST;
        else if (!strcmp(what, "dump"))
                action = DMP_STATE_DUMP;
        else if (!strcmp(what, "verify"))
                action = DMP_STATE_VERIFY;
        else {
                fprintf(stderr, "dmpflow state: expected list, dump or verify\n");
                free(overrides);
                return DMP_EXIT_USAGE;
        }
        argc--;
        argv++;
        while ((c = getopt_long(argc, argv, "c:o:p:k:", opts, NULL)) != -1) {
                char *end;
                if (c == 'c')
                        path = optarg;
                else if (c == 'o')
                        overrides[noverrides++] = optarg;
                else if (c == 'k')
                        key = optarg;
                else if (c == 'p' && (partition = (int)strtol(optarg, &end, 10)) >= 0 && !*end)
                        continue;
                else {
                        fprintf(stderr, "dmpflow state: bad option (see dmpflow --help)\n");
                        free(overrides);
                        return DMP_EXIT_USAGE;
                }
        }
        if (!path || (action == DMP_STATE_DUMP && (partition < 0 || !key))) {
                fprintf(stderr, "dmpflow state: -c FILE is required (dump: and -p, -k)\n");
                free(overrides);
                return DMP_EXIT_USAGE;
        }
        dmp_conf_t *conf = load_conf(path, overrides, noverrides);
        free(overrides);
        if (!conf)
                return DMP_EXIT_USAGE;
        int rc = dmp_state_run(conf, action, partition, key, stdout, stderr);
        dmp_conf_destroy(conf);
        return rc;
}

static int parse_num(const char *opt, const char *s, double *out) {
        char *end;
        *out = strtod(s, &end);
        if (end == s || *end) {
                fprintf(stderr, "dmpflow gen: %s: \"%s\" is not a number\n", opt, s);
                return -1;
        }
        return 0;
}

static int cmd_gen(int argc, char **argv) {
        dmp_gen_opts_t o;
        dmp_gen_opts_init(&o);
        static const struct option opts[] = {
                {"brokers", required_argument, NULL, 'b'},
                {"topic", required_argument, NULL, 't'},
                {"count", required_argument, NULL, 'n'},
                {"rate", required_argument, NULL, 'r'},
                {"keys", required_argument, NULL, 'k'},
                {"groups", required_argument, NULL, 'g'},
                {"seed", required_argument, NULL, 's'},
                {"ooo", required_argument, NULL, 'O'},
                {"max-delay-ms", required_argument, NULL, 'D'},
                {"start-ms", required_argument, NULL, 'S'},
                {"step-ms", required_argument, NULL, 'T'},
                {"null-clicks", required_argument, NULL, 'N'},
                {"registry", required_argument, NULL, 'R'},
                {"nexmark", no_argument, NULL, 'X'},
                {"keys-in-order", no_argument, NULL, 'K'},
                {NULL, 0, NULL, 0}};
        int c;
        double v;
        while ((c = getopt_long(argc, argv, "b:t:n:", opts, NULL)) != -1) {
                if (c == 'b') {
                        o.brokers = optarg;
                        continue;
                }
                if (c == 't') {
                        o.topic = optarg;
                        continue;
                }
                if (c == 'R') {
                        o.registry_url = optarg;
                        continue;
                }
                if (c == 'K') { /* key i % keys: every key once per --keys events */
                        o.keys_in_order = 1;
                        continue;
                }
                if (c == 'X') {
                        o.nexmark = 1;
                        o.schema_path = "schemas/nexmark_bid.avsc";
                        continue;
                }
                if (c == '?' || parse_num(argv[optind - 1], optarg, &v))
                        return DMP_EXIT_USAGE;
                switch (c) {
                case 'n': o.count = (int64_t)v; break;
                case 'r': o.rate = v; break;
                case 'k': o.keys = (int)v; break;
                case 'g': o.groups = (int)v; break;
                case 's': o.seed = (uint64_t)v; break;
                case 'O': o.ooo = v; break;
                case 'D': o.max_delay_ms = (int64_t)v; break;
                case 'S': o.start_ms = (int64_t)v; break;
                case 'T': o.step_ms = (int64_t)v; break;
                case 'N': o.null_clicks = v; break;
                }
        }
        if (o.keys < 1 || o.groups < 1 || o.ooo < 0 || o.ooo > 1 || o.max_delay_ms < 0 ||
            o.null_clicks < 0 || o.null_clicks > 1) {
                fprintf(stderr, "dmpflow gen: need --keys >= 1, --groups >= 1, 0 <= --ooo <= 1, "
                                "--max-delay-ms >= 0, 0 <= --null-clicks <= 1\n");
                return DMP_EXIT_USAGE;
        }
        char errstr[512];
        if (dmp_gen_produce(&o, NULL, errstr, sizeof(errstr))) {
                fprintf(stderr, "dmpflow gen: %s\n", errstr);
                return DMP_EXIT_FAILURE;
        }
        return DMP_EXIT_OK;
}

static int cmd_cat(int argc, char **argv) {
        dmp_cat_opts_t o;
        dmp_cat_opts_init(&o);
        const char *path = NULL;
        char **overrides = calloc((size_t)argc, sizeof(char *));
        int noverrides = 0, c, from_beginning = 0;
        static const struct option opts[] = {{"brokers", required_argument, NULL, 'b'},
                                             {"topic", required_argument, NULL, 't'},
                                             {"schema", required_argument, NULL, 'S'},
                                             {"registry", required_argument, NULL, 'R'},
                                             {"config", required_argument, NULL, 'c'},
                                             {"set", required_argument, NULL, 'o'},
                                             {"from-beginning", no_argument, NULL, 'B'},
                                             {"offset", required_argument, NULL, 'O'},
                                             {"count", required_argument, NULL, 'n'},
                                             {"follow", no_argument, NULL, 'f'},
                                             {"partition", required_argument, NULL, 'p'},
                                             {"hex", no_argument, NULL, 'H'},
                                             {NULL, 0, NULL, 0}};
        while ((c = getopt_long(argc, argv, "b:t:c:o:n:fp:", opts, NULL)) != -1) {
                char *end = NULL;
                long long v = 0;
                if (c == 'O' || c == 'n' || c == 'p') {
                        errno = 0;
                        v = strtoll(optarg, &end, 10);
                        if (end == optarg || *end || errno || (c != 'O' && v < 0) ||
                            (c == 'p' && v > INT32_MAX)) {
                                fprintf(stderr, "dmpflow cat: %s: \"%s\" is not a valid number\n",
                                        argv[optind - 1], optarg);
                                free(overrides);
                                return DMP_EXIT_USAGE;
                        }
                }
                switch (c) {
                case 'b': o.brokers = optarg; break;
                case 't': o.topic = optarg; break;
                case 'S': o.schema_path = optarg; break;
                case 'R': o.registry_url = optarg; break;
                case 'c': path = optarg; break;
                case 'o': overrides[noverrides++] = optarg; break;
                case 'B': from_beginning = 1; break;
                case 'O': o.has_offset = 1; o.offset = v; break;
                case 'n': o.count = v; break;
                case 'f': o.follow = 1; break;
                case 'p': o.partition = (int32_t)v; break;
                case 'H': o.hex = 1; break;
                default:
                        free(overrides);
                        return DMP_EXIT_USAGE;
                }
        }
        if (!o.topic || optind < argc || (from_beginning && o.has_offset)) {
                fprintf(stderr, "dmpflow cat: %s (see dmpflow --help)\n",
                        !o.topic ? "-t TOPIC is required"
                        : optind < argc ? "unexpected arguments"
                                        : "--from-beginning and --offset exclude each other");
                free(overrides);
                return DMP_EXIT_USAGE;
        }
        dmp_conf_t *conf = NULL;
        if (path && !(conf = load_conf(path, overrides, noverrides))) {
                free(overrides);
                return DMP_EXIT_USAGE;
        }
        free(overrides);
        o.conf = conf;
        o.stop = &cat_stop;
        struct sigaction sa = {.sa_handler = on_signal};
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        signal(SIGPIPE, SIG_IGN); /* `| head`: a failed write ends cat */
        int rc = dmp_cat_run(&o, stdout, stderr);
        dmp_conf_destroy(conf);
        return rc;
}

static int cmd_demo(int argc, char **argv) {
        const char *path = "config/demo.conf";
        int seconds = 20, port = DMP_DEMO_HTTP_PORT, c;
        static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                             {"seconds", required_argument, NULL, 's'},
                                             {"http-port", required_argument, NULL, 'P'},
                                             {"no-http", no_argument, NULL, 'N'},
                                             {NULL, 0, NULL, 0}};
        while ((c = getopt_long(argc, argv, "c:s:", opts, NULL)) != -1) {
                char *end = NULL;
                if (c == 'c')
                        path = optarg;
                else if (c == 's')
                        seconds = (int)strtol(optarg, &end, 10);
                else if (c == 'P')
                        port = (int)strtol(optarg, &end, 10);
                else if (c == 'N')
                        port = -1;
                else
                        return DMP_EXIT_USAGE;
                if (end && (end == optarg || *end)) {
                        fprintf(stderr, "dmpflow demo: \"%s\" is not a number\n", optarg);
                        return DMP_EXIT_USAGE;
                }
        }
        if (seconds < 0 || port == 0 || port > 65535) {
                fprintf(stderr, "dmpflow demo: need --seconds >= 0 (0: until Ctrl-C) and "
                                "0 < --http-port < 65536\n");
                return DMP_EXIT_USAGE;
        }
        return dmp_demo_run(path, seconds, port);
}

/* jemalloc's options (the daemon links it, see the Makefile; glibc and the
 * sanitizers ignore this symbol; MALLOC_CONF in the environment adds to
 * it). Freed pages go back to the kernel after 500 ms instead of 10 s, and
 * at once instead of lingering as "muzzy": the consumer's prefetch churns
 * through small allocations (docs/PERFORMANCE.md "Measurements behind the
 * code"). */
const char *malloc_conf = "dirty_decay_ms:500,muzzy_decay_ms:0";

int main(int argc, char **argv) {
        if (argc < 2) {
                usage(stderr);
                return DMP_EXIT_USAGE;
        }
        const char *cmd = argv[1];
        for (size_t i = 0; i < sizeof(usages) / sizeof(usages[0]); i++)
                if (!strcmp(cmd, usages[i].cmd) && cmd_help(cmd, argc - 1, argv + 1))
                        return DMP_EXIT_OK;
        if (!strcmp(cmd, "run") || !strcmp(cmd, "check"))
                return cmd_run(argc - 1, argv + 1, !strcmp(cmd, "check"));
        if (!strcmp(cmd, "state"))
                return cmd_state(argc - 1, argv + 1);
        if (!strcmp(cmd, "gen"))
                return cmd_gen(argc - 1, argv + 1);
        if (!strcmp(cmd, "demo"))
                return cmd_demo(argc - 1, argv + 1);
        if (!strcmp(cmd, "cat"))
                return cmd_cat(argc - 1, argv + 1);
        if (!strcmp(cmd, "--help-config")) {
                dmp_conf_print_reference(stdout, argc > 2 && !strcmp(argv[2], "--markdown"));
                return DMP_EXIT_OK;
        }
        if (!strcmp(cmd, "--version")) {
                printf("dmpflow %s\n", DMPFLOW_VERSION);
                return DMP_EXIT_OK;
        }
        if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
                usage(stdout);
                return DMP_EXIT_OK;
        }
        fprintf(stderr, "dmpflow: unknown command \"%s\"\n\n", cmd);
        usage(stderr);
        return DMP_EXIT_USAGE;
}
