// Parsers for model responses in the Self-Instruct and Alpaca formats: the continued numbered
// instruction list, generated instances (input-first and output-first), and Alpaca's numbered
// Instruction / Input / Output blocks. Unparseable pieces are reported, never silently dropped.
import { type Capitalize, capitalize, collapseWhitespace, type Instance } from './filters.ts';

/**
 * Splits a continued numbered list ("<text of 9>\n10. <text>\n11. ...") into instructions.
 * A response cut off by max_tokens is discarded whole, as Self-Instruct does.
 */
export function parseInstructionList(
  text: string,
  finishReason: string | null,
  mode: Capitalize = 'first',
): { instructions: string[]; truncated: boolean } {
  if (finishReason === 'length') return { instructions: [], truncated: true };
  const pieces = text.split(/\n\d+\s?\. /);
  return {
    instructions: pieces.map((p) => capitalize(collapseWhitespace(p), mode)),
    truncated: false,
  };
}

const OUTPUT_RE = /Output\s*\d*\s*:/;
const INPUT_RE = /Input\s*\d*\s*:/;

function splitInputOutput(chunk: string): Instance {
  let input = '';
  let output: string;
  if (OUTPUT_RE.test(chunk)) {
    const parts = chunk.split(OUTPUT_RE);
    input = parts[0]!.trim();
    output = parts[1]!.trim();
  } else {
    output = chunk.trim();
  }
  // Several input/output pairs in one chunk: keep the first output only.
  if (INPUT_RE.test(output)) output = output.split(INPUT_RE)[0]!.trim();
  input = input.replace(/^Input\s*\d*\s*:/, '').trim();
  return { input, output };
}

/**
 * Parses generated instances. Classification tasks were generated output-first
 * ("Class label: X\n<input>"), others input-first ("Example k\nInput: ...\nOutput: ...").
 * When the response hit max_tokens, the last instance is incomplete and dropped.
 */
export function parseInstances(
  text: string,
  isClassification: boolean,
  finishReason: string | null,
): Instance[] {
  let out: Instance[];
  if (isClassification) {
    // As Self-Instruct: only the parts after each "Class label:" are instances (text before
    // the first is not), and an empty part stays, for the instance filters to reject.
    out = text
      .split('Class label:')
      .slice(1)
      .map((s) => {
        const t = s.trim();
        const nl = t.indexOf('\n');
        return nl < 0
          ? { output: t, input: '' }
          : { output: t.slice(0, nl).trim(), input: t.slice(nl + 1).trim() };
      });
  } else if (/Example\s?\d*\.?/.test(text)) {
    out = text
      .split(/Example\s?\d*\.?/)
      .map((s) => s.trim())
      .filter((s) => s !== '')
      .map(splitInputOutput);
  } else if (OUTPUT_RE.test(text)) {
    out = [splitInputOutput(text)];
  } else {
    out = [];
  }
  if (finishReason === 'length' && out.length > 0) out.pop();
  return out;
}

export interface AlpacaItem {
  instruction: string;
  input: string;
  output: string;
}

/**
 * Parses an Alpaca-style continuation. The prompt ended with "<start>. Instruction:", so the
 * response is prefixed with it before splitting on "###". Each block must split into exactly
 * Instruction / Input / Output; "<noinput>" means an empty input. The last block is skipped when
 * the response was cut off.
 */
export function parseAlpacaResponse(
  text: string,
  finishReason: string | null,
  start = 4,
): { items: AlpacaItem[]; unparseable: number; truncatedDropped: boolean } {
  const blocks = `${start}. Instruction:${text}`.split('###');
  const items: AlpacaItem[] = [];
  let unparseable = 0;
  let truncatedDropped = false;
  blocks.forEach((block, j) => {
    if (j === blocks.length - 1 && finishReason === 'length') {
      truncatedDropped = true;
      return;
    }
    const idx = start + j;
    const parts = block.split(new RegExp(`${idx}\\.\\s+(Instruction|Input|Output):`));
    if (parts.length !== 7) {
      if (block.trim() !== '') unparseable++;
      return;
    }
    const input = parts[4]!.trim();
    items.push({
      instruction: parts[2]!.trim(),
      input: input.toLowerCase() === '<noinput>' ? '' : input,
      output: parts[6]!.trim(),
    });
  });
  return { items, unparseable, truncatedDropped };
}
