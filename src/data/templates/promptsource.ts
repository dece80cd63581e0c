// PromptSource templates: load their templates.yaml (with the !Template / !TemplateMetadata
// tags) and apply a template to an example exactly as PromptSource's Template.apply does, so
// the rendered (input, target) strings are byte-identical to Python Jinja2 for the same seed.
import { readFileSync } from 'node:fs';
import type { Tags } from 'yaml';
import { DataError } from '../../util/errors.ts';
import { PyRandom } from '../../util/pyrandom.ts';
import { parseYamlDocument } from '../yaml.ts';
import { JinjaTemplate, JinjaValue, toRuntime } from './jinja.ts';

/** The separator between input and target(s) in a PromptSource template. */
export const PROMPTSOURCE_SEPARATOR = '|||';
/** Stand-in for `|||` inside example fields while rendering (PromptSource's pipe protector). */
const PIPE_PROTECTOR = '3ed2dface8203c4c9dfb1a5dc58e41e0';
/** Every `{{ ... }}` is wrapped in `| string | truncate(2048)`, as PromptSource does. */
export const PROMPTSOURCE_MAX_FIELD_CHARS = 2048;

export interface PromptSourceMetadata {
  original_task?: boolean | null;
  choices_in_prompt?: boolean | null;
  metrics?: string[] | null;
  languages?: string[] | null;
}

export interface PromptSourceTemplate {
  id: string;
  name: string;
  jinja: string;
  reference: string;
  answer_choices: string | null;
  metadata: PromptSourceMetadata;
  /** Where the template came from, for error messages. */
  file?: string;
}

export interface PromptSourceFile {
  dataset: string;
  subset: string | null;
  templates: PromptSourceTemplate[];
}

const TEMPLATE_KEYS = new Set(['id', 'name', 'jinja', 'reference', 'answer_choices', 'metadata']);
const METADATA_KEYS = new Set(['original_task', 'choices_in_prompt', 'metrics', 'languages']);

// Both tags carry plain mappings; validation happens below with file-aware errors.
const customTags: Tags = [
  { tag: '!Template', collection: 'map', identify: () => false, resolve: (m: unknown) => m },
  {
    tag: '!TemplateMetadata',
    collection: 'map',
    identify: () => false,
    resolve: (m: unknown) => m,
  },
] as unknown as Tags;

function plain(node: unknown): unknown {
  const n = node as { toJSON?: () => unknown };
  return n && typeof n.toJSON === 'function' ? n.toJSON() : node;
}

/** Parses a PromptSource templates.yaml. Errors name the file, the template and the field. */
export function parsePromptSourceYaml(text: string, file = '<string>'): PromptSourceFile {
  // prettyErrors off: yaml's pretty errors cost quadratic time on a document with many errors
  // (an 80 KB one took 39 s; bench/fuzz); the line is computed from the first error's offset.
  const doc = parseYamlDocument(text, { customTags, uniqueKeys: true, prettyErrors: false });
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) {
    const p = problems[0]!;
    const line = text.slice(0, p.pos[0]).split('\n').length;
    throw new DataError(p.message.split('\n')[0]!, { file, line });
  }
  let root: Record<string, unknown> | null;
  try {
    root = plain(doc.toJS({ maxAliasCount: 100 })) as Record<string, unknown> | null;
  } catch (e) {
    // yaml refuses alias expansion past maxAliasCount ("billion laughs") with a ReferenceError.
    throw new DataError(`invalid YAML: ${(e as Error).message}`, { file });
  }
  if (!root || typeof root !== 'object')
    throw new DataError('expected a mapping at the top level', { file });
  const templatesRaw = root.templates;
  if (!templatesRaw || typeof templatesRaw !== 'object' || Array.isArray(templatesRaw)) {
    throw new DataError('missing a `templates` mapping', { file, field: 'templates' });
  }
  const templates: PromptSourceTemplate[] = [];
  for (const [key, raw] of Object.entries(templatesRaw as Record<string, unknown>)) {
    const field = (f: string): string => `templates.${key}.${f}`;
    if (!raw || typeof raw !== 'object')
      throw new DataError('template is not a mapping', { file, field: `templates.${key}` });
    const t = raw as Record<string, unknown>;
    for (const k of Object.keys(t)) {
      if (!TEMPLATE_KEYS.has(k))
        throw new DataError(`unknown template key '${k}'`, { file, field: field(k) });
    }
    if (typeof t.jinja !== 'string')
      throw new DataError('missing `jinja` (a string)', { file, field: field('jinja') });
    if (typeof t.name !== 'string')
      throw new DataError('missing `name` (a string)', { file, field: field('name') });
    if (
      t.answer_choices !== undefined &&
      t.answer_choices !== null &&
      typeof t.answer_choices !== 'string'
    ) {
      throw new DataError('`answer_choices` must be a string', {
        file,
        field: field('answer_choices'),
      });
    }
    const meta = (t.metadata ?? {}) as Record<string, unknown>;
    for (const k of Object.keys(meta)) {
      if (!METADATA_KEYS.has(k))
        throw new DataError(`unknown metadata key '${k}'`, { file, field: field(`metadata.${k}`) });
    }
    templates.push({
      // PyYAML builds these objects without calling __init__, so the stored id wins over the key.
      id: typeof t.id === 'string' ? t.id : key,
      name: t.name,
      jinja: t.jinja,
      reference: typeof t.reference === 'string' ? t.reference : '',
      answer_choices: (t.answer_choices as string | undefined) ?? null,
      metadata: meta as PromptSourceMetadata,
      file,
    });
  }
  return {
    dataset: String(root.dataset ?? ''),
    subset: root.subset === undefined || root.subset === null ? null : String(root.subset),
    templates,
  };
}

