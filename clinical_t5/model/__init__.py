"""The T5 model stage of clinical-t5 (JAX/Flax), with Hugging Face import and export.

Modules (import what you need; this package imports nothing heavy by itself):
  config      T5Config and size presets (v1.0 ReLU/tied, v1.1 gated-GELU/untied)
  layers      RMSNorm, attention with KV cache, relative position bias, MLP, embedding
  network     Transformer: encode / decode / __call__ (t5x EncoderDecoder signature)
  losses      token cross-entropy with label masking, label smoothing and z-loss
  decoding    greedy and beam search over a cached step function
  models      EncoderDecoderModel: init, loss_fn, score_batch, predict_batch
  checkpoint  orbax checkpoints (params, model_config, metadata)
  hf_mapping, hf_export, hf_verify, hf_import   Hugging Face T5 conversion
  testing     fast numpy-initialized params for tests and benchmarks
"""
