/*
 * CSIPTLS: OpenSSL (libssl/libcrypto from Debian's libssl-dev) behind a small C surface, so OpenSSL's types and
 * macros never reach Swift: the keyed MAC that signs flow tokens, and TLS sessions over memory BIOs.
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

/** SHA-1 of `data` into `out` (the WebSocket handshake's Sec-WebSocket-Accept, RFC 6455 §4.2.2). 0, or -1. */
int csip_sha1(const uint8_t *data, size_t data_length, uint8_t out[20]);

/**
 * A keyed HMAC-SHA256 context for many messages under one key: the key's inner and outer pad blocks are hashed once,
 * so a MAC costs the data's blocks and one more, and allocates nothing. Not thread-safe: one per worker.
 */
struct csip_mac;

/** A context for `key`. 0, or -1 when OpenSSL failed (nothing allocated). */
int csip_mac_new(struct csip_mac **out, const uint8_t *key, size_t key_length);
void csip_mac_free(struct csip_mac *mac);

/** HMAC-SHA256 of `data` under the context's key, truncated to `out_length` (1...CSIP_MAC_MAX). 0 or -1. */
int csip_mac_compute(struct csip_mac *mac, const uint8_t *data, size_t data_length, uint8_t *out, size_t out_length);

/* ---------------------------------------------------------------------------------------------------------------
 * TLS 1.2 / 1.3 over memory BIOs. OpenSSL never touches a socket: the caller reads ciphertext from the socket and
 * feeds it in (csip_tls_feed), takes ciphertext out and writes it to the socket (csip_tls_take_output), and moves
 * plaintext with csip_tls_read / csip_tls_write. This lets io_uring workers own all socket I/O.
 *
 * Threads: a context is immutable once built and may be shared by every worker; a session belongs to one thread.
 * Errors are text written into caller buffers (always NUL-terminated, truncated to fit), never printed.
 * ------------------------------------------------------------------------------------------------------------- */

/** Protocol versions as on the wire (csip_tls_protocol_version and the options' version fields). */
#define CSIP_TLS_VERSION_1_2 0x0303
#define CSIP_TLS_VERSION_1_3 0x0304

/** Room for any error text this library writes (longer texts are truncated to the caller's capacity). */
#define CSIP_TLS_ERROR_MAX 256

enum csip_tls_role {
    CSIP_TLS_ROLE_SERVER = 0,
    CSIP_TLS_ROLE_CLIENT = 1,
};

/** How a context is built. Zero-initialise, then set what you need: zero / NULL means the documented default. */
struct csip_tls_context_options {
    /** CSIP_TLS_ROLE_SERVER or CSIP_TLS_ROLE_CLIENT. */
    int role;
    /** PEM certificate chain (leaf first). Server: required. Client: optional, the certificate for mutual TLS. */
    const char *certificate_chain_file;
    /** PEM private key of the leaf certificate; required whenever certificate_chain_file is set. */
    const char *private_key_file;
    /**
     * PEM trust anchors, optional. Server: client certificates are requested and verified against it (a client
     * that sends none is still accepted unless require_peer_certificate). Client: the server is verified against it.
     */
    const char *ca_file;
    /**
     * Server: a client certificate is mandatory and must verify against ca_file (which is then required); mutual
     * TLS as RFC 5922 describes. Client: verify the server's certificate (and, when a session gets a server name,
     * its name), against ca_file or else the system's trust store. A client that sets ca_file verifies too.
     */
    int require_peer_certificate;
    /** CSIP_TLS_VERSION_1_2 (default when 0) or CSIP_TLS_VERSION_1_3. */
    int minimum_version;
    /** 0 (default: the highest OpenSSL supports, 1.3), CSIP_TLS_VERSION_1_2 or CSIP_TLS_VERSION_1_3. */
    int maximum_version;
    /**
     * OpenSSL cipher list for TLS 1.2. NULL: ECDHE key exchange with AES-GCM or CHACHA20-POLY1305 only (no RSA key
     * exchange, no CBC, no SHA-1 MACs).
     */
    const char *cipher_list;
    /** OpenSSL TLS 1.3 ciphersuites ("TLS_AES_128_GCM_SHA256:..."). NULL: OpenSSL's defaults. */
    const char *ciphersuites;
    /** Server: issue session tickets (resumption). Default 0: no tickets and no session cache. */
    int session_tickets;
};

struct csip_tls_context;
struct csip_tls_session;

