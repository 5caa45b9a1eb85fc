import Benchmark

func timerWheelBenchmarks() {}
