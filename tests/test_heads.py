"""The pooled-cache probe is exactly the frame-level probe."""

import pytest
import torch

from bench.featurizer import WeightedSum, parse_layers
from bench.heads import UtteranceHead


@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("layers", ["weighted", 2, "last"])
def test_pooled_and_frame_logits_are_equal(layer_norm, layers):
    torch.manual_seed(0)
    frames = torch.randn(4, 30, 5, 16) * 3 + 1
    lengths = torch.tensor([30, 17, 5, 22])
    head = UtteranceHead(
        num_layers=5,
        input_dim=16,
        num_outputs=7,
        projector_dim=32,
        layers=layers,
        layer_norm=layer_norm,
    )
    with torch.no_grad():
        if head.featurizer.logits is not None:
            head.featurizer.logits.copy_(torch.randn(5))  # non-uniform learned weights
        from_frames = head.forward_frames(frames, lengths)
        # What the pooled cache stores: per-layer means over valid frames (of layer-normed frames).
        source = torch.nn.functional.layer_norm(frames, (16,)) if layer_norm else frames
        pooled = torch.stack([source[i, :n].mean(0) for i, n in enumerate(lengths.tolist())])
        from_pooled = head.forward_pooled(pooled)
    torch.testing.assert_close(from_pooled, from_frames, rtol=1e-5, atol=1e-5)


def test_weights_start_equal_and_sum_to_one():
    featurizer = WeightedSum(num_layers=4)
    torch.testing.assert_close(featurizer.weights(), torch.full((4,), 0.25))
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(featurizer(x), x.mean(dim=1))


def test_single_layer_selection():
    x = torch.randn(2, 4, 3)
    torch.testing.assert_close(WeightedSum(4, layers=1)(x), x[:, 1])
    assert WeightedSum(4, layers=1).logits is None
    assert parse_layers("last", 4) == 3 and parse_layers(-1, 4) == 3
    with pytest.raises(ValueError, match="layer 7 does not exist"):
        parse_layers(7, 4)


@pytest.mark.parametrize("shape", [(3, 7, 5, 16), (4096, 5, 16)])  # one chunk; several chunks
def test_float16_features_give_the_float32_weighted_sum_and_weight_gradient(monkeypatch, shape):
    from bench import featurizer as module

    monkeypatch.setattr(module, "_CHUNK_ELEMENTS", 1000)  # chunks of 12 rows: many, uneven
    torch.manual_seed(0)
    half = (torch.randn(*shape) * 2).half()
    original = half.clone()
    reference, fast = WeightedSum(5), WeightedSum(5)
    with torch.no_grad():
        reference.logits.copy_(torch.randn(5))
        fast.logits.copy_(reference.logits)
    upstream_grad = torch.randn(*shape[:-2], 16)

    expected = reference(half.float())  # the plain einsum on widened features
    expected.backward(upstream_grad)
    result = fast(half)
    result.backward(upstream_grad)

    assert result.dtype == torch.float32 and result.shape == expected.shape
    torch.testing.assert_close(result, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast.logits.grad, reference.logits.grad, rtol=1e-4, atol=1e-4)
    assert torch.equal(half, original)  # the backward pass works on copies


def test_float16_features_with_layer_norm_or_one_layer_are_widened():
    torch.manual_seed(0)
    half = torch.randn(2, 6, 4, 8).half()
    normed = WeightedSum(4, layer_norm=True)(half)
    torch.testing.assert_close(normed, WeightedSum(4, layer_norm=True)(half.float()))
    torch.testing.assert_close(WeightedSum(4, layers=2)(half), half[..., 2, :].float())
