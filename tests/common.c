/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

int tc_fd_count(void)
{
        DIR *d = opendir("/proc/self/fd");
        ck_assert_ptr_nonnull(d);
        int n = 0;
        struct dirent *de;
        while ((de = readdir(d)))
                if (de->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1; /* the directory stream's own descriptor */
}

char *tc_tmpdir(void)
{
        const char *base = getenv("TMPDIR");
        char *path = NULL;
        ck_assert_int_ge(asprintf(&path, "%s/conduit-test-XXXXXX", base && *base ? base : "/tmp"),
                         0);
        ck_assert_ptr_nonnull(mkdtemp(path));
        return path;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st;
        (void)flag;
        (void)ftw;
        return remove(p);
}

void tc_rmtree(const char *path)
{
        if (path)
                nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

char *tc_abstract_name(void)
{
        static atomic_uint counter;
        char *name = NULL;
        ck_assert_int_ge(
                asprintf(&name, "conduit-test-%d-%u", (int)getpid(), atomic_fetch_add(&counter, 1)),
                0);
        return name;
}

conduit_listener *tc_listen(const char *uri, char **ret_uri)
{
        conduit_listener *l = NULL;
        tc_ok(conduit_listen(NULL, uri, &l));
        if (ret_uri)
                tc_ok(conduit_endp_format(conduit_listener_endp(l), ret_uri));
        return l;
}

struct accept_arg {
        conduit_listener *l;
        conduit_flow *f;
        int r;
};

static void *accept_thread(void *p)
{
        struct accept_arg *a = p;
        a->r = conduit_listener_accept(a->l, &a->f);
        return NULL;
}

void tc_pair(const char *uri, conduit_flow **client, conduit_flow **server)
{
        char *curi = NULL;
        conduit_listener *l = tc_listen(uri, &curi);
        struct accept_arg a = { .l = l };
        pthread_t t = tc_spawn(accept_thread, &a);
        tc_ok(conduit_connect(NULL, curi, client));
        tc_join(t);
        tc_ok(a.r);
        *server = a.f;
        conduit_listener_free(l);
        free(curi);
}

void tc_fill(uint8_t *buf, size_t n, uint32_t seed)
{
        uint32_t x = seed * 2654435761u + 1;
        for (size_t i = 0; i < n; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                buf[i] = (uint8_t)x;
        }
}

void tc_write_all(conduit_flow *f, const void *buf, size_t n)
{
        if (n == 0)
                return;
        ssize_t w = conduit_flow_write(f, buf, n);
        ck_assert_msg(w == (ssize_t)n, "write %zu: %zd (%s) %s", n, w, conduit_strerror((int)w),
                      conduit_flow_error_message(f));
}

uint8_t *tc_read_all(conduit_flow *f, size_t *len)
{
        size_t cap = 65536, n = 0;
        uint8_t *buf = malloc(cap);
        ck_assert_ptr_nonnull(buf);
        for (;;) {
                if (n == cap) {
                        cap *= 2;
                        buf = realloc(buf, cap);
                        ck_assert_ptr_nonnull(buf);
                }
                ssize_t r = conduit_flow_read(f, buf + n, cap - n);
                ck_assert_msg(r >= 0, "read: %zd (%s) %s", r, conduit_strerror((int)r),
                              conduit_flow_error_message(f));
                if (r == 0)
                        break;
                n += (size_t)r;
        }
        *len = n;
        return buf;
}

pthread_t tc_spawn(void *(*fn)(void *), void *arg)
{
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, fn, arg), 0);
        return t;
}

void *tc_join(pthread_t t)
{
        void *ret = NULL;
        ck_assert_int_eq(pthread_join(t, &ret), 0);
        return ret;
}

/* The valgrind test setup sets CONDUIT_TEST_VALGRIND=1: the test then runs
 * itself again under memcheck (the same way the scripts wrap conduit-cat),
 * so one setup covers C suites and scripts alike. */
void tc_init(int argc, char **argv)
{
        (void)argc;
        const char *want = getenv("CONDUIT_TEST_VALGRIND");
        if (!want || strcmp(want, "1") != 0 || getenv("CONDUIT_UNDER_VALGRIND"))
                return;
        setenv("CONDUIT_UNDER_VALGRIND", "1", 1);
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
        if (n <= 0)
                return;
        exe[n] = '\0';
        static char *const vg[] = { "valgrind",
                                    "--quiet",
                                    "--error-exitcode=99",
                                    "--leak-check=full",
                                    "--show-leak-kinds=definite,indirect",
                                    "--errors-for-leak-kinds=definite,indirect",
                                    "--suppressions=" CONDUIT_TEST_SRCDIR "/valgrind.supp" };
        size_t nvg = sizeof(vg) / sizeof(vg[0]);
        char **nargv = calloc(nvg + (size_t)argc + 2, sizeof(*nargv));
        if (!nargv)
                exit(99);
        for (size_t i = 0; i < nvg; i++)
                nargv[i] = vg[i];
        nargv[nvg] = exe;
        for (int i = 1; i < argc; i++)
                nargv[nvg + (size_t)i] = argv[i];
        execvp("valgrind", nargv);
        perror("exec valgrind");
        exit(99);
}

int tc_run(Suite *s)
{
        SRunner *sr = srunner_create(s);
        srunner_set_tap(sr, "-");
        /* TAP goes to stdout; keep Check's own summary off it. */
        srunner_run_all(sr, CK_SILENT);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
