/*
 * vtest-tpm2: guest side of the vTPM end-to-end tests (tests/e2e/test_vtpm.py). Sends raw
 * TPM 2.0 commands (Part 3) to a TPM character device; tpm2-tools is not in the guest.
 *
 *   vtest-tpm2                       self-check only: prints "vtest-tpm2 OK"
 *   vtest-tpm2 DEV getrandom N       TPM2_GetRandom(N): "VTEST-TPM random rc=0x0 HEX"
 *   vtest-tpm2 DEV pcrread I         TPM2_PCR_Read of SHA-256 PCR I: "VTEST-TPM pcr I rc=0x0 HEX"
 *   vtest-tpm2 DEV bench N           N GetRandom(32) round trips: "VTEST-TPM bench N us-per-op X"
 *   vtest-tpm2 DEV primary 0         TPM2_CreatePrimary of an ECC P-256 storage key in the owner
 *                                    hierarchy: "VTEST-TPM primary rc=0x0 X Y" (its public point;
 *                                    derived from the owner seed, so the same while the state lasts)
 *   vtest-tpm2 DEV ek 0              the same key in the endorsement hierarchy (from the endorsement
 *                                    seed: the TPM's identity): "VTEST-TPM ek rc=0x0 X Y"
 *   vtest-tpm2 DEV extend I          TPM2_PCR_Extend of SHA-256 PCR I with 32 bytes of 0x11:
 *                                    "VTEST-TPM extend I rc=0x0"
 *   vtest-tpm2 DEV nvwrite TEXT      defines owner NV index 0x01500016 (32 bytes; an existing one
 *                                    is reused) and writes TEXT (at most 32 bytes, zero padded):
 *                                    "VTEST-TPM nvwrite rc=0x0"
 *   vtest-tpm2 DEV nvread 0          reads it back: "VTEST-TPM nv rc=0x0 TEXT"
 * A failure prints "VTEST-TPM error ..." (the response code, or errno) and exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static unsigned char resp[4096];

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Sends cmd, returns the response length or -1; prints the problem. */
static int transact(int fd, const unsigned char *cmd, size_t len, uint32_t *rc) {
  if (write(fd, cmd, len) != (ssize_t)len) {
    printf("VTEST-TPM error write: %s\n", strerror(errno));
    return -1;
  }
  ssize_t n = read(fd, resp, sizeof(resp));
  if (n < 10) {
    printf("VTEST-TPM error read: %s (%zd bytes)\n", n < 0 ? strerror(errno) : "short response", n);
    return -1;
  }
  *rc = be32(resp + 6);
  return (int)n;
}

static void hex(const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) printf("%02x", p[i]);
  printf("\n");
}

#define NV_INDEX 0x01500016u
#define NV_SIZE 32

static void put32(unsigned char *p, uint32_t v) {
  p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16), p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

/* The empty-password session (TPM_RS_PW) every authorized command here uses: 13 bytes. */
static size_t pw_session(unsigned char *p) {
  static const unsigned char s[13] = {0, 0, 0, 9, 0x40, 0, 0, 0x09, 0, 0, 0, 0, 0};
  memcpy(p, s, sizeof(s));
  return sizeof(s);
}

