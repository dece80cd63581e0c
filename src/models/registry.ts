// The model table: ModelSpec family → the Family that builds its layers. config.ts maps
// config.json's model_type / architectures to a family (llama, mistral and qwen2 share the
// LLaMA family, with flags in the spec); adding an architecture means one Family file and one
// line here. Training, scoring, decoding and LoRA all reach the layers through this table.
import { ConfigError } from '../util/errors.ts';
import type { ModelFamily, ModelSpec } from './config.ts';
import type { Family } from './decoder.ts';
import { gpt2Family } from './gpt2.ts';
import { llamaFamily } from './llama.ts';

/** Every family with a forward builder. */
export const FAMILIES: Readonly<Record<ModelFamily, Family>> = {
  llama: llamaFamily,
  gpt2: gpt2Family,
};

/** The Family of a spec; an unknown family is a ConfigError naming model_type. */
export function familyOf(spec: Pick<ModelSpec, 'family' | 'modelType'>): Family {
  const f = FAMILIES[spec.family];
  if (!f)
    throw new ConfigError(
      `no forward builder for family '${spec.family}' (model_type '${spec.modelType}')`,
      { field: 'model_type' },
      { hint: `families: ${Object.keys(FAMILIES).join(', ')}` },
    );
  return f;
}
