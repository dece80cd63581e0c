// Inputs bench/fuzz found that broke a data-layer parser; each must now be a typed error.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readConfigFile } from '../../src/data/config.ts';
import { readRecords } from '../../src/data/io.ts';
import { renderChatTemplate } from '../../src/data/templates/chat.ts';
import { parseTemplateSet } from '../../src/data/templates/flan.ts';
import { parsePromptSourceYaml } from '../../src/data/templates/promptsource.ts';
import { TINY_CHAT_TEMPLATE } from '../../src/models/tiny.ts';
import { ConfigError, DataError, FormatError } from '../../src/util/errors.ts';
import { fixture } from '../helpers/shared.ts';

const dir = mkdtempSync(join(tmpdir(), 'ik-fuzz-reg-'));

/** Runs fn and lets two event-loop turns pass, collecting unhandled rejections meanwhile. */
async function withoutStrayRejections(fn: () => Promise<void>): Promise<void> {
  const stray: unknown[] = [];
  const on = (e: unknown) => stray.push(e);
  process.on('unhandledRejection', on);
  try {
    await fn();
    for (let i = 0; i < 2; i++) await new Promise((r) => setImmediate(r));
  } finally {
    process.off('unhandledRejection', on);
  }
  assert.deepEqual(
    stray.map((e) => String(e)),
    [],
    'no promise may reject unobserved',
  );
}

for (const [name, what] of [
  ['bad-page-unhandled.parquet', /row group 0/],
  ['stray-column-chunk.parquet', /row group 0: column chunk '[^']*' is not a column of the schema/],
  // A data page v2 header with no level lengths and negative num_nulls: hyparquet 1.31.5 spun
  // for minutes in readRleBitPackedHybrid before the page-header pre-scan.
  // A column chunk with a negative total_compressed_size (found by bench/fuzz in the pre-scan).
  [
    'negative-chunk-size.parquet',
    /row group 0 \(rows 0\.\.\d+\), column '[^']*': column chunk range/,
  ],
  [
    'rle-levels-hang.parquet',
    /row group 0 \(rows 0\.\.1\), column 'messages\.list\.element\.role': page at byte 4: num_nulls/,
  ],
] as const) {
  test(`parquet: ${name} (found by bench/fuzz) is a FormatError naming the row group`, async () => {
    await withoutStrayRejections(async () => {
      await assert.rejects(
        async () => {
          for await (const _ of readRecords(fixture('fuzz', 'parquet', name))) {
            // reading is the test
          }
        },
        (e: unknown) => e instanceof FormatError && what.test(e.message),
      );
    });
  });
}

// 10 x 10 x 10 x 10 aliases: yaml refuses to expand them (its ReferenceError escaped before).
const LAUGHS = [
  'a: &a [x, x, x, x, x, x, x, x, x, x]',
  'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]',
  'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]',
  'd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]',
  'tasks: {}',
  'templates: {}',
  '',
].join('\n');

test('yaml alias explosions are typed errors in configs, FLAN and PromptSource template files', async () => {
  const p = join(dir, 'laughs.yaml');
  writeFileSync(p, LAUGHS);
  await assert.rejects(
    readConfigFile(p),
    (e: unknown) => e instanceof ConfigError && /laughs\.yaml.*invalid YAML/s.test(e.message),
  );
  assert.throws(
    () => parseTemplateSet(LAUGHS, 'laughs.yaml'),
    (e: unknown) => e instanceof DataError && /laughs\.yaml.*invalid YAML/s.test(e.message),
  );
  assert.throws(
    () => parsePromptSourceYaml(LAUGHS, 'laughs.yaml'),
    (e: unknown) => e instanceof DataError && /laughs\.yaml.*invalid YAML/s.test(e.message),
  );
});

test('a chat template with an unknown tag ({%-eendfor -%}, found by bench/fuzz) is a DataError naming the template and the tag', () => {
  // The kept fuzz input was cut off after 158 bytes; this is the seed template with the same typo.
  const template = TINY_CHAT_TEMPLATE.replace('{%- endfor', '{%-eendfor');
  assert.notEqual(template, TINY_CHAT_TEMPLATE);
  assert.throws(
    () => renderChatTemplate(template, [{ role: 'user', content: 'hi' }], { bosToken: '<s>' }),
    (e: unknown) =>
      e instanceof DataError && /chat_template/.test(e.message) && /eendfor/.test(e.message),
  );
});
