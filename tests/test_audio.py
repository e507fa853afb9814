import numpy as np
import pytest
import soundfile
from _audio import write_tone
from _unprivileged import call_unprivileged, make_unreadable, public_tmp_dir

from bench.audio import AudioError, AudioLoader, audio_info


@pytest.fixture
def public_tmp():
    yield from public_tmp_dir()


def test_mono_at_target_rate_is_read_as_is(tmp_path):
    path = write_tone(tmp_path / "a.wav", 440)
    wave = AudioLoader(16000).load(path)
    assert wave.dtype == np.float32 and wave.shape == (16000,)
    np.testing.assert_allclose(wave, soundfile.read(path, dtype="float32")[0])


def test_policy_downmixes_and_resamples_and_reports_once(tmp_path):
    stereo = write_tone(tmp_path / "stereo.wav", 440, channels=2)
    other_rate = write_tone(tmp_path / "44k.wav", 440, rate=44100)
    loader = AudioLoader(16000)
    assert loader.load(stereo).shape == (16000,)
    resampled = loader.load(other_rate)
    assert resampled.shape == (16000,)
    spectrum = np.abs(np.fft.rfft(resampled))
    assert abs(np.argmax(spectrum) * 16000 / len(resampled) - 440) < 2  # pitch preserved
    assert (
        loader.summary()
        == "resampled 1 file(s) from 44100 Hz to 16000 Hz; downmixed 1 multi-channel file(s) to mono"
    )


def test_segments(tmp_path):
    path = write_tone(tmp_path / "a.wav", 440, seconds=3.0)
    assert AudioLoader(16000).load(path, start=1.0, end=2.5).shape == (24000,)
    assert audio_info(path).duration == pytest.approx(3.0)


def test_empty_audio_names_the_file(tmp_path):
    path = tmp_path / "empty.wav"
    soundfile.write(path, np.zeros(0), 16000)
    with pytest.raises(AudioError, match=f"{path}: no samples"):
        AudioLoader(16000).load(path)


def test_corrupt_audio_names_the_file(tmp_path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF....WAVEfmt garbage")
    with pytest.raises(AudioError, match=f"{path}: cannot read audio"):
        AudioLoader(16000).load(path)
    with pytest.raises(AudioError, match=f"{path}: cannot read audio"):
        audio_info(path)


def test_non_finite_audio_is_refused(tmp_path):
    path = tmp_path / "nan.wav"
    soundfile.write(path, np.array([0.1, np.nan, 0.2], dtype=np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        AudioLoader(16000).load(path)


def test_truncated_wav_is_refused_with_both_lengths(tmp_path):
    whole = write_tone(tmp_path / "whole.wav", 440, seconds=1.0)
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[: 44 + 1000])  # 31 ms of the 1 s the header declares
    expected = (
        f"{cut}: truncated: the header declares 32,000 bytes of audio (1.000 s), "
        "the file holds 1,000 (0.031 s)"
    )
    with pytest.raises(AudioError) as error:
        audio_info(cut)
    assert str(error.value) == expected
    with pytest.raises(AudioError) as error:
        AudioLoader(16000).load(cut)
    assert str(error.value) == expected


def test_streaming_wav_header_and_trailing_chunks_are_fine(tmp_path):
    whole = write_tone(tmp_path / "whole.wav", 440, seconds=0.5)
    reference = AudioLoader(16000).load(whole)
    data = whole.read_bytes()
    with_trailer = tmp_path / "trailer.wav"  # a LIST chunk after the data, as editors write
    trailer = b"LIST" + (10).to_bytes(4, "little") + b"INFOISFT\x02\x00"
    riff_size = (len(data) - 8 + len(trailer)).to_bytes(4, "little")
    with_trailer.write_bytes(data[:4] + riff_size + data[8:] + trailer)
    np.testing.assert_array_equal(AudioLoader(16000).load(with_trailer), reference)
    streamed = tmp_path / "streamed.wav"  # ffmpeg to a pipe leaves the sizes at 0xFFFFFFFF
    streamed.write_bytes(data[:40] + b"\xff\xff\xff\xff" + data[44:])
    assert audio_info(streamed).frames == 8000


def test_truncated_flac_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    whole = tmp_path / "whole.flac"
    soundfile.write(whole, 0.1 * rng.standard_normal(16000), 16000)
    cut = tmp_path / "cut.flac"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(AudioError, match=f"{cut}: (cannot read audio|truncated)"):
        AudioLoader(16000).load(cut)


def test_permission_denied_says_so(public_tmp):
    path = write_tone(public_tmp / "locked.wav", 440, seconds=0.1)
    make_unreadable(path)
    for read in (audio_info, AudioLoader(16000).load):
        outcome = call_unprivileged(read, path)
        assert (outcome.error_type, outcome.message) == (
            "AudioError",
            f"{path}: cannot read audio (permission denied)",
        )


def test_a_missing_file_and_a_folder_say_so(tmp_path):
    with pytest.raises(AudioError, match=r"absent\.wav: cannot read audio \(no such file"):
        audio_info(tmp_path / "absent.wav")
    (tmp_path / "folder.wav").mkdir()
    with pytest.raises(AudioError, match=r"folder\.wav: cannot read audio \(is a directory\)"):
        AudioLoader(16000).load(tmp_path / "folder.wav")


def test_a_clip_too_short_to_resample_is_an_error(tmp_path):
    path = tmp_path / "one.wav"
    soundfile.write(path, np.array([0.1]), 44100)
    with pytest.raises(AudioError, match="1 sample\\(s\\) at 44100 Hz is too short to resample"):
        AudioLoader(16000).load(path)


#: a 64-frame FLAC whose STREAMINFO claims 8,589,934,656 frames (found by the fuzzing
#: campaign: reading it whole once tried to allocate 32 GiB)
HUGE_HEADER_FLAC = bytes.fromhex(
    "664c6143000000221000100000008a00008a01f400f2000000404b0b44ab9aef3eae83f0b7c9e806daaf8400"
    "0028200000007265666572656e6365206c6962464c414320312e342e3320323032333036323300000000fff8"
    "6408003f5e021f8ecaf5963e909c482d5f19189234e00a0d643e48c68d6e5259948a34eab54553ad098dd1db"
    "ee309353a96f275021ea1a96e533728f6ec92ac022aa2b6be668abed330805d7d448fcbd59bd6401df3c107b"
    "d6f515badaa8e70759ebc1231c62a0284ca44226c3f356be9a4bda3eaf6df48f4446c1f198c9ea02ba8aa1b6"
    "1282b69d"
)


def test_a_header_claiming_billions_of_frames_is_an_error_not_an_allocation(tmp_path):
    path = tmp_path / "huge.flac"
    path.write_bytes(HUGE_HEADER_FLAC)
    assert audio_info(path).frames == 8_589_934_656
    with pytest.raises(AudioError, match=f"{path}: (cannot read audio|truncated)"):
        AudioLoader(16000).load(path)


def test_long_files_are_read_block_by_block(tmp_path, monkeypatch):
    import bench.audio

    path = write_tone(tmp_path / "a.wav", 440, seconds=1.0)
    whole = AudioLoader(16000).load(path)
    monkeypatch.setattr(bench.audio, "READ_BLOCK_FRAMES", 1000)
    np.testing.assert_array_equal(AudioLoader(16000).load(path), whole)
    np.testing.assert_array_equal(AudioLoader(16000).load(path, 0.25, 0.75), whole[4000:12000])
