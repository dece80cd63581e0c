// Our own byte-level BPE tokenizer (the GPT-2 scheme: Radford et al. 2019, §2.2): UTF-8 bytes
// mapped to printable characters, a regex pre-tokenizer, merges applied lowest rank first, and
// special tokens matched before anything else. It reads and writes the standard tokenizer.json,
// so @huggingface/tokenizers and llama.cpp (pre-tokenizer "gpt-2") give the same ids. The
// trainer that learns the merges is bpe-train.ts; loading arbitrary HF tokenizers is tokenizer.ts.
import { FormatError } from '../util/errors.ts';

/**
 * GPT-2's pre-tokenizer: contractions, optional-space + letters / digits / other symbols, and
 * whitespace runs that leave their last space to the next word. llama.cpp calls it "gpt-2"
 * (LLAMA_VOCAB_PRE_TYPE_GPT2); HF's ByteLevel pre-tokenizer with use_regex uses the same one.
 */
export const GPT2_SPLIT_PATTERN =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** Byte → printable character: printable Latin-1 bytes map to themselves, the rest to U+0100.. */
export const BYTE_TO_UNICODE: readonly string[] = (() => {
  const keep = (b: number) =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = new Array(256);
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCharCode(keep(b) ? b : 256 + n++);
  return out;
})();

/** Inverse of BYTE_TO_UNICODE. */
export const UNICODE_TO_BYTE: ReadonlyMap<string, number> = new Map(
  BYTE_TO_UNICODE.map((c, b) => [c, b]),
);

const utf8 = new TextEncoder();

/** A string's UTF-8 bytes as byte-level characters. */
export function byteLevel(s: string): string {
  let out = '';
  for (const b of utf8.encode(s)) out += BYTE_TO_UNICODE[b];
  return out;
}

/** Split text into GPT-2 pre-tokens (no byte mapping). */
export function pretokenize(text: string): string[] {
  return text.match(GPT2_SPLIT_PATTERN) ?? [];
}

/** A token that is matched verbatim in text and never split or merged. */
export interface SpecialToken {
  readonly id: number;
  readonly content: string;
}

/** The parts of a trained byte-level BPE. */
export interface ByteLevelBpeData {
  /** id → token (byte-level characters; special tokens as their literal content). */
  readonly vocab: readonly string[];
  /** Merges in rank order. */
  readonly merges: readonly (readonly [string, string])[];
  readonly specialTokens: readonly SpecialToken[];
}

/** Byte-level BPE encoder/decoder over a fixed vocabulary and merge list. */
export class ByteLevelBpe implements ByteLevelBpeData {
  readonly vocab: readonly string[];
  readonly merges: readonly (readonly [string, string])[];
  readonly specialTokens: readonly SpecialToken[];
  readonly #ids: Map<string, number>;
  readonly #ranks: Map<string, number>;
  readonly #special: Map<string, number>;
  readonly #specialRe: RegExp | null;
  readonly #cache = new Map<string, number[]>();

