// A scripted OpenAI-compatible HTTP server on loopback for tests: each request is answered by a
// script (a function of the request), which can also inject faults (status codes with
// Retry-After, a hung connection, a truncated body). fakeLlm is a deterministic stand-in for a
// model that understands the Self-Instruct and Alpaca prompt formats.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hashString, Rng } from '../../src/util/rng.ts';

export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  /** JSON body. */
  body?: unknown;
  /** Raw body text (overrides body). */
  raw?: string;
  /** Never answer (the client must time out). */
  hang?: boolean;
  /** Send half of the JSON body, then close the connection. */
  truncate?: boolean;
}

export interface ScriptedRequest {
  path: string;
  // biome-ignore lint/suspicious/noExplicitAny: request bodies are arbitrary JSON in tests
  body: any;
  /** 1-based count of requests seen so far, this one included. */
  count: number;
  headers?: Record<string, string | string[] | undefined>;
}

export type Script = (req: ScriptedRequest) => Reply | Promise<Reply>;

export interface ScriptedServer {
  url: string;
  requests: ScriptedRequest[];
  close(): Promise<void>;
}

export async function startScriptedServer(script: Script): Promise<ScriptedServer> {
  const requests: ScriptedRequest[] = [];
  const hung = new Set<ServerResponse>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let data = '';
    req.on('data', (c) => {
      data += c;
    });
    req.on('end', async () => {
      const r: ScriptedRequest = {
        path: req.url ?? '',
        body: data ? JSON.parse(data) : null,
        count: requests.length + 1,
        headers: req.headers,
      };
      requests.push(r);
      const reply = await script(r);
      if (reply.hang) {
        hung.add(res);
        return;
      }
      const text = reply.raw ?? JSON.stringify(reply.body ?? {});
      res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', ...reply.headers });
      if (reply.truncate) {
        res.write(text.slice(0, Math.floor(text.length / 2)));
        res.destroy();
        return;
      }
      res.end(text);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    close: async () => {
      for (const res of hung) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------------------------
// A deterministic fake model

const VERBS = [
  'Describe',
  'Explain',
  'Summarize',
  'List',
  'Compare',
  'Classify',
  'Rewrite',
  'Suggest',
  'Estimate',
  'Translate',
  'Identify',
  'Outline',
  'Plan',
  'Evaluate',
  'Find',
];
const OBJECTS = [
  'the main idea of',
  'three uses for',
  'a short poem about',
  'the causes of',
  'a recipe for',
  'the differences between cats and',
  'a schedule for',
  'the sentiment of',
  'the risks of',
  'a name for',
  'the steps to repair',
  'an argument for',
];
const TOPICS = [
  'a rainy afternoon',
  'solar panels',
  'the history of bread',
  'learning a language',
  'city cycling',
  'a chess opening',
  'ocean tides',
  'a small garden',
  'remote work',
  'volcanoes',
  'public libraries',
  'a birthday party',
  'coffee brewing',
  'bird migration',
  'electric cars',
  'board games',
  'saving money',
  'mountain hiking',
];
const EXTRAS = [
  '',
  '',
  ' in two sentences',
  ' for a child',
  ' using simple words',
  ' as a table',
  ' with an example',
  ' in under 50 words',
];

function promptText(body: {
  prompt?: string | string[];
  messages?: { content: string }[];
}): string {
  if (body.messages) return body.messages.map((m) => m.content).join('\n');
  return Array.isArray(body.prompt) ? body.prompt.join('\n') : (body.prompt ?? '');
}

function instruction(rng: Rng): string {
  return `${rng.choice(VERBS)} ${rng.choice(OBJECTS)} ${rng.choice(TOPICS)}${rng.choice(EXTRAS)}.`;
}

/** Text the fake model writes for a prompt; deterministic in (prompt, seed). */
export function fakeText(prompt: string, seed: number): { text: string; finish: string } {
  const rng = new Rng(hashString(`${seed}\u0000${prompt}`));
  const listEnd = /\n(\d+)\.$/.exec(prompt);
  if (listEnd) {
    // Continue a Self-Instruct list: a few good instructions plus some the filters must catch.
    const start = Number(listEnd[1]);
    const items: string[] = [];
    for (let k = 0; k < 7; k++) {
      const roll = rng.float();
      if (roll < 0.08) items.push('Draw a picture of a horse.');
      else if (roll < 0.14) items.push('Say hi.');
      else if (roll < 0.18) items.push('"Quoted" tasks start with punctuation.');
      else items.push(instruction(rng));
    }
    const text = items.map((t, k) => (k === 0 ? ` ${t}` : `\n${start + k}. ${t}`)).join('');
    return { text, finish: 'stop' };
  }
  if (/\nClassification:$/.test(prompt))
    return { text: rng.float() < 0.3 ? ' Yes' : ' No', finish: 'stop' };
  if (prompt.endsWith('\n') && prompt.includes('\nTask: ')) {
    const last = prompt.slice(prompt.lastIndexOf('\nTask: ') + 7).trim();
    if (prompt.startsWith('For each classification task')) {
      return {
        text: `Class label: A\nText: ${last.slice(0, 20)} first\nClass label: B\nText: ${last.slice(0, 20)} second\n`,
        finish: 'stop',
      };
    }
    const n = 1 + rng.int(3);
    let text = '';
    for (let k = 1; k <= n; k++)
      text += `Example ${k}\nInput: ${rng.choice(TOPICS)} ${k}\nOutput: ${rng.choice(OBJECTS)} ${rng.choice(TOPICS)}\n`;
    return { text, finish: 'stop' };
  }
  const alpaca = /\n(\d+)\. Instruction:$/.exec(prompt);
  if (alpaca) {
    const start = Number(alpaca[1]);
    const blocks: string[] = [];
    for (let k = 0; k < 8; k++) {
      const idx = start + k;
      const inst = rng.float() < 0.1 ? 'Plot the graph of sales.' : instruction(rng);
      const input = rng.float() < 0.5 ? '<noinput>' : `Some context about ${rng.choice(TOPICS)}.`;
      const head = k === 0 ? ` ${inst}` : `${idx}. Instruction: ${inst}`;
      blocks.push(
        `${head}\n${idx}. Input:\n${input}\n${idx}. Output:\nAn answer about ${rng.choice(TOPICS)}.\n`,
      );
    }
    return { text: blocks.join('###\n'), finish: 'stop' };
  }
  return { text: ` echo ${rng.int(1000)}`, finish: 'stop' };
}

/** A Reply in OpenAI's shape for a completions or chat request, produced by fakeText. */
// biome-ignore lint/suspicious/noExplicitAny: request bodies are arbitrary JSON in tests
export function fakeLlm(req: { path: string; body: any }): Reply {
  const prompt = promptText(req.body);
  const { text, finish } = fakeText(prompt, req.body.seed ?? 0);
  const usage = {
    prompt_tokens: Math.ceil(prompt.length / 4),
    completion_tokens: Math.ceil(text.length / 4),
    total_tokens: Math.ceil(prompt.length / 4) + Math.ceil(text.length / 4),
  };
  if (req.path.endsWith('/chat/completions')) {
    return {
      body: {
        id: 'chatcmpl-fake',
        object: 'chat.completion',
        model: req.body.model,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: text.trimStart() },
            finish_reason: finish,
          },
        ],
        usage,
      },
    };
  }
  return {
    body: {
      id: 'cmpl-fake',
      object: 'text_completion',
      model: req.body.model,
      choices: [{ index: 0, text, finish_reason: finish, logprobs: null }],
      usage,
    },
  };
}
