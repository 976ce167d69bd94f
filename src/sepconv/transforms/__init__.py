"""Functions from program to program: each takes a JAX function (or a Flax model) and returns one that
computes the same thing another way.

- ``rewrite``: ``rewrite_equations``, the interpreter the others are built on, and ``counted_call``, a
  rewritten layer the counter costs as the convolution it replaces;
- ``windows``: a convolution's padding, output size and per-tap input slices (channels last);
- ``reductions``: per-channel sums of each image in one pass, split across threads (``per_image_sums``);
- ``shifts``: depthwise convolutions as shifted multiply-adds (``depthwise_by_shifts``);
- ``fast_inference``: every convolution as a CPU runs it fastest (``fast_inference.fast_inference``), and the
  training form with written-out gradients (``fast_inference.fast_training``);
- ``batchnorm``: BatchNorm as an affine map and folded into its convolution (``fold_batchnorm``);
- ``batchnorm_gradient``: BatchNorm in training with its gradient written out (``written_out_batchnorm``);
- ``quantize``: the int8 grid and a simulated int8 program (``quantized``, ``activation_ranges``);
- ``streaming``: a batch or a block computed a slice at a time (``micro_batched``,
  ``streamed_inverted_residual``);
- ``onnx_export``: ONNX export, ONNX Runtime's quantizer and sessions.
"""

from .batchnorm import batchnorm_affine, fold_batchnorm  # noqa: F401
from .onnx_export import export_onnx, missing_runtime, named_operators, onnx_session, quantize_onnx  # noqa: F401
from .quantize import activation_ranges, quantized, symmetric_grid, weight_ranges  # noqa: F401
from .rewrite import rewrite_equations  # noqa: F401
from .shifts import depthwise_by_shifts  # noqa: F401
from .streaming import micro_batched, streamed_inverted_residual  # noqa: F401
