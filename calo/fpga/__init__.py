"""Fixed-point GarNet for FPGAs: ap_fixed types, hls4ml's data flow, numba reference, export.

Modules
-------
fixed
    ``ap_fixed``/``ap_ufixed`` types: quantize, cast, parse hls4ml strings, numba kernels.
garnet
    Weights of a (simplified) GarNet layer or stack, hls4ml's default internal types
    (:class:`GarNetFixedConfig`), the contracted input transform and the exp(-d^2) table.
reference
    Bit-exact numba emulation of hls4ml's ``nnet_garnet.h`` with overflow accounting.
export
    C++ config header, test vectors and a g++ harness against the hls4ml headers.
latency
    Latency / initiation-interval / DSP model of the hls4ml GarNet firmware.
qat
    Quantization-aware GarNetStack in PyTorch, bit for bit with the reference in eval mode, and
    the paper's FPGA model (stack + float Dense head).
data
    Electron / pion samples in the paper's padded 4-feature format.
train
    Plain training loop, evaluation (ROC AUC, response) and checkpoints of the FPGA model.
cli
    ``calo-export``: checkpoint -> quantized weights (JSON, npz), C++ header, test vectors.
"""

from calo.fpga.fixed import FixedType, cast, parse_type, quantize, to_float

__all__ = ["FixedType", "cast", "parse_type", "quantize", "to_float"]
