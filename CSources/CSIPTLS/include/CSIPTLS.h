/*
 * CSIPTLS: OpenSSL (libssl/libcrypto from Debian's libssl-dev) behind a small C surface, so OpenSSL's types and
 * macros never reach Swift. Today: the keyed MAC that signs flow tokens. TLS sessions over memory BIOs land here.
 *
 * Rules: no global mutable state, every return value checked, csip_ prefix.
 */
#ifndef CSIPTLS_H
#define CSIPTLS_H

#include <stdint.h> /* first: see toolchain.md §1 on header order */
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Bytes of a full HMAC-SHA256. */
#define CSIP_MAC_MAX 32

/**
 * HMAC-SHA256 of `data` under `key`, truncated to `out_length` (1...CSIP_MAC_MAX) bytes, written to `out`.
 * Returns 0, or -1 when OpenSSL failed or the arguments are out of range (nothing is then written).
 */
int csip_hmac_sha256(const uint8_t *key, size_t key_length, const uint8_t *data, size_t data_length, uint8_t *out,
                     size_t out_length);

#ifdef __cplusplus
}
#endif

#endif
