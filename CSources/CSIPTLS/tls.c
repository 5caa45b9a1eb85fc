/*
 * TLS sessions over memory BIOs (see CSIPTLS.h). OpenSSL 3 needs no global initialisation; OpenSSL's error queue is
 * per thread, so every operation clears it first and turns what it left into text for the caller.
 */
#include <arpa/inet.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "include/CSIPTLS.h"

/*
 * TLS 1.2 ciphers when the caller names none: forward-secret ECDHE key exchange with AEAD ciphers only (Mozilla's
 * "intermediate" list without DHE). No RSA key exchange, no CBC, no SHA-1.
 */
#define CSIP_TLS_DEFAULT_CIPHERS                                                                                     \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"                         \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* Server session ID context: needed so that verified client certificates and session resumption work together. */
#define CSIP_TLS_SESSION_ID_CONTEXT "sip-edge"

enum csip_tls_state {
    CSIP_TLS_OPEN = 0,
    CSIP_TLS_PEER_CLOSED = -1,
    CSIP_TLS_FAILED = -2,
};

struct csip_tls_context {
    SSL_CTX *ssl_context; /* one reference, owned by this handle; every SSL made from it holds another */
};

struct csip_tls_session {
    SSL *ssl;
    BIO *input;  /* ciphertext the caller fed; OpenSSL reads it (owned by ssl) */
    BIO *output; /* ciphertext OpenSSL wrote; the caller takes it (owned by ssl) */
    int state;   /* enum csip_tls_state */
    char error[CSIP_TLS_ERROR_MAX];
};

/* ---- error text ---------------------------------------------------------------------------------------------- */

/* printf into a caller buffer, always terminated, silently truncated; tolerates a NULL or empty buffer. */
static void csip_tls_format(char *out, size_t capacity, const char *format, ...) __attribute__((format(printf, 3, 4)));

static void csip_tls_format(char *out, size_t capacity, const char *format, ...) {
    if (out == NULL || capacity == 0) return;
    va_list arguments;
    va_start(arguments, format);
    int written = vsnprintf(out, capacity, format, arguments);
    va_end(arguments);
    if (written < 0) out[0] = '\0';
}

/* The reason part of OpenSSL error `code` ("No such file or directory", "certificate verify failed"). */
static void csip_tls_reason(unsigned long code, char *out, size_t capacity) {
    char full[CSIP_TLS_ERROR_MAX];
    ERR_error_string_n(code, full, sizeof full);
    /* "error:XXXXXXXX:library:function:reason": the reason follows the fourth colon. */
    const char *reason = full;
    int colons = 0;
    for (const char *p = full; *p != '\0' && colons < 4; p++) {
        if (*p == ':') {
            colons++;
            reason = p + 1;
        }
    }
    if (colons < 4 || *reason == '\0') reason = full;
    csip_tls_format(out, capacity, "%s", reason);
}

/*
 * Writes "<what>: <reason>" where the reason is the earliest error in this thread's queue (the root cause: the
 * later ones only say which layer passed it up), then empties the queue.
 */
static void csip_tls_error_from_queue(char *out, size_t capacity, const char *what) {
    unsigned long code = ERR_get_error();
    char reason[CSIP_TLS_ERROR_MAX];
    if (code == 0) {
        csip_tls_format(reason, sizeof reason, "%s", "unknown error");
    } else {
        csip_tls_reason(code, reason, sizeof reason);
    }
    ERR_clear_error();
    csip_tls_format(out, capacity, "%s: %s", what, reason);
}

/* ---- context ------------------------------------------------------------------------------------------------- */

static int csip_tls_valid_version(int version) {
    return version == CSIP_TLS_VERSION_1_2 || version == CSIP_TLS_VERSION_1_3;
}

