/* Flow-token MAC: HMAC-SHA256 through OpenSSL. */
/* The pad states of a key are kept with the low-level SHA-256 calls (see struct csip_mac). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <string.h>

#include <stdlib.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <openssl/crypto.h>

#include "include/CSIPTLS.h"

int csip_hmac_sha256(const uint8_t *key, size_t key_length, const uint8_t *data, size_t data_length, uint8_t *out,
                     size_t out_length) {
    if (key == NULL || out == NULL || out_length == 0 || out_length > CSIP_MAC_MAX) return -1;
    if (data == NULL && data_length != 0) return -1;
    if (key_length > 0x7FFFFFFF) return -1;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_length = 0;
    static const uint8_t empty = 0;
    if (HMAC(EVP_sha256(), key, (int)key_length, data ? data : &empty, data_length, digest, &digest_length) == NULL)
        return -1;
    if (digest_length < out_length) return -1;
    memcpy(out, digest, out_length);
    return 0;
}

/* HMAC-SHA256 with the key's two pad blocks hashed once, at set-up: each MAC then costs the blocks of the data and
 * one outer block, with no allocation. OpenSSL 3's EVP_MAC re-initialisation duplicates two digest contexts
 * (allocating) per call, which cost about 6,000 instructions per flow token on the proxy's hot path. The low-level
 * SHA256_* calls are deprecated in OpenSSL 3 but kept, and they run the same CPU-specific (SHA-NI/AVX2) code. */
struct csip_mac {
    SHA256_CTX inner; /* after key XOR ipad */
    SHA256_CTX outer; /* after key XOR opad */
};

void csip_mac_free(struct csip_mac *mac) {
    if (mac == NULL) return;
    OPENSSL_cleanse(mac, sizeof(*mac));
    free(mac);
}

int csip_mac_new(struct csip_mac **out, const uint8_t *key, size_t key_length) {
    if (out == NULL || key == NULL || key_length == 0) return -1;
    *out = NULL;
    uint8_t block[SHA256_CBLOCK];
    memset(block, 0, sizeof(block));
    /* RFC 2104: a key longer than the block is replaced by its hash. */
    if (key_length > SHA256_CBLOCK) {
        if (SHA256(key, key_length, block) == NULL) return -1;
    } else {
        memcpy(block, key, key_length);
    }
    struct csip_mac *mac = calloc(1, sizeof(*mac));
    if (mac == NULL) goto fail;
    uint8_t pad[SHA256_CBLOCK];
    for (size_t i = 0; i < sizeof(pad); i++) pad[i] = block[i] ^ 0x36;
    if (SHA256_Init(&mac->inner) != 1 || SHA256_Update(&mac->inner, pad, sizeof(pad)) != 1) goto fail;
    for (size_t i = 0; i < sizeof(pad); i++) pad[i] = block[i] ^ 0x5c;
    if (SHA256_Init(&mac->outer) != 1 || SHA256_Update(&mac->outer, pad, sizeof(pad)) != 1) goto fail;
    OPENSSL_cleanse(pad, sizeof(pad));
    OPENSSL_cleanse(block, sizeof(block));
    *out = mac;
    return 0;
fail:
    OPENSSL_cleanse(block, sizeof(block));
    csip_mac_free(mac);
    return -1;
}

int csip_mac_compute(struct csip_mac *mac, const uint8_t *data, size_t data_length, uint8_t *out,
                     size_t out_length) {
    if (mac == NULL || out == NULL || out_length == 0 || out_length > CSIP_MAC_MAX) return -1;
    if (data == NULL && data_length != 0) return -1;
    static const uint8_t empty = 0;
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256_CTX context = mac->inner;
    int ok = SHA256_Update(&context, data ? data : &empty, data_length) == 1 && SHA256_Final(digest, &context) == 1;
    if (ok) {
        context = mac->outer;
        ok = SHA256_Update(&context, digest, sizeof(digest)) == 1 && SHA256_Final(digest, &context) == 1;
    }
    if (ok) memcpy(out, digest, out_length);
    OPENSSL_cleanse(&context, sizeof(context));
    OPENSSL_cleanse(digest, sizeof(digest));
    return ok ? 0 : -1;
}

int csip_sha1(const uint8_t *data, size_t data_length, uint8_t out[20]) {
    if (out == NULL || (data == NULL && data_length != 0)) return -1;
    static const uint8_t empty = 0;
    unsigned int digest_length = 0;
    if (EVP_Digest(data ? data : &empty, data_length, out, &digest_length, EVP_sha1(), NULL) != 1) return -1;
    return digest_length == 20 ? 0 : -1;
}
