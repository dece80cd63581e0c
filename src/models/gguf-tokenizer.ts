// HF tokenizer.json vocabularies in GGUF and back, in llama.cpp's two BPE flavours:
// - byte-level BPE (tokenizer.ggml.model "gpt2": GPT-2, Llama 3, Qwen, our own trained BPE) with
//   tokens, merges and the pre-tokenizer name, which tells llama.cpp which split regex to run; it
//   is derived from the tokenizer.json's own regex and never guessed;
// - SentencePiece-style BPE with byte fallback and ▁ for spaces (tokenizer.ggml.model "llama":
//   Llama 2, TinyLlama, Mistral v0.1) with tokens, scores and token types but no merges.
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

/** A tokenizer.json merge ("a b" or ["a", "b"]) as its two parts. */
function mergeParts(m: string | [string, string]): [string, string] {
  if (typeof m !== 'string') return m;
  const i = m.indexOf(' ');
  return [m.slice(0, i), m.slice(i + 1)];
}

/**
 * Write the tokenizer.ggml.* keys for a BPE tokenizer: byte-level BPE as llama.cpp's "gpt2"
 * model, SentencePiece-style BPE (byte_fallback) as its "llama" model. `nVocab` is the
 * embedding row count; missing ids are filled with unused `[PADi]` tokens as llama.cpp's
 * converter does. Other tokenizer models (Unigram) are a FormatError naming the type.
 */
export function writeGgufTokenizer(
  w: GgufWriter,
  tok: Tokenizer,
  nVocab: number,
  opts: { pre?: string } = {},
): void {
  const model = tok.tokenizerJson.model as Record<string, unknown>;
  if (tok.modelType !== 'BPE')
    throw new FormatError(
      `tokenizer model type '${tok.modelType}' cannot be exported to GGUF`,
      tok.source,
      {
        hint: 'GGUF export writes BPE vocabularies: byte-level (GPT-2, Llama 3, Qwen) or SentencePiece-style with byte_fallback (Llama 2, TinyLlama, Mistral)',
      },
    );
  if (model.byte_fallback === true) writeSpm(w, tok, nVocab);
  else writeByteLevel(w, tok, nVocab, opts.pre);
  writeSpecials(w, tok);
}

function writeByteLevel(w: GgufWriter, tok: Tokenizer, nVocab: number, preName?: string): void {
  const model = tok.tokenizerJson.model as Record<string, unknown>;
  const pre = preName ?? detectPreTokenizer(tok.tokenizerJson);
  if (pre === null)
    throw new FormatError(
      'the pre-tokenizer regex matches no llama.cpp pre-tokenizer we know',
      tok.source,
      {
        hint: `pass the tokenizer.ggml.pre name explicitly (known here: ${Object.keys(PRE).join(', ')})`,
      },
    );
  const tokens = paddedTokens(tok, nVocab);
  const added = new Map(tok.addedTokens.map((a) => [a.id, a]));
  const types = tokens.map((t, i) => {
    const a = added.get(i);
    if (a !== undefined) return a.special ? GGUF_TOKEN_TYPE.CONTROL : GGUF_TOKEN_TYPE.USER_DEFINED;
    return t === undefined ? GGUF_TOKEN_TYPE.UNUSED : GGUF_TOKEN_TYPE.NORMAL;
  });
  const merges = (model.merges as (string | [string, string])[]).map((m) =>
    typeof m === 'string' ? m : `${m[0]} ${m[1]}`,
  );
  w.set('tokenizer.ggml.model', GgufType.STRING, 'gpt2');
  w.set('tokenizer.ggml.pre', GgufType.STRING, pre);
  w.setArray('tokenizer.ggml.tokens', GgufType.STRING, fillPad(tokens));
  w.setArray('tokenizer.ggml.token_type', GgufType.INT32, types);
  w.setArray('tokenizer.ggml.merges', GgufType.STRING, merges);
}

/** The tokenizer's id → token table, `nVocab` long (holes stay undefined). */
function paddedTokens(tok: Tokenizer, nVocab: number): (string | undefined)[] {
  const tokens: (string | undefined)[] = idToToken(tok);
  if (tokens.length > nVocab)
    throw new FormatError(
      `tokenizer has ${tokens.length} tokens but the embedding has ${nVocab} rows`,
      tok.source,
    );
  // Dense, not holey: Array.prototype.map skips holes, and every id needs a type.
  return Array.from({ length: nVocab }, (_, i) => tokens[i]);
}

