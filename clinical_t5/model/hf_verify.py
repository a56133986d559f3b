"""Check an exported Hugging Face directory against our model (transformers, PyTorch, CPU).

  >>> report = verify_export("hf_out", params, cfg)
  >>> report["max_abs_logit_diff"] < 1e-4, report["greedy_equal"]
  (True, True)

Checks, each raising ExportVerificationError when it fails:
  * `from_pretrained` reports no missing, unexpected or mismatched keys, and the
    keys in model.safetensors equal the model's state-dict keys (minus the tied
    `lm_head.weight` for v1.0);
  * `scale_decoder_outputs` (d_model**-0.5 before the head) matches our variant;
  * shared, encoder/decoder embed_tokens and lm_head are bitwise our arrays;
  * float32 logits agree within `atol` on a fixed batch whose rows end in EOS and
    contain padding, at every non-padding target position;
  * greedy generations are identical.
"""

from typing import Any

import numpy as np

from clinical_t5.model import config as config_lib
from clinical_t5.model import hf_mapping

EOS_ID = 1


class ExportVerificationError(RuntimeError):
  """The exported model does not reproduce ours."""


def fixed_batch(vocab_size: int, batch: int = 3, input_length: int = 12, target_length: int = 7,
                seed: int = 0) -> dict[str, np.ndarray]:
  """Random ids >= 2 whose rows end in EOS; rows 0 and 2 are padded, row 1 is full."""
  rng = np.random.RandomState(seed)
  high = max(3, vocab_size)
  enc = rng.randint(2, high, (batch, input_length))
  tgt = rng.randint(2, high, (batch, target_length))
  for row in range(batch):
    enc_len = input_length - (row % 2 == 0) * (2 + row)
    tgt_len = target_length - (row % 2 == 0) * (1 + row // 2)
    enc[row, enc_len - 1], enc[row, enc_len:] = EOS_ID, 0
    tgt[row, tgt_len - 1], tgt[row, tgt_len:] = EOS_ID, 0
  dec = np.concatenate([np.zeros((batch, 1), enc.dtype), tgt[:, :-1]], axis=1)  # shift right, start 0
  return {"encoder_input_tokens": enc.astype(np.int32), "decoder_input_tokens": dec.astype(np.int32),
          "decoder_target_tokens": tgt.astype(np.int32)}


def _check_keys(hf_dir: str, model, info: dict, cfg: config_lib.T5Config) -> list[str]:
  from safetensors import safe_open  # pylint: disable=g-import-not-at-top

  problems = [f"{name}: {info[name]}" for name in
              ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs") if info.get(name)]
  with safe_open(f"{hf_dir}/model.safetensors", framework="np") as f:
    written = set(f.keys())
  expected = set(model.state_dict().keys())
  if cfg.tie_word_embeddings:
    expected.discard("lm_head.weight")
  if written != expected:
    problems.append(f"exported keys differ from the model's: only written "
                    f"{sorted(written - expected)[:5]}, never written {sorted(expected - written)[:5]}")
  if written != hf_mapping.hf_key_set(cfg):
    problems.append("model.safetensors keys differ from the mapping table")
  if bool(model.config.scale_decoder_outputs) != cfg.tie_word_embeddings:
    problems.append(f"scale_decoder_outputs={model.config.scale_decoder_outputs} but the model is "
                    f"{'tied' if cfg.tie_word_embeddings else 'untied'}")
  return problems


def _check_embeddings(model, params: Any, cfg: config_lib.T5Config) -> list[str]:
  embedding = np.asarray(params["token_embedder"]["embedding"])
  head = embedding if cfg.tie_word_embeddings else np.asarray(params["decoder"]["logits_dense"]).T
  tensors = {"shared": model.shared.weight, "encoder.embed_tokens": model.encoder.embed_tokens.weight,
             "decoder.embed_tokens": model.decoder.embed_tokens.weight}
  problems = [f"{name} is not bitwise our embedding" for name, t in tensors.items()
              if not np.array_equal(t.detach().numpy(), embedding)]
  if not np.array_equal(model.lm_head.weight.detach().numpy(), head):
    problems.append("lm_head is not bitwise our output matrix")
  return problems


def compare_outputs(model, params: Any, cfg: config_lib.T5Config, max_decode_length: int = 16
                    ) -> tuple[float, bool, np.ndarray, np.ndarray]:
  """Return (max |logit diff| at real target tokens, greedy equal, ours, theirs)."""
  import jax  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from clinical_t5.model import models  # pylint: disable=g-import-not-at-top

  ours_model = models.EncoderDecoderModel(cfg.replace(dtype="float32", dropout_rate=0.0))
  batch = fixed_batch(cfg.vocab_size)
  ours = np.asarray(ours_model.logits(params, batch))
  enc = torch.from_numpy(batch["encoder_input_tokens"].astype(np.int64))
  with torch.no_grad():
    theirs = model(input_ids=enc, attention_mask=(enc > 0).long(),
                   decoder_input_ids=torch.from_numpy(batch["decoder_input_tokens"].astype(np.int64))
                   ).logits.numpy()
  real = batch["decoder_target_tokens"] > 0
  max_diff = float(np.max(np.abs(ours - theirs)[real]))

  ours_tokens = np.asarray(jax.jit(lambda p, b: ours_model.predict_batch(
      p, b, max_decode_length=max_decode_length))(params, batch))
  # NOTE: transformers 5.25 sizes the generation KV cache by the encoder's layer
  # count (IndexError when num_decoder_layers > num_layers), so such models are
  # checked without its cache.
  use_cache = cfg.num_encoder_layers >= cfg.num_decoder_layers
  with torch.no_grad():
    generated = model.generate(input_ids=enc, attention_mask=(enc > 0).long(), do_sample=False,
                               num_beams=1, max_new_tokens=max_decode_length,
                               min_new_tokens=0, use_cache=use_cache).numpy()[:, 1:]  # drop start id
  theirs_tokens = np.zeros_like(ours_tokens)
  theirs_tokens[:, :generated.shape[1]] = generated
  return max_diff, bool(np.array_equal(ours_tokens, theirs_tokens)), ours_tokens, theirs_tokens


def verify_export(hf_dir: str, params: Any, cfg: config_lib.T5Config, atol: float = 1e-4
                  ) -> dict[str, Any]:
  """Load `hf_dir` with transformers and compare it with our params; return a report."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  torch.manual_seed(0)
  model, info = transformers.T5ForConditionalGeneration.from_pretrained(
      hf_dir, output_loading_info=True, dtype=torch.float32)
  model.eval()
  problems = _check_keys(hf_dir, model, info, cfg) + _check_embeddings(model, params, cfg)
  max_diff, greedy_equal, greedy_tokens, _ = compare_outputs(model, params, cfg)
  if not max_diff <= atol:
    problems.append(f"logits differ by up to {max_diff:.3g} (allowed {atol:g})")
  if not greedy_equal:
    problems.append("greedy generations differ from ours")
  if problems:
    raise ExportVerificationError("export verification failed: " + "; ".join(problems))
  return {"max_abs_logit_diff": max_diff, "greedy_equal": greedy_equal,
          "greedy_tokens": greedy_tokens.tolist(),
          "scale_decoder_outputs": bool(model.config.scale_decoder_outputs)}