/* Applies every option to `ssl_context`; returns 0, or -1 with the reason in `error`. */
static int csip_tls_configure(SSL_CTX *ssl_context, const struct csip_tls_context_options *options, int minimum,
                              char *error, size_t error_capacity) {
    const int server = options->role == CSIP_TLS_ROLE_SERVER;

    if (SSL_CTX_set_min_proto_version(ssl_context, minimum) != 1) {
        csip_tls_error_from_queue(error, error_capacity, "minimum TLS version");
        return -1;
    }
    if (options->maximum_version != 0 && SSL_CTX_set_max_proto_version(ssl_context, options->maximum_version) != 1) {
        csip_tls_error_from_queue(error, error_capacity, "maximum TLS version");
        return -1;
    }

    uint64_t flags = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION;
    if (server) flags |= SSL_OP_CIPHER_SERVER_PREFERENCE;
    if (!options->session_tickets) flags |= SSL_OP_NO_TICKET;
    /* Both return the resulting option / mode bits; they cannot fail. */
    (void)SSL_CTX_set_options(ssl_context, flags);
    /* Idle connections give their read and write buffers back: an edge holds many mostly idle connections. */
    (void)SSL_CTX_set_mode(ssl_context, SSL_MODE_RELEASE_BUFFERS);

    const char *ciphers = options->cipher_list != NULL ? options->cipher_list : CSIP_TLS_DEFAULT_CIPHERS;
    if (SSL_CTX_set_cipher_list(ssl_context, ciphers) != 1) {
        csip_tls_error_from_queue(error, error_capacity, "cipher list");
        return -1;
    }
    if (options->ciphersuites != NULL && SSL_CTX_set_ciphersuites(ssl_context, options->ciphersuites) != 1) {
        csip_tls_error_from_queue(error, error_capacity, "TLS 1.3 ciphersuites");
        return -1;
    }

    char what[CSIP_TLS_ERROR_MAX];
    if (options->certificate_chain_file != NULL) {
        if (SSL_CTX_use_certificate_chain_file(ssl_context, options->certificate_chain_file) != 1) {
            csip_tls_format(what, sizeof what, "certificate file %s", options->certificate_chain_file);
            csip_tls_error_from_queue(error, error_capacity, what);
            return -1;
        }
        if (SSL_CTX_use_PrivateKey_file(ssl_context, options->private_key_file, SSL_FILETYPE_PEM) != 1) {
            if (ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH) {
                ERR_clear_error();
                csip_tls_format(error, error_capacity, "private key %s does not match certificate %s",
                                options->private_key_file, options->certificate_chain_file);
            } else {
                csip_tls_format(what, sizeof what, "private key file %s", options->private_key_file);
                csip_tls_error_from_queue(error, error_capacity, what);
            }
            return -1;
        }
        if (SSL_CTX_check_private_key(ssl_context) != 1) {
            ERR_clear_error();
            csip_tls_format(error, error_capacity, "private key %s does not match certificate %s",
                            options->private_key_file, options->certificate_chain_file);
            return -1;
        }
    }

    int verify = SSL_VERIFY_NONE;
    if (options->ca_file != NULL) {
        if (SSL_CTX_load_verify_file(ssl_context, options->ca_file) != 1) {
            csip_tls_format(what, sizeof what, "CA file %s", options->ca_file);
            csip_tls_error_from_queue(error, error_capacity, what);
            return -1;
        }
        if (server) {
            /* Name the acceptable issuers in the CertificateRequest so clients pick the right certificate. */
            STACK_OF(X509_NAME) *issuers = SSL_load_client_CA_file(options->ca_file);
            if (issuers == NULL) {
                csip_tls_format(what, sizeof what, "CA file %s", options->ca_file);
                csip_tls_error_from_queue(error, error_capacity, what);
                return -1;
            }
            SSL_CTX_set_client_CA_list(ssl_context, issuers); /* takes ownership */
        }
        verify = SSL_VERIFY_PEER;
    } else if (!server && options->require_peer_certificate) {
        if (SSL_CTX_set_default_verify_paths(ssl_context) != 1) {
            csip_tls_error_from_queue(error, error_capacity, "system trust store");
            return -1;
        }
        verify = SSL_VERIFY_PEER;
    }
    if (server && options->require_peer_certificate) verify |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ssl_context, verify, NULL);

    if (server) {
        if (SSL_CTX_set_session_id_context(ssl_context, (const unsigned char *)CSIP_TLS_SESSION_ID_CONTEXT,
                                           sizeof CSIP_TLS_SESSION_ID_CONTEXT - 1) != 1) {
            csip_tls_error_from_queue(error, error_capacity, "session ID context");
            return -1;
        }
        if (!options->session_tickets) {
            /* No resumption at all: no server-side cache (shared state) and no TLS 1.3 tickets either. */
            (void)SSL_CTX_set_session_cache_mode(ssl_context, SSL_SESS_CACHE_OFF); /* returns the old mode */
            if (SSL_CTX_set_num_tickets(ssl_context, 0) != 1) {
                csip_tls_error_from_queue(error, error_capacity, "session tickets");
                return -1;
            }
        }
    }
    return 0;
}