  constructor(data: ByteLevelBpeData) {
    this.vocab = data.vocab;
    this.merges = data.merges;
    this.specialTokens = data.specialTokens;
    this.#ids = new Map(data.vocab.map((t, i) => [t, i]));
    if (this.#ids.size !== data.vocab.length)
      throw new FormatError('vocabulary has duplicate tokens');
    for (const c of BYTE_TO_UNICODE)
      if (!this.#ids.has(c)) throw new FormatError(`vocabulary lacks the byte token '${c}'`);
    this.#ranks = new Map(data.merges.map(([a, b], i) => [`${a} ${b}`, i]));
    for (const [a, b] of data.merges)
      if (!this.#ids.has(a + b))
        throw new FormatError(
          `merge '${a} ${b}' produces '${a + b}', which is not in the vocabulary`,
        );
    this.#special = new Map(data.specialTokens.map((s) => [s.content, s.id]));
    const alts = [...this.#special.keys()].sort((a, b) => b.length - a.length).map(escapeRe);
    this.#specialRe = alts.length > 0 ? new RegExp(alts.join('|'), 'g') : null;
  }

  get vocabSize(): number {
    return this.vocab.length;
  }

  /** Id of a token string, if present. */
  tokenToId(token: string): number | undefined {
    return this.#special.get(token) ?? this.#ids.get(token);
  }

  /**
   * Encode text to ids. Special tokens in the text are recognised when `allowSpecial` (the HF
   * default for added tokens); otherwise they are encoded as plain text.
   */
  encode(text: string, opts: { allowSpecial?: boolean } = {}): number[] {
    const out: number[] = [];
    const re = opts.allowSpecial === false ? null : this.#specialRe;
    if (re === null) {
      this.#encodePlain(text, out);
      return out;
    }
    let last = 0;
    re.lastIndex = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      this.#encodePlain(text.slice(last, m.index), out);
      out.push(this.#special.get(m[0])!);
      last = m.index + m[0].length;
    }
    this.#encodePlain(text.slice(last), out);
    return out;
  }

  #encodePlain(text: string, out: number[]): void {
    if (text.length === 0) return;
    for (const piece of pretokenize(text)) {
      let ids = this.#cache.get(piece);
      if (ids === undefined) {
        ids = this.#bpe(byteLevel(piece));
        if (this.#cache.size > 50_000) this.#cache.clear();
        this.#cache.set(piece, ids);
      }
      for (const id of ids) out.push(id);
    }
  }

  /** Merge a byte-level word: repeatedly join the adjacent pair of lowest rank (leftmost on ties). */
  #bpe(word: string): number[] {
    const parts = Array.from(word);
    while (parts.length > 1) {
      let best = Number.POSITIVE_INFINITY;
      let at = -1;
      for (let i = 0; i + 1 < parts.length; i++) {
        const r = this.#ranks.get(`${parts[i]} ${parts[i + 1]}`);
        if (r !== undefined && r < best) {
          best = r;
          at = i;
        }
      }
      if (at < 0) break;
      parts.splice(at, 2, parts[at] + parts[at + 1]);
    }
    return parts.map((p) => this.#ids.get(p)!);
  }

  /** Decode ids to text; invalid UTF-8 becomes U+FFFD, as HF's decoder does. */
  decode(ids: readonly number[], opts: { skipSpecialTokens?: boolean } = {}): string {
    const specialIds = new Map(this.specialTokens.map((s) => [s.id, s.content]));
    const bytes: number[] = [];
    let text = '';
    const flush = () => {
      text += new TextDecoder('utf-8').decode(new Uint8Array(bytes));
      bytes.length = 0;
    };
    for (const id of ids) {
      const sp = specialIds.get(id);
      if (sp !== undefined) {
        if (opts.skipSpecialTokens) continue;
        flush();
        text += sp;
        continue;
      }
      const tok = this.vocab[id];
      if (tok === undefined)
        throw new FormatError(`token id ${id} is outside the vocabulary (${this.vocab.length})`);
      for (const ch of tok) bytes.push(UNICODE_TO_BYTE.get(ch)!);
    }
    flush();
    return text;
  }

  /** The HF tokenizer.json for this vocabulary (BPE model, ByteLevel pre-tokenizer/decoder). */
  toTokenizerJson(): Record<string, unknown> {
    const vocab: Record<string, number> = {};
    this.vocab.forEach((t, i) => {
      vocab[t] = i;
    });
    const byteLevelCfg = { add_prefix_space: false, trim_offsets: true, use_regex: true };
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: this.specialTokens.map((s) => ({
        id: s.id,
        content: s.content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      })),
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', ...byteLevelCfg },
      post_processor: { type: 'ByteLevel', ...byteLevelCfg, trim_offsets: false },
      decoder: { type: 'ByteLevel', ...byteLevelCfg },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab,
        merges: this.merges.map(([a, b]) => [a, b]),
      },
    };
  }

  /**
   * Rebuild from a tokenizer.json written by toTokenizerJson (or any byte-level BPE with the
   * GPT-2 ByteLevel pre-tokenizer). Other pre-tokenizers would give different ids: FormatError.
   */
  static fromTokenizerJson(json: unknown, file?: string): ByteLevelBpe {
    interface Json {
      model?: {
        type?: unknown;
        vocab?: Record<string, number>;
        merges?: (string | [string, string])[];
      };
      pre_tokenizer?: { type?: unknown; use_regex?: unknown; add_prefix_space?: unknown } | null;
      normalizer?: unknown;
      added_tokens?: { id: number; content: string }[];
    }
    const j = (json ?? {}) as Json;
    const model = j.model;
    if (model?.type !== 'BPE')
      throw new FormatError(`tokenizer model type ${JSON.stringify(model?.type)} is not BPE`, file);
    const pre = j.pre_tokenizer;
    if (
      pre?.type !== 'ByteLevel' ||
      pre.use_regex === false ||
      pre.add_prefix_space === true ||
      j.normalizer != null
    )
      throw new FormatError(
        'only the plain GPT-2 ByteLevel pre-tokenizer (no normalizer, no prefix space) is supported here',
        file,
      );
    const entries = Object.entries(model.vocab ?? {});
    const added = j.added_tokens ?? [];
    const size = Math.max(
      entries.length ? Math.max(...entries.map(([, i]) => i)) + 1 : 0,
      ...added.map((a) => a.id + 1),
    );
    const vocab: string[] = new Array(size);
    for (const [t, i] of entries) vocab[i] = t;
    for (const a of added) vocab[a.id] = a.content;
    for (let i = 0; i < size; i++)
      if (vocab[i] === undefined)
        throw new FormatError(`vocabulary has no token with id ${i}`, file);
    const merges = (model.merges ?? []).map((m) =>
      typeof m === 'string' ? (m.split(' ', 2) as [string, string]) : m,
    );
    return new ByteLevelBpe({
      vocab,
      merges,
      specialTokens: added.map((a) => ({ id: a.id, content: a.content })),
    });
  }
}

/** Settings written to tokenizer_config.json beside a trained BPE. */
export interface BpeTokenizerConfigOptions {
  bosToken?: string | null;
  eosToken?: string | null;
  padToken?: string | null;
  unkToken?: string | null;
  /** Jinja chat template (rendered by the data stage). */
  chatTemplate?: string | null;
  /** Longest input the model takes. */
  modelMaxLength?: number;
}

/**
 * tokenizer_config.json for a trained BPE, in the form transformers writes for a
 * PreTrainedTokenizerFast: the special tokens by content, their added_tokens_decoder entries,
 * no automatic BOS/EOS, and no clean-up of spaces on decode (byte-level BPE is lossless).
 */
export function bpeTokenizerConfig(
  bpe: ByteLevelBpeData,
  opts: BpeTokenizerConfigOptions = {},
): Record<string, unknown> {
  const known = new Set(bpe.specialTokens.map((s) => s.content));
  for (const [field, v] of Object.entries({
    bosToken: opts.bosToken,
    eosToken: opts.eosToken,
    padToken: opts.padToken,
    unkToken: opts.unkToken,
  }))
    if (v != null && !known.has(v))
      throw new FormatError(`${field} '${v}' is not one of the special tokens`);
  const decoder: Record<string, unknown> = {};
  for (const s of bpe.specialTokens)
    decoder[String(s.id)] = {
      content: s.content,
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: true,
    };
  const out: Record<string, unknown> = {
    add_bos_token: false,
    add_eos_token: false,
    added_tokens_decoder: decoder,
    bos_token: opts.bosToken ?? null,
    clean_up_tokenization_spaces: false,
    eos_token: opts.eosToken ?? null,
    model_max_length: opts.modelMaxLength ?? 1_000_000,
    pad_token: opts.padToken ?? null,
    tokenizer_class: 'PreTrainedTokenizerFast',
    unk_token: opts.unkToken ?? null,
  };
  if (opts.chatTemplate != null) out.chat_template = opts.chatTemplate;
  return out;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
