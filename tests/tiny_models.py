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


def tiny_text_config(tokenizer, max_positions: int, **extra) -> dict:
    """The language-model part of every tiny model here: 2 layers, width 32, the tokenizer's vocabulary."""
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": max_positions,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        **extra,
    }


def train_tokenizer(specials=SPECIALS, vocab_size: int = 300, extra_special_tokens: dict | None = None, **named):
    """A byte-level BPE tokenizer trained on a few lines, wrapped as a fast tokenizer.

    `extra_special_tokens` names model-specific tokens (Janus: image_token/boi_token/eoi_token),
    which become tokenizer attributes and survive save/load; `named` sets e.g. bos_token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = list(specials) + [t for t in (extra_special_tokens or {}).values() if t not in specials]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS_LINES * 4, trainer=trainer)
    if extra_special_tokens:
        named["extra_special_tokens"] = extra_special_tokens
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<pad>", unk_token="<unk>", **named
    )


# Teaching stops once the mean token loss of the answer is below this: every answer token (and the
# end-of-text token) then has probability >= exp(-TARGET_LOSS * n_tokens) ~ 0.9 under the model, so
# greedy decoding reproduces the answer with a wide margin, whatever the thread count or the
# library release's rounding. (A fixed 60 steps ended near 0.45: the answer then hung on rounding,
# and transformers 5.24 on another machine generated an empty string.)
TARGET_LOSS = 0.01


def teach(
    model, tokenizer, inputs, text: str, steps: int = 600, lr: float = 3e-3, frozen: tuple[str, ...] = (),
    target_loss: float = TARGET_LOSS, tries: int = 3,
) -> float:
    """Optimiser steps until the tiny model answers `text` after the prompt in `inputs` with a
    mean token loss below `target_loss` (at most `steps`; not reaching it raises).

    `inputs` is one page's processor output, built the way the engine builds it (same prompt,
    same image tokens); every key besides input_ids/attention_mask (pixel_values,
    pixel_values_local, num_local_patches, ...) goes to the model as is. Parameters whose names
    start with a `frozen` prefix are not trained (and no gradient flows through them).

    Gradients are clipped to norm 1. A loss that turns non-finite (NaN compares false with
    everything, so it once slipped through as "taught" and the model answered nothing) restarts
    from the initial weights with half the learning rate, at most `tries` times. Returns the last loss."""
    import copy
    import math

    import torch

    target = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = torch.cat([inputs["input_ids"], torch.tensor([target])], dim=1)
    labels = torch.full_like(ids, -100)
    labels[0, -len(target):] = torch.tensor(target)
    mask = torch.ones_like(ids)
    extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask")}
    initial = copy.deepcopy(model.state_dict())
    history = []
    loss = float("nan")
    # one intra-op thread while teaching: with two threads on a busy 2-core machine the same seeded
    # training turned NaN after 2-14 steps (seen on 2026-12-07 at f9871d6 and after; 15/15 with one)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _teach_steps(model, ids, mask, labels, extra, initial, history, steps, lr, frozen, target_loss,
                            tries)
    finally:
        torch.set_num_threads(threads)


def _teach_steps(model, ids, mask, labels, extra, initial, history, steps, lr, frozen, target_loss, tries) -> float:
    import math

    import torch

    loss = float("nan")
    for attempt in range(tries):
        if attempt:
            model.load_state_dict(initial)
        params = []
        for name, param in model.named_parameters():
            param.requires_grad_(not name.startswith(frozen) if frozen else True)
            if param.requires_grad:
                params.append(param)
        opt = torch.optim.Adam(params, lr=lr / 2**attempt)
        model.train()
        loss = float("nan")
        for _step in range(steps):
            opt.zero_grad()
            out = model(input_ids=ids, attention_mask=mask, labels=labels, **extra)
            loss = float(out.loss.detach())
            if not math.isfinite(loss) or loss < target_loss:
                break
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
        model.eval()
        for param in model.parameters():
            param.requires_grad_(True)
        history.append(f"lr {lr / 2**attempt:g}: loss {loss:.4f} after {_step + 1} steps")
        if math.isfinite(loss) and loss < target_loss:
            return loss
        if math.isfinite(loss):
            break  # finite but not low enough: a smaller rate would not get further in the same steps
    raise RuntimeError(f"tiny model not taught to loss {target_loss}: {'; '.join(history)}")


def torch_state() -> str:
    """The process-wide torch settings a taught answer could depend on (for failure messages)."""
    import torch

    return (
        f"torch {torch.__version__}: default dtype {torch.get_default_dtype()}, threads {torch.get_num_threads()}, "
        f"grad {torch.is_grad_enabled()}, inference mode {torch.is_inference_mode_enabled()}, "
        f"deterministic {torch.are_deterministic_algorithms_enabled()}"
    )


def greedy_answer(model, tokenizer, inputs, max_new_tokens: int) -> tuple[str, list[tuple[str, float]]]:
    """Greedy generate() as the engines call it: the decoded answer and, per step, the chosen
    token with its probability."""
    import torch

    with torch.inference_mode():
        gen = model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False, output_scores=True,
            return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id,
        )
    new = gen.sequences[0, inputs["input_ids"].shape[1]:].tolist()
    steps = [
        (tokenizer.convert_ids_to_tokens(t), round(float(torch.softmax(s[0].float(), -1)[t]), 4))
        for t, s in zip(new, gen.scores)
    ]
    return tokenizer.decode(new, skip_special_tokens=True).strip(), steps


def _finish(model, processor, path: Path, taught: tuple | None = None, inputs=None, model_cls=None) -> Path:
    """Saves model + processor; with `taught`, proves the saved folder, loaded back with
    from_pretrained, answers the taught text to the taught inputs under greedy decoding (the
    engines' decoding) and raises with the per-step tokens and the torch state where it does not."""
    tok = processor.tokenizer
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path)
    processor.save_pretrained(path)
    if taught is not None:
        text = taught[1]
        n = len(tok(text, add_special_tokens=False)["input_ids"]) + 2
        in_memory = greedy_answer(model, tok, inputs, n)
        loaded = model_cls.from_pretrained(path, local_files_only=True).eval()
        from_disk = greedy_answer(loaded, tok, inputs, n)
        if in_memory[0] != text or from_disk[0] != text:
            raise RuntimeError(
                f"tiny {type(model).__name__} taught {text!r} answers {in_memory[0]!r} in memory "
                f"(steps {in_memory[1]}) and {from_disk[0]!r} loaded back (steps {from_disk[1]}); {torch_state()}"
            )
    return path


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
        text_config=tiny_text_config(tokenizer, 1024, model_type="qwen2"),
        image_token_index=image_token,
        image_seq_length=16,
    )
    model = GotOcr2ForConditionalGeneration(config).eval()
    processor = GotOcr2Processor(
        image_processor=GotOcr2ImageProcessor(size={"height": 64, "width": 64}), tokenizer=tokenizer
    )
    inputs = None
    if taught is not None:
        image, text = taught
        inputs = processor([image], return_tensors="pt", num_image_tokens=16)
        teach(model, tokenizer, inputs, text)
    return _finish(model, processor, path, taught, inputs, GotOcr2ForConditionalGeneration)


