"""The Grad-CAM family through pytorch-grad-cam (PyPI ``grad-cam``): one tiny class per method.

Each call builds the library's CAM object, runs it and releases its hooks before returning, so no hook outlives
``explain``. The images are cloned first (gradient methods need ``requires_grad`` on the input of a frozen
network, and the caller's tensor must stay untouched). Maps are the library's: ReLU'd, min-max normalised at
the layer's resolution, bilinearly resized to the image (OpenCV) and normalised again; values in [0, 1].
"""

from __future__ import annotations

import contextlib
import io

import torch

from tame.errors import TameError
from tame.methods.base import Explainer, register_explainer
from tame.models import Classifier, Explanation
from tame.models.maps import check_images, per_image
from tame.models.taps import tokens_to_map
from tame.registry import close_matches


class CamExplainer(Explainer):
    """Base of the pytorch-grad-cam methods: ``cam_class`` names the library class."""

    cam_class = ""
    needs_layer = True

    def __init__(self, classifier: Classifier, layer: str) -> None:
        super().__init__(classifier)
        modules = dict(classifier.net.named_modules())
        if layer not in modules or not layer:
            close = close_matches(layer, [n for n in modules if n], cutoff=0.5)
            hint = f"; closest: {', '.join(close)}" if close else ""
            raise TameError(f"{self.name}: unknown target layer {layer!r}{hint} (`tame-inspect MODEL` lists them)")
        self.layer = layer
        self.module = modules[layer]
        import pytorch_grad_cam  # imported here, not on the first (timed) explain

        self.library = pytorch_grad_cam

    def _make_cam(self, image_hw: tuple[int, int]):
        cam_type = getattr(self.library, self.cam_class)
        return cam_type(self.classifier, [self.module], reshape_transform=self._reshape(image_hw))

    def _reshape(self, image_hw: tuple[int, int]):
        prefix = self.classifier.num_prefix_tokens

        def to_map(output: torch.Tensor) -> torch.Tensor:  # ViT tokens [B, N, D] -> [B, D, h, w]
            return tokens_to_map(output, prefix, image_hw) if output.dim() == 3 else output

        return to_map

    def explain(self, images: torch.Tensor, classes: torch.Tensor | int | None = None) -> Explanation:
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        check_images(images)
        targets = None  # the library explains its own forward's prediction: one forward serves logits and map
        if classes is not None:
            classes = per_image(classes, images.shape[0])
            targets = [ClassifierOutputTarget(int(k)) for k in classes.tolist()]
        cam = self._make_cam(tuple(images.shape[-2:]))
        inputs = images.detach().clone().requires_grad_(cam.uses_gradients)
        try:
            # the gradient-free methods print one tqdm bar per image: keep them out of our progress display
            with torch.enable_grad(), contextlib.redirect_stderr(io.StringIO()):
                maps = cam(input_tensor=inputs, targets=targets)  # numpy [B, H, W] in [0, 1]
        except IndexError:
            if classes is None:
                raise
            raise TameError(f"class index out of range: {classes.tolist()}") from None
        finally:
            cam.activations_and_grads.release()
        logits = cam.outputs.detach()
        classes = self._classes(classes, logits)
        return Explanation(torch.from_numpy(maps).to(images.device).clamp_(0, 1), classes, logits)


@register_explainer("gradcam")
class GradCam(CamExplainer):
    """Grad-CAM (Selvaraju et al. 2017): channel weights = spatially averaged gradients."""

    cam_class = "GradCAM"


@register_explainer("gradcam++")
class GradCamPlusPlus(CamExplainer):
    """Grad-CAM++ (Chattopadhay et al. 2018): higher-order gradient weighting of positive gradients."""

    cam_class = "GradCAMPlusPlus"


@register_explainer("xgradcam")
class XGradCam(CamExplainer):
    """XGrad-CAM (Fu et al. 2020): gradients weighted by normalised activations."""

    cam_class = "XGradCAM"


@register_explainer("scorecam")
class ScoreCam(CamExplainer):
    """Score-CAM (Wang et al. 2020): channel weights = class scores of the image masked by each channel.

    ``batch_size``: masked images per forward (one forward per ``batch_size`` channels and image).
    """

    cam_class = "ScoreCAM"

    def __init__(self, classifier: Classifier, layer: str, batch_size: int = 64) -> None:
        super().__init__(classifier, layer)
        self.batch_size = batch_size

    def _make_cam(self, image_hw: tuple[int, int]):
        cam = super()._make_cam(image_hw)
        cam.batch_size = self.batch_size
        return cam


@register_explainer("ablationcam")
class AblationCam(CamExplainer):
    """Ablation-CAM (Desai & Ramaswamy 2020): channel weights = score drop when the channel is zeroed.

    Convolutional feature maps only. ``batch_size``: ablated copies per forward.
    """

    cam_class = "AblationCAM"

    def __init__(self, classifier: Classifier, layer: str, batch_size: int = 64) -> None:
        super().__init__(classifier, layer)
        self.batch_size = batch_size

    def _make_cam(self, image_hw: tuple[int, int]):
        # a fresh ablation layer each time: the library's default instance is shared by every AblationCAM
        return self.library.AblationCAM(
            self.classifier,
            [self.module],
            reshape_transform=self._reshape(image_hw),
            ablation_layer=self.library.AblationLayer(),
            batch_size=self.batch_size,
        )

    def _reshape(self, image_hw: tuple[int, int]):
        def only_maps(output: torch.Tensor) -> torch.Tensor:
            if output.dim() != 4:
                raise TameError(
                    f"ablationcam: layer {self.layer!r} outputs {tuple(output.shape)}; "
                    "Ablation-CAM needs a convolutional feature map [B, C, H, W]"
                )
            return output

        return only_maps
