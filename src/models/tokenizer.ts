// Tokenizers loaded from HF files: tokenizer.json (byte-level BPE as in GPT-2 / Llama 3 / Qwen,
// or SentencePiece-style BPE with byte fallback as in Llama 2 / Mistral) run by
// @huggingface/tokenizers, with bos/eos/pad/unk and the chat template from tokenizer_config.json.
// Rendering chat templates is the data stage's job; this file only exposes the template string.
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { FormatError } from '../util/errors.ts';
import { type BpeTokenizerConfigOptions, type ByteLevelBpe, bpeTokenizerConfig } from './bpe.ts';

/** tokenizer.json model types we run (Unigram is kept for the T5 family). */
const SUPPORTED_MODELS = new Set(['BPE', 'Unigram']);

/** A token from tokenizer.json's added_tokens. */
export interface AddedTokenInfo {
  readonly id: number;
  readonly content: string;
  readonly special: boolean;
}

/** A named special token and its id (null when the tokenizer has none). */
export interface SpecialTokenRef {
  readonly token: string;
  readonly id: number;
}

/** Options for encode. */
export interface EncodeOptions {
  /** Let the post-processor add BOS/EOS (e.g. Llama's `<s>`), as HF's default. @default true */
  addSpecialTokens?: boolean;
}

/** Options for decode. */
export interface DecodeOptions {
  /** Drop special tokens from the text. @default false */
  skipSpecialTokens?: boolean;
  /**
   * Apply HF's clean_up_tokenization_spaces (" ." → "."). Off by default so decode(encode(x))
   * gives x back exactly, whatever tokenizer_config.json says. @default false
   */
  cleanUpTokenizationSpaces?: boolean;
}

function tokenString(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (
    v !== null &&
    typeof v === 'object' &&
    typeof (v as { content?: unknown }).content === 'string'
  )
    return (v as { content: string }).content;
  return null;
}

/** A loaded tokenizer with its special tokens and chat template. */
export class Tokenizer {
  /** Where it was loaded from (for error messages). */
  readonly source: string;
  /** tokenizer.json model type: 'BPE' or 'Unigram'. */
  readonly modelType: string;
  /** The raw files, kept so save() writes them back unchanged. */
  readonly tokenizerJson: Readonly<Record<string, unknown>>;
  readonly tokenizerConfig: Readonly<Record<string, unknown>>;
  readonly bos: SpecialTokenRef | null;
  readonly eos: SpecialTokenRef | null;
  readonly pad: SpecialTokenRef | null;
  readonly unk: SpecialTokenRef | null;
  /** The default chat template (Jinja source), or null when the files have none. */
  readonly chatTemplate: string | null;
  /** Every named chat template (transformers allows a list of {name, template}). */
  readonly chatTemplates: Readonly<Record<string, string>>;
  readonly addedTokens: readonly AddedTokenInfo[];
  readonly #hf: HfTokenizer;
  readonly #specialIds: ReadonlySet<number>;

  private constructor(
    json: Record<string, unknown>,
    config: Record<string, unknown>,
    source: string,
  ) {
    this.source = source;
    const model = json.model as Record<string, unknown> | undefined;
    if (model === null || typeof model !== 'object')
      throw new FormatError('tokenizer.json has no "model" object', source);
    const type = model.type;
    if (typeof type !== 'string' || !SUPPORTED_MODELS.has(type))
      throw new FormatError(
        `tokenizer model type ${JSON.stringify(type)} is not supported`,
        source,
        {
          hint: 'supported: BPE (byte-level or SentencePiece-style) and Unigram',
        },
      );
    this.modelType = type;
    this.tokenizerJson = json;
    this.tokenizerConfig = config;
    // @huggingface/tokenizers expects special tokens as plain strings; tokenizer_config.json
    // may hold AddedToken objects ({"__type": "AddedToken", "content": ...}).
    const cfg: Record<string, unknown> = { ...config };
    for (const k of [
      'bos_token',
      'eos_token',
      'pad_token',
      'unk_token',
      'sep_token',
      'cls_token',
      'mask_token',
    ])
      cfg[k] = tokenString(config[k]) ?? undefined;
    if (Array.isArray(config.additional_special_tokens))
      cfg.additional_special_tokens = config.additional_special_tokens
        .map(tokenString)
        .filter((s) => s !== null);
    try {
      this.#hf = new HfTokenizer(json, cfg);
    } catch (e) {
      throw new FormatError(`cannot build the tokenizer (${(e as Error).message})`, source, {
        cause: e,
      });
    }
    const added = (json.added_tokens ?? []) as { id: number; content: string; special?: boolean }[];
    this.addedTokens = added.map((a) => ({
      id: a.id,
      content: a.content,
      special: a.special === true,
    }));
    this.#specialIds = new Set(this.addedTokens.filter((a) => a.special).map((a) => a.id));
    const ref = (field: string): SpecialTokenRef | null => {
      const token = tokenString(config[field]);
      if (token === null) return null;
      const id = this.#hf.token_to_id(token);
      if (id === undefined)
        throw new FormatError(`${field} '${token}' is not in the vocabulary`, source, {
          hint: 'check tokenizer_config.json',
        });
      return { token, id };
    };
    this.bos = ref('bos_token');
    this.eos = ref('eos_token');
    this.pad = ref('pad_token');
    this.unk = ref('unk_token');
    const ct = config.chat_template;
    const templates: Record<string, string> = {};
    if (typeof ct === 'string') templates.default = ct;
    else if (Array.isArray(ct))
      for (const t of ct as { name?: unknown; template?: unknown }[])
        if (typeof t?.name === 'string' && typeof t.template === 'string')
          templates[t.name] = t.template;
    this.chatTemplates = templates;
    this.chatTemplate = templates.default ?? null;
  }

