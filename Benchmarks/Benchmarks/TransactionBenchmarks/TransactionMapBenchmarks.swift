import Benchmark

func transactionMapBenchmarks() {}
