// config.json keys that never change a causal LM's forward math: PretrainedConfig's generic
// attributes (transformers configuration_utils.py), generation defaults that older configs
// carry, and provenance fields. The config schemas accept these and ignore them; any other
// unknown key is an error, because silently ignoring a key that changes the math gives a
// model that loads and then computes something else.
import { z } from 'zod';

const KEYS = [
  // provenance and bookkeeping
  '_name_or_path',
  '_commit_hash',
  '_attn_implementation',
  '_attn_implementation_autoset',
  'transformers_version',
  'torch_dtype',
  'dtype',
  'architectures',
  'auto_map',
  'model_type',
  'use_cache',
  'initializer_range',
  'pretraining_tp',
  'tokenizer_class',
  'finetuning_task',
  'id2label',
  'label2id',
  'num_labels',
  'problem_type',
  'prefix',
  'task_specific_params',
  'quantization_config_applied',
  // output switches
  'return_dict',
  'output_hidden_states',
  'output_attentions',
  'torchscript',
  'use_bfloat16',
  'tf_legacy_loss',
  'pruned_heads',
  'chunk_size_feed_forward',
  'is_encoder_decoder',
  'is_decoder',
  'add_cross_attention',
  'cross_attention_hidden_size',
  'tie_encoder_decoder',
  // special token ids (read separately where they matter)
  'bos_token_id',
  'eos_token_id',
  'pad_token_id',
  'sep_token_id',
  'decoder_start_token_id',
  // generation defaults stored in old configs (generation_config.json owns them now)
  'max_length',
  'min_length',
  'do_sample',
  'early_stopping',
  'num_beams',
  'num_beam_groups',
  'diversity_penalty',
  'temperature',
  'top_k',
  'top_p',
  'typical_p',
  'repetition_penalty',
  'length_penalty',
  'no_repeat_ngram_size',
  'encoder_no_repeat_ngram_size',
  'bad_words_ids',
  'num_return_sequences',
  'output_scores',
  'return_dict_in_generate',
  'forced_bos_token_id',
  'forced_eos_token_id',
  'remove_invalid_values',
  'exponential_decay_length_penalty',
  'suppress_tokens',
  'begin_suppress_tokens',
] as const;

/** Zod shape accepting every bookkeeping key with any value. */
export const bookkeepingShape: Record<
  (typeof KEYS)[number],
  z.ZodOptional<z.ZodUnknown>
> = Object.fromEntries(KEYS.map((k) => [k, z.unknown().optional()])) as Record<
  (typeof KEYS)[number],
  z.ZodOptional<z.ZodUnknown>
>;

/** The bookkeeping key names. */
export const BOOKKEEPING_KEYS: ReadonlySet<string> = new Set(KEYS);