static int nv_cmd(int fd, const char *text, int write_it) {
  unsigned char cmd[128];
  uint32_t rc = 0;
  size_t n = 10;
  if (write_it) {
    size_t len = strlen(text);
    if (len > NV_SIZE) {
      printf("VTEST-TPM error secret longer than %d bytes\n", NV_SIZE);
      return 2;
    }
    /* TPM2_NV_DefineSpace(TPM_RH_OWNER): empty auth, ordinary index, owner/auth read+write, noDA */
    put32(cmd + n, 0x40000001), n += 4;
    n += pw_session(cmd + n);
    cmd[n++] = 0, cmd[n++] = 0;      /* auth */
    cmd[n++] = 0, cmd[n++] = 14;     /* TPM2B_NV_PUBLIC size */
    put32(cmd + n, NV_INDEX), n += 4;
    cmd[n++] = 0x00, cmd[n++] = 0x0b; /* nameAlg SHA-256 */
    put32(cmd + n, 0x02060006), n += 4;
    cmd[n++] = 0, cmd[n++] = 0;      /* authPolicy */
    cmd[n++] = 0, cmd[n++] = NV_SIZE;
    cmd[0] = 0x80, cmd[1] = 0x02, put32(cmd + 2, (uint32_t)n), put32(cmd + 6, 0x12a);
    if (transact(fd, cmd, n, &rc) < 0) return 1;
    if (rc != 0 && rc != 0x14c) { /* TPM_RC_NV_DEFINED: defined by an earlier boot */
      printf("VTEST-TPM error NV_DefineSpace rc=0x%x\n", rc);
      return 1;
    }
    n = 10;
    put32(cmd + n, 0x40000001), n += 4;
    put32(cmd + n, NV_INDEX), n += 4;
    n += pw_session(cmd + n);
    cmd[n++] = 0, cmd[n++] = NV_SIZE;
    memset(cmd + n, 0, NV_SIZE);
    memcpy(cmd + n, text, len), n += NV_SIZE;
    cmd[n++] = 0, cmd[n++] = 0;      /* offset */
    cmd[0] = 0x80, cmd[1] = 0x02, put32(cmd + 2, (uint32_t)n), put32(cmd + 6, 0x137);
    if (transact(fd, cmd, n, &rc) < 0) return 1;
    if (rc != 0) {
      printf("VTEST-TPM error NV_Write rc=0x%x\n", rc);
      return 1;
    }
    printf("VTEST-TPM nvwrite rc=0x0\n");
    return 0;
  }
  put32(cmd + n, 0x40000001), n += 4;
  put32(cmd + n, NV_INDEX), n += 4;
  n += pw_session(cmd + n);
  cmd[n++] = 0, cmd[n++] = NV_SIZE;
  cmd[n++] = 0, cmd[n++] = 0;
  cmd[0] = 0x80, cmd[1] = 0x02, put32(cmd + 2, (uint32_t)n), put32(cmd + 6, 0x14e);
  int len = transact(fd, cmd, n, &rc);
  if (len < 0) return 1;
  /* header 10, parameterSize 4, TPM2B_MAX_NV_BUFFER */
  if (rc != 0 || len < 16 + NV_SIZE || resp[14] != 0 || resp[15] != NV_SIZE) {
    printf("VTEST-TPM error NV_Read rc=0x%x len=%d\n", rc, len);
    return 1;
  }
  char out[NV_SIZE + 1] = {0};
  memcpy(out, resp + 16, NV_SIZE);
  for (int i = 0; i < NV_SIZE && out[i]; i++) {
    if (out[i] < 0x20 || out[i] > 0x7e) out[i] = '?';
  }
  printf("VTEST-TPM nv rc=0x0 %s\n", out);
  return 0;
}

static int extend_cmd(int fd, unsigned pcr) {
  unsigned char cmd[80];
  size_t n = 10;
  put32(cmd + n, pcr), n += 4;
  n += pw_session(cmd + n);
  put32(cmd + n, 1), n += 4;         /* TPML_DIGEST_VALUES count */
  cmd[n++] = 0x00, cmd[n++] = 0x0b;  /* SHA-256 */
  memset(cmd + n, 0x11, 32), n += 32;
  cmd[0] = 0x80, cmd[1] = 0x02, put32(cmd + 2, (uint32_t)n), put32(cmd + 6, 0x182);
  uint32_t rc = 0;
  if (transact(fd, cmd, n, &rc) < 0) return 1;
  if (rc != 0) {
    printf("VTEST-TPM error PCR_Extend rc=0x%x\n", rc);
    return 1;
  }
  printf("VTEST-TPM extend %u rc=0x0\n", pcr);
  return 0;
}

