/* sysc: raw syscalls for the hostile-container tests, run inside containers (static, no libc
 * path handling: the strings reach the kernel exactly as given).
 *   sysc mount SRC TGT TYPE FLAGS [DATA]   one mount(2); prints "ok" or the errno name's text
 *   sysc umount TGT FLAGS                   one umount2(2)
 *   sysc loop N mount SRC TGT TYPE FLAGS    N calls; prints "errno=count ..." (0 = success)
 *   sysc loop N umount TGT FLAGS
 *   sysc mounts N DIR                       N tmpfs mounts stacked on DIR (fairness floods)
 *   sysc spread N DIR                       N tmpfs mounts on DIR/0 .. DIR/N-1 (a large mount table)
 *   sysc read FILE N                        N open+read+close; prints "fail=F median_us=M max_us=X"
 *   sysc chmod PATH MODE                    chmod(2) with an octal mode
 *   sysc creat PATH MODE                    open(O_CREAT|O_EXCL|O_WRONLY) with an octal mode
 *   sysc badptr                             mount(2) and umount2(2) with an unmapped target pointer
 *   sysc opentree PATH FLAGS                open_tree(AT_FDCWD, PATH, FLAGS)
 *   sysc movemount FROM TO                  move_mount(AT_FDCWD, FROM, AT_FDCWD, TO, 0)
 *   sysc setattr PATH CLR FLAGS             mount_setattr(AT_FDCWD, PATH, FLAGS, {.attr_clr = CLR})
 *   sysc fsopen NAME                        fsopen(NAME, 0)
 *   sysc xattr PATH NAME                    setxattr(PATH, NAME, <a v2 file capability>, 20, 0)
 *   sysc ioctl PATH REQ                     open(PATH, O_RDWR) then ioctl(fd, REQ, 0); prints its value
 * Exit status: 0, or the errno of the single call. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

static int report(int rc) {
    if (rc == 0) { puts("ok"); return 0; }
    int e = errno;
    printf("%s\n", strerror(e));
    return e;
}

int main(int argc, char **argv) {
    if (argc >= 6 && !strcmp(argv[1], "mount"))
        return report(mount(argv[2], argv[3], argv[4], strtoul(argv[5], 0, 0), argc > 6 ? argv[6] : NULL));
    if (argc >= 4 && !strcmp(argv[1], "umount"))
        return report(umount2(argv[2], strtol(argv[3], 0, 0)));
    if (argc >= 4 && !strcmp(argv[1], "chmod"))
        return report(chmod(argv[2], strtol(argv[3], 0, 8)));
    if (argc >= 4 && !strcmp(argv[1], "creat")) {
        int fd = open(argv[2], O_CREAT | O_EXCL | O_WRONLY, (mode_t)strtol(argv[3], 0, 8));
        if (fd >= 0) close(fd);
        return report(fd < 0 ? -1 : 0);
    }
    if (argc >= 4 && !strcmp(argv[1], "opentree")) {
        long fd = syscall(428, AT_FDCWD, argv[2], strtoul(argv[3], 0, 0));
        if (fd >= 0) close(fd);
        return report(fd < 0 ? -1 : 0);
    }
    if (argc >= 4 && !strcmp(argv[1], "movemount"))
        return report(syscall(429, AT_FDCWD, argv[2], AT_FDCWD, argv[3], 0) < 0 ? -1 : 0);
    if (argc >= 5 && !strcmp(argv[1], "setattr")) {
        uint64_t attr[4] = {0, strtoull(argv[3], 0, 0), 0, 0};
        return report(syscall(442, AT_FDCWD, argv[2], strtoul(argv[4], 0, 0), attr, sizeof attr) < 0 ? -1 : 0);
    }
    if (argc >= 3 && !strcmp(argv[1], "fsopen")) {
        long fd = syscall(430, argv[2], 0);
        if (fd >= 0) close(fd);
        return report(fd < 0 ? -1 : 0);
    }
    if (argc >= 4 && !strcmp(argv[1], "xattr")) {
        uint32_t cap[5] = {0x02000000 | 1, 1u << 21, 1u << 21, 0, 0};  /* v2, effective: CAP_SYS_ADMIN */
        return report(setxattr(argv[2], argv[3], cap, sizeof cap, 0));
    }
    if (argc >= 2 && !strcmp(argv[1], "badptr")) {
        int a = report(mount("p", (const char *)8, "proc", 0, NULL));
        int b = report(umount2((const char *)8, 0));
        return a ? a : b;
    }
    if (argc >= 5 && !strcmp(argv[1], "loop")) {
        long n = strtol(argv[2], 0, 0), counts[256] = {0};
        for (long i = 0; i < n; i++) {
            int rc = !strcmp(argv[3], "mount")
                ? mount(argv[4], argv[5], argv[6], strtoul(argv[7], 0, 0), NULL)
                : umount2(argv[4], strtol(argv[5], 0, 0));
            counts[rc == 0 ? 0 : (errno & 255)]++;
        }
        for (int e = 0; e < 256; e++)
            if (counts[e]) printf("%d=%ld ", e, counts[e]);
        puts("");
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[1], "mounts")) {
        long n = strtol(argv[2], 0, 0), ok = 0;
        for (long i = 0; i < n; i++)
            ok += mount("t", argv[3], "tmpfs", 0, "size=4k") == 0;
        printf("%ld\n", ok);
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[1], "spread")) {
        long n = strtol(argv[2], 0, 0), ok = 0;
        char path[4096];
        for (long i = 0; i < n; i++) {
            snprintf(path, sizeof path, "%s/%ld", argv[3], i);
            mkdir(path, 0755);
            ok += mount("t", path, "tmpfs", 0, "size=4k") == 0;
        }
        printf("%ld\n", ok);
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[1], "ioctl")) {
        int fd = open(argv[2], O_RDWR | O_CLOEXEC);
        if (fd < 0) return report(-1);
        long rc = ioctl(fd, strtoul(argv[3], 0, 0), 0);
        if (rc < 0) return report(-1);
        printf("%ld\n", rc);
        return 0;
    }
    if (argc >= 4 && !strcmp(argv[1], "read")) {
        long n = strtol(argv[3], 0, 0), fail = 0, *lat = calloc(n, sizeof(long));
        char buf[65536];
        for (long i = 0; i < n; i++) {
            struct timespec a, b;
            clock_gettime(CLOCK_MONOTONIC, &a);
            int fd = open(argv[2], O_RDONLY);
            if (fd < 0 || read(fd, buf, sizeof buf) <= 0) fail++;
            if (fd >= 0) close(fd);
            clock_gettime(CLOCK_MONOTONIC, &b);
            lat[i] = (b.tv_sec - a.tv_sec) * 1000000 + (b.tv_nsec - a.tv_nsec) / 1000;
        }
        qsort(lat, n, sizeof(long), cmp);
        printf("fail=%ld median_us=%ld max_us=%ld\n", fail, lat[n / 2], lat[n - 1]);
        return 0;
    }
    fprintf(stderr, "usage: see the comment at the top of sysc.c\n");
    return 2;
}
