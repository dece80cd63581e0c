// LoRA adapters as GGUF for llama.cpp (`--lora`): general.type "adapter", adapter.type
// "lora", adapter.lora.alpha, and per adapted weight `<gguf name>.lora_a` ([r, in]) and
// `.lora_b` ([out, r]), named and permuted like the base export (convert_lora_to_gguf.py).
// llama.cpp scales every pair by alpha / r; per-module scales (rsLoRA, rank/alpha patterns) are
// folded into B so the one global alpha still gives each module its PEFT scale.
import { FormatError } from '../util/errors.ts';
import type { ModelSpec } from './config.ts';
import { GgufType, GgufWriter } from './gguf.ts';
import type { GgufArch } from './gguf-export.ts';
import { hfToGguf, permuteRope } from './gguf-names.ts';
import { encodeGgml, GgmlType } from './gguf-quant.ts';
import { type LoraAdapter, loraScale } from './peft.ts';

/**
 * Write a PEFT LoRA adapter for a LLaMA-family base as a GGUF adapter file. `arch` must match
 * the base model's GGUF export (the llama path permutes q/k rows of B as it does the weights).
 */
export async function exportLoraGguf(
  path: string,
  adapter: LoraAdapter,
  spec: ModelSpec,
  opts: { arch?: GgufArch; name?: string } = {},
): Promise<void> {
  if (spec.family !== 'llama')
    throw new FormatError('GGUF LoRA export supports the LLaMA family', path);
  const arch = opts.arch ?? (spec.modelType === 'qwen2' ? 'qwen2' : 'llama');
  if (adapter.config.fan_in_fan_out)
    throw new FormatError('fan_in_fan_out adapters (GPT-2 Conv1D) have no llama layout', path);
  const alpha = adapter.config.lora_alpha;
  const w = new GgufWriter();
  w.set('general.architecture', GgufType.STRING, arch);
  w.set('general.type', GgufType.STRING, 'adapter');
  w.set('general.name', GgufType.STRING, opts.name ?? 'lora');
  w.set('adapter.type', GgufType.STRING, 'lora');
  w.set('adapter.lora.alpha', GgufType.FLOAT32, alpha);
  for (const [mod, { A, B }] of adapter.modules) {
    const g = hfToGguf(`${mod}.weight`);
    if (g === undefined)
      throw new FormatError(`adapted module '${mod}' has no GGUF tensor name`, path);
    const { r, scale } = loraScale(adapter.config, mod);
    // llama.cpp applies alpha / r; rescale B so the product is this module's PEFT scale.
    const fix = (scale * r) / alpha;
    let b = fix === 1 ? B.data : B.data.map((x) => x * fix);
    if (arch === 'llama' && /\.self_attn\.q_proj$/.test(mod)) b = permuteRope(b, spec.numHeads, r);
    if (arch === 'llama' && /\.self_attn\.k_proj$/.test(mod))
      b = permuteRope(b, spec.numKvHeads, r);
    w.addTensor(`${g}.lora_a`, A.shape, GgmlType.F32, encodeGgml(A.data, GgmlType.F32));
    w.addTensor(`${g}.lora_b`, B.shape, GgmlType.F32, encodeGgml(b, GgmlType.F32));
  }
  await w.write(path);
}
