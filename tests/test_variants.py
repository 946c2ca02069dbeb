"""The variant table and TF rounding rules against the reference numbers (anchors table (a))."""
import pytest

from effnet_mm.variants import VARIANTS, get_variant, round_channels, round_repeats

# (repeats per stage, stage out channels, stem, head) from the reference table, stage by stage.
REFERENCE = {
    'b0': ((1, 2, 2, 3, 3, 4, 1), (16, 24, 40, 80, 112, 192, 320), 32, 1280),
    'b1': ((2, 3, 3, 4, 4, 5, 2), (16, 24, 40, 80, 112, 192, 320), 32, 1280),
    'b2': ((2, 3, 3, 4, 4, 5, 2), (16, 24, 48, 88, 120, 208, 352), 32, 1408),
    'b3': ((2, 3, 3, 5, 5, 6, 2), (24, 32, 48, 96, 136, 232, 384), 40, 1536),
    'b4': ((2, 4, 4, 6, 6, 8, 2), (24, 32, 56, 112, 160, 272, 448), 48, 1792),
    'b5': ((3, 5, 5, 7, 7, 9, 3), (24, 40, 64, 128, 176, 304, 512), 48, 2048),
    'b6': ((3, 6, 6, 8, 8, 11, 3), (32, 40, 72, 144, 200, 344, 576), 56, 2304),
    'b7': ((4, 7, 7, 10, 10, 13, 4), (32, 48, 80, 160, 224, 384, 640), 64, 2560),
    'b8': ((4, 8, 8, 11, 11, 15, 4), (32, 56, 88, 176, 248, 424, 704), 72, 2816),
    'l2': ((6, 11, 11, 16, 16, 22, 6), (72, 104, 176, 344, 480, 824, 1376), 136, 5504),
}


@pytest.mark.parametrize('arch', sorted(REFERENCE))
def test_stage_table_matches_reference(arch):
    repeats, channels, stem, head = REFERENCE[arch]
    variant = VARIANTS[arch]
    stages = variant.stages()
    assert tuple(s.repeats for s in stages) == repeats
    assert tuple(s.out_channels for s in stages) == channels
    assert tuple(s.in_channels for s in stages) == (stem, ) + channels[:-1]
    assert variant.stem_channels == stem
    assert variant.head_channels == head
    assert variant.num_blocks == sum(repeats)


def test_resolution_dropout_and_crop():
    assert [VARIANTS[a].resolution for a in ('b0', 'b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7', 'b8', 'l2')] == \
        [224, 240, 260, 300, 380, 456, 528, 600, 672, 800]
    assert [VARIANTS[a].dropout for a in ('b0', 'b2', 'b4', 'b6', 'l2')] == [0.2, 0.3, 0.4, 0.5, 0.5]
    assert VARIANTS['b0'].crop_pct == pytest.approx(0.875)
    assert VARIANTS['b0'].tf_scope == 'efficientnet-b0'


def test_rounding_rules():
    assert round_channels(32, 1.0) == 32
    assert round_channels(40, 1.1) == 48          # 44 rounds up to 48
    assert round_channels(16, 4.3) == 72          # 68.8 -> 72
    assert round_channels(4, 1.0) == 8            # never below the divisor
    assert round_channels(10, 1.0, divisor=8) == 16   # 8 < 0.9 * 10, so one more divisor
    assert round_repeats(1, 1.1) == 2
    assert round_repeats(4, 1.0) == 4


def test_get_variant_accepts_aliases_and_rejects_unknown():
    assert get_variant('B3') is VARIANTS['b3']
    assert get_variant('efficientnet-b3') is VARIANTS['b3']
    with pytest.raises(KeyError, match="Unknown EfficientNet arch 'b9'.*b0"):
        get_variant('b9')
