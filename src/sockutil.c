/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "backends/backends.h"
#include "endp-private.h"
#include "util.h"

int conduit__set_nonblock(int fd, bool on)
{
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0)
                return -errno;
        int want = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
        if (want != fl && fcntl(fd, F_SETFL, want) < 0)
                return -errno;
        return 0;
}

int conduit__unix_sockaddr(const conduit_endp *e, struct sockaddr_storage *ret, socklen_t *ret_len,
                           int *ret_dirfd)
{
        *ret_dirfd = -1;
        int r = conduit_endp_to_sockaddr(e, ret, ret_len);
        if (r != -ENAMETOOLONG || e->abstract)
                return r;
        /* Too long for sun_path: open the directory and name the socket
         * through /proc/self/fd/N/BASENAME, which the kernel resolves
         * without the length limit of the full path. */
        const char *slash = memrchr(e->path, '/', e->path_len);
        if (!slash)
                return -ENAMETOOLONG;
        const char *base = slash + 1;
        size_t dirlen = slash == e->path ? 1 : (size_t)(slash - e->path);
        char *dir = strndup(e->path, dirlen);
        if (!dir)
                return -ENOMEM;
        int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        int err = errno;
        free(dir);
        if (dfd < 0)
                return -err;
        struct sockaddr_un *un = (struct sockaddr_un *)ret;
        memset(un, 0, sizeof(*un));
        un->sun_family = AF_UNIX;
        int n = snprintf(un->sun_path, sizeof(un->sun_path), "/proc/self/fd/%d/%s", dfd, base);
        /* Without /proc the detour would fail as -ENOENT, which reads as
         * "no such socket": say what it is. */
        struct stat st;
        char self[32];
        snprintf(self, sizeof(self), "/proc/self/fd/%d", dfd);
        if (n < 0 || (size_t)n >= sizeof(un->sun_path) || *base == '\0' || stat(self, &st) < 0) {
                close(dfd);
                return -ENAMETOOLONG;
        }
        *ret_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n + 1);
        *ret_dirfd = dfd;
        return 0;
}

char *conduit__endp_str(const conduit_endp *e)
{
        char *s = NULL;
        if (!e || conduit_endp_format(e, &s) < 0)
                return strdup("?");
        return s;
}
