// `instructkit serve` as a user starts it: --adapter merges a PEFT adapter (greedy text equal to
// the merged model's), --api-key-env names the variable holding the key (requests without it
// get 401), --max-body-bytes and --max-prompt-tokens set the request limits, and naming an unset
// variable is an error at startup, not a server without a key.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import OpenAI from 'openai';
import { generate } from '../../src/models/generate.ts';
import { CausalLM } from '../../src/models/lm.ts';
import { mergeLora, savePeftAdapter } from '../../src/models/peft.ts';
import { repoRoot } from '../helpers/shared.ts';
import { lm, randomAdapter, saveTinyModel, tokenizer } from './tiny-model.ts';

const bin = join(repoRoot, 'bin', 'instructkit.js');
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
});

test('serve --api-key-env naming an unset variable fails at startup, naming it', () => {
  const env = { ...process.env };
  delete env.IK_SERVE_KEY_UNSET;
  const r = spawnSync(
    process.execPath,
    [bin, 'serve', '--model', '/nonexistent', '--port', '0', '--api-key-env', 'IK_SERVE_KEY_UNSET'],
    { cwd: repoRoot, encoding: 'utf8', env, timeout: 60_000 },
  );
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /environment variable IK_SERVE_KEY_UNSET is not set/);
  assert.match(r.stderr, /field 'api-key-env'/);
  assert.doesNotMatch(r.stderr, /serving/);
});

test('serve --max-body-bytes 0 is refused at startup, naming the flag', () => {
  const r = spawnSync(
    process.execPath,
    [bin, 'serve', '--model', '/nonexistent', '--port', '0', '--max-body-bytes', '0'],
    { cwd: repoRoot, encoding: 'utf8', timeout: 60_000 },
  );
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /--max-body-bytes must be a positive integer, got 0/);
  assert.match(r.stderr, /field 'max-body-bytes'/);
});

test('serve --adapter DIR --api-key-env NAME --max-body-bytes --max-prompt-tokens: the merged model, behind the key, with the limits', async () => {
  const model = await saveTinyModel();
  const adapterDir = mkdtempSync(join(tmpdir(), 'ik-serve-cli-adapter-'));
  const adapter = randomAdapter();
  await savePeftAdapter(adapterDir, adapter);
  const child = spawn(
    process.execPath,
    [
      bin,
      'serve',
      '--model',
      model,
      '--adapter',
      adapterDir,
      '--port',
      '0',
      '--model-name',
      'tiny',
      '--api-key-env',
      'IK_SERVE_KEY',
      '--max-body-bytes',
      '5000',
      '--max-prompt-tokens',
      '100',
    ],
    { cwd: repoRoot, env: { ...process.env, IK_SERVE_KEY: 'sk-cli' }, stdio: 'pipe' },
  );
  children.push(child);
  let err = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (d) => {
      err += d;
      const m = /at (http:\/\/\S+\/v1)/.exec(err);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`serve exited with ${code}: ${err}`)));
  });
  assert.equal((await fetch(`${url}/models`)).status, 401);
  const client = new OpenAI({ baseURL: url, apiKey: 'sk-cli', maxRetries: 0 });
  const prompt = 'Hello number 33, the';
  const res = await client.completions.create({
    model: 'tiny',
    prompt,
    max_tokens: 10,
    temperature: 0,
  });
  const merged = new CausalLM(lm.spec, mergeLora(lm.weights, adapter), tokenizer);
  const [want] = await generate(merged, [prompt], { max_new_tokens: 10 });
  const [base] = await generate(lm, [prompt], { max_new_tokens: 10 });
  assert.equal(res.choices[0]!.text, want!.text);
  assert.notEqual(want!.text, base!.text, 'the adapter changes the greedy text');
  // --max-body-bytes: a larger body is refused with 413 in OpenAI's shape.
  const big = await fetch(`${url}/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-cli' },
    body: JSON.stringify({ model: 'tiny', prompt: 'x'.repeat(6000) }),
  });
  assert.equal(big.status, 413);
  assert.match(((await big.json()) as { error: { message: string } }).error.message, /5000 bytes/);
  // --max-prompt-tokens: prompts over the total are refused naming `prompt`.
  const long = 'Hello number 5, the weather is sunny today. '.repeat(6);
  assert.ok(2 * tokenizer.encode(long).length > 100);
  await assert.rejects(
    client.completions.create({ model: 'tiny', prompt: [long, long], max_tokens: 1 }),
    (e: unknown) =>
      e instanceof OpenAI.BadRequestError && e.param === 'prompt' && /at most 100/.test(e.message),
  );
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
});
