/* Unit-test runner: runs each registered TEST in a forked child with a time limit, so a crash,
 * sanitizer report or hang fails only that test. Arguments are name substrings to select tests.
 * Prints one line per failure and ends with "N passed, N failed"; exits 1 on any failure. */
#include "tests/unit/testing.h"

#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static struct test_case *test_list;
static char test_dir[256];

void test_register(struct test_case *tc)
{
    tc->next = test_list;
    test_list = tc;
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "    %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

const char *test_tmpdir(void)
{
    if (test_dir[0] == '\0') {
        const char *base = getenv("TMPDIR");
        snprintf(test_dir, sizeof test_dir, "%s/vbtest.XXXXXX", base ? base : "/tmp");
        if (mkdtemp(test_dir) == NULL)
            test_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
    }
    return test_dir;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void remove_tmpdir(void)
{
    if (test_dir[0] != '\0')
        nftw(test_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int selected(const char *name, int argc, char **argv)
{
    if (argc <= 1)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strstr(name, argv[i]) != NULL)
            return 1;
    return 0;
}

static int cmp_case(const void *a, const void *b)
{
    return strcmp((*(struct test_case *const *)a)->name, (*(struct test_case *const *)b)->name);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    size_t n = 0, i = 0;
    for (struct test_case *tc = test_list; tc; tc = tc->next)
        n++;
    struct test_case **cases = calloc(n ? n : 1, sizeof *cases);
    if (cases == NULL)
        return 2;
    for (struct test_case *tc = test_list; tc; tc = tc->next)
        cases[i++] = tc;
    qsort(cases, n, sizeof *cases, cmp_case);

    /* A generous per-test limit: it catches hangs, it does not judge speed. */
    unsigned limit = getenv("TEST_TIMEOUT") ? (unsigned)atoi(getenv("TEST_TIMEOUT")) : 300;
    int passed = 0, failed = 0;
    for (i = 0; i < n; i++) {
        if (!selected(cases[i]->name, argc, argv))
            continue;
        double t0 = now_s();
        fflush(NULL);
        pid_t pid = fork();
        if (pid == -1) {
            perror("fork");
            return 2;
        }
        if (pid == 0) {
            alarm(limit);
            atexit(remove_tmpdir);
            cases[i]->fn();
            fflush(NULL);
            exit(0);
        }
        int status;
        while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
            ;
        double dt = now_s() - t0;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
            passed++;
            printf("  ok   %-44s %7.3f s\n", cases[i]->name, dt);
        } else {
            failed++;
            if (WIFSIGNALED(status))
                printf("  FAIL %-44s (signal %d%s)\n", cases[i]->name, WTERMSIG(status),
                       WTERMSIG(status) == SIGALRM ? ": time limit" : "");
            else
                printf("  FAIL %-44s (exit %d)\n", cases[i]->name, WEXITSTATUS(status));
        }
    }
    free(cases);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
