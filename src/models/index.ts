// The models stage's public API: model configs (HF config.json ↔ ModelSpec), safetensors and
// sharded checkpoints, tokenizers (HF tokenizer.json and our own byte-level BPE trainer),
// GGUF export/import for llama.cpp, PEFT LoRA adapter files, and the built-in tiny model.
//
// Loading a HF model directory
//   const { spec, tensors, tokenizer } = await loadCheckpoint('models/SmolLM2-135M');
//   spec: ModelSpec (family, sizes, rope, biases, tying); tensors: HF name → {shape, Float32Array}
//   openCheckpoint(dir) reads weights lazily (source.read(name)), for multi-GB models.
// Saving
//   await saveCheckpoint(dir, { spec, tensors, tokenizer, generationConfig: null }, { dtype: 'BF16' });
// Tokenizers
//   const tok = await Tokenizer.load(dir); tok.encode(text); tok.decode(ids); tok.chatTemplate
//   const { bpe, tokenizer } = trainTinyTokenizer(texts, 2048);   // own vocabulary
// GGUF (llama.cpp / Ollama)
//   await exportGguf('m.gguf', spec, tensors, { tokenizer, fileType: 'q8_0' });  // llama | qwen2
//   const { spec, tensors, tokenizer } = await importGguf('m.gguf');
// LoRA (PEFT format)
//   const adapter = await loadPeftAdapter(dir); const merged = mergeLora(tensors, adapter);
//   await savePeftAdapter(dir, adapter); await exportLoraGguf('lora.gguf', adapter, spec);
//
// The model (lm.ts): one class for every stage (train, eval, serve, pipeline)
//   const lm = await CausalLM.load('out/tiny');            // or CausalLM.random(spec, seed, tok)
//   lm.spec, lm.weights (HF names), lm.tokenizer; await lm.save(dir); await lm.logits([ids])
//   Families (registry.ts): llama (llama, mistral, qwen2) and gpt2 on one skeleton (decoder.ts).
// Generation (generate.ts on decoding.ts's Decoder, the same one the server runs)
//   const [r] = await generate(lm, ['Q: 2+2?\nA:'], { max_new_tokens: 8, stop: ['\n'] });
//   r.text, r.tokens, r.logprobs, r.topLogprobs, r.finishReason; temperature / top_k / top_p /
//   repetition_penalty / presence_penalty / frequency_penalty / logit_bias / seed /
//   top_logprobs; onText(row, delta) and onToken(row, event) stream while decoding.
//   const dec = new Decoder(lm, { maxBatch: 32 });          // step-level batching (a server)
//   const s = dec.add({ prompt: ids, max_new_tokens: 16 }); dec.cancel(s);
//   while (dec.busy) for (const ev of await dec.step()) ...; // one finishReason event each
// Scoring (scoring.ts)
//   await scoreSequences(lm, [ids], { topK: 5 });            // per-token log-probs, is_greedy
// Training and LoRA (graphs.ts trainingForward, lora.ts)
//   lm.attachLora({ r: 8, lora_alpha: 16 }, seed);           // targets q,k,v,o,gate,up,down
//   const params = ParamStore.create(lm.paramSpecs({ lora: true }), { seed });
//   createTrainer({ build: lm.trainingBuilder(), params, ... }); lm.setWeights(values);
//   await lm.saveAdapter(dir); lm.mergeAdapter();            // PEFT files; fold into the base
// Scalar heads (heads.ts): headForward(spec, REWARD_HEAD | VALUE_HEAD, w, inputs) → [B, 1]
//   on each row's last non-pad token (reward models, PPO's critic).
// Reward models (reward.ts): RewardModel.fromCausalLM(lm, seed) / RewardModel.load(dir) →
//   rm.score(rows); saved as HF *ForSequenceClassification (or PEFT with modules_to_save).

export * from './bpe.ts';
export * from './bpe-train.ts';
export * from './checkpoint.ts';
export * from './config.ts';
export * from './decoder.ts';
export * from './decoding.ts';
export * from './generate.ts';
export * from './gguf.ts';
export * from './gguf-export.ts';
export * from './gguf-lora.ts';
export * from './gguf-names.ts';
export * from './gguf-quant.ts';
export * from './gguf-reader.ts';
export * from './gguf-tokenizer.ts';
export * from './gpt2.ts';
export * from './graph-ops.ts';
export * from './graphs.ts';
export * from './half.ts';
export * from './heads.ts';
export * from './kv-cache.ts';
export * from './llama.ts';
export * from './lm.ts';
export * from './lora.ts';
export * from './peft.ts';
export * from './registry.ts';
export * from './reward.ts';
export * from './rope.ts';
export * from './rope-config.ts';
export * from './safetensors.ts';
export * from './safetensors-shards.ts';
export * from './sampling.ts';
export * from './scoring.ts';
export * from './tensor.ts';
export * from './text-stream.ts';
export * from './tiny.ts';
export * from './tokenizer.ts';
export * from './weights.ts';
