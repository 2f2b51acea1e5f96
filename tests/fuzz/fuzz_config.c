/* libFuzzer target: the configuration (`make fuzz`; fuzz.h).
 *
 * Input: INI text up to the first NUL byte; each further chunk (ending at a
 * NUL byte or a newline) is a `-o section.name=value` override. They go through
 * dmp_conf_load_string, dmp_conf_set_override and dmp_conf_validate (the
 * property table, INI reading with its long-line and line-number handling,
 * cross references), the effective-configuration dump with its secret
 * redaction, and, for a configuration without errors, the pipeline
 * compiler (measure expressions, windows, groups, patterns) over a fixed
 * schema: the input's [input] schema paths are replaced, so that no file
 * the fuzzer names is read.
 *
 * Invariants: the error count matches the "file:line: message" lines; the
 * dump shows every secret of [kafka] as [redacted]; dmp_engine_check
 * counts the errors it adds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "engine.h"
#include "fuzz.h"
#include "util.h"

static void bad(const char *what, const dmp_conf_t *conf) {
        fprintf(stderr, "fuzz_config: %s\nerrors:\n%s\n", what, conf->errors ? conf->errors : "");
        abort();
}

int fuzz_config_init(void) {
        return 0;
}

void fuzz_config_fini(void) {
}

static int count_lines(const char *s, size_t n) {
        int c = 0;
        for (size_t i = 0; i < n; i++)
                c += s[i] == '\n';
        return c;
}

/* Schemas the compiler may read, by the input's last byte. */
static const char *const schemas[][2] = {
        {"schemas/event.avsc", ""},
        {"tests/schemas/every_type.avsc", ""},
        {"tests/schemas/wide_event.avsc", ""},
        {"tests/schemas/evolution/writer_v1.avsc", "tests/schemas/evolution/reader_added.avsc"},
};

int fuzz_config_one(const uint8_t *data, size_t size) {
        char *text = dmp_strndup((const char *)data, size);
        dmp_conf_t *conf = dmp_conf_new();
        dmp_conf_load_string(conf, "fuzz.ini", text);
        for (size_t at = strlen(text) + 1; at < size;) {
                const char *o = (const char *)data + at;
                size_t l = 0; /* (one argv string, a line) */
                while (at + l < size && o[l] && o[l] != '\n')
                        l++;
                char *ov = dmp_strndup(o, l);
                dmp_conf_set_override(conf, ov);
                free(ov);
                at += l + 1;
        }
        dmp_conf_validate(conf);
        if (count_lines(conf->errors, conf->errors_len) != conf->error_cnt ||
            (conf->errors && strlen(conf->errors) != conf->errors_len))
                bad("error count and messages differ", conf);
        dmp_buf_t dump = {0};
        dmp_conf_dump(conf, &dump);
        for (int i = 0; i < conf->kafka_cnt; i++) {
                /* a secret shows as "[kafka] name = [redacted]" */
                const char *n = conf->kafka[i].name;
                if (!dmp_conf_is_secret(n) || !*conf->kafka[i].value)
                        continue;
                char want[512];
                snprintf(want, sizeof(want), "[kafka] %s = [redacted]\n", n);
                if (strlen(n) < 400 && (!dump.p || !strstr(dump.p, want)))
                        bad("a secret not redacted in the dump", conf);
        }
        dmp_buf_free(&dump);
        (void)dmp_conf_line(conf, "input", "schema");
        (void)dmp_conf_kafka_get(conf, "bootstrap.servers");
        if (!conf->error_cnt) {
                char ov[256];
                int s = size ? data[size - 1] % 4 : 0;
                snprintf(ov, sizeof(ov), "input.schema=%s", schemas[s][0]);
                dmp_conf_set_override(conf, ov);
                snprintf(ov, sizeof(ov), "input.reader.schema=%s", schemas[s][1]);
                dmp_conf_set_override(conf, ov);
                int before = conf->error_cnt;
                int n = dmp_engine_check(conf);
                if (n != conf->error_cnt - before)
                        bad("dmp_engine_check's count differs from the errors it added", conf);
        }
        dmp_conf_destroy(conf);
        free(text);
        return 0;
}

FUZZ_ENTRY(config)
