"""The GRU/LSTM autoencoder written as ONNX (`pdm.detectors.gru_onnx.export`): training side only.

The runtime that scores the file lives in `pdm.engines.onnx_engine` and needs neither this package nor TensorFlow.
"""
