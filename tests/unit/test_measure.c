/* Unit tests of src/measure.c: parsing of weighted sums and evaluation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "measure.h"

/* Returns the index of the term of `field`, failing if absent. */
static int term_of(const dmp_measure_t *m, const char *field) {
        for (int i = 0; i < m->nterms; i++)
                if (!strcmp(m->terms[i].field, field))
                        return i;
        fail_msg("no term for field %s", field);
        return -1;
}

static void test_weighted_sum(void **state) {
        (void)state;
        dmp_measure_t m;
        char err[256] = "";
        assert_int_equal(dmp_measure_parse(&m, "score", "0.7*price + 0.3*quantity", err,
                                           sizeof(err)), 0);
        assert_string_equal(m.name, "score");
        assert_int_equal(m.nterms, 2);
        assert_string_equal(m.terms[0].field, "price");
        assert_string_equal(m.terms[1].field, "quantity");
        assert_true(m.terms[0].coef == 0.7);
        assert_true(m.terms[1].coef == 0.3);
        dmp_measure_clear(&m);
        assert_int_equal(m.nterms, 0);
        assert_null(m.name);
}

static void test_field_times_number_minus(void **state) {
        (void)state;
        dmp_measure_t m;
        char err[256];
        assert_int_equal(dmp_measure_parse(&m, "m", "price*2 - clicks", err, sizeof(err)), 0);
        assert_int_equal(m.nterms, 2);
        assert_true(m.terms[term_of(&m, "price")].coef == 2.0);
        assert_true(m.terms[term_of(&m, "clicks")].coef == -1.0);
        dmp_measure_clear(&m);

        /* no spaces, leading '+', exponents, leading '.' */
        assert_int_equal(dmp_measure_parse(&m, "m", "+a-1.5e1*b+c*.25", err, sizeof(err)), 0);
        assert_int_equal(m.nterms, 3);
        assert_true(m.terms[term_of(&m, "a")].coef == 1.0);
        assert_true(m.terms[term_of(&m, "b")].coef == -15.0);
        assert_true(m.terms[term_of(&m, "c")].coef == 0.25);
        dmp_measure_clear(&m);
}

static void test_unary_minus(void **state) {
        (void)state;
        dmp_measure_t m;
        char err[256];
        assert_int_equal(dmp_measure_parse(&m, "neg", "-x", err, sizeof(err)), 0);
        assert_int_equal(m.nterms, 1);
        assert_string_equal(m.terms[0].field, "x");
        assert_true(m.terms[0].coef == -1.0);
        dmp_measure_clear(&m);

        assert_int_equal(dmp_measure_parse(&m, "neg", "  - 3 * _y1  ", err, sizeof(err)), 0);
        assert_int_equal(m.nterms, 1);
        assert_string_equal(m.terms[0].field, "_y1");
        assert_true(m.terms[0].coef == -3.0);
        dmp_measure_clear(&m);
}

static void test_repeated_field_summed(void **state) {
        (void)state;
        dmp_measure_t m;
        char err[256];
        assert_int_equal(dmp_measure_parse(&m, "m", "x + 2*x", err, sizeof(err)), 0);
        assert_int_equal(m.nterms, 1);
        assert_true(m.terms[0].coef == 3.0);
        dmp_measure_clear(&m);

        assert_int_equal(dmp_measure_parse(&m, "m", "x + y - 0.5*x + y*4 - x", err, sizeof(err)),
                         0);
        assert_int_equal(m.nterms, 2);
        assert_true(m.terms[term_of(&m, "x")].coef == -0.5);
        assert_true(m.terms[term_of(&m, "y")].coef == 5.0);
        dmp_measure_clear(&m);

        /* a field name that is a prefix of another is another field */
        assert_int_equal(dmp_measure_parse(&m, "m", "ab + a", err, sizeof(err)), 0);
        assert_int_equal(m.nterms, 2);
        dmp_measure_clear(&m);
}

