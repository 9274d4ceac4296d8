/*
 * Test harness for the CMD_VTPM_RAM_DIGEST code in the QEMU patches.
 *
 * check.sh extracts the digest functions from the *patched*
 * tpm_emulator.c into ram-digest-extract.c and builds this file with the
 * patched tpm_ioctl.h, against the small stand-ins below for the QEMU
 * APIs those functions use (QEMU's own headers need a configured build
 * tree).  The qcrypto stand-in hashes with GLib's GChecksum, like QEMU's
 * glib crypto driver.
 *
 * Usage: ram-digest-test CAPS PHASE RESULT BLOCK...
 *   CAPS    capability mask the "emulator" reports (hex)
 *   PHASE   1 (save) or 2 (restore)
 *   RESULT  tpm_result the "emulator" answers with
 *   BLOCK   NAME:SIZE:MIGRATABLE (0/1); block N's byte I is
 *           (I * 31 + N * 7 + (I >> 12)) & 0xff
 * Prints "ret=R sent=HEX" (HEX: the bytes written to the control channel).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <glib.h>

#define QEMU_PACKED __attribute__((packed))
#define QEMU_BUILD_BUG_ON(x) _Static_assert(!(x), "not expecting: " #x)
#define ARRAY_SIZE(x) (sizeof(x) / sizeof((x)[0]))
#ifndef MIN
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#endif

#include "tpm_ioctl.h"

typedef uintptr_t ram_addr_t;

typedef struct Error {
    char *msg;
} Error;

static void error_setg(Error **errp, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    *errp = g_new0(Error, 1);
    (*errp)->msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
}

static void error_report(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void error_reportf_err(Error *err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s\n", err ? err->msg : "(no error set)");
    if (err) {
        g_free(err->msg);
        g_free(err);
    }
}

/* both spellings: QEMU 7.2 and QEMU >= 9.2 */
enum { QCRYPTO_HASH_ALG_SHA256 = 1, QCRYPTO_HASH_ALGO_SHA256 = 1 };

static unsigned long hash_calls;

static int qcrypto_hash_bytesv(int alg, const struct iovec *iov, size_t niov,
                               uint8_t **result, size_t *resultlen,
                               Error **errp)
{
    GChecksum *cs;
    gsize len = 32;
    size_t i;

    if (alg != QCRYPTO_HASH_ALG_SHA256 || *resultlen != 32 || !*result) {
        error_setg(errp, "unexpected qcrypto_hash_bytesv use");
        return -1;
    }
    cs = g_checksum_new(G_CHECKSUM_SHA256);
    for (i = 0; i < niov; i++) {
        g_checksum_update(cs, iov[i].iov_base, iov[i].iov_len);
    }
    g_checksum_get_digest(cs, *result, &len);
    g_checksum_free(cs);
    hash_calls++;
    return 0;
}

#define cpu_to_be32(x) GUINT32_TO_BE(x)
#define cpu_to_be64(x) GUINT64_TO_BE(x)
#define be32_to_cpu(x) GUINT32_FROM_BE(x)

typedef struct RAMBlock {
    char idstr[64];
    uint8_t *host;
    ram_addr_t used_length;
    bool migratable;
} RAMBlock;

static RAMBlock blocks[64];
static int nblocks;

static void *qemu_ram_get_host_addr(RAMBlock *rb)
{
    return rb->host;
}

static ram_addr_t qemu_ram_get_used_length(RAMBlock *rb)
{
    return rb->used_length;
}

static bool qemu_ram_is_migratable(RAMBlock *rb)
{
    return rb->migratable;
}

static const char *qemu_ram_get_idstr(RAMBlock *rb)
{
    return rb->idstr;
}

typedef int (RAMBlockIterFunc)(RAMBlock *rb, void *opaque);

static int qemu_ram_foreach_block(RAMBlockIterFunc func, void *opaque)
{
    int i, ret = 0;

    for (i = 0; i < nblocks; i++) {
        ret = func(&blocks[i], opaque);
        if (ret) {
            break;
        }
    }
    return ret;
}

typedef struct TPMEmulator {
    uint64_t caps;
} TPMEmulator;

#define TPM_EMULATOR_IMPLEMENTS_ALL_CAPS(S, cap) (((S)->caps & (cap)) == (cap))

static const char *tpm_emulator_strerror(uint32_t tpm_result)
{
    return "";
}

static uint8_t wire[4096];
static size_t wire_len;
static uint32_t answer;

/* like QEMU's: command code, msg_len_in bytes of msg, read the response */
static int tpm_emulator_ctrlcmd(TPMEmulator *tpm, unsigned long cmd,
                                void *msg, size_t msg_len_in,
#ifdef QEMU_CURRENT
                                size_t msg_len_out_err,
#endif
                                size_t msg_len_out)
{
    uint32_t cmd_no = cpu_to_be32(cmd);
    uint32_t res = cpu_to_be32(answer);

    memcpy(wire + wire_len, &cmd_no, sizeof(cmd_no));
    memcpy(wire + wire_len + sizeof(cmd_no), msg, msg_len_in);
    wire_len += sizeof(cmd_no) + msg_len_in;
#ifdef QEMU_CURRENT
    if (msg_len_out_err != sizeof(res)) {
        return -1;
    }
#endif
    if (msg_len_out != sizeof(res)) {
        errno = EINVAL;
        return -1;
    }
    memcpy(msg, &res, sizeof(res));
    return 0;
}

#include "ram-digest-extract.c"

int main(int argc, char **argv)
{
    TPMEmulator emu;
    uint32_t phase;
    size_t i;
    int n, ret;

    if (argc < 4) {
        fprintf(stderr, "usage: %s CAPS PHASE RESULT BLOCK...\n", argv[0]);
        return 2;
    }
    emu.caps = strtoull(argv[1], NULL, 16);
    phase = strtoul(argv[2], NULL, 0);
    answer = strtoul(argv[3], NULL, 0);

    for (n = 4; n < argc && nblocks < (int)ARRAY_SIZE(blocks); n++) {
        RAMBlock *rb = &blocks[nblocks];
        unsigned long long size;
        int mig;

        if (sscanf(argv[n], "%63[^:]:%llu:%d", rb->idstr, &size, &mig) != 3) {
            fprintf(stderr, "bad block %s\n", argv[n]);
            return 2;
        }
        rb->used_length = size;
        rb->migratable = mig;
        rb->host = g_malloc(size ? size : 1);
        for (i = 0; i < size; i++) {
            rb->host[i] = (i * 31 + nblocks * 7 + (i >> 12)) & 0xff;
        }
        nblocks++;
    }

    ret = tpm_emulator_send_ram_digest(&emu, phase);
    printf("ret=%d sent=", ret);
    for (i = 0; i < wire_len; i++) {
        printf("%02x", wire[i]);
    }
    printf("\n");
    return 0;
}
