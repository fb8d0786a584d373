"""A tiny pipeline shaped like SDXL Refiner 1.0, with random weights, built without network.

It has the refiner's structure (a UNet with `addition_embed_type="text_time"` conditioned
on an aesthetic score, only the second, projecting CLIP text encoder, `text_encoder=None`,
`requires_aesthetics_score=True`) at a size that runs in milliseconds on a CPU, so the real
`sdxl` backend can be tested and benchmarked end to end where no weights can be fetched:

    python -c "from tests.support.tiny_sdxl import build_tiny_refiner; build_tiny_refiner('tiny')"
    dvc exp run -S generate.backend=sdxl -S generate.model_dir=tiny -S generate.resolution=64

Its pictures are noise; only the plumbing is real.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

# Per-token time embedding width; the refiner conditions on 5 numbers (original size,
# crop top-left, aesthetic score), so the added embedding is 5 * this + the text projection.
TIME_EMBED_DIM = 8
TEXT_DIM = 32
LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789"


def build_tiny_refiner(folder: Path | str, seed: int = 0) -> Path:
    """Write the tiny pipeline to `folder` with `save_pretrained` and return the folder.

    The weights come from `seed`, so two builds are identical (and fingerprint alike).
    """
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    folder = Path(folder)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        cross_attention_dim=TEXT_DIM,
        addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED_DIM,
        projection_class_embeddings_input_dim=5 * TIME_EMBED_DIM + TEXT_DIM,
        norm_num_groups=32,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64),
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        latent_channels=4,
        norm_num_groups=32,
        sample_size=32,
        force_upcast=False,  # it is fp32 already; spares the pipeline a cast per batch
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading"
    )
    text_encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=2 + 2 * len(LETTERS),
        hidden_size=TEXT_DIM,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        projection_dim=TEXT_DIM,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
        hidden_act="gelu",
    ))
    pipe = StableDiffusionXLImg2ImgPipeline(
        vae=vae,
        text_encoder=None,
        text_encoder_2=text_encoder_2,
        tokenizer=None,
        tokenizer_2=_tiny_tokenizer(),
        unet=unet,
        scheduler=scheduler,
        requires_aesthetics_score=True,
        force_zeros_for_empty_prompt=False,
        add_watermarker=False,
    )
    pipe.save_pretrained(folder)
    return folder


def build_tiny_taesd(folder: Path | str, seed: int = 0) -> Path:
    """A tiny `AutoencoderTiny` (the TAESD-XL class) for `generate.vae`, written to `folder`."""
    import torch
    from diffusers import AutoencoderTiny

    folder = Path(folder)
    torch.manual_seed(seed)
    AutoencoderTiny(
        encoder_block_out_channels=(16, 16),
        decoder_block_out_channels=(16, 16),
        num_encoder_blocks=(1, 1),
        num_decoder_blocks=(1, 1),
        latent_channels=4,
        upsampling_scaling_factor=2,
    ).save_pretrained(folder)
    return folder


def _tiny_tokenizer():
    """A CLIP BPE tokenizer over single characters (every word spells out letter by letter)."""
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for suffix in ("", "</w>"):
        for letter in LETTERS:
            vocab[letter + suffix] = len(vocab)
    with tempfile.TemporaryDirectory() as scratch:
        vocab_file, merges_file = Path(scratch, "vocab.json"), Path(scratch, "merges.txt")
        vocab_file.write_text(json.dumps(vocab), encoding="utf-8")
        merges_file.write_text("#version: 0.2\n", encoding="utf-8")
        return CLIPTokenizer(vocab=str(vocab_file), merges=str(merges_file), model_max_length=77)
