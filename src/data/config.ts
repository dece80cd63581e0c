// Config parsing for the data commands: a zod schema, values from a YAML/JSON file and/or flags,
// and errors that name the file, the line of the offending key in YAML, and the field.
// The schemas themselves live with their features (MixtureConfig, SplitConfig, DedupConfig...).
import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { isMap, isScalar, LineCounter } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../util/errors.ts';
import { parseYamlDocument } from './yaml.ts';

/** First zod issue as {path, field, message}; for unknown keys the field is the key itself. */
export function describeZodError(err: z.ZodError): {
  path: string[];
  field: string;
  message: string;
} {
  const issue = err.issues[0]!;
  const base = issue.path.map(String);
  if (issue.code === 'unrecognized_keys') {
    const keys = (issue as { keys: string[] }).keys;
    const path = [...base, keys[0]!];
    return {
      path,
      field: path.join('.'),
      message: `unknown key${keys.length > 1 ? 's' : ''} ${keys.map((k) => `'${k}'`).join(', ')}`,
    };
  }
  const more = err.issues.length > 1 ? ` (and ${err.issues.length - 1} more issue(s))` : '';
  return { path: base, field: base.join('.'), message: `${issue.message}${more}` };
}

/** A config file's parsed value plus a way to find the line of a key path. */
export interface ConfigSource {
  file?: string;
  value: unknown;
  lineOf?: (path: readonly string[]) => number | undefined;
}

/** Reads a YAML (or JSON, which is YAML) config file. Syntax errors name file and line. */
export async function readConfigFile(path: string): Promise<ConfigSource> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new ConfigError('config file not found', { file: path });
    throw e;
  }
  const lc = new LineCounter();
  // prettyErrors off: yaml's pretty errors cost quadratic time on a document with many errors
  // (an 80 KB one took 39 s; bench/fuzz); the line is computed from the first error's offset.
  const doc = parseYamlDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new ConfigError(`invalid YAML: ${e.message.split('\n')[0]}`, {
      file: path,
      line: lc.linePos(e.pos[0]).line,
    });
  }
  const lineOf = (path: readonly string[]): number | undefined => {
    // Walk to the parent map, then find the pair whose key is the last path element.
    const parent = path.length > 1 ? doc.getIn(path.slice(0, -1), true) : doc.contents;
    if (!isMap(parent)) return undefined;
    const last = path[path.length - 1];
    for (const pair of parent.items) {
      const k = pair.key;
      if (isScalar(k) && String(k.value) === last && k.range) return lc.linePos(k.range[0]).line;
    }
    return undefined;
  };
  let value: unknown;
  try {
    value = doc.toJS() ?? {};
  } catch (e) {
    // yaml refuses alias expansion past its limit ("billion laughs") with a ReferenceError.
    throw new ConfigError(`invalid YAML: ${(e as Error).message}`, { file: path });
  }
  if (typeof value !== 'object' || Array.isArray(value))
    throw new ConfigError('expected a mapping of settings at the top level', {
      file: path,
      line: 1,
    });
  return { file: path, value, lineOf };
}

/**
 * Validates `value` (file values overlaid with flag values) against a zod schema. Errors are
 * ConfigError naming the field (an unknown key is named as the field) and, for keys that came
 * from the file, the file and line.
 */
export function parseConfig<S extends z.ZodType>(
  schema: S,
  value: unknown,
  source?: Pick<ConfigSource, 'file' | 'lineOf'>,
): z.infer<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const { path, field, message } = describeZodError(r.error);
  const line = source?.lineOf?.(path);
  throw new ConfigError(
    message,
    { file: line !== undefined || !source?.lineOf ? source?.file : undefined, line, field },
    {
      hint: source?.file ? `check ${source.file} and the flags` : 'check the flags',
    },
  );
}

/** Overlays flag values (undefined = not given) on file values, one level deep. */
export function mergeConfig(
  fromFile: unknown,
  flags: Record<string, unknown>,
): Record<string, unknown> {
  const base =
    fromFile && typeof fromFile === 'object' && !Array.isArray(fromFile)
      ? { ...(fromFile as Record<string, unknown>) }
      : {};
  for (const [k, v] of Object.entries(flags)) if (v !== undefined) base[k] = v;
  return base;
}

function resolveAt(v: unknown, path: readonly string[], base: string): void {
  if (v === null || typeof v !== 'object') return;
  const [head, ...rest] = path;
  const items = head === '*' && Array.isArray(v) ? v : [v];
  for (const it of items) {
    if (head === '*') {
      resolveAt(it, rest, base);
      continue;
    }
    const o = it as Record<string, unknown>;
    if (rest.length > 0) resolveAt(o[head!], rest, base);
    else if (typeof o[head!] === 'string' && !isAbsolute(o[head!] as string))
      o[head!] = resolve(base, o[head!] as string);
  }
}

/**
 * Builds a config from an optional YAML/JSON file overlaid with flag values (undefined = not
 * given), validated by `schema`. `pathFields` name the file's path-valued keys ('table',
 * 'sources.*.path'); relative paths in the file are resolved against the file's folder.
 * Errors name the file and line for keys that came from the file.
 */
export async function loadConfig<S extends z.ZodType>(
  schema: S,
  configPath: string | undefined,
  flags: Record<string, unknown>,
  pathFields: readonly string[] = [],
): Promise<z.infer<S>> {
  if (!configPath) return parseConfig(schema, mergeConfig({}, flags));
  const src = await readConfigFile(configPath);
  const base = dirname(resolve(configPath));
  for (const f of pathFields) resolveAt(src.value, f.split('.'), base);
  const fromFlags = new Set(Object.keys(flags).filter((k) => flags[k] !== undefined));
  return parseConfig(schema, mergeConfig(src.value, flags), {
    file: configPath,
    lineOf: (p) => (fromFlags.has(p[0] ?? '') ? undefined : src.lineOf?.(p)),
  });
}
