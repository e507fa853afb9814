import numpy as np
import pytest
import soundfile
from _audio import write_tone

from bench.audio import AudioError, AudioLoader, audio_info


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
