// The built-in tasks: each is a relation over the generated lexicon (or over numbers, days,
// months, letters), with a fact list, the declarative sentences that state each fact in the
// knowledge corpus, and the answer space used for options. Instruction wording lives in
// templates.yaml; this file only decides what is true.
import { DAYS, type Lexicon, MONTHS, NUMBER_WORDS } from './lexicon.ts';

/** One fact: the subject as templates show it, the answer, and the sentences stating it. */
export interface Fact {
  x: string;
  y: string;
  /** The fact as one plain sentence (also the chain-of-thought rationale). */
  rationale: string;
  /** Further sentences stating the same fact for the knowledge corpus. */
  also: string[];
}

export interface TaskDef {
  name: string;
  category: string;
  facts(lex: Lexicon): Fact[];
  /** Every possible answer (options are drawn from it). */
  answers(lex: Lexicon): string[];
}

const cap = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
const f = (x: string, y: string, rationale: string, ...also: string[]): Fact => ({
  x,
  y,
  rationale,
  also,
});
const uniq = (xs: string[]): string[] => [...new Set(xs)];
const LETTERS = 'abcdefghijklmnopqrstuvwxyz';

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

export const TASKS: readonly TaskDef[] = [
  // geography
  {
    name: 'capital_of',
    category: 'geography',
    facts: (l) =>
      l.countries.map((c) =>
        f(
          c.name,
          c.capital,
          `The capital of ${c.name} is ${c.capital}.`,
          `${c.capital} is the capital of ${c.name}.`,
        ),
      ),
    answers: (l) => l.countries.map((c) => c.capital),
  },
  {
    name: 'country_of_capital',
    category: 'geography',
    facts: (l) =>
      l.countries.map((c) =>
        f(
          c.capital,
          c.name,
          `The country of ${c.capital} is ${c.name}.`,
          `${c.capital} is the capital of ${c.name}.`,
        ),
      ),
    answers: (l) => l.countries.map((c) => c.name),
  },
  {
    name: 'language_of',
    category: 'geography',
    facts: (l) =>
      l.countries.map((c) =>
        f(
          c.name,
          c.language,
          `The language of ${c.name} is ${c.language}.`,
          `People in ${c.name} speak ${c.language}.`,
        ),
      ),
    answers: (l) => l.countries.map((c) => c.language),
  },
  {
    name: 'continent_of',
    category: 'geography',
    facts: (l) =>
      l.countries.map((c) =>
        f(
          c.name,
          c.continent,
          `The continent of ${c.name} is ${c.continent}.`,
          `${c.name} lies in ${c.continent}.`,
        ),
      ),
    answers: (l) => uniq(l.countries.map((c) => c.continent)),
  },
  // objects
  {
    name: 'colour_of',
    category: 'objects',
    facts: (l) =>
      l.things.map((t) =>
        f(
          `a ${t.name}`,
          t.colour,
          `The colour of a ${t.name} is ${t.colour}.`,
          `A ${t.name} is ${t.colour}.`,
        ),
      ),
    answers: (l) => uniq(l.things.map((t) => t.colour)),
  },
  {
    name: 'material_of',
    category: 'objects',
    facts: (l) =>
      l.things.map((t) =>
        f(
          `a ${t.name}`,
          t.material,
          `The material of a ${t.name} is ${t.material}.`,
          `A ${t.name} is made of ${t.material}.`,
        ),
      ),
    answers: (l) => uniq(l.things.map((t) => t.material)),
  },
  {
    name: 'sound_of',
    category: 'objects',
    facts: (l) =>
      l.things.map((t) =>
        f(
          `a ${t.name}`,
          t.sound,
          `The sound of a ${t.name} is ${t.sound}.`,
          `A ${t.name} goes ${t.sound}.`,
        ),
      ),
    answers: (l) => uniq(l.things.map((t) => t.sound)),
  },
  // taxonomy
  {
    name: 'kind_of',
    category: 'taxonomy',
    facts: (l) =>
      l.things.map((t) =>
        f(
          `a ${t.name}`,
          t.kind,
          `The kind of a ${t.name} is ${t.kind}.`,
          `A ${t.name} is a kind of ${t.kind}.`,
        ),
      ),
    answers: (l) => uniq(l.things.map((t) => t.kind)),
  },
  {
    name: 'kind_of_plural',
    category: 'taxonomy',
    facts: (l) =>
      l.things.map((t) =>
        f(
          t.plural,
          t.kind,
          `The kind of ${t.plural} is ${t.kind}.`,
          `${cap(t.plural)} are a kind of ${t.kind}.`,
        ),
      ),
    answers: (l) => uniq(l.things.map((t) => t.kind)),
  },
  {
    name: 'same_kind',
    category: 'taxonomy',
    facts: (l) =>
      l.things.map((t, i) => {
        const other = l.things[(i * 7 + 3) % l.things.length]!;
        const yes = other.kind === t.kind;
        return f(
          `a ${t.name} and a ${other.name}`,
          yes ? 'yes' : 'no',
          `The kind of a ${t.name} is ${t.kind} and the kind of a ${other.name} is ${other.kind}.`,
        );
      }),
    answers: () => ['yes', 'no'],
  },
  // antonyms
  {
    name: 'opposite_of',
    category: 'antonyms',
    facts: (l) =>
      l.adjectives.map((a) =>
        f(
          a.word,
          a.opposite,
          `The opposite of ${a.word} is ${a.opposite}.`,
          `${cap(a.word)} is the opposite of ${a.opposite}.`,
        ),
      ),
    answers: (l) => l.adjectives.map((a) => a.opposite),
  },
  {
    name: 'opposite_of_reverse',
    category: 'antonyms',
    facts: (l) =>
      l.adjectives.map((a) => f(a.opposite, a.word, `The opposite of ${a.opposite} is ${a.word}.`)),
    answers: (l) => l.adjectives.map((a) => a.word),
  },
  {
    name: 'synonym_of',
    category: 'antonyms',
    facts: (l) =>
      l.adjectives.map((a) =>
        f(
          a.word,
          a.synonym,
          `The synonym of ${a.word} is ${a.synonym}.`,
          `${cap(a.synonym)} means the same as ${a.word}.`,
        ),
      ),
    answers: (l) => l.adjectives.map((a) => a.synonym),
  },
  // morphology
  {
    name: 'plural_of',
    category: 'morphology',
    facts: (l) =>
      l.things.map((t) =>
        f(
          t.name,
          t.plural,
          `The plural of ${t.name} is ${t.plural}.`,
          `One ${t.name}, two ${t.plural}.`,
        ),
      ),
    answers: (l) => l.things.map((t) => t.plural),
  },
  {
    name: 'past_of',
    category: 'morphology',
    facts: (l) =>
      l.verbs.map((v) =>
        f(
          v.base,
          v.past,
          `The past tense of ${v.base} is ${v.past}.`,
          `Today I ${v.base}, yesterday I ${v.past}.`,
        ),
      ),
    answers: (l) => l.verbs.map((v) => v.past),
  },
  {
    name: 'singular_of',
    category: 'morphology',
    facts: (l) =>
      l.things.map((t) => f(t.plural, t.name, `The singular of ${t.plural} is ${t.name}.`)),
    answers: (l) => l.things.map((t) => t.name),
  },
  // arithmetic
  {
    name: 'sum_of',
    category: 'arithmetic',
    facts: () =>
      range(10).flatMap((a) =>
        range(10).map((b) =>
          f(
            `${a} and ${b}`,
            String(a + b),
            `The sum of ${a} and ${b} is ${a + b}.`,
            `${a} plus ${b} is ${a + b}.`,
          ),
        ),
      ),
    answers: () => range(19).map(String),
  },
  {
    name: 'difference_of',
    category: 'arithmetic',
    facts: () =>
      range(10).flatMap((a) =>
        range(a + 1).map((b) =>
          f(
            `${a} and ${b}`,
            String(a - b),
            `The difference of ${a} and ${b} is ${a - b}.`,
            `${a} minus ${b} is ${a - b}.`,
          ),
        ),
      ),
    answers: () => range(10).map(String),
  },
  {
    name: 'product_of',
    category: 'arithmetic',
    facts: () =>
      range(6).flatMap((a) =>
        range(6).map((b) =>
          f(
            `${a} and ${b}`,
            String(a * b),
            `The product of ${a} and ${b} is ${a * b}.`,
            `${a} times ${b} is ${a * b}.`,
          ),
        ),
      ),
    answers: () => uniq(range(6).flatMap((a) => range(6).map((b) => String(a * b)))),
  },
  {
    name: 'double_of',
    category: 'arithmetic',
    facts: () =>
      range(11).map((n) =>
        f(String(n), String(2 * n), `The double of ${n} is ${2 * n}.`, `Twice ${n} is ${2 * n}.`),
      ),
    answers: () => range(11).map((n) => String(2 * n)),
  },
  // sequences
  {
    name: 'day_after',
    category: 'sequences',
    facts: () =>
      DAYS.map((d, i) => f(d, DAYS[(i + 1) % 7]!, `The day after ${d} is ${DAYS[(i + 1) % 7]}.`)),
    answers: () => [...DAYS],
  },
  {
    name: 'day_before',
    category: 'sequences',
    facts: () =>
      DAYS.map((d, i) => f(d, DAYS[(i + 6) % 7]!, `The day before ${d} is ${DAYS[(i + 6) % 7]}.`)),
    answers: () => [...DAYS],
  },
  {
    name: 'month_after',
    category: 'sequences',
    facts: () =>
      MONTHS.map((m, i) =>
        f(m, MONTHS[(i + 1) % 12]!, `The month after ${m} is ${MONTHS[(i + 1) % 12]}.`),
      ),
    answers: () => [...MONTHS],
  },
  {
    name: 'number_after',
    category: 'sequences',
    facts: () =>
      NUMBER_WORDS.slice(0, -1).map((n, i) =>
        f(
          n,
          NUMBER_WORDS[i + 1]!,
          `The number after ${n} is ${NUMBER_WORDS[i + 1]}.`,
          `After ${n} comes ${NUMBER_WORDS[i + 1]}.`,
        ),
      ),
    answers: () => NUMBER_WORDS.slice(1),
  },
  {
    name: 'letter_after',
    category: 'sequences',
    facts: () =>
      [...LETTERS.slice(0, -1)].map((c, i) =>
        f(c, LETTERS[i + 1]!, `The letter after ${c} is ${LETTERS[i + 1]}.`),
      ),
    answers: () => [...LETTERS.slice(1)],
  },
  // spelling
  {
    name: 'first_letter_of',
    category: 'spelling',
    facts: (l) =>
      l.things.map((t) =>
        f(
          t.name,
          t.name[0]!,
          `The first letter of ${t.name} is ${t.name[0]}.`,
          `${cap(t.name)} starts with ${t.name[0]}.`,
        ),
      ),
    answers: () => [...LETTERS],
  },
  {
    name: 'last_letter_of',
    category: 'spelling',
    facts: (l) =>
      l.things.map((t) =>
        f(
          t.name,
          t.name.at(-1)!,
          `The last letter of ${t.name} is ${t.name.at(-1)}.`,
          `${cap(t.name)} ends with ${t.name.at(-1)}.`,
        ),
      ),
    answers: () => [...LETTERS],
  },
  {
    name: 'letter_count_of',
    category: 'spelling',
    facts: (l) =>
      l.things.map((t) =>
        f(
          t.name,
          String(t.name.length),
          `The letter count of ${t.name} is ${t.name.length}.`,
          `${cap(t.name)} has ${t.name.length} letters.`,
        ),
      ),
    answers: () => range(12).map((n) => String(n + 1)),
  },
  {
    name: 'second_letter_of',
    category: 'spelling',
    facts: (l) =>
      l.things.map((t) => f(t.name, t.name[1]!, `The second letter of ${t.name} is ${t.name[1]}.`)),
    answers: () => [...LETTERS],
  },
];