static int getrandom_cmd(int fd, unsigned n, int print) {
  unsigned char cmd[12] = {0x80, 0x01, 0, 0, 0, 12, 0, 0, 0x01, 0x7b, (unsigned char)(n >> 8), (unsigned char)n};
  uint32_t rc = 0;
  int len = transact(fd, cmd, sizeof(cmd), &rc);
  if (len < 0) return 1;
  if (rc != 0 || len < 12) {
    printf("VTEST-TPM error rc=0x%x\n", rc);
    return 1;
  }
  unsigned got = (unsigned)resp[10] << 8 | resp[11];
  if (got + 12u > (unsigned)len) got = (unsigned)len - 12;
  if (print) {
    printf("VTEST-TPM random rc=0x0 ");
    hex(resp + 12, got);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    printf("vtest-tpm2 OK\n");
    return 0;
  }
  if (argc < 4) {
    printf("VTEST-TPM error usage: vtest-tpm2 DEV getrandom N | pcrread I | bench N | primary 0 | ek 0 | extend I | nvwrite TEXT | nvread 0\n");
    return 2;
  }
  int fd = open(argv[1], O_RDWR);
  if (fd < 0) {
    printf("VTEST-TPM error open %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  unsigned arg = (unsigned)strtoul(argv[3], NULL, 0);
  if (strcmp(argv[2], "getrandom") == 0) return getrandom_cmd(fd, arg, 1);
  if (strcmp(argv[2], "pcrread") == 0) {
    if (arg > 23) {
      printf("VTEST-TPM error PCR index %u out of range\n", arg);
      return 2;
    }
    /* TPML_PCR_SELECTION: count 1, TPM_ALG_SHA256, sizeofSelect 3, bitmap */
    unsigned char cmd[20] = {0x80, 0x01, 0, 0, 0, 20, 0, 0, 0x01, 0x7e, 0, 0, 0, 1, 0x00, 0x0b, 3, 0, 0, 0};
    cmd[17 + arg / 8] = (unsigned char)(1u << (arg % 8));
    uint32_t rc = 0;
    int len = transact(fd, cmd, sizeof(cmd), &rc);
    if (len < 0) return 1;
    /* header 10, updateCounter 4, pcrSelectionOut (4+2+1+3), TPML_DIGEST count 4, size 2, digest */
    if (rc != 0 || len < 30 + 32) {
      printf("VTEST-TPM error rc=0x%x len=%d\n", rc, len);
      return 1;
    }
    printf("VTEST-TPM pcr %u rc=0x0 ", arg);
    hex(resp + 30, 32);
    return 0;
  }
  if (strcmp(argv[2], "nvwrite") == 0) return nv_cmd(fd, argv[3], 1);
  if (strcmp(argv[2], "nvread") == 0) return nv_cmd(fd, NULL, 0);
  if (strcmp(argv[2], "extend") == 0) {
    if (arg > 23) {
      printf("VTEST-TPM error PCR index %u out of range\n", arg);
      return 2;
    }
    return extend_cmd(fd, arg);
  }
  int ek = strcmp(argv[2], "ek") == 0;
  if (ek || strcmp(argv[2], "primary") == 0) {
    unsigned char cmd[] = {
        0x80, 0x02, 0, 0, 0, 67, 0, 0, 0x01, 0x31, /* TPM_ST_SESSIONS, size, TPM_CC_CreatePrimary */
        0x40, 0, 0, 0x01,                          /* TPM_RH_OWNER (or TPM_RH_ENDORSEMENT, below) */
        0, 0, 0, 9, 0x40, 0, 0, 0x09, 0, 0, 0, 0, 0, /* TPM_RS_PW, empty nonce, attributes, hmac */
        0, 4, 0, 0, 0, 0,                          /* inSensitive: empty userAuth and data */
        0, 26,                                     /* inPublic size */
        0x00, 0x23, 0x00, 0x0b,                    /* TPM_ALG_ECC, nameAlg SHA-256 */
        0x00, 0x03, 0x04, 0x72,                    /* fixedTPM fixedParent sensitiveDataOrigin userWithAuth noDA restricted decrypt */
        0, 0,                                      /* authPolicy */
        0x00, 0x06, 0x00, 0x80, 0x00, 0x43,        /* AES-128-CFB */
        0x00, 0x10, 0x00, 0x03, 0x00, 0x10,        /* scheme NULL, NIST P-256, kdf NULL */
        0, 0, 0, 0,                                /* unique: empty x, y */
        0, 0,                                      /* outsideInfo */
        0, 0, 0, 0,                                /* creationPCR: none */
    };
    if (ek) cmd[13] = 0x0b;
    uint32_t rc = 0;
    int len = transact(fd, cmd, sizeof(cmd), &rc);
    if (len < 0) return 1;
    /* header 10, handle 4, parameterSize 4, outPublic size 2, TPMT_PUBLIC up to unique 22 */
    if (rc != 0 || len < 44 + 32 + 2 + 32 || resp[42] != 0 || resp[43] != 32 || resp[76] != 0 || resp[77] != 32) {
      printf("VTEST-TPM error rc=0x%x len=%d\n", rc, len);
      return 1;
    }
    unsigned char flush[14] = {0x80, 0x01, 0, 0, 0, 14, 0, 0, 0x01, 0x65, resp[10], resp[11], resp[12], resp[13]};
    unsigned char point[64];
    memcpy(point, resp + 44, 32);
    memcpy(point + 32, resp + 78, 32);
    if (transact(fd, flush, sizeof(flush), &rc) < 0) return 1;
    printf("VTEST-TPM %s rc=0x0 ", ek ? "ek" : "primary");
    for (int i = 0; i < 32; i++) printf("%02x", point[i]);
    printf(" ");
    hex(point + 32, 32);
    return 0;
  }
  if (strcmp(argv[2], "bench") == 0) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (unsigned i = 0; i < arg; i++) {
      if (getrandom_cmd(fd, 32, 0) != 0) return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double us = ((b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3) / (arg ? arg : 1);
    printf("VTEST-TPM bench %u us-per-op %.1f\n", arg, us);
    return 0;
  }
  printf("VTEST-TPM error unknown command '%s'\n", argv[2]);
  return 2;
}
