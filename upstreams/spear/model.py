"""The SPEAR encoder (a Zipformer2), inference only, in plain PyTorch.

Module and parameter names mirror the published checkpoints (minus their
``model.model.`` prefix), so a state dict loads without renaming. Everything the
reference does only while training (balancers, whitening, dropout, layer skipping,
feature masks) is the identity in eval mode and is left out.

Tensors are batch-first, ``[B, T, C]``. The reference's output depends on how a batch
is padded (its front end does not mask, and downsampling pads by repeating the last
frame of the padded tensor); this implementation reproduces the batched computation
exactly, padding included.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.upstreams.spear.config import SpearConfig

#: Score given to padded keys before the softmax (the reference uses -1000, not -inf).
MASKED_SCORE = -1000.0


# The Swoosh tails run in place on softplus's fresh output: these activations see the
# widest tensors of the model, where every extra elementwise pass costs memory traffic.
# (softplus's backward reads its input, so autograd still works.)


def swoosh_r(x: Tensor) -> Tensor:
    """SwooshR(x) = ln(1 + e^(x-1)) - 0.08x - 0.313261687 (zero at x = 0)."""
    return F.softplus(x - 1.0).sub_(x, alpha=0.08).sub_(0.313261687)


def swoosh_l(x: Tensor) -> Tensor:
    """SwooshL(x) = ln(1 + e^(x-4)) - 0.08x - 0.035."""
    return F.softplus(x - 4.0).sub_(x, alpha=0.08).sub_(0.035)


class SwooshR(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return swoosh_r(x)


class BiasNorm(nn.Module):
    """x / RMS(x - bias) * exp(log_scale): the bias enters only the RMS; no epsilon."""

    def __init__(self, num_channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.log_scale = nn.Parameter(torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        mean_square = (x - self.bias).square().mean(dim=-1, keepdim=True)
        return x * (mean_square.rsqrt() * self.log_scale.exp())


class Bypass(nn.Module):
    """Per-channel interpolation between a module's input and its output."""

    def __init__(self, num_channels: int):
        super().__init__()
        self.bypass_scale = nn.Parameter(torch.ones(num_channels))

    def forward(self, x_in: Tensor, x_out: Tensor) -> Tensor:
        return torch.lerp(x_in, x_out, self.bypass_scale)  # x_in + (x_out - x_in) * scale


# -- front end ------------------------------------------------------------------------


class ConvNeXt(nn.Module):
    """Residual 7x7 depthwise conv -> 1x1 expand (x3) -> SwooshL -> 1x1 project."""

    def __init__(self, channels: int, kernel_size: int = 7, expansion: int = 3):
        super().__init__()
        hidden = channels * expansion
        self.depthwise_conv = nn.Conv2d(
            channels, channels, kernel_size, padding=kernel_size // 2, groups=channels
        )
        self.pointwise_conv1 = nn.Conv2d(channels, hidden, 1)
        self.pointwise_conv2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        y = self.pointwise_conv1(self.depthwise_conv(x))
        return x + self.pointwise_conv2(swoosh_l(y))


class Conv2dSubsampling(nn.Module):
    """Log-mel ``[B, T, F]`` -> ``[B, (T - 7) // 2, D]`` at about 50 Hz.

    Unmasked: frames near the end of a short utterance see the batch's padding.
    """

    def __init__(self, config: SpearConfig, out_dim: int):
        super().__init__()
        c1, c2, c3 = config.frontend_channels
        # Indices match the checkpoints (conv.0, conv.4, conv.7); the reference has
        # training-only modules (ScaleGrad, Balancer) in the slots kept as Identity here.
        self.conv = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=(0, 1)),
            nn.Identity(),
            nn.Identity(),
            SwooshR(),
            nn.Conv2d(c1, c2, 3, stride=2),
            nn.Identity(),
            SwooshR(),
            nn.Conv2d(c2, c3, 3, stride=(1, 2)),
            nn.Identity(),
            SwooshR(),
        )
        self.convnext = ConvNeXt(c3)
        self.out = nn.Linear(c3 * config.frontend_out_width, out_dim)
        self.out_norm = BiasNorm(out_dim)

    def forward(self, fbank: Tensor) -> Tensor:
        x = self.convnext(self.conv(fbank.unsqueeze(1)))  # [B, C, T', F']
        x = x.transpose(1, 2).flatten(2)  # channel-major features: index c * F' + f
        return self.out_norm(self.out(x))


