/* Flow-token MAC: one-shot HMAC-SHA256 through OpenSSL (no state kept between calls). */
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

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
