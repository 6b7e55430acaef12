from django.apps import AppConfig


class BenchSeedConfig(AppConfig):
    name = "bench.seed"
    label = "benchseed"
    verbose_name = "Benchmark seed (development)"
