import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { porterStem } from '../../src/data/porter.ts';
import { fixture } from '../helpers/shared.ts';

test('stems equal NLTK PorterStemmer() on every word of the shared test data', () => {
  const { stems } = JSON.parse(readFileSync(fixture('porter', 'nltk_stems.json'), 'utf8')) as {
    stems: Record<string, string>;
  };
  const words = Object.keys(stems);
  assert.ok(words.length > 10_000);
  const wrong = words
    .filter((w) => porterStem(w) !== stems[w])
    .map((w) => `${w}: ${porterStem(w)} != ${stems[w]}`);
  assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} of ${words.length} differ`);
});
