// Entry point: libFuzzer calls fuzz (SIPParserFuzzer.swift) for every input.
import FuzzerEntry

runFuzzer(fuzz)