function fillPad(tokens: readonly (string | undefined)[]): string[] {
  return Array.from(tokens, (t, i) => t ?? `[PAD${i}]`);
}

/** Special token ids, whether encode() adds BOS/EOS, and the chat template. */
function writeSpecials(w: GgufWriter, tok: Tokenizer): void {
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

// ---- SentencePiece-style BPE ("llama" tokenizer model) ----
//
// llama.cpp's SPM tokenizer (llm_tokenizer_spm_session in src/llama-vocab.cpp) prefixes a
// section of raw text with a space when tokenizer.ggml.add_space_prefix is set (the first
// section and every one after a special token), turns spaces into ▁, splits into UTF-8
// characters and then repeatedly joins the adjacent pair whose concatenation is a token with the
// highest score (ties: leftmost). Characters no token covers become <0xXX> byte tokens. There
// is no merge list: the scores alone must reproduce the tokenizer.json's BPE.
//
// HF's BPE joins the adjacent pair with the lowest merge rank (ties: leftmost). The two agree
// when (1) ranking the merges by their result's first merge keeps them in order, i.e. all the
// merges that make one token are consecutive (Llama 2's tokenizer.json, converted from
// SentencePiece, lists them so), and (2) every split of a token into two formable tokens has a
// merge (llama.cpp would join them; the converted file lists every such pair). Then a token's
// score is minus the rank of its first merge. Characters, bytes and special tokens are never
// the result of a join, so their scores only need to be below the merged tokens (characters,
// as in SentencePiece, where they come last) or 0 (byte and control pieces). llama.cpp's own
// tokenizer.json converter writes one placeholder score for every token, which makes every
// join a tie; ids as scores get runs of spaces wrong ("▁▁" has an early id but a late merge).
// Checked against llama.cpp on the Llama 2 vocabulary: test/models/gguf-spm.test.ts, and while
// writing this on 5824 lines of ../shared/data and 20000 random concatenations of its pieces
// (no difference; with ids as scores 627 of the lines differ).
//
// Where llama.cpp cannot follow: a HF Metaspace pre-tokenizer does not prepend ▁ to a section
// that already starts with a space or ▁ (llama.cpp always prepends), and Metaspace's
// prepend_scheme "first" prepends only to the first section (llama.cpp also after special
// tokens). The legacy normalizer form (Prepend ▁ + Replace " " → ▁, as Llama 2's tokenizer.json
// has it; TinyLlama and Mistral v0.1 are said to reuse it, not checked here) matches exactly.

const SPACE = '\u2581';

/** How a SentencePiece-style tokenizer.json turns text into ▁-joined pieces. */
export interface SpmLayout {
  /** tokenizer.ggml.add_space_prefix: a ▁ in front of each section of text. */
  readonly addSpacePrefix: boolean;
  /** false when llama.cpp differs for some texts (Metaspace: see above). */
  readonly exact: boolean;
}

/** The SPM layout of a byte-fallback BPE tokenizer.json, or a description of what blocks it. */
export function detectSpmLayout(json: Readonly<Record<string, unknown>>): SpmLayout | string {
  interface Step {
    type?: unknown;
    prepend?: unknown;
    pattern?: { String?: unknown };
    content?: unknown;
    normalizers?: unknown;
    replacement?: unknown;
    split?: unknown;
    prepend_scheme?: unknown;
  }
  const norm = json.normalizer as Step | null | undefined;
  const pre = json.pre_tokenizer as Step | null | undefined;
  const model = json.model as Record<string, unknown>;
  if (model.ignore_merges === true) return 'model.ignore_merges is set';
  if (model.continuing_subword_prefix != null || model.end_of_word_suffix != null)
    return 'the model has a continuing_subword_prefix or end_of_word_suffix';
  const isReplace = (s: Step | undefined) =>
    s?.type === 'Replace' && s.pattern?.String === ' ' && s.content === SPACE;
  const isPrepend = (s: Step | undefined) => s?.type === 'Prepend' && s.prepend === SPACE;
  if (pre == null && norm != null) {
    const steps = norm.type === 'Sequence' ? ((norm.normalizers ?? []) as Step[]) : [norm];
    const replaces = steps.filter(isReplace).length;
    const prepends = steps.filter(isPrepend).length;
    if (replaces === 1 && prepends <= 1 && steps.length === replaces + prepends)
      return { addSpacePrefix: prepends === 1, exact: true };
    return `normalizer ${JSON.stringify(norm)} is not Prepend("▁") + Replace(" " → "▁")`;
  }
  if (norm == null && pre?.type === 'Metaspace') {
    const scheme = pre.prepend_scheme ?? 'always';
    if (pre.replacement !== SPACE || pre.split !== false)
      return 'a Metaspace pre-tokenizer must use "▁" with split: false (llama.cpp never splits at spaces)';
    if (scheme !== 'always' && scheme !== 'first' && scheme !== 'never')
      return `Metaspace prepend_scheme ${JSON.stringify(scheme)} is unknown`;
    return { addSpacePrefix: scheme !== 'never', exact: scheme === 'never' };
  }
  return `normalizer ${norm?.type ?? 'null'} with pre_tokenizer ${pre?.type ?? 'null'} has no llama.cpp form`;
}

/**
 * tokenizer.ggml.scores for a SentencePiece-style tokenizer: minus the rank of each token's
 * first merge. Throws when the merges cannot be expressed as scores (see above).
 */
export function spmScores(
  json: Readonly<Record<string, unknown>>,
  tokens: readonly (string | undefined)[],
  types: readonly number[],
  source?: string,
): Float32Array {
  const model = json.model as { merges: (string | [string, string])[] };
  const ids = new Map<string, number>();
  tokens.forEach((t, i) => {
    if (t !== undefined && !ids.has(t)) ids.set(t, i);
  });
  const merges = model.merges.map(mergeParts);
  const first = new Map<string, number>();
  let maxFirst = -1;
  const known = new Set<string>();
  merges.forEach(([a, b], r) => {
    const t = a + b;
    if (!ids.has(a) || !ids.has(b) || !ids.has(t)) return; // HF refuses these; never reached
    known.add(`${a}\u0000${b}`);
    const f = first.get(t) ?? r;
    if (!first.has(t)) first.set(t, r);
    if (f < maxFirst)
      throw new FormatError(
        `merge ${r} '${a} ${b}' makes '${t}' after merges of later tokens: the merges are not in token-score order`,
        source,
        {
          hint: 'llama.cpp ranks joins by the score of the joined token; this vocabulary needs its merges grouped by result, as HF writes them for tokenizers converted from SentencePiece',
        },
      );
    maxFirst = Math.max(maxFirst, f);
  });
  // A piece llama.cpp can build: a single character or a merge result.
  const formable = (s: string) => first.has(s) || [...s].length === 1;
  let missing = 0;
  let example = '';
  for (const t of ids.keys()) {
    const chars = [...t];
    for (let k = 1; k < chars.length; k++) {
      const a = chars.slice(0, k).join('');
      const b = chars.slice(k).join('');
      if (ids.has(a) && ids.has(b) && formable(a) && formable(b) && !known.has(`${a}\u0000${b}`)) {
        missing++;
        example ||= `'${a}' + '${b}' → '${t}'`;
      }
    }
  }
  if (missing > 0)
    throw new FormatError(
      `${missing} pairs of tokens join into a token without a merge (e.g. ${example}); llama.cpp would join them`,
      source,
      {
        hint: 'a SentencePiece-style GGUF has no merge list: every split of a token into two tokens is a join; this BPE was not converted from SentencePiece',
      },
    );
  const scores = new Float32Array(tokens.length);
  tokens.forEach((t, i) => {
    if (t === undefined || types[i] !== GGUF_TOKEN_TYPE.NORMAL) return;
    const f = first.get(t);
    scores[i] = f !== undefined ? -f : -(merges.length + i);
  });
  return scores;
}

const BYTE_TOKEN = /^<0x[0-9A-F]{2}>$/;

function writeSpm(w: GgufWriter, tok: Tokenizer, nVocab: number): void {
  const json = tok.tokenizerJson;
  const layout = detectSpmLayout(json);
  if (typeof layout === 'string')
    throw new FormatError(
      `this SentencePiece-style tokenizer has no llama.cpp form: ${layout}`,
      tok.source,
      {
        hint: 'supported: normalizer Prepend("▁") + Replace(" " → "▁") (Llama 2 / Mistral v0.1 style), or a Metaspace pre-tokenizer with split: false',
      },
    );
  const tokens = paddedTokens(tok, nVocab);
  const present = new Set(tokens);
  for (let b = 0; b < 256; b++) {
    const bt = `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
    if (!present.has(bt))
      throw new FormatError(
        `byte_fallback is set but the vocabulary has no '${bt}' token`,
        tok.source,
        {
          hint: 'llama.cpp looks every byte up as <0xXX>; all 256 must be in the vocabulary',
        },
      );
  }
  const added = new Map(tok.addedTokens.map((a) => [a.id, a]));
  const unk = (json.model as { unk_token?: unknown }).unk_token;
  const types = tokens.map((t, i) => {
    if (t === undefined) return GGUF_TOKEN_TYPE.UNUSED;
    if (t === unk || i === tok.unk?.id) return GGUF_TOKEN_TYPE.UNKNOWN;
    const a = added.get(i);
    if (a !== undefined) return a.special ? GGUF_TOKEN_TYPE.CONTROL : GGUF_TOKEN_TYPE.USER_DEFINED;
    return BYTE_TOKEN.test(t) ? GGUF_TOKEN_TYPE.BYTE : GGUF_TOKEN_TYPE.NORMAL;
  });
  const scores = spmScores(json, tokens, types, tok.source);
  w.set('tokenizer.ggml.model', GgufType.STRING, 'llama');
  w.setArray('tokenizer.ggml.tokens', GgufType.STRING, fillPad(tokens));
  w.setArray('tokenizer.ggml.scores', GgufType.FLOAT32, [...scores]);
  w.setArray('tokenizer.ggml.token_type', GgufType.INT32, types);
  w.set('tokenizer.ggml.add_space_prefix', GgufType.BOOL, layout.addSpacePrefix);
}

// ---- import ----

/** A TemplateProcessing post-processor adding BOS and/or EOS, or null for neither. */
function templateProcessor(bos: string | null, eos: string | null, ids: Record<string, number>) {
  if (bos === null && eos === null) return null;
  const seq = (id: 'A' | 'B', typeId: number) => {
    const out: unknown[] = [];
    if (bos !== null) out.push({ SpecialToken: { id: bos, type_id: typeId } });
    out.push({ Sequence: { id, type_id: typeId } });
    if (eos !== null) out.push({ SpecialToken: { id: eos, type_id: typeId } });
    return out;
  };
  const special: Record<string, unknown> = {};
  for (const t of [bos, eos]) if (t !== null) special[t] = { id: t, ids: [ids[t]], tokens: [t] };
  return {
    type: 'TemplateProcessing',
    single: seq('A', 0),
    pair: [...seq('A', 0), ...seq('B', 1)],
    special_tokens: special,
  };
}

/** Rebuild an HF tokenizer from a GGUF file's tokenizer.ggml.* keys ("gpt2" or "llama"). */
export function tokenizerFromGguf(r: GgufReader): Tokenizer | null {
  const model = r.str('tokenizer.ggml.model');
  if (model === undefined) return null;
  if (model !== 'gpt2' && model !== 'llama')
    throw new FormatError(
      `tokenizer.ggml.model '${model}' cannot be imported (only 'gpt2' and 'llama')`,
      r.path,
    );
  const tokens = (r.array('tokenizer.ggml.tokens') ?? []) as string[];
  const types = (r.array('tokenizer.ggml.token_type') ?? []) as number[];
  const vocab: Record<string, number> = {};
  const added: Record<string, unknown>[] = [];
  tokens.forEach((t, i) => {
    if (!(t in vocab)) vocab[t] = i;
    const ty = types[i];
    if (
      ty === GGUF_TOKEN_TYPE.CONTROL ||
      ty === GGUF_TOKEN_TYPE.USER_DEFINED ||
      (model === 'llama' && ty === GGUF_TOKEN_TYPE.UNKNOWN)
    )
      added.push({
        id: i,
        content: t,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: ty !== GGUF_TOKEN_TYPE.USER_DEFINED,
      });
  });
  // llama.cpp's defaults for a "llama" vocabulary without the keys: <unk> 0, <s> 1, </s> 2, BOS on.
  const spm = model === 'llama';
  const byId = (key: string, fallback?: number) => byIdOf(r, tokens, key, fallback);
  const bos = byId('tokenizer.ggml.bos_token_id', spm ? 1 : undefined);
  const eos = byId('tokenizer.ggml.eos_token_id', spm ? 2 : undefined);
  const unk = byId('tokenizer.ggml.unknown_token_id', spm ? 0 : undefined);
  const addBos = (r.get('tokenizer.ggml.add_bos_token') ?? spm) === true && bos !== null;
  const addEos = r.get('tokenizer.ggml.add_eos_token') === true && eos !== null;
  let json: Record<string, unknown>;
  if (spm) json = spmJson(r, tokens, vocab, unk, addBos ? bos : null, addEos ? eos : null);
  else {
    const pre = r.str('tokenizer.ggml.pre') ?? 'gpt-2';
    const layout = PRE[pre];
    if (layout === undefined)
      throw new FormatError(
        `tokenizer.ggml.pre '${pre}' cannot be imported (known: ${Object.keys(PRE).join(', ')})`,
        r.path,
      );
    const merges = ((r.array('tokenizer.ggml.merges') ?? []) as string[]).map(mergeParts);
    json = {
      version: '1.0',
      truncation: null,
      padding: null,
      normalizer: layout.normalizer,
      pre_tokenizer: layout.pre_tokenizer,
      // BOS in front of every sequence, as llama.cpp does when add_bos_token is set.
      post_processor: templateProcessor(addBos ? bos : null, null, vocab) ?? {
        type: 'ByteLevel',
        add_prefix_space: false,
        trim_offsets: false,
        use_regex: false,
      },
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
  }
  json.added_tokens = added;
  const config: Record<string, unknown> = {
    add_bos_token: addBos,
    add_eos_token: addEos,
    bos_token: bos,
    eos_token: eos,
    pad_token: byId('tokenizer.ggml.padding_token_id'),
    unk_token: unk,
    clean_up_tokenization_spaces: false,
    tokenizer_class: 'PreTrainedTokenizerFast',
  };
  const ct = r.str('tokenizer.chat_template');
  if (ct !== undefined) config.chat_template = ct;
  return Tokenizer.fromJson(json, config, r.path);
}

/**
 * tokenizer.json for a "llama" GGUF vocabulary: every split of a token into two tokens becomes
 * a merge, ranked by the joined token's score, which is the BPE that llama.cpp's SPM join
 * order amounts to (the same list HF's sentencepiece conversion writes).
 */
function spmJson(
  r: GgufReader,
  tokens: readonly string[],
  vocab: Record<string, number>,
  unk: string | null,
  bos: string | null,
  eos: string | null,
): Record<string, unknown> {
  const scores = (r.array('tokenizer.ggml.scores') ?? []) as number[];
  const prefix = r.get('tokenizer.ggml.add_space_prefix') !== false;
  const joins: { a: string; b: string; t: number }[] = [];
  tokens.forEach((t, i) => {
    if (vocab[t] !== i) return;
    const chars = [...t];
    for (let k = 1; k < chars.length; k++) {
      const a = chars.slice(0, k).join('');
      const b = chars.slice(k).join('');
      if (a in vocab && b in vocab) joins.push({ a, b, t: i });
    }
  });
  joins.sort(
    (x, y) => (scores[y.t] ?? 0) - (scores[x.t] ?? 0) || x.t - y.t || vocab[x.a] - vocab[y.a],
  );
  const replace = { type: 'Replace', pattern: { String: ' ' }, content: SPACE };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    normalizer: prefix
      ? { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: SPACE }, replace] }
      : replace,
    pre_tokenizer: null,
    post_processor: templateProcessor(bos, eos, vocab),
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPACE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        ...(prefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: unk,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: joins.map((j) => [j.a, j.b]),
    },
  };
}

function byIdOf(
  r: GgufReader,
  tokens: readonly string[],
  key: string,
  fallback?: number,
): string | null {
  const v = r.get(key) ?? fallback;
  return typeof v === 'number' && tokens[v] !== undefined ? tokens[v] : null;
}
