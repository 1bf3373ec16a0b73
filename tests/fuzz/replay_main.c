/*
 * Replays a fuzz target's corpus as a regression test in normal builds:
 * calls LLVMFuzzerTestOneInput on every file of the given directories (or
 * the given files). With UFIO_FUZZ_TRACE set, each input's name goes to
 * stderr before it runs, so a target's own trace lines can be matched to it.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path, const char *name)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    static uint8_t buf[1 << 20];
    size_t len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    uint8_t *copy = malloc(len ? len : 1); /* exact size, so ASan sees overreads */
    memcpy(copy, buf, len);
    if (getenv("UFIO_FUZZ_TRACE"))
        fprintf(stderr, "input %s\n", name);
    LLVMFuzzerTestOneInput(copy, len);
    free(copy);
    return 1;
}

int main(int argc, char **argv)
{
    int n = 0;
    for (int a = 1; a < argc; a++) {
        DIR *d = opendir(argv[a]);
        if (!d) {
            const char *slash = strrchr(argv[a], '/');
            if (run_file(argv[a], slash ? slash + 1 : argv[a])) {
                n++;
                continue;
            }
            fprintf(stderr, "cannot open %s\n", argv[a]);
            return 1;
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[a], e->d_name);
            n += run_file(path, e->d_name);
        }
        closedir(d);
    }
    printf("replayed %d inputs\n", n);
    return n ? 0 : 1;
}