int csip_tls_context_new(const struct csip_tls_context_options *options, struct csip_tls_context **out, char *error,
                         size_t error_capacity) {
    csip_tls_format(error, error_capacity, "%s", "");
    if (out == NULL || options == NULL) {
        csip_tls_format(error, error_capacity, "%s", "invalid arguments");
        return -1;
    }
    *out = NULL;
    if (options->role != CSIP_TLS_ROLE_SERVER && options->role != CSIP_TLS_ROLE_CLIENT) {
        csip_tls_format(error, error_capacity, "unknown role %d", options->role);
        return -1;
    }
    const int server = options->role == CSIP_TLS_ROLE_SERVER;
    if ((options->certificate_chain_file == NULL) != (options->private_key_file == NULL)) {
        csip_tls_format(error, error_capacity, "%s", "a certificate file needs a private key file and vice versa");
        return -1;
    }
    if (server && options->certificate_chain_file == NULL) {
        csip_tls_format(error, error_capacity, "%s", "a TLS server needs a certificate file and a private key file");
        return -1;
    }
    if (server && options->require_peer_certificate && options->ca_file == NULL) {
        csip_tls_format(error, error_capacity, "%s",
                        "requiring client certificates needs a CA file to verify them against");
        return -1;
    }
    const int minimum = options->minimum_version == 0 ? CSIP_TLS_VERSION_1_2 : options->minimum_version;
    if (!csip_tls_valid_version(minimum)) {
        csip_tls_format(error, error_capacity, "unsupported minimum TLS version 0x%04x (use 1.2 or 1.3)", minimum);
        return -1;
    }
    if (options->maximum_version != 0 &&
        (!csip_tls_valid_version(options->maximum_version) || options->maximum_version < minimum)) {
        csip_tls_format(error, error_capacity, "unsupported maximum TLS version 0x%04x (use 1.2 or 1.3, >= minimum)",
                        options->maximum_version);
        return -1;
    }

    ERR_clear_error();
    struct csip_tls_context *context = calloc(1, sizeof *context);
    if (context == NULL) {
        csip_tls_format(error, error_capacity, "%s", "out of memory");
        return -1;
    }
    context->ssl_context = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (context->ssl_context == NULL) {
        csip_tls_error_from_queue(error, error_capacity, "SSL_CTX_new");
        free(context);
        return -1;
    }
    if (csip_tls_configure(context->ssl_context, options, minimum, error, error_capacity) != 0) {
        SSL_CTX_free(context->ssl_context);
        free(context);
        return -1;
    }
    *out = context;
    return 0;
}

void csip_tls_context_free(struct csip_tls_context *context) {
    if (context == NULL) return;
    SSL_CTX_free(context->ssl_context); /* drops one reference; live sessions keep theirs */
    free(context);
}

/* ---- session ------------------------------------------------------------------------------------------------- */

/* Marks the session failed, with "<what>: <reason>" from the error queue plus why certificate checks failed. */
static void csip_tls_fail(struct csip_tls_session *session, const char *what) {
    session->state = CSIP_TLS_FAILED;
    char text[CSIP_TLS_ERROR_MAX];
    csip_tls_error_from_queue(text, sizeof text, what);
    long verify = SSL_get_verify_result(session->ssl);
    if (verify != X509_V_OK) {
        csip_tls_format(session->error, sizeof session->error, "%s (certificate: %s)", text,
                        X509_verify_cert_error_string(verify));
    } else {
        csip_tls_format(session->error, sizeof session->error, "%s", text);
    }
}

/* Advances the handshake when it is not done; returns 0, or -2 (failed). WANT_READ is not a failure here. */
static int csip_tls_drive_handshake(struct csip_tls_session *session) {
    if (SSL_is_init_finished(session->ssl)) return 0;
    ERR_clear_error();
    int result = SSL_do_handshake(session->ssl);
    if (result == 1) return 0;
    int reason = SSL_get_error(session->ssl, result);
    if (reason == SSL_ERROR_WANT_READ || reason == SSL_ERROR_WANT_WRITE) return 0;
    csip_tls_fail(session, "TLS handshake failed");
    return CSIP_TLS_FAILED;
}

