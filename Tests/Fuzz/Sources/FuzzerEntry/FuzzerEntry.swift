// The entry point both harnesses share: hand the command line to libFuzzer, which calls `body` for every input.
import CFuzzerDriver
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// libFuzzer's callback is a C function pointer (no context): the harness's function waits here. Set once, before
/// libFuzzer starts; a fuzz harness is single-threaded.
nonisolated(unsafe) private var harness: ((UnsafePointer<UInt8>, Int) -> CInt)?
/// libFuzzer passes a valid pointer even for an empty input, but its C signature allows NULL.
nonisolated(unsafe) private let emptyInput = UnsafeMutablePointer<UInt8>.allocate(capacity: 1)

public func runFuzzer(_ body: @escaping (UnsafePointer<UInt8>, Int) -> CInt) -> Never {
    harness = body
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    let status = LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        harness!(data ?? UnsafePointer(emptyInput), size)
    }
    exit(status)
}
