"""Every figure calo draws, one module per topic (events, performance, fpga, benchmarks).

Modules import matplotlib lazily enough that importing calo never needs a display.
"""