/* Client side: SNI and the name (or address) the server's certificate must carry. Returns 0 or -1. */
static int csip_tls_set_server_name(struct csip_tls_session *session, const char *server_name, char *error,
                                    size_t error_capacity) {
    unsigned char address[sizeof(struct in6_addr)];
    const int is_address =
        inet_pton(AF_INET, server_name, address) == 1 || inet_pton(AF_INET6, server_name, address) == 1;
    const int verifying = (SSL_get_verify_mode(session->ssl) & SSL_VERIFY_PEER) != 0;
    if (is_address) {
        /* RFC 6066: SNI carries host names only. */
        if (verifying && X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(session->ssl), server_name) != 1) {
            csip_tls_error_from_queue(error, error_capacity, "server address");
            return -1;
        }
        return 0;
    }
    if (SSL_set_tlsext_host_name(session->ssl, server_name) != 1) {
        csip_tls_error_from_queue(error, error_capacity, "server name");
        return -1;
    }
    if (verifying) {
        SSL_set_hostflags(session->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(session->ssl, server_name) != 1) {
            csip_tls_error_from_queue(error, error_capacity, "server name");
            return -1;
        }
    }
    return 0;
}

int csip_tls_session_new(struct csip_tls_context *context, const char *server_name, struct csip_tls_session **out,
                         char *error, size_t error_capacity) {
    csip_tls_format(error, error_capacity, "%s", "");
    if (context == NULL || out == NULL) {
        csip_tls_format(error, error_capacity, "%s", "invalid arguments");
        return -1;
    }
    *out = NULL;
    ERR_clear_error();
    struct csip_tls_session *session = calloc(1, sizeof *session);
    if (session == NULL) {
        csip_tls_format(error, error_capacity, "%s", "out of memory");
        return -1;
    }
    session->ssl = SSL_new(context->ssl_context); /* takes its own reference on the SSL_CTX */
    if (session->ssl == NULL) {
        csip_tls_error_from_queue(error, error_capacity, "SSL_new");
        free(session);
        return -1;
    }
    session->input = BIO_new(BIO_s_mem());
    session->output = BIO_new(BIO_s_mem());
    if (session->input == NULL || session->output == NULL) {
        csip_tls_error_from_queue(error, error_capacity, "BIO_new");
        BIO_free(session->input);
        BIO_free(session->output);
        SSL_free(session->ssl);
        free(session);
        return -1;
    }
    /* An empty input means "no data yet" (retry), not end of stream: the caller reports the socket's EOF. */
    (void)BIO_set_mem_eof_return(session->input, -1); /* a mem BIO control: always succeeds */
    SSL_set_bio(session->ssl, session->input, session->output); /* ssl owns both from here */

    const int client = SSL_is_server(session->ssl) == 0;
    if (client) {
        if (server_name != NULL && csip_tls_set_server_name(session, server_name, error, error_capacity) != 0) {
            csip_tls_session_free(session);
            return -1;
        }
        SSL_set_connect_state(session->ssl);
        /* Queue the ClientHello now, so the caller can send it as soon as the connection is up. */
        if (csip_tls_drive_handshake(session) != 0) {
            csip_tls_format(error, error_capacity, "%s", session->error);
            csip_tls_session_free(session);
            return -1;
        }
    } else {
        SSL_set_accept_state(session->ssl);
    }
    *out = session;
    return 0;
}

void csip_tls_session_free(struct csip_tls_session *session) {
    if (session == NULL) return;
    SSL_free(session->ssl); /* frees both BIOs and drops the session's SSL_CTX reference */
    free(session);
}

int csip_tls_feed(struct csip_tls_session *session, const uint8_t *ciphertext, size_t length) {
    if (session == NULL || (ciphertext == NULL && length != 0) || length > INT_MAX) return -1;
    if (session->state == CSIP_TLS_FAILED) return -1;
    if (length == 0) return 0;
    int written = BIO_write(session->input, ciphertext, (int)length);
    if (written != (int)length) {
        ERR_clear_error();
        return -1; /* a memory BIO takes everything unless allocation fails */
    }
    return written;
}

int csip_tls_read(struct csip_tls_session *session, uint8_t *plaintext, size_t capacity) {
    if (session == NULL) return CSIP_TLS_FAILED;
    if (session->state != CSIP_TLS_OPEN) return session->state;
    if (plaintext == NULL || capacity == 0) return csip_tls_drive_handshake(session);
    if (capacity > INT_MAX) capacity = INT_MAX;
    ERR_clear_error();
    size_t read = 0;
    int result = SSL_read_ex(session->ssl, plaintext, capacity, &read);
    if (result == 1) return (int)read;
    switch (SSL_get_error(session->ssl, result)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: /* a memory BIO never blocks on write; treat like want-read */
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        session->state = CSIP_TLS_PEER_CLOSED;
        return CSIP_TLS_PEER_CLOSED;
    default:
        csip_tls_fail(session, SSL_is_init_finished(session->ssl) ? "TLS failed" : "TLS handshake failed");
        return CSIP_TLS_FAILED;
    }
}

