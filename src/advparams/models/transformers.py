"""Small transformers built from a config: ``vit`` (``ViTForImageClassification``) for
image data sets, ``bert`` (``BertForSequenceClassification``) for token data sets, and
the language models ``gpt2`` (``GPT2LMHeadModel``) and ``llama`` (``LlamaForCausalLM``)
for next-token prediction (:mod:`advparams.tasks`).

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


def _language_model(num_classes: int, in_channels: int, vocab_size: int, hidden_size: int, heads: int) -> None:
    """The checks both language models make of their arguments."""
    if hidden_size % heads:
        raise ConfigError(f"hidden_size ({hidden_size}) must be a multiple of heads ({heads})")
    if in_channels != 1:
        raise ConfigError(f"a language model reads token ids (one channel), not {in_channels}-channel images")
    if num_classes not in (vocab_size, 0):
        raise ConfigError(f"a language model scores its {vocab_size} tokens, not {num_classes} classes")


@MODELS.register("gpt2")
def gpt2(
    num_classes: int = 256,
    in_channels: int = 1,
    input_size: int = 128,
    vocab_size: int = 256,
    hidden_size: int = 192,
    layers: int = 4,
    heads: int = 4,
    dropout: float = 0.0,
) -> nn.Module:
    """A GPT-2 language model over ``vocab_size`` tokens (byte-level by default),
    ``input_size`` positions, ``layers`` blocks of width ``hidden_size`` (MLP 4x), the
    output layer tied to the token embedding as in GPT-2 (1.87 million parameters at
    the defaults [inferred: the issue asks for 1 to 5 million])."""
    _language_model(num_classes, in_channels, vocab_size, hidden_size, heads)
    tf = _transformers()
    config = tf.GPT2Config(
        vocab_size=vocab_size,
        n_positions=input_size,
        n_embd=hidden_size,
        n_layer=layers,
        n_head=heads,
        resid_pdrop=dropout,
        embd_pdrop=dropout,
        attn_pdrop=dropout,
        bos_token_id=0,
        eos_token_id=0,
        attn_implementation="eager",
    )
    return tf.GPT2LMHeadModel(config)


@MODELS.register("llama")
def llama(
    num_classes: int = 256,
    in_channels: int = 1,
    input_size: int = 128,
    vocab_size: int = 256,
    hidden_size: int = 192,
    layers: int = 4,
    heads: int = 4,
    intermediate_size: int = 512,
) -> nn.Module:
    """A Llama language model (RMSNorm, rotary positions, SwiGLU MLP of
    ``intermediate_size``, untied output layer) of the same shape as :func:`gpt2`."""
    _language_model(num_classes, in_channels, vocab_size, hidden_size, heads)
    tf = _transformers()
    config = tf.LlamaConfig(
        vocab_size=vocab_size,
        max_position_embeddings=input_size,
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        intermediate_size=intermediate_size,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
        attn_implementation="eager",
    )
    return tf.LlamaForCausalLM(config)


__all__ = ["bert", "gpt2", "llama", "vit"]
