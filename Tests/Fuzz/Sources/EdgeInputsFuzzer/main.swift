// Entry point: libFuzzer calls fuzz (EdgeInputsFuzzer.swift) for every input.
import FuzzerEntry

runFuzzer(fuzz)