static void expect_parse_error(const char *expr) {
        dmp_measure_t m;
        char err[256] = "";
        if (dmp_measure_parse(&m, "m", expr, err, sizeof(err)) != -1)
                fail_msg("\"%s\" parsed", expr);
        if (!err[0])
                fail_msg("\"%s\": no message", expr);
        /* nothing to free on error */
        assert_int_equal(m.nterms, 0);
        assert_null(m.name);
}

static void test_errors(void **state) {
        (void)state;
        expect_parse_error("");
        expect_parse_error("   ");
        expect_parse_error("2");
        expect_parse_error("price +");
        expect_parse_error("price * ");
        expect_parse_error("3*");
        expect_parse_error("a b");
        expect_parse_error("a * b");
        expect_parse_error("2*3");
        expect_parse_error("x*2*y");
        expect_parse_error("x + + y");
        expect_parse_error("x*1e999");
        expect_parse_error("(x)");

        dmp_measure_t m;
        char err[256];
        assert_int_equal(dmp_measure_parse(&m, "m", "", err, sizeof(err)), -1);
        assert_non_null(strstr(err, "empty"));
        assert_int_equal(dmp_measure_parse(&m, "m", "a b", err, sizeof(err)), -1);
        assert_non_null(strstr(err, "\"b\""));
}

static void test_error_after_terms_frees(void **state) {
        (void)state;
        /* an error after fields were allocated: nothing left to free (checked
         * by valgrind / ASan) and m is empty */
        expect_parse_error("a + b + c + ");
}

static void test_too_many_terms(void **state) {
        (void)state;
        char expr[1024] = "f0";
        for (int i = 1; i <= DMP_MEASURE_MAX_TERMS; i++) {
                char t[16];
                snprintf(t, sizeof(t), " + f%d", i);
                strcat(expr, t);
        }
        expect_parse_error(expr); /* 33 fields */
        /* 32 distinct fields are fine, and repeating them adds none */
        *strrchr(expr, '+') = '\0';
        strcat(expr, "+ f0");
        dmp_measure_t m;
        char err[256];
        assert_int_equal(dmp_measure_parse(&m, "m", expr, err, sizeof(err)), 0);
        assert_int_equal(m.nterms, DMP_MEASURE_MAX_TERMS);
        assert_true(m.terms[term_of(&m, "f0")].coef == 2.0);
        dmp_measure_clear(&m);
}

static void test_eval(void **state) {
        (void)state;
        dmp_measure_t m;
        char err[256];
        assert_int_equal(dmp_measure_parse(&m, "m", "0.5*a + b*-0 - 2*c", err, sizeof(err)), -1);
        assert_int_equal(dmp_measure_parse(&m, "m", "0.5*a - 2*c", err, sizeof(err)), 0);
        m.terms[term_of(&m, "a")].slot = 3;
        m.terms[term_of(&m, "c")].slot = 63;
        double vals[64] = {0};
        vals[3] = 10.0;
        vals[63] = 1.25;
        vals[0] = 1e9; /* not used */
        double out = -1.0;
        unsigned long long all = (1ULL << 3) | (1ULL << 63);
        assert_int_equal(dmp_measure_eval(&m, vals, all, &out), 1);
        assert_true(out == 0.5 * 10.0 - 2.0 * 1.25);

        /* an undefined slot makes the whole measure undefined; out untouched */
        out = 42.0;
        assert_int_equal(dmp_measure_eval(&m, vals, 1ULL << 3, &out), 0);
        assert_true(out == 42.0);
        assert_int_equal(dmp_measure_eval(&m, vals, 1ULL << 63, &out), 0);
        assert_int_equal(dmp_measure_eval(&m, vals, ~all, &out), 0);
        assert_true(out == 42.0);
        /* other bits do not matter */
        assert_int_equal(dmp_measure_eval(&m, vals, ~0ULL, &out), 1);
        assert_true(out == 2.5);
        dmp_measure_clear(&m);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_weighted_sum),
                cmocka_unit_test(test_field_times_number_minus),
                cmocka_unit_test(test_unary_minus),
                cmocka_unit_test(test_repeated_field_summed),
                cmocka_unit_test(test_errors),
                cmocka_unit_test(test_error_after_terms_frees),
                cmocka_unit_test(test_too_many_terms),
                cmocka_unit_test(test_eval),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
