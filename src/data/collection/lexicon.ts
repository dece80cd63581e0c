// The invented world behind the built-in task collection: nonce words and places generated from
// syllables with a seeded Rng, each with properties (colour, material, kind, plural, capital,
// language, opposite, past tense...). Every fact the tasks ask about comes from here, so the
// knowledge corpus and the instruction data state the same facts.
import { Rng } from '../../util/rng.ts';

export interface Thing {
  name: string;
  colour: string;
  material: string;
  kind: string;
  plural: string;
  sound: string;
}
export interface Country {
  name: string;
  capital: string;
  language: string;
  continent: string;
}
export interface AdjectivePair {
  word: string;
  opposite: string;
  synonym: string;
}
export interface Verb {
  base: string;
  past: string;
}

/** An invented relation ("the zorb of a sneish is dap"): training-only extra tasks. */
export interface InventedRelation {
  /** The relational phrase, e.g. "zorb of". */
  name: string;
  facts: { thing: Thing; value: string }[];
}

export interface Lexicon {
  things: Thing[];
  countries: Country[];
  adjectives: AdjectivePair[];
  verbs: Verb[];
  relations: InventedRelation[];
}

export interface LexiconSizes {
  things?: number;
  countries?: number;
  adjectives?: number;
  verbs?: number;
  /** Invented relations over things (none by default). */
  relations?: number;
  /** Things each invented relation states a value for. @default 8 */
  relation_facts?: number;
}

const ONSETS = [
  'b',
  'd',
  'f',
  'g',
  'k',
  'l',
  'm',
  'n',
  'p',
  'r',
  's',
  't',
  'v',
  'z',
  'bl',
  'br',
  'dr',
  'fl',
  'gr',
  'kr',
  'pl',
  'sk',
  'st',
  'tr',
  'sn',
  'sp',
];
const VOWELS = ['a', 'e', 'i', 'o', 'u', 'oo', 'ai', 'ei'];
const CODAS = ['', '', 'n', 'm', 'r', 'l', 'k', 'p', 't', 'x', 'sh', 'nd', 'rt'];
const COLOURS = [
  'red',
  'blue',
  'green',
  'yellow',
  'black',
  'white',
  'brown',
  'pink',
  'grey',
  'orange',
  'purple',
];
const MATERIALS = [
  'wood',
  'glass',
  'stone',
  'iron',
  'paper',
  'cloth',
  'clay',
  'silver',
  'wool',
  'plastic',
];
const KINDS = ['fruit', 'tool', 'bird', 'fish', 'toy', 'plant', 'insect', 'drink', 'game', 'boat'];
const SOUNDS = ['moo', 'buzz', 'hiss', 'honk', 'chirp', 'purr', 'croak', 'squeak', 'roar', 'hum'];
const CONTINENTS = ['Norvia', 'Sudra', 'Estmark', 'Westland', 'Centara'];
const PLURAL_SUFFIXES = ['en', 'i', 'es', 'a', 'im'];
const PAST_SUFFIXES = ['ed', 'ot', 'ang', 'ust'];

/** Generates a pronounceable nonce word of `syllables` syllables. */
function nonce(rng: Rng, syllables: number): string {
  let w = '';
  for (let i = 0; i < syllables; i++)
    w += rng.choice(ONSETS) + rng.choice(VOWELS) + (i === syllables - 1 ? rng.choice(CODAS) : '');
  return w;
}

const cap = (w: string): string => w.charAt(0).toUpperCase() + w.slice(1);

/**
 * Builds the lexicon for a seed. Words are unique across the whole lexicon, so every fact has
 * exactly one answer.
 * @default sizes things 60, countries 24, adjectives 24, verbs 30
 */
export function buildLexicon(seed: number, sizes: LexiconSizes = {}): Lexicon {
  const rng = new Rng(`lexicon/${seed}`);
  const used = new Set<string>();
  const fresh = (syllables: number): string => {
    for (;;) {
      const w = nonce(rng, syllables);
      if (w.length >= 3 && !used.has(w)) {
        used.add(w);
        return w;
      }
    }
  };
  const things: Thing[] = Array.from({ length: sizes.things ?? 60 }, () => {
    const name = fresh(1 + rng.int(2));
    return {
      name,
      colour: rng.choice(COLOURS),
      material: rng.choice(MATERIALS),
      kind: rng.choice(KINDS),
      plural: name + rng.choice(PLURAL_SUFFIXES),
      sound: rng.choice(SOUNDS),
    };
  });
  const countries: Country[] = Array.from({ length: sizes.countries ?? 24 }, () => {
    const stem = fresh(2);
    return {
      name: `${cap(stem)}land`,
      capital: cap(fresh(2)),
      language: `${cap(stem)}ish`,
      continent: rng.choice(CONTINENTS),
    };
  });
  const adjectives: AdjectivePair[] = Array.from({ length: sizes.adjectives ?? 24 }, () => ({
    word: fresh(1),
    opposite: fresh(1),
    synonym: fresh(2),
  }));
  const verbs: Verb[] = Array.from({ length: sizes.verbs ?? 30 }, () => {
    const base = fresh(1);
    return { base, past: base + rng.choice(PAST_SUFFIXES) };
  });
  // Drawn last, so a lexicon with relations has the same words otherwise.
  const relations: InventedRelation[] = Array.from({ length: sizes.relations ?? 0 }, () => {
    const name = `${fresh(1 + rng.int(2))} of`;
    const values = Array.from({ length: 6 }, () => fresh(1));
    const n = Math.min(sizes.relation_facts ?? 8, things.length);
    return {
      name,
      facts: rng.sample(things, n).map((thing) => ({ thing, value: rng.choice(values) })),
    };
  });
  return { things, countries, adjectives, verbs, relations };
}

export const DAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];
export const MONTHS = [
  'January',
  'February',
  'March',
  'April',
  'May',
  'June',
  'July',
  'August',
  'September',
  'October',
  'November',
  'December',
];
export const NUMBER_WORDS = [
  'zero',
  'one',
  'two',
  'three',
  'four',
  'five',
  'six',
  'seven',
  'eight',
  'nine',
  'ten',
  'eleven',
  'twelve',
  'thirteen',
  'fourteen',
  'fifteen',
  'sixteen',
  'seventeen',
  'eighteen',
  'nineteen',
  'twenty',
];
