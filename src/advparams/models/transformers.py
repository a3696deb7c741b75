"""Small transformers built from a config: ``vit`` (``ViTForImageClassification``) for
image data sets and ``bert`` (``BertForSequenceClassification``) for token data sets.

Both are ``transformers``' own classes, returned as they are (no wrapper), so their
parameter names are the ones a Hugging Face folder holds and a trained model can be
written with ``save_pretrained``. They need the ``huggingface`` extra
(``pip install 'advparams[huggingface]'``). The sizes are this project's choices for a
2-core CPU (inferred: the issue asks for "a small ViT" and "a BERT-style classifier").
Attention is ``eager`` (PyTorch's fused attention has no batching rule for the
per-sample gradients of black-box tracing, and at these sizes it gains nothing).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from advparams.errors import ConfigError
from advparams.models.registry import MODELS


def _transformers() -> Any:
    from advparams.huggingface.common import transformers_module

    return transformers_module()


def _encoder(hidden_size: int, layers: int, heads: int, intermediate_size: int, dropout: float) -> dict[str, Any]:
    """The encoder's options, as both configs name them."""
    if hidden_size % heads:
        raise ConfigError(f"hidden_size ({hidden_size}) must be a multiple of heads ({heads})")
    return {
        "hidden_size": hidden_size,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate_size,
        "hidden_dropout_prob": dropout,
        "attention_probs_dropout_prob": dropout,
        "attn_implementation": "eager",
    }


@MODELS.register("vit")
def vit(
    num_classes: int = 10,
    in_channels: int = 1,
    input_size: int = 28,
    patch_size: int = 7,
    hidden_size: int = 64,
    layers: int = 4,
    heads: int = 4,
    intermediate_size: int = 128,
    dropout: float = 0.0,
) -> nn.Module:
    """A ViT image classifier: ``input_size`` / ``patch_size`` squared patches, a class
    token, ``layers`` encoder layers of width ``hidden_size``."""
    if input_size % patch_size:
        raise ConfigError(f"input_size ({input_size}) must be a multiple of patch_size ({patch_size})")
    encoder = _encoder(hidden_size, layers, heads, intermediate_size, dropout)
    tf = _transformers()
    config = tf.ViTConfig(
        image_size=input_size, patch_size=patch_size, num_channels=in_channels, num_labels=num_classes, **encoder
    )
    return tf.ViTForImageClassification(config)


@MODELS.register("bert")
def bert(
    num_classes: int = 2,
    in_channels: int = 1,
    input_size: int = 64,
    vocab_size: int = 8192,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    intermediate_size: int = 128,
    dropout: float = 0.1,
    pad_token_id: int = 0,
) -> nn.Module:
    """A BERT text classifier over token ids (``input_size`` tokens at most, id
    ``pad_token_id`` for padding; the attention mask is read from the ids)."""
    if in_channels != 1:
        raise ConfigError(f"bert reads token ids (one channel), not {in_channels}-channel images")
    encoder = _encoder(hidden_size, layers, heads, intermediate_size, dropout)
    tf = _transformers()
    config = tf.BertConfig(
        vocab_size=vocab_size,
        max_position_embeddings=input_size,
        type_vocab_size=1,
        pad_token_id=pad_token_id,
        num_labels=num_classes,
        **encoder,
    )
    model = tf.BertForSequenceClassification(config)
    from advparams.huggingface.data import attend_to_tokens

    attend_to_tokens(model, pad_token_id)
    return model


__all__ = ["bert", "vit"]
