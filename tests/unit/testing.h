/* Tiny unit-test framework: TEST() registers a case, CHECK*() fail it with file:line.
 * runner.c runs every case in its own forked child, so one crash or leak cannot hide another,
 * and prints "N passed, N failed". One test file per module: tests/unit/test-<module>.c. */
#ifndef VB_TESTS_TESTING_H
#define VB_TESTS_TESTING_H

#include <stdint.h>
#include <stdio.h>

struct test_case {
    const char *name;
    void (*fn)(void);
    struct test_case *next;
};

void test_register(struct test_case *tc);
_Noreturn void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A fresh directory for this test, removed after it (the child's own). */
const char *test_tmpdir(void);

#define TEST(name)                                                                           \
    static void test_##name(void);                                                           \
    static struct test_case test_case_##name = {#name, test_##name, NULL};                   \
    __attribute__((constructor)) static void test_register_##name(void)                      \
    {                                                                                        \
        test_register(&test_case_##name);                                                    \
    }                                                                                        \
    static void test_##name(void)

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (!(cond))                                                                         \
            test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);                               \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                 \
    do {                                                                                     \
        if (!(cond))                                                                         \
            test_fail(__FILE__, __LINE__, __VA_ARGS__);                                      \
    } while (0)

#define CHECK_EQ(a, b)                                                                       \
    do {                                                                                     \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                      \
        if (check_a_ != check_b_)                                                            \
            test_fail(__FILE__, __LINE__, "CHECK_EQ(%s, %s): %lld != %lld", #a, #b, check_a_, \
                      check_b_);                                                             \
    } while (0)

#endif
