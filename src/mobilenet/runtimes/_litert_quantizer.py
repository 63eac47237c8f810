"""The PT2E quantizer our LiteRT int8 files are made with: litert-torch's own
(int8 per-channel symmetric weights, int8 per-tensor activations), with two changes
measured on Google's V2 (docs/deployment.md, ``benchmarks/litert_accuracy.py``):

- conv -> ReLU6 is one quantized op. litert-torch fuses conv -> ReLU but does not know
  ``aten.relu6`` (how ``nn.ReLU6`` exports), so it observed each conv's output before
  the clamp (a range of tens for a [0, 6] output) and quantized it twice.
- Activation ranges from a moving average of each calibration batch's min and max
  (``MovingAverageMinMaxObserver``) instead of litert-torch's histogram observer.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch


def quantizer() -> Any:
    from litert_torch.quantize import pt2e_quantizer_utils as utils
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from torchao.quantization.pt2e.observer import MovingAverageMinMaxObserver
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation

    convs = (torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default)
    clamps = (torch.ops.aten.relu6.default, torch.ops.aten.hardtanh.default)

    def annotate_conv_relu6(graph: torch.fx.GraphModule, config: Any, filter_fn: Any = None) -> None:
        """What litert-torch's ``conv_relu`` annotator does for ReLU: the conv's inputs
        quantized, its output not, the clamp's output observed."""
        for clamp in graph.graph.nodes:
            conv = clamp.args[0] if clamp.op == "call_function" and clamp.target in clamps else None
            if not isinstance(conv, torch.fx.Node) or conv.op != "call_function" or conv.target not in convs \
                    or len(conv.users) != 1:
                continue
            inputs = {conv.args[0]: utils.get_input_act_qspec(config), conv.args[1]: utils.get_weight_qspec(config)}
            partition = [clamp, conv, conv.args[1]]
            bias = conv.args[2] if len(conv.args) > 2 else None
            if isinstance(bias, torch.fx.Node):
                inputs[bias] = utils.get_bias_qspec(config)
                partition.append(bias)
            if utils._is_annotated(partition) or (filter_fn and not all(filter_fn(n) for n in partition)):
                continue
            conv.meta["quantization_annotation"] = QuantizationAnnotation(input_qspec_map=inputs, _annotated=True)
            clamp.meta["quantization_annotation"] = QuantizationAnnotation(
                output_qspec=utils.get_output_act_qspec(config), _annotated=True)
            utils._mark_nodes_as_annotated(partition)

    class LiteRTQuantizer(PT2EQuantizer):
        def _annotate_all_static_patterns(self, model, quantization_config, filter_fn=None):
            if quantization_config is not None:
                annotate_conv_relu6(model, quantization_config, filter_fn)
            return super()._annotate_all_static_patterns(model, quantization_config, filter_fn)

    config = get_symmetric_quantization_config(is_per_channel=True)
    activations = dataclasses.replace(config.input_activation,
                                      observer_or_fake_quant_ctr=MovingAverageMinMaxObserver.with_args(eps=2**-12))
    config = dataclasses.replace(config, input_activation=activations, output_activation=activations)
    return LiteRTQuantizer().set_global(config)