int csip_tls_write(struct csip_tls_session *session, const uint8_t *plaintext, size_t length) {
    if (session == NULL) return -1;
    if (session->state == CSIP_TLS_FAILED) return -1;
    if (length > INT_MAX || (plaintext == NULL && length != 0)) {
        csip_tls_format(session->error, sizeof session->error, "%s", "write: invalid length");
        return -1;
    }
    if (length == 0 || !SSL_is_init_finished(session->ssl)) return 0;
    if ((SSL_get_shutdown(session->ssl) & SSL_SENT_SHUTDOWN) != 0) {
        csip_tls_format(session->error, sizeof session->error, "%s", "write after shutdown");
        return -1;
    }
    ERR_clear_error();
    size_t written = 0;
    int result = SSL_write_ex(session->ssl, plaintext, length, &written);
    if (result == 1 && written == length) return (int)length;
    csip_tls_fail(session, "TLS write failed");
    return -1;
}

size_t csip_tls_pending_output(const struct csip_tls_session *session) {
    if (session == NULL) return 0;
    return BIO_ctrl_pending(session->output);
}

int csip_tls_take_output(struct csip_tls_session *session, uint8_t *out, size_t capacity) {
    if (session == NULL || out == NULL || capacity == 0) return 0;
    if (capacity > INT_MAX) capacity = INT_MAX;
    int taken = BIO_read(session->output, out, (int)capacity);
    return taken > 0 ? taken : 0; /* an empty memory BIO reports 0 or -1: nothing to send either way */
}

int csip_tls_handshake_done(const struct csip_tls_session *session) {
    return session != NULL && SSL_is_init_finished(session->ssl) ? 1 : 0;
}

int csip_tls_shutdown(struct csip_tls_session *session) {
    if (session == NULL || session->state == CSIP_TLS_FAILED) return -1;
    if (!SSL_is_init_finished(session->ssl)) {
        csip_tls_format(session->error, sizeof session->error, "%s", "shutdown before the handshake completed");
        return -1;
    }
    if ((SSL_get_shutdown(session->ssl) & SSL_SENT_SHUTDOWN) != 0) return 0;
    ERR_clear_error();
    /* 0: close_notify queued, the peer's not seen yet; 1: both seen. Either way ours is in the output. */
    if (SSL_shutdown(session->ssl) >= 0) return 0;
    csip_tls_error_from_queue(session->error, sizeof session->error, "TLS shutdown failed");
    return -1;
}

int csip_tls_peer_subject(const struct csip_tls_session *session, char *out, size_t capacity) {
    if (out == NULL || capacity == 0) return 0;
    out[0] = '\0';
    if (session == NULL || (SSL_get_verify_mode(session->ssl) & SSL_VERIFY_PEER) == 0) return 0;
    X509 *certificate = SSL_get0_peer_certificate(session->ssl);
    if (certificate == NULL || SSL_get_verify_result(session->ssl) != X509_V_OK) return 0;
    BIO *text = BIO_new(BIO_s_mem());
    if (text == NULL) {
        ERR_clear_error();
        return 0;
    }
    /* RFC 2253 form, UTF-8 kept as is (control characters and RFC 2253 specials still escaped). */
    const unsigned long flags = XN_FLAG_RFC2253 & ~(unsigned long)ASN1_STRFLGS_ESC_MSB;
    int length = 0;
    if (X509_NAME_print_ex(text, X509_get_subject_name(certificate), 0, flags) >= 0) {
        int capped = capacity - 1 > INT_MAX ? INT_MAX : (int)(capacity - 1);
        length = capped > 0 ? BIO_read(text, out, capped) : 0;
        if (length < 0) length = 0;
        out[length] = '\0';
    }
    BIO_free(text);
    ERR_clear_error();
    return length;
}

void csip_tls_last_error(const struct csip_tls_session *session, char *out, size_t capacity) {
    csip_tls_format(out, capacity, "%s", session != NULL ? session->error : "");
}

int csip_tls_protocol_version(const struct csip_tls_session *session) {
    if (session == NULL || !SSL_is_init_finished(session->ssl)) return 0;
    return SSL_version(session->ssl);
}
