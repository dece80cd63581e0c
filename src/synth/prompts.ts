// Prompt texts for Self-Instruct and Alpaca-style generation, written for instructkit. The
// structure follows the papers (a numbered list of 8 instructions to continue; few-shot
// classification identification; output-first instances for classification, input-first
// otherwise; Alpaca's numbered Instruction/Input/Output blocks); the wording is ours.

/** Self-Instruct: the header above the numbered list of example tasks. */
export const INSTRUCTION_LIST_HEADER =
  'Here is a numbered list of tasks that people ask a capable text assistant to do. ' +
  'The tasks are varied in topic, form and difficulty. Continue the list with new tasks:\n';

/** Variant used when only classification seeds are shown. */
export const CLASSIFICATION_LIST_HEADER =
  'Here is a numbered list of classification tasks, each naming its possible output labels ' +
  'where it can. Continue the list with new classification tasks:\n';

/** Builds the instruction-generation prompt: "1. ...\n2. ...\n...\n9." (the model writes 9+). */
export function encodeInstructionPrompt(
  instructions: readonly string[],
  header = INSTRUCTION_LIST_HEADER,
): string {
  let out = header;
  instructions.forEach((inst, i) => {
    const clean = inst.replace(/\s+/g, ' ').trim().replace(/:+$/, '');
    out += `${i + 1}. ${clean}\n`;
  });
  return `${out}${instructions.length + 1}.`;
}

const CLF_EXAMPLES: [string, boolean][] = [
  ['Decide whether the movie review below is positive or negative.', true],
  ['Translate the sentence into French.', false],
  ['Is the following statement a fact or an opinion?', true],
  ['Suggest three names for a bakery that sells only bread.', false],
  ['Label the e-mail as spam or not spam.', true],
  ['Explain why the sky looks blue during the day.', false],
  ['Which of the two sentences is grammatically correct, A or B?', true],
  ['Write a short story that ends with the word "finally".', false],
  ['Given a tweet, tell whether its author sounds angry, happy or neutral.', true],
  ['Summarize the paragraph in one sentence.', false],
  ['Does the second sentence follow from the first? Answer yes, no or maybe.', true],
  ['Give step-by-step directions for boiling an egg.', false],
];

/** Few-shot prompt asking whether a task has a finite label set. */
export function encodeClassificationQuery(instruction: string): string {
  let out =
    'For each task, say whether it is a classification task: one whose answer is chosen from a small, fixed set of labels.\n\n';
  for (const [task, yes] of CLF_EXAMPLES)
    out += `Task: ${task}\nClassification: ${yes ? 'Yes' : 'No'}\n\n`;
  return `${out}Task: ${instruction.trim()}\nClassification:`;
}

/** Self-Instruct's truthiness rule for the identification answer. */
export function parseClassificationAnswer(text: string): boolean {
  return ['Yes', 'yes', 'YES'].includes(text.trim());
}

const INPUT_FIRST_HEADER =
  'For each task, write several examples. Each example gives an input and then the correct output. ' +
  'When a task needs no input, give the output directly.\n\n';

const INPUT_FIRST_EXAMPLES = `Task: Turn the temperature from Celsius into Fahrenheit.
Example 1
Input: 100 °C
Output: 212 °F
Example 2
Input: -40 °C
Output: -40 °F

Task: Name a fruit that is yellow when ripe.
Output: A banana.

Task: Rewrite the sentence in the passive voice.
Example 1
Input: The cat chased the mouse.
Output: The mouse was chased by the cat.
Example 2
Input: Maria painted the fence.
Output: The fence was painted by Maria.

`;

const OUTPUT_FIRST_HEADER =
  'For each classification task, list its possible class labels. After each label, write an input ' +
  'that belongs to that label. When a task needs no input, just list the labels.\n\n';

const OUTPUT_FIRST_EXAMPLES = `Task: Decide whether the product review is positive or negative.
Class label: Positive
Review: The blender is quiet and crushes ice in seconds.
Class label: Negative
Review: It stopped working after two days and support never answered.

Task: Is the number even or odd?
Class label: Even
Number: 48
Class label: Odd
Number: 17

`;

/** Instance-generation prompt: output-first for classification tasks, input-first otherwise. */
export function encodeInstancePrompt(instruction: string, isClassification: boolean): string {
  const head = isClassification
    ? OUTPUT_FIRST_HEADER + OUTPUT_FIRST_EXAMPLES
    : INPUT_FIRST_HEADER + INPUT_FIRST_EXAMPLES;
  return `${head}Task: ${instruction.trim()}\n`;
}

/** Alpaca: the requirements above the numbered Instruction / Input / Output blocks. */
export const ALPACA_HEADER = `You are helping build a set of 20 varied tasks for training a language model to follow instructions.

Rules for the tasks:
1. Use a different main verb in each instruction where you can.
2. Mix the kinds of task: open questions, classification, rewriting, brainstorming, extraction, reasoning, and others.
3. A text-only model must be able to do the task: do not ask for pictures, sounds or actions in the world.
4. Write everything in English.
5. Keep each instruction to one or two sentences; questions and imperatives are both fine.
6. When a task needs an input, give a realistic one of at most about 100 words; otherwise write "<noinput>".
7. The output must be a correct, complete answer of under about 100 words.

List of 20 tasks:
`;

/** Builds an Alpaca-style prompt from seed tasks; the model continues at the next number. */
export function encodeAlpacaPrompt(
  seeds: readonly { instruction: string; input: string; output: string }[],
): string {
  let out = ALPACA_HEADER;
  seeds.forEach((t, i) => {
    const n = i + 1;
    const instruction = t.instruction.replace(/\s+/g, ' ').trim().replace(/:+$/, '');
    out += `###\n${n}. Instruction: ${instruction}\n${n}. Input:\n${t.input === '' ? '<noinput>' : t.input}\n${n}. Output:\n${t.output}\n`;
  });
  return `${out}###\n${seeds.length + 1}. Instruction:`;
}
