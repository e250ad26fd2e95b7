/* Logging: level parsing, level filtering before formatting, context prefix, file reopen. */
#include "common/log.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/testing.h"

static int formatted;
static const char *count_format(void)
{
    formatted++;
    return "x";
}

static size_t read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd != -1);
    ssize_t n = read(fd, buf, cap - 1);
    CHECK(n >= 0);
    buf[n] = '\0';
    close(fd);
    return (size_t)n;
}

TEST(log_level_parse)
{
    enum log_level l;
    CHECK_EQ(log_level_parse("debug", &l), 0);
    CHECK_EQ(l, LOG_DEBUG);
    CHECK_EQ(log_level_parse("WARN", &l), 0);
    CHECK_EQ(l, LOG_WARN);
    CHECK(log_level_parse("loud", &l) < 0);
}

TEST(log_filters_before_formatting)
{
    char path[512], buf[4096];
    snprintf(path, sizeof path, "%s/a.log", test_tmpdir());
    CHECK_EQ(log_open(path), 0);
    log_max_level = LOG_WARN;
    log_info("%s", count_format());
    CHECK_EQ(formatted, 0);
    log_set_context("w=%d call=%s", 2, "CA00");
    log_warn("hello %d", 42);
    read_file(path, buf, sizeof buf);
    CHECK(strstr(buf, "WARN") != NULL);
    CHECK(strstr(buf, "w=2 call=CA00 hello 42\n") != NULL);
    CHECK(strstr(buf, "INFO") == NULL);
}

TEST(log_use_context_borrows_until_reset)
{
    char path[512], buf[4096];
    snprintf(path, sizeof path, "%s/c.log", test_tmpdir());
    CHECK_EQ(log_open(path), 0);
    log_max_level = LOG_INFO;
    log_set_context("w=%d", 3);
    char call_ctx[32] = "call=7";
    log_use_context(call_ctx);
    log_info("one");
    snprintf(call_ctx, sizeof call_ctx, "call=7 CA01"); /* seen at once: not copied */
    log_info("two");
    log_use_context(NULL);
    log_info("three");
    read_file(path, buf, sizeof buf);
    CHECK(strstr(buf, "] call=7 one\n") != NULL);
    CHECK(strstr(buf, "] call=7 CA01 two\n") != NULL);
    CHECK(strstr(buf, "] w=3 three\n") != NULL);
    CHECK(strstr(buf, "w=3 one") == NULL);
}

TEST(log_reopen_follows_rotation)
{
    char path[512], moved[512], buf[4096];
    snprintf(path, sizeof path, "%s/b.log", test_tmpdir());
    snprintf(moved, sizeof moved, "%s/b.log.1", test_tmpdir());
    CHECK_EQ(log_open(path), 0);
    log_error("before");
    CHECK_EQ(rename(path, moved), 0);
    CHECK_EQ(log_reopen(), 0);
    log_error("after");
    read_file(moved, buf, sizeof buf);
    CHECK(strstr(buf, "before") && !strstr(buf, "after"));
    read_file(path, buf, sizeof buf);
    CHECK(strstr(buf, "after") && !strstr(buf, "before"));
}
