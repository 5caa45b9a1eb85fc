#!/usr/bin/env bash
# Checks the rules a compiler does not: unsafe Swift stays inside its fences (SIPBytes, SIPUring).
set -euo pipefail
cd "$(dirname "$0")/.."
fenced='^Sources/(SIPBytes|SIPUring)/'
pattern='Unsafe(Mutable)?(Raw)?(Buffer)?Pointer|Unmanaged|withUnsafe|bindMemory|assumingMemoryBound|unsafeBitCast'
violations=$(grep -rnE "$pattern" Sources --include='*.swift' | grep -vE "$fenced" | grep -vE ':\s*///' || true)
if [ -n "$violations" ]; then
    echo "unsafe code outside the fences (SIPBytes, SIPUring):"
    echo "$violations"
    exit 1
fi
echo "lint: unsafe code fenced"
