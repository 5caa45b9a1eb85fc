/* Flow-token MAC: one-shot HMAC-SHA256 through OpenSSL (no state kept between calls). */
#include <string.h>

#include <stdlib.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>

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

struct csip_mac {
    EVP_MAC *algorithm;
    EVP_MAC_CTX *context;
};

void csip_mac_free(struct csip_mac *mac) {
    if (mac == NULL) return;
    EVP_MAC_CTX_free(mac->context);
    EVP_MAC_free(mac->algorithm);
    free(mac);
}

int csip_mac_new(struct csip_mac **out, const uint8_t *key, size_t key_length) {
    if (out == NULL || key == NULL || key_length == 0) return -1;
    *out = NULL;
    struct csip_mac *mac = calloc(1, sizeof(*mac));
    if (mac == NULL) return -1;
    mac->algorithm = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    if (mac->algorithm == NULL) goto fail;
    mac->context = EVP_MAC_CTX_new(mac->algorithm);
    if (mac->context == NULL) goto fail;
    OSSL_PARAM params[2] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_init(mac->context, key, key_length, params) != 1) goto fail;
    *out = mac;
    return 0;
fail:
    csip_mac_free(mac);
    return -1;
}

int csip_mac_compute(struct csip_mac *mac, const uint8_t *data, size_t data_length, uint8_t *out,
                     size_t out_length) {
    if (mac == NULL || out == NULL || out_length == 0 || out_length > CSIP_MAC_MAX) return -1;
    if (data == NULL && data_length != 0) return -1;
    static const uint8_t empty = 0;
    unsigned char digest[EVP_MAX_MD_SIZE];
    size_t digest_length = 0;
    /* A NULL key re-initialises with the key given to csip_mac_new. */
    if (EVP_MAC_init(mac->context, NULL, 0, NULL) != 1) return -1;
    if (EVP_MAC_update(mac->context, data ? data : &empty, data_length) != 1) return -1;
    if (EVP_MAC_final(mac->context, digest, &digest_length, sizeof(digest)) != 1) return -1;
    if (digest_length < out_length) return -1;
    memcpy(out, digest, out_length);
    return 0;
}

int csip_sha1(const uint8_t *data, size_t data_length, uint8_t out[20]) {
    if (out == NULL || (data == NULL && data_length != 0)) return -1;
    static const uint8_t empty = 0;
    unsigned int digest_length = 0;
    if (EVP_Digest(data ? data : &empty, data_length, out, &digest_length, EVP_sha1(), NULL) != 1) return -1;
    return digest_length == 20 ? 0 : -1;
}
