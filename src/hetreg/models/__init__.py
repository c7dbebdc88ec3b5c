"""Models: an MLP (BIV Wine/Bike presets), the BIV age CNN and a plain-PyTorch ResNet-18.

Build them by name with :func:`build_model`; each is a :class:`RegressionNet` with
``features(x)`` (penultimate features), an optional :class:`FDS` slot and a ``mean`` or
``mean_var`` head.
"""

from hetreg.models.base import RegressionHead, RegressionNet, inverse_positive_variance, split_mean_var
from hetreg.models.cnn import cnn_body, pooling_plan
from hetreg.models.fds import FDS
from hetreg.models.mlp import PRESETS as MLP_PRESETS
from hetreg.models.mlp import MLPConfig, mlp_body
from hetreg.models.registry import ModelSpec, build_model, model_names, model_spec, register_model
from hetreg.models.resnet import BasicBlock, resnet18_body

register_model("mlp", mlp_body, input_rank=1, description="fully connected network (presets: wine, bike)")
register_model("cnn", cnn_body, input_rank=3, description="BIV age CNN: 6 conv blocks, 3->10->...->256")
register_model("resnet18", resnet18_body, input_rank=3, description="ResNet-18 (BasicBlock, [2, 2, 2, 2])")

__all__ = [
    "BasicBlock",
    "FDS",
    "MLPConfig",
    "MLP_PRESETS",
    "ModelSpec",
    "RegressionHead",
    "RegressionNet",
    "build_model",
    "cnn_body",
    "inverse_positive_variance",
    "mlp_body",
    "model_names",
    "model_spec",
    "pooling_plan",
    "register_model",
    "resnet18_body",
    "split_mean_var",
]