/**
 * Builds a context: loads and checks the certificate, key and CA file, applies versions and ciphers, disables
 * compression and renegotiation. Returns 0 and sets *out, or -1 with the reason in `error` (e.g.
 * "certificate file /x: No such file or directory", "private key /k does not match certificate /c").
 */
int csip_tls_context_new(const struct csip_tls_context_options *options, struct csip_tls_context **out, char *error,
                         size_t error_capacity);

/**
 * Drops the caller's reference. OpenSSL reference-counts the underlying SSL_CTX and every session holds its own
 * reference, so sessions made from this context keep working after it is freed (a reload swaps contexts while
 * existing connections go on). NULL is ignored.
 */
void csip_tls_context_free(struct csip_tls_context *context);

/**
 * Starts a session (one per connection). `server_name` (client only, may be NULL) is sent as SNI and, when the
 * context verifies the server, is the name (or IP address) its certificate must match; an IP address is not sent
 * as SNI. A client queues its ClientHello at once: send csip_tls_take_output's bytes after connecting.
 * Returns 0 and sets *out, or -1 with the reason in `error`.
 */
int csip_tls_session_new(struct csip_tls_context *context, const char *server_name, struct csip_tls_session **out,
                         char *error, size_t error_capacity);

/** Frees a session (no close_notify is sent: call csip_tls_shutdown first for a clean close). NULL is ignored. */
void csip_tls_session_free(struct csip_tls_session *session);

/**
 * Hands the session ciphertext received from the socket. Returns the bytes taken (all of them) or -1 (length
 * above INT_MAX, or out of memory). Follow with csip_tls_read, which processes them.
 */
int csip_tls_feed(struct csip_tls_session *session, const uint8_t *ciphertext, size_t length);

/**
 * Processes fed ciphertext: advances the handshake and decrypts application data into `plaintext`.
 * Returns >0: plaintext bytes written (call again: more may be ready);
 *          0: nothing decrypted yet, feed more (handshake messages may now be waiting in the output);
 *         -1: the peer closed cleanly (close_notify);
 *         -2: fatal error (bad record, handshake or verification failure): csip_tls_last_error has the reason.
 *             An alert for the peer may be waiting in the output: send it, then close the connection.
 * After -1 or -2 every further call returns the same.
 */
int csip_tls_read(struct csip_tls_session *session, uint8_t *plaintext, size_t capacity);

/**
 * Encrypts all of `plaintext` (split into records as needed) into the output. Returns `length`; 0 when the
 * handshake is not complete yet (nothing is buffered: keep the bytes and write them once csip_tls_handshake_done
 * says 1); -1 on failure (session failed or closed, length above INT_MAX; see csip_tls_last_error).
 * A length of 0 returns 0.
 */
int csip_tls_write(struct csip_tls_session *session, const uint8_t *plaintext, size_t length);

/** Ciphertext bytes waiting to be sent to the socket (handshake records, application data, alerts). */
size_t csip_tls_pending_output(const struct csip_tls_session *session);

/** Moves up to `capacity` bytes of waiting ciphertext into `out`; returns how many (0 when none). */
int csip_tls_take_output(struct csip_tls_session *session, uint8_t *out, size_t capacity);

/** 1 once the handshake has completed (application data may flow), else 0. */
int csip_tls_handshake_done(const struct csip_tls_session *session);

/**
 * Queues close_notify in the output (send it, then close the socket or wait for the peer's). Returns 0, or -1
 * when the session cannot close cleanly (handshake not complete, session failed): just close the connection.
 */
int csip_tls_shutdown(struct csip_tls_session *session);

/**
 * Writes the subject of the peer's certificate (RFC 2253, e.g. "CN=alice,O=Example") into `out` when the peer
 * presented one and it was verified against the context's CA. Returns the text's length, or 0 when there is
 * none (no certificate, not verified, or verification off); the text is truncated to fit `capacity`.
 */
int csip_tls_peer_subject(const struct csip_tls_session *session, char *out, size_t capacity);

/** Writes the reason of the session's last failure into `out` ("" when none). */
void csip_tls_last_error(const struct csip_tls_session *session, char *out, size_t capacity);

/** The negotiated protocol version (CSIP_TLS_VERSION_1_2 / _1_3), or 0 before the handshake completes. */
int csip_tls_protocol_version(const struct csip_tls_session *session);

#ifdef __cplusplus
}
#endif

#endif
