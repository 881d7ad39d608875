"""The parts of ``benchmarks/memory_latency.py``, one idea per module.

- :mod:`.models`: what is compared: calo's models and layers, their torch_geometric peers
  (with torch-cluster's kNN registered for PyG), and the check that both give the same output;
- :mod:`.events`: the input events (toy calorimeter or uniform clouds);
- :mod:`.measure`: the measurement process: one configuration measured in a forked child of a
  server that has imported the libraries once (latency, training step, peak memory, kNN);
- :mod:`.report`: the markdown tables and the plots of a result file.

The command line, the plan of configurations and the result document are in the script.
"""
