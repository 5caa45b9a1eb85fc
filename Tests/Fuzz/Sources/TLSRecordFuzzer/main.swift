// Entry point: libFuzzer calls fuzz (TLSRecordFuzzer.swift) for every input.
import FuzzerEntry

runFuzzer(fuzz)
