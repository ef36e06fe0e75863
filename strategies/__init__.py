"""The method folders, one package per method (`pad_bench.strategies.<method>`).

The repository keeps them at the top level (`strategies/`); `pad_bench/strategies` links here and the
wheel installs them inside the package. `pad_bench.registry.load_strategy_class` imports them.
"""
