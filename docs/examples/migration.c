/*
 * Live migration: a device whose whole state is one register, served twice
 * (source and destination, each on its own socket, each in its own thread
 * here; in real use two processes, maybe two hosts). ufio_migrate() moves
 * the state; a client then reads the register back from the destination.
 *
 * Build: cc migration.c $(pkg-config --cflags --libs ufio) -o migration
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <ufio/client.h>
#include <ufio/migrate.h>
#include <ufio/migration.h>
#include <ufio/server.h>

struct state {
    uint32_t reg;
    bool sent, loaded;
};

static int reg_access(struct ufio_dev *dev, UFIO_UNUSED void *opaque, UFIO_UNUSED unsigned region,
                      uint64_t off, void *buf, uint32_t len, bool is_write)
{
    struct state *s = ufio_dev_opaque(dev);
    if (off != 0 || len != 4)
        return -EINVAL;
    if (is_write)
        memcpy(&s->reg, buf, 4);
    else
        memcpy(buf, &s->reg, 4);
    return 0;
}

/* STOP_COPY: the register once, then 0 = complete */
static ssize_t save(UFIO_UNUSED struct ufio_dev *dev, void *opaque, void *buf, size_t len)
{
    struct state *s = opaque;
    if (s->sent || len < 4)
        return 0;
    memcpy(buf, &s->reg, 4);
    s->sent = true;
    return 4;
}

/* each piece as save() produced it, its CRC checked on arrival; then (NULL, 0, last) once the
 * whole stream verified: the place to check nothing is missing */
static int load(UFIO_UNUSED struct ufio_dev *dev, void *opaque, const void *buf, size_t len, bool last)
{
    struct state *s = opaque;
    if (last)
        return s->loaded ? 0 : -EINVAL;
    if (len != 4)
        return -EINVAL;
    memcpy(&s->reg, buf, 4);
    s->loaded = true;
    return 0;
}

/* a new save session: everything goes again, whatever an earlier session sent */
static int save_start(UFIO_UNUSED struct ufio_dev *dev, void *opaque)
{
    ((struct state *)opaque)->sent = false;
    return 0;
}

static int transition(UFIO_UNUSED struct ufio_dev *dev, void *opaque, UFIO_UNUSED unsigned from, unsigned to)
{
    if (to == UFIO_MIG_RESUMING)
        ((struct state *)opaque)->loaded = false;
    return 0;
}

static int make(const char *name, const char *path, struct state *s, struct ufio_dev **dev)
{
    static const struct ufio_pci_ids ids = { .vendor_id = 0x1234, .device_id = 0x0004 };
    static const struct ufio_mig_ops mig = {
        .size = sizeof(mig), .flags = UFIO_MIG_F_STOP_COPY,
        .transition = transition, .save = save, .load = load, .save_start = save_start,
    };
    int err = ufio_dev_create(name, &ids, NULL, s, dev);
    if (!err)
        err = ufio_dev_add_bar(*dev, 0, 4096, UFIO_BAR_MEM32, reg_access, NULL);
    if (!err)
        err = ufio_dev_setup_migration(*dev, &mig, s);
    if (!err)
        err = ufio_dev_listen(*dev, path);
    return err;
}

static void *serve(void *dev) { ufio_dev_run(dev); return NULL; }

int main(void)
{
    char src_path[64], dst_path[64];
    snprintf(src_path, sizeof(src_path), "/tmp/ufio-example-src-%d.sock", (int)getpid());
    snprintf(dst_path, sizeof(dst_path), "/tmp/ufio-example-dst-%d.sock", (int)getpid());
    struct state src_state = { 0 }, dst_state = { 0 };
    struct ufio_dev *src, *dst;
    pthread_t t1, t2;
    /* without a compatibility descriptor (docs/compatibility.md) the type is the device name */
    if (make("example", src_path, &src_state, &src) || make("example", dst_path, &dst_state, &dst) ||
        pthread_create(&t1, NULL, serve, src) || pthread_create(&t2, NULL, serve, dst))
        return 1;

    struct ufio_client *c;
    uint32_t v = 42;
    int err = ufio_client_connect(src_path, NULL, &c);
    if (!err) {
        err = ufio_client_region_write(c, UFIO_PCI_BAR0_REGION, 0, &v, 4);
        ufio_client_destroy(c);
    }

    char why[UFIO_MIGRATE_ERROR_MAX];
    const struct ufio_migrate_opts o = { .size = sizeof(o), .src_path = src_path, .dst_path = dst_path };
    struct ufio_migrate_result r = { .size = sizeof(r), .error = why, .error_size = sizeof(why) };
    if (!err && (err = ufio_migrate(&o, &r)))
        fprintf(stderr, "migration: %s\n", why);

    v = 0;
    if (!err && !(err = ufio_client_connect(dst_path, NULL, &c))) {
        err = ufio_client_region_read(c, UFIO_PCI_BAR0_REGION, 0, &v, 4);
        ufio_client_destroy(c);
    }
    printf("migration: %llu stream bytes, downtime %.2f ms, destination register %u: %s\n",
           (unsigned long long)r.bytes, r.downtime_ms, v, !err && v == 42 ? "ok" : "FAILED");
    ufio_dev_stop(src);
    ufio_dev_stop(dst);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    ufio_dev_destroy(src);
    ufio_dev_destroy(dst);
    return !err && v == 42 ? 0 : 1;
}
