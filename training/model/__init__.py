"""The classifier: embedding → recurrent cells → pooling → linear.

- :mod:`~training.model.classifier`: the network (``LSTMClassifier``) and its ``ModelConfig``;
- :mod:`~training.model.cells`: LSTM, GRU and plain RNN cells and their parameter arithmetic;
- :mod:`~training.model.pretrained`: word2vec vectors into the embedding;
- :mod:`~training.model.summary`: parameter counts per layer.
"""
