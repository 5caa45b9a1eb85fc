#!/usr/bin/env bash
# Checks the rules a compiler does not: unsafe Swift stays inside its fences (SIPBytes, SIPUring, SIPLocks). Outside them:
# no Unsafe* pointer types or closures, no OpaquePointer, no call into a C function (csip_*, io_uring_*, OpenSSL,
# libc calls that take pointers),
# and no import of the C targets that have functions (CSIPScan's header-kind and class constants may be named).
set -euo pipefail
cd "$(dirname "$0")/.."
fenced='^Sources/(SIPBytes|SIPUring|SIPLocks)/'
checks=(
    'Unsafe(Mutable)?(Raw)?(Buffer)?Pointer|Unmanaged|withUnsafe|bindMemory|assumingMemoryBound|unsafeBitCast|OpaquePointer'
    '\b(csip|io_uring|SSL|SSL_CTX|BIO|EVP|HMAC)_[A-Za-z0-9_]+\('
    '^\s*(public |package |@_implementationOnly )?import (CSIPUring|CSIPTLS|CSIPDNS)\b'
    '\b(clock_gettime|arc4random_buf|sigtimedwait|pthread_sigmask|sigprocmask|sigemptyset|sigaddset|getrlimit|setrlimit|setsockopt|getsockopt|epoll_wait|epoll_ctl|recvmmsg|sendmmsg|recvfrom|sendto|memcpy|memcmp|memchr)\('
)
status=0
for pattern in "${checks[@]}"; do
    violations=$(grep -rnE "$pattern" Sources --include='*.swift' | grep -vE "$fenced" | grep -vE ':\s*///' || true)
    if [ -n "$violations" ]; then
        echo "unsafe code outside the fences (SIPBytes, SIPUring, SIPLocks): /$pattern/"
        echo "$violations"
        status=1
    fi
done
[ "$status" -eq 0 ] && echo "lint: unsafe code fenced"
exit "$status"
