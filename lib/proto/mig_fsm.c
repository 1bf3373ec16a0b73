/*
 * The VFIO migration v2 state machine as data.
 *
 * next_hop[cur][target] is the kernel's table for a device with every
 * feature (STOP_COPY, P2P, PRE_COPY). When the hop is a state the device's
 * flags do not support, the kernel looks again from that hop toward the same
 * target; the walker below does the same, and stops on ERROR explicitly
 * (ERROR is never supported, so a literal port would loop).
 */
#include <ufio/migration.h>

#include <errno.h>
#include <strings.h>

enum { E = UFIO_MIG_ERROR, S = UFIO_MIG_STOP, R = UFIO_MIG_RUNNING, SC = UFIO_MIG_STOP_COPY,
       RS = UFIO_MIG_RESUMING, RP = UFIO_MIG_RUNNING_P2P, PC = UFIO_MIG_PRE_COPY,
       PP = UFIO_MIG_PRE_COPY_P2P };

static const unsigned char next_hop[8][8] = {
    /*             ERROR STOP RUNNING STOP_COPY RESUMING RUNNING_P2P PRE_COPY PRE_COPY_P2P */
    [E]  = { E, E, E, E, E, E, E, E },
    [S]  = { E, S, RP, SC, RS, RP, RP, RP },
    [R]  = { E, RP, R, RP, RP, RP, PC, RP },
    [SC] = { E, S, S, SC, S, S, E, E },
    [RS] = { E, S, S, S, RS, S, S, S },
    [RP] = { E, S, R, S, S, RP, R, PP },
    [PC] = { E, R, R, PP, R, R, PC, PP },
    [PP] = { E, RP, RP, SC, RP, RP, PC, PP },
};

/* flags a state needs; ERROR needs the impossible */
static const uint64_t state_flags[8] = {
    [E] = ~0ull,
    [S] = UFIO_MIG_F_STOP_COPY,
    [R] = UFIO_MIG_F_STOP_COPY,
    [SC] = UFIO_MIG_F_STOP_COPY,
    [RS] = UFIO_MIG_F_STOP_COPY,
    [RP] = UFIO_MIG_F_STOP_COPY | UFIO_MIG_F_P2P,
    [PC] = UFIO_MIG_F_STOP_COPY | UFIO_MIG_F_PRE_COPY,
    [PP] = UFIO_MIG_F_STOP_COPY | UFIO_MIG_F_P2P | UFIO_MIG_F_PRE_COPY,
};

static const char *const names[8] = {
    "ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING", "RUNNING_P2P", "PRE_COPY", "PRE_COPY_P2P",
};

#define KNOWN_FLAGS (UFIO_MIG_F_STOP_COPY | UFIO_MIG_F_P2P | UFIO_MIG_F_PRE_COPY)

UFIO_API const char *ufio_mig_state_name(unsigned state)
{
    return state < 8 ? names[state] : "?";
}

UFIO_API int ufio_mig_state_parse(const char *name)
{
    if (!name)
        return -EINVAL;
    for (int i = 0; i < 8; i++)
        if (!strcasecmp(name, names[i]))
            return i;
    return -EINVAL;
}

static bool flags_ok(uint64_t flags)
{
    return (flags & UFIO_MIG_F_STOP_COPY) && !(flags & ~(uint64_t)KNOWN_FLAGS);
}

UFIO_API bool ufio_mig_state_supported(uint64_t flags, unsigned state)
{
    return flags_ok(flags) && state < 8 && (state_flags[state] & flags) == state_flags[state];
}

UFIO_API int ufio_mig_next_state(uint64_t flags, unsigned cur, unsigned target, unsigned *next)
{
    if (!ufio_mig_state_supported(flags, cur) || !ufio_mig_state_supported(flags, target))
        return -EINVAL;
    unsigned s = cur;
    if (s == target) {
        *next = s;
        return 0;
    }
    /* at most 8 re-lookups: every skipped hop is a distinct unsupported state */
    for (int i = 0; i < 8; i++) {
        s = next_hop[s][target];
        if (s == E)
            return -EINVAL;
        if (ufio_mig_state_supported(flags, s)) {
            *next = s;
            return 0;
        }
    }
    return -EINVAL;
}

UFIO_API int ufio_mig_path(uint64_t flags, unsigned cur, unsigned target,
                           unsigned path[UFIO_MIG_NUM_STATES], size_t *len)
{
    size_t n = 0;
    unsigned s = cur;
    if (!ufio_mig_state_supported(flags, cur) || !ufio_mig_state_supported(flags, target))
        return -EINVAL;
    /* bounded: the tables never need more than 4 hops, a cycle would be a table bug */
    while (s != target) {
        unsigned nx;
        int err = ufio_mig_next_state(flags, s, target, &nx);
        if (err)
            return err;
        if (n == UFIO_MIG_NUM_STATES)
            return -EINVAL;
        path[n++] = nx;
        s = nx;
    }
    *len = n;
    return 0;
}

UFIO_API bool ufio_mig_arc_is_direct(uint64_t flags, unsigned from, unsigned to)
{
    if (!ufio_mig_state_supported(flags, from) || !ufio_mig_state_supported(flags, to) || from == to)
        return false;
    bool p2p = flags & UFIO_MIG_F_P2P, pre = flags & UFIO_MIG_F_PRE_COPY;
#define ARC(a, b) (from == (a) && to == (b))
    if (ARC(RS, S) || ARC(S, RS) || ARC(S, SC) || ARC(SC, S))
        return true;
    if (!p2p && (ARC(R, S) || ARC(S, R)))
        return true;
    if (p2p && (ARC(R, RP) || ARC(RP, R) || ARC(RP, S) || ARC(S, RP)))
        return true;
    if (pre && (ARC(R, PC) || ARC(PC, R)))
        return true;
    if (pre && !p2p && ARC(PC, SC))
        return true;
    if (pre && p2p && (ARC(PC, PP) || ARC(PP, PC) || ARC(PP, RP) || ARC(PP, SC) || ARC(RP, PP)))
        return true;
#undef ARC
    return false;
}