# Janus' conversation format (as its converted checkpoints render it): "<|User|>: " + the turn's
# parts (an image as its placeholder line) + a blank line, then "<|Assistant|>:" to answer.
JANUS_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] | lower == 'user' %}<|User|>: {% else %}<|Assistant|>: {% endif %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<image_placeholder>\\n' }}"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{{ '\\n\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|Assistant|>:{% endif %}"
)
JANUS_TOKENS = {"image_token": "<image_placeholder>", "boi_token": "<begin_of_image>", "eoi_token": "<end_of_image>"}


def build_tiny_janus(path: str | Path, seed: int = 0, taught: tuple | None = None, prompt: str | None = None) -> Path:
    """JanusForConditionalGeneration: 32 px SigLIP-style tower (8 px patches -> 16 image tokens), a
    2-layer Llama, a minimal VQ-VAE (image generation side, unused for OCR); JanusProcessor with the
    default system prompt, the chat template and the image/boi/eoi tokens the processor requires.

    `taught=(image, text)` teaches the answer to the prompt the engine sends (`prompt`)."""
    import torch
    from transformers import JanusConfig, JanusForConditionalGeneration, JanusImageProcessor, JanusProcessor

    from resources.ocr.vlm import DEFAULT_PROMPT, janus_inputs

    torch.manual_seed(seed)
    path = Path(path)
    tokenizer = train_tokenizer(extra_special_tokens=JANUS_TOKENS)
    n_image_tokens = (32 // 8) ** 2
    config = JanusConfig(
        text_config=tiny_text_config(tokenizer, 512, model_type="llama"),
        vision_config={
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "mlp_ratio": 2.0,
            "image_size": 32,
            "patch_size": 8,
            "projection_dim": 32,  # aligner output = the language model's hidden size
            "num_image_tokens": n_image_tokens,
        },
        vq_config={  # GroupNorm(32) in the VQ blocks: 32 channels at least
            "embed_dim": 4,
            "num_embeddings": 16,
            "latent_channels": 32,
            "base_channels": 32,
            "channel_multiplier": [1, 1],
            "num_res_blocks": 1,
            "projection_dim": 32,
            "image_token_embed_dim": 32,
            "num_hidden_layers": 1,
        },
        image_token_id=tokenizer.convert_tokens_to_ids(JANUS_TOKENS["image_token"]),
    )
    model = JanusForConditionalGeneration(config).eval()
    processor = JanusProcessor(
        image_processor=JanusImageProcessor(size={"height": 32, "width": 32}),
        tokenizer=tokenizer,
        chat_template=JANUS_CHAT_TEMPLATE,
        num_image_tokens=n_image_tokens,
        use_default_system_prompt=True,
    )
    inputs = None
    if taught is not None:
        image, text = taught
        inputs = janus_inputs(processor, [image], prompt or DEFAULT_PROMPT)
        teach(model, tokenizer, inputs, text)
    return _finish(model, processor, path, taught, inputs, JanusForConditionalGeneration)


def build_tiny_deepseek_ocr2(
    path: str | Path, seed: int = 0, taught: tuple | None = None, prompt: str | None = None, size: int = 768
) -> Path:
    """DeepseekOcr2ForConditionalGeneration at the real view geometry: SAM ViT (16 px patches, two
    stride-2 convs) -> 12x12 = 144 learned queries for a `size`=768 view (16x16 = 256 for 1024),
    a 1-layer Qwen2-style DeepEncoder, a 2-layer DeepSeek-V2 text model (one dense, one MoE layer).
    Pages larger than the 768 tile get local crops (pixel_values_local) besides the global view.

    `taught=(image, text)` teaches the answer to `prompt` (default: the engine's "<image>\\nFree OCR.")."""
    import torch
    from transformers import (
        DeepseekOcr2Config,
        DeepseekOcr2ForConditionalGeneration,
        DeepseekOcr2ImageProcessor,
        DeepseekOcr2Processor,
    )

    from resources.ocr.vlm import DeepseekOcrOptions, deepseek_ocr_inputs

    torch.manual_seed(seed)
    path = Path(path)
    tokenizer = train_tokenizer(list(SPECIALS) + ["<image>"], bos_token="<|im_start|>")
    config = DeepseekOcr2Config(
        vision_config={
            "sam_config": {
                "hidden_size": 16,
                "output_channels": 16,
                "num_hidden_layers": 2,
                "num_attention_heads": 2,
                "image_size": size,
                "patch_size": 16,
                "window_size": 8,
                "global_attn_indexes": [1],
                "mlp_dim": 32,
                "downsample_channels": [16, 32],  # last = the DeepEncoder's hidden size
            },
            "encoder_config": {
                "hidden_size": 32,
                "intermediate_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 2,
                "num_key_value_heads": 2,
                "vocab_size": 8,
            },
        },
        text_config={
            **tiny_text_config(tokenizer, 2048),
            "mlp_layer_types": ["dense", "sparse"],
            "n_routed_experts": 4,
            "num_experts_per_tok": 2,
            "n_shared_experts": 1,
            "moe_intermediate_size": 16,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
    )
    model = DeepseekOcr2ForConditionalGeneration(config).eval()
    processor = DeepseekOcr2Processor(
        image_processor=DeepseekOcr2ImageProcessor(size={"height": size, "width": size}, tile_size=768),
        tokenizer=tokenizer,
    )
    inputs = None
    if taught is not None:
        image, text = taught
        # the SAM tower's backward over 48x48 patches is slow on a CPU: teach the rest
        inputs = deepseek_ocr_inputs(processor, [image], prompt or DeepseekOcrOptions().prompt)
        teach(model, tokenizer, inputs, text, frozen=("model.vision_tower.sam_encoder",))
    return _finish(model, processor, path, taught, inputs, DeepseekOcr2ForConditionalGeneration)
