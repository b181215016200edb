"""Applications on real data, one module per task: the model, its data readers and its training.

    tagger        part-of-speech tagging (many-to-many): word + character-CNN BiLSTM on UD English-EWT
    sentiment     sentence polarity (many-to-one): BiLSTM with max/mean pooling on Movie Review
    translate     German->English (Multi30k): BiGRU encoder, GRU decoder with attention, SentencePiece, BLEU
    conllu_data   CoNLL-U reading (the `conllu` package) for taggers
    music         polyphonic music: next-step piano-roll model on JSB Chorales, sampling to MIDI
    forecast      time series: a recurrent forecaster against persistence, AR and ARIMA, rolling origin

The command line (rnnkit/cli) only parses arguments and calls these.
"""
