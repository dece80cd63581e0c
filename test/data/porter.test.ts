import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { porterStem } from '../../src/data/porter.ts';
import { fixture } from '../helpers/shared.ts';

test('stems equal NLTK PorterStemmer() on every fixture word (shared data + synthetic suffixes)', () => {
  // scripts/fixtures/porter_expected.py: every token of the shared data longer than 3
  // characters, plus real words with Porter's suffixes appended, stemmed by NLTK.
  const { stems } = JSON.parse(readFileSync(fixture('porter', 'nltk_stems.json'), 'utf8')) as {
    stems: Record<string, string>;
  };
  const words = Object.keys(stems);
  assert.ok(words.length > 25_000, `${words.length} words`);
  const wrong = words
    .filter((w) => porterStem(w) !== stems[w])
    .map((w) => `${w}: ${porterStem(w)} != ${stems[w]}`);
  assert.deepEqual(wrong.slice(0, 10), [], `${wrong.length} of ${words.length} differ`);
});

test('published examples and NLTK extensions', () => {
  const cases: Record<string, string> = {
    // Porter (1980), steps 1a-5b
    caresses: 'caress',
    ponies: 'poni',
    caress: 'caress',
    cats: 'cat',
    agreed: 'agre',
    plastered: 'plaster',
    motoring: 'motor',
    conflated: 'conflat',
    hopping: 'hop',
    falling: 'fall',
    filing: 'file',
    happy: 'happi',
    relational: 'relat',
    conditional: 'condit',
    rational: 'ration',
    hopefulness: 'hope',
    electrical: 'electr',
    adjustment: 'adjust',
    generalization: 'gener',
    generously: 'gener',
    controlling: 'control',
    controll: 'control',
    // NLTK_EXTENSIONS: irregular forms, 4-letter -ies/-ied, -logi, y after a vowel
    dying: 'die',
    lying: 'lie',
    news: 'news',
    innings: 'inning',
    proceed: 'proceed',
    exceed: 'exceed',
    ties: 'tie',
    tied: 'tie',
    geology: 'geolog',
    enjoy: 'enjoy',
    this: 'thi',
    '1990s': '1990',
  };
  for (const [w, s] of Object.entries(cases)) assert.equal(porterStem(w), s, w);
  // Words of two letters or fewer are returned unchanged.
  assert.equal(porterStem('is'), 'is');
  assert.equal(porterStem('as'), 'as');
});