  /** Build from parsed tokenizer.json and tokenizer_config.json objects. */
  static fromJson(
    tokenizerJson: unknown,
    tokenizerConfig: unknown = {},
    source = 'tokenizer.json',
  ): Tokenizer {
    if (tokenizerJson === null || typeof tokenizerJson !== 'object' || Array.isArray(tokenizerJson))
      throw new FormatError('tokenizer.json must be a JSON object', source);
    if (
      tokenizerConfig === null ||
      typeof tokenizerConfig !== 'object' ||
      Array.isArray(tokenizerConfig)
    )
      throw new FormatError('tokenizer_config.json must be a JSON object', source);
    return new Tokenizer(
      tokenizerJson as Record<string, unknown>,
      tokenizerConfig as Record<string, unknown>,
      source,
    );
  }

  /** Wrap a BPE trained by bpe-train.ts, with its tokenizer_config.json settings. */
  static fromBpe(bpe: ByteLevelBpe, opts: BpeTokenizerConfigOptions = {}): Tokenizer {
    return Tokenizer.fromJson(bpe.toTokenizerJson(), bpeTokenizerConfig(bpe, opts), 'trained BPE');
  }

  /**
   * Load from a model directory (tokenizer.json, optional tokenizer_config.json, and a
   * chat_template.jinja / chat_template.json as newer transformers versions save them).
   * @example const tok = await Tokenizer.load('models/SmolLM2-135M-Instruct');
   */
  static async load(dir: string): Promise<Tokenizer> {
    const tj = join(dir, 'tokenizer.json');
    if (!existsSync(tj))
      throw new FormatError('no tokenizer.json in the model directory', dir, {
        hint: 'only fast-tokenizer files (tokenizer.json) are supported; convert a tokenizer.model with transformers first',
      });
    const json = await readJson(tj);
    const cj = join(dir, 'tokenizer_config.json');
    const config = existsSync(cj) ? await readJson(cj) : {};
    if (config.chat_template === undefined) {
      const jinja = join(dir, 'chat_template.jinja');
      const cjson = join(dir, 'chat_template.json');
      if (existsSync(jinja)) config.chat_template = await readFile(jinja, 'utf8');
      else if (existsSync(cjson)) config.chat_template = (await readJson(cjson)).chat_template;
    }
    return Tokenizer.fromJson(json, config, tj);
  }

  /** Number of ids (the largest id + 1, counting added tokens). */
  get vocabSize(): number {
    return this.#hf.get_vocab(true).size;
  }

  /** Ids of the tokens marked special in added_tokens. */
  get specialTokenIds(): ReadonlySet<number> {
    return this.#specialIds;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    return this.#hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  encodeBatch(texts: readonly string[], opts: EncodeOptions = {}): number[][] {
    return texts.map((t) => this.encode(t, opts));
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    if (ids.length === 0) return '';
    for (const id of ids)
      if (!Number.isInteger(id) || id < 0) throw new FormatError(`bad token id ${id}`, this.source);
    return this.#hf.decode([...ids], {
      skip_special_tokens: opts.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: opts.cleanUpTokenizationSpaces ?? false,
    });
  }

  decodeBatch(batch: readonly (readonly number[])[], opts: DecodeOptions = {}): string[] {
    return batch.map((ids) => this.decode(ids, opts));
  }

  /** Token strings of ids (byte-level characters for byte-level BPE). */
  tokens(ids: readonly number[]): string[] {
    return ids.map((id) => this.#hf.id_to_token(id) ?? '');
  }

  tokenToId(token: string): number | undefined {
    return this.#hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.#hf.id_to_token(id);
  }

  /** Write tokenizer.json and tokenizer_config.json into `dir`. */
  async save(dir: string): Promise<void> {
    await writeFile(join(dir, 'tokenizer.json'), `${JSON.stringify(this.tokenizerJson)}\n`);
    await writeFile(
      join(dir, 'tokenizer_config.json'),
      `${JSON.stringify(this.tokenizerConfig, null, 2)}\n`,
    );
  }
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  let v: unknown;
  try {
    v = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new FormatError(`not valid JSON (${(e as Error).message})`, path);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new FormatError('must be a JSON object', path);
  return v as Record<string, unknown>;
}
