/*
 * libFuzzer's driver entry point (compiler-rt FuzzerDriver.cpp, in libclang_rt.fuzzer*.a), declared for Swift.
 *
 * SwiftPM links every executable with `--defsym main=<Module>_main` and renames the Swift entry point to match, so
 * libFuzzer's own `main` is never used. main.swift calls this instead, which is libFuzzer's documented way to run
 * from a program that has its own main. -sanitize=fuzzer links the runtime that defines it.
 */
#ifndef CFUZZERDRIVER_H
#define CFUZZERDRIVER_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*user_callback)(const uint8_t *data, size_t size));

#endif
