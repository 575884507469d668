"""Pass ``prune``: structured pruning of Linear and Conv layers, with a fine-tune hook.

``torch.nn.utils.prune.ln_structured`` zeroes the output channels (rows of a Linear, filters
of a Conv) with the smallest L2 norm, ``amount`` of them per layer. The last such layer is
left alone: it produces the model's outputs (class scores, the embedding), and zeroing its
channels removes outputs rather than redundancy. While the pruning masks are in place the
user's ``fine_tune(module)`` hook may train the survivors (the masks keep pruned weights at
zero); then the masks are made permanent and the module is exported again.

Zeroed channels compress well and are the first step to physically smaller layers; ONNX
Runtime does not skip them, so on its own this pass changes accuracy, not latency.
"""

from __future__ import annotations

import copy
from typing import Any

from aip.optimize.passes.export import export_module
from aip.optimize.pipeline import ModelState, PassContext, PassOutcome


def prune_pass(state: ModelState, context: PassContext) -> PassOutcome:
    amount = context.options.prune
    if not amount:
        return PassOutcome.skipped("not asked for (prune=0.3 zeroes 30% of each layer's "
                                   "channels)")
    if context.given.kind != "torch":
        return PassOutcome.skipped("pruning needs the PyTorch nn.Module, not "
                                   f"{context.given.description}")
    module, pruned = prune_module(state.module or context.given.module, amount,
                                  context.options.fine_tune)
    out = context.workdir / "prune.onnx"
    exporter = export_module(module, context.example, context.specs, out,
                             opset=context.options.opset)
    return PassOutcome(ModelState(path=out, module=module, quantize_from=out),
                       details={"amount": amount, "layers": pruned, "exporter": exporter,
                                "fine_tuned": context.options.fine_tune is not None})


def prune_module(module: Any, amount: float, fine_tune: Any = None) -> tuple[Any, int]:
    """A pruned copy of ``module`` (the original is untouched) and how many layers were
    pruned."""
    import torch
    from torch.nn.utils import prune

    pruned = copy.deepcopy(module)
    layer_types = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    layers = [layer for layer in pruned.modules() if isinstance(layer, layer_types)][:-1]
    for layer in layers:
        prune.ln_structured(layer, "weight", amount=amount, n=2, dim=0)  # type: ignore[no-untyped-call]
    if fine_tune is not None:
        pruned.train()
        returned = fine_tune(pruned)
        pruned = returned if returned is not None else pruned
    for layer in pruned.modules():  # the hook may have returned another module object
        if isinstance(layer, layer_types) and prune.is_pruned(layer):
            prune.remove(layer, "weight")  # type: ignore[no-untyped-call]
    return pruned.eval(), len(layers)
