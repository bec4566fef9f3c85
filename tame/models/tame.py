"""The TAME wrapper: frozen classifier + feature taps + attention mechanism + loss (docs/METHOD.md).

>>> classifier = create_classifier("resnet18", pretrained=False)
>>> model = TameModel(classifier, ["layer2", "layer3", "layer4"], input_size=64)
>>> out = model.train().training_step(images)    # {loss, ce, area, var}; backpropagate out["loss"]
>>> model.eval(); maps = model.explain(images).maps  # [B, H, W] in [0, 1]

Distributed training wraps :class:`TrainingStep` (a module whose forward is the training step) in DDP; the model
only takes a ``label_gather`` (the global batch's labels for the ``batch`` regulariser) and knows nothing else of it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from tame.checkpoint.format import check_state_dict, read_attention_file, save_attention_file
from tame.config.choices import BackboneMode, LabelSource, MaskSpace, Regulariser, check_choice
from tame.errors import TameError
from tame.models import auxiliary
from tame.models.attention import AttentionMechanism
from tame.models.loss import LossWeights, tame_loss
from tame.models.maps import Explanation, check_images, check_map_size, explanation_maps, resolve_classes
from tame.models.registry import Classifier, classifier_from_config
from tame.models.taps import FeatureTaps
from tame.models.versions import build_attention, check_layer_count, get_version, loss_weights

logger = logging.getLogger(__name__)
LabelGather = Callable[[torch.Tensor], tuple[torch.Tensor, int]]  # local labels -> (global labels, own offset)


class TameModel(nn.Module):
    """Owns the frozen classifier, the feature taps, the AM and the loss.

    ``regulariser``: ``batch`` (R = a[:, y], [B, B, S], the reference) or ``diagonal`` (R = m, [B, 1, S]).
    ``label_source``: ``model`` (the classifier's argmax) or ``list`` (the labels given to ``training_step``).
    ``backbone_mode``: ``eval`` or ``train`` (the reference: batch statistics and dropout in both passes, in the
    auxiliary ``feature_net`` too;
    running statistics are restored after every step, so the classifier comes out unchanged).
    ``label_gather``: local labels [B] -> (the labels of the global batch [N*B], this rank's offset in it); the
    ``batch`` regulariser's R then spans the global batch, as one process with N*B would (default: this batch).
    ``mask_space``: ``pixels`` (the mask multiplies the image in [0, 1], which is then normalised), ``normalised``
    (it multiplies the network's normalised input: T-TAME's ViT run) or ``auto`` (the version's,
    :mod:`tame.models.versions`). The version also gives the loss weights (``loss_weights`` overrides them).
    ``feature_net``: an auxiliary network (:mod:`tame.models.auxiliary`, P-TAME) whose ``layers`` the AM reads; the
    classifier is then only called on images and masked images (default: the AM reads the classifier's layers).
    """

    def __init__(
        self,
        classifier: Classifier,
        layers: Sequence[str],
        version: str = "TAME",
        *,
        input_size: int = 224,
        num_classes: int | None = None,
        regulariser: str = "batch",
        label_source: str = "model",
        backbone_mode: str = "eval",
        label_gather: LabelGather | None = None,
        token_transform: str = "drop",
        mask_space: str = "auto",
        feature_net: Classifier | None = None,
        loss_weights: LossWeights | None = None,
    ) -> None:
        super().__init__()
        check_layer_count(version, layers)
        auxiliary.check_feature_source(version, get_version(version).features, feature_net)
        mask_space = get_version(version).mask_space if mask_space == "auto" else mask_space
        for value, alias, what in (
            (mask_space, MaskSpace, "mask_space"),
            (regulariser, Regulariser, "regulariser"),
            (label_source, LabelSource, "label_source"),
            (backbone_mode, BackboneMode, "backbone_mode"),
        ):
            check_choice(value, alias, what)
        self.classifier = classifier
        self.layers = list(layers)
        self.version = version
        self.regulariser = regulariser
        self.label_source = label_source
        self.backbone_mode = backbone_mode
        self.mask_space = mask_space
        self.loss_weights = loss_weights or get_version(version).loss
        self.label_gather = label_gather
        self.allow_other_backbone = False  # load_attention's default (``model.allow_other_backbone``)
        self.feature_net = feature_net
        self.feature_origin: dict = {}  # the auxiliary network's ``pretrained`` and ``weights``, for the meta
        tapped = feature_net or classifier
        self.taps = FeatureTaps(tapped.net, self.layers, tapped.num_prefix_tokens, token_transform)

        device = next(iter(classifier.parameters()), torch.zeros(())).device
        if feature_net is not None:
            feature_net.to(device)
        with torch.no_grad():  # one dry run sizes the AM
            logits, features = self.features(torch.zeros(1, 3, input_size, input_size, device=device))
        self.feature_shapes = [tuple(f.shape[1:]) for f in features]
        check_map_size(self.layers[0], self.feature_shapes[0][1:], input_size)
        self.num_classes = num_classes or logits.shape[-1]
        self.attention: AttentionMechanism = build_attention(
            version, [s[0] for s in self.feature_shapes], self.num_classes, self.feature_shapes[0][1:]
        ).to(device)

    @classmethod
    def from_config(
        cls,
        model_cfg,
        input_size: int | None = None,
        train_cfg=None,
        data_cfg=None,
        label_gather: LabelGather | None = None,
        classifier: Classifier | None = None,
    ) -> TameModel:
        """Build from ``Config.model`` (``Config.train`` for the training options, ``Config.data`` for the sizes
        saved with the AM; ``input_size`` defaults to the crop: ``data_cfg.crop``, else the model's own).
        ``classifier``: one already built from the same config (``tame train --check`` builds it first)."""
        classifier = classifier or classifier_from_config(model_cfg, data_cfg, crop=input_size)
        if input_size is None:
            input_size = classifier.preprocessing.crop
        options = {}
        if train_cfg is not None:
            options = dict(
                regulariser=train_cfg.regulariser,
                label_source=train_cfg.label_source,
                backbone_mode=train_cfg.backbone_mode,
                mask_space=train_cfg.mask_space,
                loss_weights=loss_weights(model_cfg.version, dataclasses.asdict(train_cfg.loss)),
            )
        options["token_transform"] = getattr(model_cfg, "token_transform", "drop")
        options["feature_net"] = auxiliary.feature_network_from_config(model_cfg, classifier.preprocessing)
        layers = auxiliary.tapped_layers(model_cfg)
        model = cls(classifier, layers, model_cfg.version, input_size=input_size, label_gather=label_gather, **options)
        model.allow_other_backbone = getattr(model_cfg, "allow_other_backbone", False)
        if options["feature_net"] is not None:
            model.feature_origin = {k: getattr(model_cfg.features, k) for k in ("pretrained", "weights", "num_classes")}
        return model

    # -- modes -------------------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> TameModel:
        """Only the AM changes mode; the classifier stays in eval (see ``backbone_mode``)."""
        self.training = mode
        self.attention.train(mode)
        return self

    @contextmanager
    def _backbone_running(self) -> Iterator[None]:
        if self.backbone_mode == "eval" or not self.training:
            yield
            return
        # The published code runs the frozen backbone (and P-TAME's auxiliary network) in training mode (batch
        # statistics, dropout). Their BatchNorm layers then update running statistics in place: give them copies and
        # put the originals back afterwards.
        nets = [net.net for net in (self.classifier, self.feature_net) if net is not None]
        originals = [(m, name, buf) for net in nets for m in net.modules() for name, buf in m._buffers.items()]
        for module, name, buf in originals:
            module._buffers[name] = buf if buf is None else buf.clone()
        for net in nets:
            net.train()
        try:
            yield
        finally:
            for net in nets:
                net.eval()
            for module, name, buf in originals:
                module._buffers[name] = buf

    # -- forward pieces ----------------------------------------------------------------------------------------
    def features(self, images: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """images [B, 3, H, W] in [0, 1] -> (logits [B, K], maps [B, C_i, H_i, W_i] of the tapped network)."""
        if self.feature_net is None:
            with self.taps.capture((images.shape[-2], images.shape[-1])) as features:
                logits = self.classifier(images)
            return logits, features
        logits = self.classifier(images)
        with self.taps.capture((images.shape[-2], images.shape[-1])) as features:
            self.feature_net(images)  # its own normalisation inside; its logits are not used
        return logits, features

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Logits [B, K] of the classifier, without tapping features."""
        return self.classifier(images)

    @torch.no_grad()
    def explain(self, images: torch.Tensor, classes: torch.Tensor | int | None = None) -> Explanation:
        """Explanation maps [B, H, W] in [0, 1] for ``classes`` (long [B] or one int; default: the prediction).

        Call ``model.eval()`` first: the AM's BatchNorm then uses its running statistics.
        """
        check_images(images)
        logits, features = self.features(images)
        classes = resolve_classes(classes, logits)
        class_maps = self.attention(features, classes, per_image=True)  # [B, 1, S_h, S_w]
        return Explanation(explanation_maps(class_maps, tuple(images.shape[-2:])), classes, logits)

    # -- training ----------------------------------------------------------------------------------------------
    def training_step(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One TAME step on images [B, 3, H, W] in [0, 1]: returns ``{loss, ce, area, var}``."""
        batch = images.shape[0]
        with self._backbone_running():
            with torch.no_grad():
                logits, features = self.features(images)  # [B, K], [B, C_i, H_i, W_i]
            if self.label_source == "list":
                if labels is None:
                    raise TameError("label_source is 'list' but no labels were given")
                targets = labels.to(device=logits.device, dtype=torch.long)
            else:
                targets = logits.argmax(dim=1)
            if self.regulariser == "batch":
                all_targets, offset = self.label_gather(targets) if self.label_gather else (targets, 0)  # [B_global]
                regulariser_set = torch.sigmoid(self.attention(features, all_targets))  # R: [B, B_global, S_h, S_w]
                own = torch.arange(batch, device=images.device)
                masks = regulariser_set[own, own + offset].unsqueeze(1)  # m: [B, 1, S_h, S_w]
            else:
                masks = torch.sigmoid(self.attention(features, targets, per_image=True))  # m: [B, 1, S_h, S_w]
                regulariser_set = masks
            upsampled = F.interpolate(masks, size=images.shape[-2:], mode="bilinear", align_corners=False)
            masked_logits = self.masked_forward(upsampled, images)  # gradients flow through the frozen net
        return tame_loss(masked_logits, targets, regulariser_set, self.loss_weights)

    def masked_forward(self, masks: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """masks [B, 1, H, W] times images [B, 3, H, W] in [0, 1], in ``mask_space`` -> logits [B, K]."""
        if self.mask_space == "normalised":
            return self.classifier.net(masks * self.classifier.normalise(images))
        return self.classifier(masks * images)

    # -- checkpoints -------------------------------------------------------------------------------------------
    def attention_meta(self) -> dict:
        return {
            "model": self.classifier.name,
            "layers": self.layers,
            "version": self.version,
            "num_classes": self.num_classes,
            "size": list(self.attention.size),
            "token_transform": self.taps.token_transform,
            "mask_space": self.mask_space,
            "preprocessing": self.classifier.preprocessing.as_dict(),
            auxiliary.META_KEY: None
            if self.feature_net is None
            else auxiliary.features_meta(self.feature_net, self.layers, self.feature_origin),
        }

    def save_attention(self, path: str | Path) -> None:
        """Write the AM weights and what they fit (model, layers, version) to ``path`` atomically (the AM file format:
        :mod:`tame.checkpoint.format`)."""
        save_attention_file(path, self.attention.state_dict(), self.attention_meta())

    def load_attention(self, path: str | Path, *, allow_other_backbone: bool | None = None) -> None:
        """Load AM weights: our own files, training checkpoints, or original TAME checkpoints (``attn.`` keys).

        The file's meta must match this model's layers, version, token transform and backbone name; a deliberate
        transfer to another backbone with the same channels: ``allow_other_backbone=True`` (default: the
        ``model.allow_other_backbone`` config key this model was built from). Files without meta are not checked.
        """
        state, meta = read_attention_file(path)
        self.check_fits(path, meta, state, allow_other_backbone=allow_other_backbone)
        self.attention.load_state_dict(state)

    def check_fits(self, path, meta: dict, state: dict, *, allow_other_backbone: bool | None = None) -> None:
        """Refuse AM weights ``state`` (with ``meta``, from ``path``) this model cannot load (:meth:`load_attention`;
        non-float tensors, keys, shapes too). A resume checks this first: it is why a run cannot continue."""
        current = {"layers": self.layers, "version": self.version, "token_transform": self.taps.token_transform}
        for key, value in current.items():
            if key in meta and meta[key] != value:
                raise TameError(f"checkpoint {path} was trained with {key}={meta[key]!r}, this model uses {value!r}")
        auxiliary.check_features_meta(meta, self.feature_net, path)
        if "model" in meta and meta["model"] != self.classifier.name:
            allow = self.allow_other_backbone if allow_other_backbone is None else allow_other_backbone
            if not allow:
                raise TameError(
                    f"checkpoint {path} was trained on model {meta['model']!r}, this model is "
                    f"{self.classifier.name!r} (set model.name={meta['model']}, or model.allow_other_backbone=true "
                    "to load it anyway)"
                )
            logger.warning("loading %s, trained on %s, into %s", path, meta["model"], self.classifier.name)
        check_state_dict(self.attention.state_dict(), state, f"checkpoint {path}")


class TrainingStep(nn.Module):
    """``TrainingStep(model)(images, labels)`` is ``model.training_step(images, labels)`` as a module's forward.

    The unit a data-parallel wrapper takes (``DistributedDataParallel(TrainingStep(model))``): the classifier is
    frozen, so only the AM's parameters require gradients and only they are synchronised.
    """

    def __init__(self, model: TameModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """images [B, 3, H, W] in [0, 1]; labels long [B] (for ``label_source='list'``) -> {loss, ce, area, var}."""
        return self.model.training_step(images, labels)
