// Byte-level BPE tokenizers in GGUF (llama.cpp's "gpt2" tokenizer model): HF tokenizer.json →
// tokenizer.ggml.* keys (tokens, token_type, merges, special ids, pre-tokenizer name, chat
// template) and back. The pre-tokenizer name tells llama.cpp which split regex to run, so it is
// derived from the tokenizer.json's own regex and never guessed. SentencePiece-style tokenizers
// (tokenizer.ggml.model "llama", with scores) are not written here yet.
import { FormatError } from '../util/errors.ts';
import { GgufType, type GgufWriter } from './gguf.ts';
import { GGUF_TOKEN_TYPE } from './gguf-names.ts';
import type { GgufReader } from './gguf-reader.ts';
import { Tokenizer } from './tokenizer.ts';

const LLAMA3_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * tokenizer.ggml.pre names whose regex we can match exactly, with the tokenizer.json
 * normalizer + pre_tokenizer that produce the same splits (llama.cpp src/llama-vocab.cpp).
 */
const PRE: Record<string, { normalizer: unknown; pre_tokenizer: unknown; ignoreMerges?: boolean }> =
  {
    'gpt-2': {
      normalizer: null,
      pre_tokenizer: {
        type: 'ByteLevel',
        add_prefix_space: false,
        trim_offsets: true,
        use_regex: true,
      },
    },
    // Llama 3 looks whole pre-tokens up in the vocabulary before merging (llama.cpp sets
    // ignore_merges for this pre-tokenizer too).
    'llama-bpe': {
      normalizer: null,
      pre_tokenizer: splitThenBytes(LLAMA3_SPLIT),
      ignoreMerges: true,
    },
    qwen2: { normalizer: { type: 'NFC' }, pre_tokenizer: splitThenBytes(QWEN2_SPLIT) },
  };

function splitThenBytes(regex: string): unknown {
  return {
    type: 'Sequence',
    pretokenizers: [
      { type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    ],
  };
}

/** The llama.cpp pre-tokenizer name for a byte-level BPE tokenizer.json, or null if none fits. */
export function detectPreTokenizer(json: Readonly<Record<string, unknown>>): string | null {
  const pre = json.pre_tokenizer as Record<string, unknown> | null | undefined;
  const norm = json.normalizer as Record<string, unknown> | null | undefined;
  if (
    pre?.type === 'ByteLevel' &&
    pre.use_regex !== false &&
    pre.add_prefix_space !== true &&
    norm == null
  )
    return 'gpt-2';
  if (
    pre?.type !== 'Sequence' ||
    !Array.isArray(pre.pretokenizers) ||
    pre.pretokenizers.length !== 2
  )
    return null;
  interface Piece {
    type?: unknown;
    use_regex?: unknown;
    add_prefix_space?: unknown;
    pattern?: { Regex?: unknown };
  }
  const [split, bytes] = pre.pretokenizers as Piece[];
  if (
    split?.type !== 'Split' ||
    bytes?.type !== 'ByteLevel' ||
    bytes.use_regex !== false ||
    bytes.add_prefix_space === true
  )
    return null;
  const re = split.pattern?.Regex;
  if (re === LLAMA3_SPLIT && norm == null) return 'llama-bpe';
  if (re === QWEN2_SPLIT && (norm == null || norm.type === 'NFC')) return 'qwen2';
  return null;
}

/** id → token string (model vocab plus added tokens) of a BPE tokenizer.json. */
function idToToken(tok: Tokenizer): string[] {
  const model = tok.tokenizerJson.model as { vocab: Record<string, number> };
  const out: string[] = [];
  for (const [t, i] of Object.entries(model.vocab)) out[i] = t;
  for (const a of tok.addedTokens) out[a.id] = a.content;
  return out;
}

/**
 * Write the tokenizer.ggml.* keys for a byte-level BPE tokenizer. `nVocab` is the embedding
 * row count; missing ids are filled with unused `[PADi]` tokens as llama.cpp's converter does.
 */
export function writeGgufTokenizer(
  w: GgufWriter,
  tok: Tokenizer,
  nVocab: number,
  opts: { pre?: string } = {},
): void {
  const model = tok.tokenizerJson.model as Record<string, unknown>;
  if (tok.modelType !== 'BPE' || model.byte_fallback === true)
    throw new FormatError(
      'GGUF export supports byte-level BPE tokenizers only (GPT-2, Llama 3, Qwen style)',
      tok.source,
      {
        hint: 'SentencePiece-style tokenizers (Llama 2, Mistral) need the "llama" tokenizer model, which is not written yet',
      },
    );
  const pre = opts.pre ?? detectPreTokenizer(tok.tokenizerJson);
  if (pre === null)
    throw new FormatError(
      'the pre-tokenizer regex matches no llama.cpp pre-tokenizer we know',
      tok.source,
      {
        hint: `pass the tokenizer.ggml.pre name explicitly (known here: ${Object.keys(PRE).join(', ')})`,
      },
    );
  const tokens = idToToken(tok);
  if (tokens.length > nVocab)
    throw new FormatError(
      `tokenizer has ${tokens.length} tokens but the embedding has ${nVocab} rows`,
      tok.source,
    );
  const added = new Map(tok.addedTokens.map((a) => [a.id, a]));
  const types: number[] = [];
  for (let i = 0; i < nVocab; i++) {
    const a = added.get(i);
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      types.push(GGUF_TOKEN_TYPE.UNUSED);
    } else
      types.push(
        a === undefined
          ? GGUF_TOKEN_TYPE.NORMAL
          : a.special
            ? GGUF_TOKEN_TYPE.CONTROL
            : GGUF_TOKEN_TYPE.USER_DEFINED,
      );
  }
  const merges = (model.merges as (string | [string, string])[]).map((m) =>
    typeof m === 'string' ? m : `${m[0]} ${m[1]}`,
  );
  w.set('tokenizer.ggml.model', GgufType.STRING, 'gpt2');
  w.set('tokenizer.ggml.pre', GgufType.STRING, pre);
  w.setArray('tokenizer.ggml.tokens', GgufType.STRING, tokens);
  w.setArray('tokenizer.ggml.token_type', GgufType.INT32, types);
  w.setArray('tokenizer.ggml.merges', GgufType.STRING, merges);
  if (tok.bos) w.set('tokenizer.ggml.bos_token_id', GgufType.UINT32, tok.bos.id);
  if (tok.eos) w.set('tokenizer.ggml.eos_token_id', GgufType.UINT32, tok.eos.id);
  if (tok.unk) w.set('tokenizer.ggml.unknown_token_id', GgufType.UINT32, tok.unk.id);
  if (tok.pad) w.set('tokenizer.ggml.padding_token_id', GgufType.UINT32, tok.pad.id);
  // Whether encode() adds BOS/EOS is a property of the post-processor; ask it.
  const probe = tok.encode('a');
  w.set('tokenizer.ggml.add_bos_token', GgufType.BOOL, tok.bos !== null && probe[0] === tok.bos.id);
  w.set(
    'tokenizer.ggml.add_eos_token',
    GgufType.BOOL,
    tok.eos !== null && probe[probe.length - 1] === tok.eos.id,
  );
  if (tok.chatTemplate !== null)
    w.set('tokenizer.chat_template', GgufType.STRING, tok.chatTemplate);
}

