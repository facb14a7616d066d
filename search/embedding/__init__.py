"""The model: how texts become vectors (`embedder`: sentence-transformers, ONNX int8,
torch bf16) and the ONNX export the default backend runs (`onnx_export`)."""
