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

export * from './batch-decoder.ts';
export * from './bpe.ts';
export * from './bpe-train.ts';
export * from './checkpoint.ts';
export * from './config.ts';
export * from './decoder.ts';
export * from './generate.ts';
export * from './gguf.ts';
export * from './gguf-export.ts';
export * from './gguf-lora.ts';
export * from './gguf-names.ts';
export * from './gguf-quant.ts';
export * from './gguf-reader.ts';
export * from './gguf-tokenizer.ts';
export * from './half.ts';
export * from './lm.ts';
export * from './peft.ts';
export * from './rope-config.ts';
export * from './safetensors.ts';
export * from './safetensors-shards.ts';
export * from './sampling.ts';
export * from './tensor.ts';
export * from './tiny.ts';
export * from './tokenizer.ts';
export * from './weights.ts';