/** Rebuild an HF tokenizer from a GGUF file's tokenizer.ggml.* keys (gpt2 model only). */
export function tokenizerFromGguf(r: GgufReader): Tokenizer | null {
  const model = r.str('tokenizer.ggml.model');
  if (model === undefined) return null;
  if (model !== 'gpt2')
    throw new FormatError(
      `tokenizer.ggml.model '${model}' cannot be imported (only 'gpt2')`,
      r.path,
    );
  const pre = r.str('tokenizer.ggml.pre') ?? 'gpt-2';
  const layout = PRE[pre];
  if (layout === undefined)
    throw new FormatError(
      `tokenizer.ggml.pre '${pre}' cannot be imported (known: ${Object.keys(PRE).join(', ')})`,
      r.path,
    );
  const tokens = (r.array('tokenizer.ggml.tokens') ?? []) as string[];
  const types = (r.array('tokenizer.ggml.token_type') ?? []) as number[];
  const merges = ((r.array('tokenizer.ggml.merges') ?? []) as string[]).map((m) => m.split(' ', 2));
  const vocab: Record<string, number> = {};
  const added: Record<string, unknown>[] = [];
  tokens.forEach((t, i) => {
    vocab[t] = i;
    const ty = types[i];
    if (ty === GGUF_TOKEN_TYPE.CONTROL || ty === GGUF_TOKEN_TYPE.USER_DEFINED)
      added.push({
        id: i,
        content: t,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: ty === GGUF_TOKEN_TYPE.CONTROL,
      });
  });
  const bos = byIdOf(r, tokens, 'tokenizer.ggml.bos_token_id');
  const addBos = r.get('tokenizer.ggml.add_bos_token') === true && bos !== null;
  const json = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: layout.normalizer,
    pre_tokenizer: layout.pre_tokenizer,
    post_processor: addBos
      ? {
          // BOS in front of every sequence, as llama.cpp does when add_bos_token is set.
          type: 'TemplateProcessing',
          single: [
            { SpecialToken: { id: bos, type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
          ],
          pair: [
            { SpecialToken: { id: bos, type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: bos, type_id: 1 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: { [bos]: { id: bos, ids: [vocab[bos]], tokens: [bos] } },
        }
      : { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: layout.ignoreMerges === true,
      vocab,
      merges,
    },
  };
  const byId = (key: string) => byIdOf(r, tokens, key);
  const config: Record<string, unknown> = {
    add_bos_token: addBos,
    add_eos_token: r.get('tokenizer.ggml.add_eos_token') === true,
    bos_token: byId('tokenizer.ggml.bos_token_id'),
    eos_token: byId('tokenizer.ggml.eos_token_id'),
    pad_token: byId('tokenizer.ggml.padding_token_id'),
    unk_token: byId('tokenizer.ggml.unknown_token_id'),
    clean_up_tokenization_spaces: false,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  const ct = r.str('tokenizer.chat_template');
  if (ct !== undefined) config.chat_template = ct;
  return Tokenizer.fromJson(json, config, r.path);
}

function byIdOf(r: GgufReader, tokens: readonly string[], key: string): string | null {
  const v = r.get(key);
  return typeof v === 'number' && tokens[v] !== undefined ? tokens[v] : null;
}