/** Loads a PromptSource templates.yaml file. */
export function loadPromptSourceFile(path: string): PromptSourceFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new DataError(`cannot read: ${(e as Error).message}`, { file: path });
  }
  return parsePromptSourceYaml(text, path);
}

export type AppliedTemplate =
  | {
      kind: 'example';
      input: string;
      /** Main-branch PromptSource returns one target; multi-target templates give more. */
      target: string;
      targets: string[];
      answerChoices: string[] | null;
      /** The split, stripped parts, as PromptSource returns them. */
      parts: string[];
    }
  | { kind: 'skipped'; reason: string; answerChoices: string[] | null; parts: string[] };

export interface ApplyOptions {
  /** Seed or generator for `choice` / `random` (Python-compatible). Default: seed 0. */
  rng?: PyRandom | number;
  /** Wrap every expression in `| string | truncate(2048)`. Default true, as PromptSource. */
  truncate?: boolean;
  /** Names of numeric fields that are floats even when their value is integral. */
  floatFields?: ReadonlySet<string>;
}

const compiled = new Map<string, JinjaTemplate>();
function compile(source: string, t: PromptSourceTemplate, what: string): JinjaTemplate {
  // Keyed by template too, so that a limit error names the template that hit it.
  const key = `${t.id}\u0000${source}`;
  let c = compiled.get(key);
  if (!c) {
    try {
      c = new JinjaTemplate(source, { name: `'${t.name}' (${t.id})` });
    } catch (e) {
      throw new DataError(
        `Jinja syntax error in ${what} of template '${t.name}' (${t.id}): ${(e as Error).message}`,
        {
          file: t.file,
        },
      );
    }
    if (compiled.size > 4096) compiled.clear();
    compiled.set(key, c);
  }
  return c;
}

function protect(example: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(example)) {
    out[k] = typeof v === 'string' ? v.split(PROMPTSOURCE_SEPARATOR).join(PIPE_PROTECTOR) : v;
  }
  return out;
}

const unprotect = (s: string): string => s.split(PIPE_PROTECTOR).join(PROMPTSOURCE_SEPARATOR);

/** Python's str.strip(): Unicode whitespace plus the ASCII separators \x1c-\x1f. */
const pyStrip = (s: string): string =>
  s.replace(/^[\s\u001c-\u001f\u0085]+|[\s\u001c-\u001f\u0085]+$/g, '');

function renderWith(
  tpl: JinjaTemplate,
  t: PromptSourceTemplate,
  what: string,
  context: Record<string, unknown>,
  rng: PyRandom,
  floats: ReadonlySet<string> | undefined,
): string {
  const ctx: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(context)) ctx[k] = new JinjaValue(toRuntime(v, floats, k));
  try {
    return tpl.render(ctx, { rng });
  } catch (e) {
    throw new DataError(
      `cannot render ${what} of template '${t.name}' (${t.id}): ${(e as Error).message}`,
      { file: t.file },
      { cause: e },
    );
  }
}

/** PromptSource's get_answer_choices_list: render, split on |||, strip, unprotect. */
export function answerChoicesOf(
  t: PromptSourceTemplate,
  example: Record<string, unknown>,
  opts: ApplyOptions = {},
): string[] | null {
  if (t.answer_choices === null) return null;
  const rng = opts.rng instanceof PyRandom ? opts.rng : new PyRandom(opts.rng ?? 0);
  const text = renderWith(
    compile(t.answer_choices, t, 'answer_choices'),
    t,
    'answer_choices',
    protect(example),
    rng,
    opts.floatFields,
  );
  return text.split(PROMPTSOURCE_SEPARATOR).map((c) => unprotect(pyStrip(c)));
}

/**
 * Applies a template to an example as PromptSource's Template.apply does. An example the
 * template's own `{% if %}` filters out gives `{kind: 'skipped'}` rather than empty strings.
 * @throws DataError if the example already has an `answer_choices` field or rendering fails.
 */
export function applyTemplate(
  t: PromptSourceTemplate,
  example: Record<string, unknown>,
  opts: ApplyOptions = {},
): AppliedTemplate {
  if (Object.hasOwn(example, 'answer_choices')) {
    throw new DataError("the example contains the reserved key 'answer_choices'", {
      file: t.file,
      field: 'answer_choices',
    });
  }
  const rng = opts.rng instanceof PyRandom ? opts.rng : new PyRandom(opts.rng ?? 0);
  const source =
    opts.truncate === false
      ? t.jinja
      : t.jinja.split('}}').join(` | string | truncate(${PROMPTSOURCE_MAX_FIELD_CHARS}) }}`);
  const tpl = compile(source, t, 'jinja');
  const answerChoices = answerChoicesOf(t, example, { ...opts, rng });
  const context = { ...protect(example), answer_choices: answerChoices };
  const rendered = renderWith(tpl, t, 'jinja', context, rng, opts.floatFields);
  const parts = rendered.split(PROMPTSOURCE_SEPARATOR).map((p) => pyStrip(unprotect(p)));
  if (parts.length === 1) {
    const reason =
      parts[0] === ''
        ? 'the template renders nothing for this example'
        : 'the template has no ||| separator';
    return { kind: 'skipped', reason, answerChoices, parts };
  }
  const [input, ...targets] = parts as [string, ...string[]];
  return { kind: 'example', input, target: targets[0]!, targets, answerChoices, parts };
}

/** The parts exactly as PromptSource returns them ([input, target] or [""]), for parity tests. */
export function applyTemplateRaw(
  t: PromptSourceTemplate,
  example: Record<string, unknown>,
  opts: ApplyOptions = {},
): string[] {
  return applyTemplate(t, example, opts).parts;
}