# -- attention --------------------------------------------------------------------------


def compact_relative_positions(seq_len: int, dim: int, device: torch.device) -> Tensor:
    """``[2T - 1, dim]`` encodings of offsets -(T-1)..T-1 (key minus query), float32.

    Offsets are compressed logarithmically and mapped through atan to an angle in
    (-pi/2, pi/2); channels hold cos(k * angle), sin(k * angle) for k = 1..dim/2, and the
    last channel is overwritten with a constant 1.
    """
    offsets = torch.arange(-(seq_len - 1), seq_len, device=device, dtype=torch.float32)
    compression = dim**0.5
    compressed = (
        compression * offsets.sign() * ((offsets.abs() + compression).log() - math.log(compression))
    )
    angle = (compressed / (dim / (2.0 * math.pi))).atan()
    frequencies = torch.arange(1, dim // 2 + 1, device=device)
    phases = angle[:, None] * frequencies
    table = torch.stack([phases.cos(), phases.sin()], dim=-1).flatten(1)
    table[:, -1] = 1.0
    return table


def relative_shift(pos_scores: Tensor) -> Tensor:
    """``[..., T, 2T - 1]`` scores by offset -> ``[..., T, T]`` scores by key position.

    Row i needs entries (T - 1 - i) .. (2T - 2 - i): a strided view of the contiguous
    input (each row starts one element earlier than a plain row stride would put it).
    """
    pos_scores = pos_scores.contiguous()
    *lead, seq_len, num_offsets = pos_scores.shape
    lead_strides = pos_scores.stride()[:-2]
    return pos_scores.as_strided(
        (*lead, seq_len, seq_len),
        (*lead_strides, num_offsets - 1, 1),
        pos_scores.storage_offset() + seq_len - 1,
    )


class RelPositionAttentionWeights(nn.Module):
    """Attention probabilities ``[B, H, T, T]``, shared by three modules of a layer.

    score = q_i . k_j + p_i . P(j - i); no 1/sqrt(d) scaling (folded into the weights).
    """

    def __init__(self, dim: int, config: SpearConfig, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.query_head_dim = config.query_head_dim
        self.pos_head_dim = config.pos_head_dim
        in_dim = (2 * config.query_head_dim + config.pos_head_dim) * num_heads
        self.in_proj = nn.Linear(dim, in_dim)
        self.linear_pos = nn.Linear(config.pos_dim, config.pos_head_dim * num_heads, bias=False)

    def forward(self, x: Tensor, pos_table: Tensor, key_padding_mask: Tensor) -> Tensor:
        batch, seq_len, _ = x.shape
        heads, query_dim = self.num_heads, self.query_head_dim * self.num_heads
        proj = self.in_proj(x)
        q = proj[..., :query_dim].view(batch, seq_len, heads, -1).transpose(1, 2)
        k = proj[..., query_dim : 2 * query_dim].view(batch, seq_len, heads, -1).transpose(1, 2)
        p = proj[..., 2 * query_dim :].view(batch, seq_len, heads, -1).transpose(1, 2)

        pos = self.linear_pos(pos_table).view(-1, heads, self.pos_head_dim).permute(1, 2, 0)
        scores = q @ k.transpose(-1, -2) + relative_shift(p @ pos)
        scores = scores.masked_fill(key_padding_mask[:, None, None, :], MASKED_SCORE)
        return scores.softmax(dim=-1)


class SelfAttention(nn.Module):
    """Per-head weighted sums of values with precomputed attention weights."""

    def __init__(self, dim: int, num_heads: int, value_head_dim: int):
        super().__init__()
        self.num_heads = num_heads
        self.in_proj = nn.Linear(dim, num_heads * value_head_dim)
        self.out_proj = nn.Linear(num_heads * value_head_dim, dim)

    def forward(self, x: Tensor, attn: Tensor) -> Tensor:
        batch, seq_len, _ = x.shape
        v = self.in_proj(x).view(batch, seq_len, self.num_heads, -1).transpose(1, 2)
        return self.out_proj((attn @ v).transpose(1, 2).flatten(2))


class NonlinAttention(nn.Module):
    """Gated attention with one head of width 3D/4, using the first head's weights."""

    def __init__(self, dim: int):
        super().__init__()
        hidden = dim * 3 // 4
        self.in_proj = nn.Linear(dim, 3 * hidden)
        self.out_proj = nn.Linear(hidden, dim)

    def forward(self, x: Tensor, attn_head0: Tensor) -> Tensor:
        gate, values, out_gate = self.in_proj(x).chunk(3, dim=-1)
        values = attn_head0 @ (values * gate.tanh())
        return self.out_proj(values * out_gate)


# -- convolution and feed-forward ---------------------------------------------------------


class ConvolutionModule(nn.Module):
    """GLU -> zero the padding -> depthwise conv over time -> SwooshR -> projection."""

    def __init__(self, dim: int, kernel_size: int):
        super().__init__()
        self.in_proj = nn.Linear(dim, 2 * dim)
        self.depthwise_conv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, padding_mask: Tensor) -> Tensor:
        x = F.glu(self.in_proj(x), dim=-1)  # first half * sigmoid(second half)
        x = x.masked_fill(padding_mask[..., None], 0.0)
        x = self.depthwise_conv(x.transpose(1, 2)).transpose(1, 2)
        return self.out_proj(swoosh_r(x))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.in_proj = nn.Linear(dim, hidden)
        self.out_proj = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_proj(swoosh_l(self.in_proj(x)))


# -- layers and stacks ------------------------------------------------------------------


class ZipformerLayer(nn.Module):
    """One Zipformer2 layer: three feed-forwards, two convs, three attention modules."""

    def __init__(
        self, config: SpearConfig, dim: int, feedforward_dim: int, num_heads: int, kernel: int
    ):
        super().__init__()
        self.self_attn_weights = RelPositionAttentionWeights(dim, config, num_heads)
        self.self_attn1 = SelfAttention(dim, num_heads, config.value_head_dim)
        self.self_attn2 = SelfAttention(dim, num_heads, config.value_head_dim)
        self.feed_forward1 = FeedForward(dim, feedforward_dim * 3 // 4)
        self.feed_forward2 = FeedForward(dim, feedforward_dim)
        self.feed_forward3 = FeedForward(dim, feedforward_dim * 5 // 4)
        self.nonlin_attention = NonlinAttention(dim)
        self.conv_module1 = ConvolutionModule(dim, kernel)
        self.conv_module2 = ConvolutionModule(dim, kernel)
        self.norm = BiasNorm(dim)
        self.bypass = Bypass(dim)
        self.bypass_mid = Bypass(dim)

    def forward(self, x: Tensor, pos_table: Tensor, padding_mask: Tensor) -> Tensor:
        x_in = x
        attn = self.self_attn_weights(x, pos_table, padding_mask)
        x = x + self.feed_forward1(x)
        x = x + self.nonlin_attention(x, attn[:, 0])
        x = x + self.self_attn1(x, attn)
        x = x + self.conv_module1(x, padding_mask)
        x = x + self.feed_forward2(x)
        x = self.bypass_mid(x_in, x)
        x = x + self.self_attn2(x, attn)
        x = x + self.conv_module2(x, padding_mask)
        x = x + self.feed_forward3(x)
        return self.bypass(x_in, self.norm(x))


class ZipformerStack(nn.Module):
    """Layers at one frame rate; returns the output of every layer."""

    def __init__(self, config: SpearConfig, stack: int):
        super().__init__()
        self.pos_dim = config.pos_dim
        self.layers = nn.ModuleList(
            ZipformerLayer(
                config,
                config.encoder_dim[stack],
                config.feedforward_dim[stack],
                config.num_heads[stack],
                config.cnn_module_kernel[stack],
            )
            for _ in range(config.num_encoder_layers[stack])
        )

    def forward(self, x: Tensor, padding_mask: Tensor) -> list[Tensor]:
        pos_table = compact_relative_positions(x.shape[1], self.pos_dim, x.device).to(x.dtype)
        outputs = []
        for layer in self.layers:
            x = layer(x, pos_table, padding_mask)
            outputs.append(x)
        return outputs


class SimpleDownsample(nn.Module):
    """Softmax-weighted sum of each group of ``factor`` frames.

    The time axis is first padded to a multiple of ``factor`` by repeating the last
    frame of the (padded) batch tensor, as the reference does.
    """

    def __init__(self, factor: int):
        super().__init__()
        self.factor = factor
        self.bias = nn.Parameter(torch.zeros(factor))

    def forward(self, x: Tensor) -> Tensor:
        batch, seq_len, dim = x.shape
        pad = -seq_len % self.factor
        x = torch.cat([x, x[:, -1:].expand(batch, pad, dim)], dim=1)
        groups = x.view(batch, -1, self.factor, dim)
        weights = self.bias.softmax(dim=0)[:, None]
        return (groups * weights).sum(dim=2)


def upsample(x: Tensor, factor: int, seq_len: int) -> Tensor:
    """Repeat every frame ``factor`` times and trim to ``seq_len`` frames."""
    return x.repeat_interleave(factor, dim=1)[:, :seq_len]


class DownsampledZipformerStack(nn.Module):
    """A stack run at 1/``factor`` of the input rate, upsampled and blended back."""

    def __init__(self, config: SpearConfig, stack: int):
        super().__init__()
        self.factor = config.downsampling_factor[stack]
        self.downsample = SimpleDownsample(self.factor)
        self.encoder = ZipformerStack(config, stack)
        self.out_combiner = Bypass(config.encoder_dim[stack])

    def forward(self, x: Tensor, padding_mask: Tensor) -> tuple[Tensor, list[Tensor]]:
        """padding_mask is already at the reduced rate. Returns (stack output, layer
        outputs upsampled to the input rate; not passed through ``out_combiner``)."""
        seq_len = x.shape[1]
        layer_outputs = self.encoder(self.downsample(x), padding_mask)
        upsampled = [upsample(y, self.factor, seq_len) for y in layer_outputs]
        return self.out_combiner(x, upsampled[-1]), upsampled


class Zipformer(nn.Module):
    """Stacks at rates 50/ds Hz applied in sequence, then the full-width output."""

    def __init__(self, config: SpearConfig):
        super().__init__()
        self.config = config
        self.encoders = nn.ModuleList(
            DownsampledZipformerStack(config, stack)
            if factor > 1
            else ZipformerStack(config, stack)
            for stack, factor in enumerate(config.downsampling_factor)
        )
        self.downsample_output = (
            SimpleDownsample(config.output_downsampling_factor)
            if config.output_downsampling_factor > 1
            else None
        )

    def forward(self, x: Tensor, padding_mask: Tensor) -> tuple[Tensor, list[Tensor]]:
        """x: ``[B, T, encoder_dim[0]]``; padding_mask: ``[B, T]``, True at padding.

        Returns (encoder_out before any output downsampling, hidden state of every
        layer at the input rate).
        """
        stack_outputs: list[Tensor] = []
        hidden_states: list[Tensor] = []
        for stack, factor, dim in zip(
            self.encoders, self.config.downsampling_factor, self.config.encoder_dim, strict=True
        ):
            x = resize_channels(x, dim)
            stack_mask = padding_mask[:, ::factor]
            if isinstance(stack, DownsampledZipformerStack):
                x, layer_outputs = stack(x, stack_mask)
            else:
                layer_outputs = stack(x, stack_mask)
                x = layer_outputs[-1]
            stack_outputs.append(x)
            hidden_states.extend(layer_outputs)
        return self.full_dim_output(stack_outputs), hidden_states

    def full_dim_output(self, stack_outputs: list[Tensor]) -> Tensor:
        """The last stack's output, widened with the channels beyond it taken from the
        most recent stack that has them (a no-op for uniform dims)."""
        pieces = [stack_outputs[-1]]
        width = self.config.encoder_dim[-1]
        for output, dim in zip(
            reversed(stack_outputs[:-1]), reversed(self.config.encoder_dim[:-1]), strict=True
        ):
            if dim > width:
                pieces.append(output[..., width:dim])
                width = dim
        return torch.cat(pieces, dim=-1) if len(pieces) > 1 else pieces[0]


def resize_channels(x: Tensor, num_channels: int) -> Tensor:
    """Truncate or zero-pad the channel axis to ``num_channels``."""
    extra = num_channels - x.shape[-1]
    if extra <= 0:
        return x[..., :num_channels]
    return F.pad(x, (0, extra))


@dataclass
class SpearEncoderOutput:
    """Everything one forward pass produces; tensors are batch-first.

    frontend_out / hidden_states: ``[B, T, D]`` at about 50 Hz, ``lengths`` valid frames.
    encoder_out: ``[B, T_out, D_out]`` with ``encoder_out_lens`` valid frames (25 Hz when
    ``output_downsampling_factor`` is 2, else 50 Hz).
    """

    frontend_out: Tensor
    hidden_states: list[Tensor]
    lengths: Tensor
    encoder_out: Tensor
    encoder_out_lens: Tensor


class SpearModel(nn.Module):
    """Front end + Zipformer; input is 128-bin log-mel features at 100 Hz."""

    #: Fewest fbank frames that yield one encoder frame.
    MIN_FBANK_FRAMES = 9

    def __init__(self, config: SpearConfig):
        super().__init__()
        self.config = config
        self.encoder_embed = Conv2dSubsampling(config, config.encoder_dim[0])
        self.encoder = Zipformer(config)

    @staticmethod
    def output_lengths(fbank_lens: Tensor) -> Tensor:
        """Valid frames after the front end: (fbank_lens - 7) // 2, floored at 0."""
        return ((fbank_lens - 7) // 2).clamp(min=0)

    def forward(self, fbank: Tensor, fbank_lens: Tensor) -> SpearEncoderOutput:
        """fbank: ``[B, T, num_mel_bins]``, padded with ln(1e-10) as the reference pads it."""
        if fbank.shape[1] < self.MIN_FBANK_FRAMES:
            raise ValueError(
                f"SPEAR needs at least {self.MIN_FBANK_FRAMES} fbank frames (85 ms of audio); "
                f"the longest input has {fbank.shape[1]}"
            )
        frontend_out = self.encoder_embed(fbank)
        lengths = self.output_lengths(fbank_lens.to(fbank.device))
        frames = torch.arange(frontend_out.shape[1], device=fbank.device)
        padding_mask = frames[None, :] >= lengths[:, None]

        encoder_out, hidden_states = self.encoder(frontend_out, padding_mask)
        encoder_out_lens = lengths
        if self.encoder.downsample_output is not None:
            encoder_out = self.encoder.downsample_output(encoder_out)
            encoder_out_lens = (lengths + 1) // 2
        return SpearEncoderOutput(
            frontend_out=frontend_out,
            hidden_states=hidden_states,
            lengths=lengths,
            encoder_out=encoder_out,
            encoder_out_lens=encoder_out_lens,
        )
