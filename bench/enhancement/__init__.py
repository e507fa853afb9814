"""Speech enhancement and separation (SUPERB-SG SE and SS): s3prl's STFT-mask experts."""
