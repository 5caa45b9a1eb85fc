// Entry point: hand the command line to libFuzzer, which calls LLVMFuzzerTestOneInput (EdgeInputsFuzzer.swift).
import CFuzzerDriver
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// libFuzzer passes a valid pointer even for an empty input, but its C signature allows NULL.
nonisolated(unsafe) let emptyInput = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)

var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
let status = LLVMFuzzerRunDriver(&argc, &argv) { data, size in
    fuzz(data ?? UnsafePointer(emptyInput), size)
}
exit(status)
