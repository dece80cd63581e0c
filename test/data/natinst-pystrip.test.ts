import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeNatInst, parseNatInstTask } from '../../src/data/templates/natinst.ts';

test("Tk-Instruct encoding strips as Python's str.strip(), not String.trim()", () => {
  const t = parseNatInstTask(
    {
      Definition: ['\u001cReturn the capital.\u0085'],
      'Positive Examples': [{ input: '\u001fFrance\u001e', output: 'Paris\ufeff' }],
    },
    'task_x',
  );
  // U+001C..U+001F and U+0085 are Python whitespace (stripped); U+FEFF is not (kept, and as it
  // is not punctuation, a period follows it).
  assert.equal(
    encodeNatInst(t, '\ufeffChad\u2028', { positive: 1 }),
    'Definition: Return the capital.\n\n' +
      ' Positive Example 1 -\nInput: France.\n Output: Paris\ufeff.\n\n' +
      'Now complete the following example -\nInput: \ufeffChad.\nOutput: ',
  );
});
