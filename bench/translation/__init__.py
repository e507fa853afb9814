"""Speech translation (SUPERB-SG ST): s3prl's ``downstream/speech_translation`` recipe in plain
PyTorch (fairseq's ``s2t_transformer`` head, its label-smoothed loss and beam search), the
sentencepiece target vocabulary and BLEU (``recipe`` lists every fact with its source)."""
