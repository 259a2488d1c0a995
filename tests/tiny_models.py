"""Tiny random models of the GPU engines' architectures, saved to a folder (tests only, CPU).

Weights cannot be downloaded here, so the tests build ~300k-parameter models
with the real classes, a tokenizer trained on a few lines of text, and the
real processors, save them with `save_pretrained`, and let the engines load
them back with `from_pretrained(path, local_files_only=True)`.
"""

from __future__ import annotations

from pathlib import Path

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<img>", "</img>", "<imgpad>", "<unk>", "<pad>"]
CORPUS_LINES = [
    "Rechnung Nummer 2024-0815 vom 12. März 2024",
    "Invoice total 1250.00 EUR due in 30 days",
    "system You should follow the instructions carefully and explain your answers in detail.",
    "user OCR: assistant",
    "Summe netto Umsatzsteuer Lieferant GmbH Straße",
    "0123456789 .,:;-/()%€$",
]


def train_tokenizer(specials=SPECIALS, vocab_size: int = 300):
    """A byte-level BPE tokenizer trained on a few lines, wrapped as a fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(specials), initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS_LINES * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<pad>", unk_token="<unk>"
    )


def teach(model, processor, image, text: str, steps: int = 60, lr: float = 3e-3, **proc_kwargs) -> float:
    """A few optimiser steps so the tiny model answers `text` for `image` (loss returned)."""
    import torch

    tok = processor.tokenizer
    inputs = processor([image], return_tensors="pt", **proc_kwargs)
    target = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ids = torch.cat([inputs["input_ids"], torch.tensor([target])], dim=1)
    labels = torch.full_like(ids, -100)
    labels[0, -len(target):] = torch.tensor(target)
    mask = torch.ones_like(ids)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    loss = None
    for _ in range(steps):
        opt.zero_grad()
        out = model(input_ids=ids, attention_mask=mask, pixel_values=inputs["pixel_values"], labels=labels)
        out.loss.backward()
        opt.step()
        loss = float(out.loss.detach())
    model.eval()
    return loss


def build_tiny_got_ocr2(path: str | Path, seed: int = 0, taught: tuple | None = None) -> Path:
    """GotOcr2ForConditionalGeneration: 64 px input, 16x16 patches -> 16 image tokens, a 2-layer Qwen2."""
    import torch
    from transformers import GotOcr2Config, GotOcr2ForConditionalGeneration, GotOcr2ImageProcessor, GotOcr2Processor

    torch.manual_seed(seed)
    path = Path(path)
    tokenizer = train_tokenizer()
    image_token = tokenizer.convert_tokens_to_ids("<imgpad>")
    config = GotOcr2Config(
        vision_config={
            "hidden_size": 16,
            "output_channels": 16,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 4,
            "window_size": 4,
            "global_attn_indexes": [1],
            "mlp_dim": 32,
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 2,
            "max_position_embeddings": 1024,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        image_token_index=image_token,
        image_seq_length=16,
    )
    model = GotOcr2ForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    processor = GotOcr2Processor(
        image_processor=GotOcr2ImageProcessor(size={"height": 64, "width": 64}), tokenizer=tokenizer
    )
    if taught is not None:
        image, text = taught
        teach(model, processor, image, text, num_image_tokens=16)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
