// Messages between the HTTP side of the server and the inference worker. The worker owns the
// model, the tokenizer and the library's step-level Decoder; the main thread only parses HTTP and
// streams what the worker reports, so the event loop stays free while the model computes.

export interface GenerateParams {
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  repetitionPenalty: number;
  /** OpenAI presence_penalty / frequency_penalty (absent = 0). */
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** OpenAI logit_bias: token id (a JSON key) → bias in [-100, 100]. */
  logitBias?: Record<string, number>;
  stop: string[];
  seed: number;
  /** Top alternatives per generated token (0 = just the chosen token's log-prob, -1 = none). */
  logprobs: number;
  /** Also return the prompt's tokens and their log-probs (completions echo). */
  echo: boolean;
}

/**
 * Counts prompt tokens before any job is built. Counting stops at the first prompt that is
 * empty or longer than `perPrompt` tokens, or once the running total passes `total`, so a
 * request that will be refused costs at most about `total` tokens of tokenizing.
 */
export interface CountLimits {
  perPrompt: number;
  total: number;
}

export type ToWorker =
  | { type: 'generate'; id: number; prompt: string; params: GenerateParams }
  | { type: 'cancel'; id: number }
  | { type: 'count'; id: number; prompts: string[]; limits: CountLimits };

export interface TokenInfo {
  text: string;
  logprob: number | null;
  /** Most likely alternatives, best first (texts may repeat: several tokens can decode alike). */
  top?: { text: string; logprob: number }[] | null;
  offset: number;
}

export type FromWorker =
  | {
      type: 'ready';
      modelType: string;
      maxPositions: number;
      chatTemplate: string | null;
      bos: string | null;
      eos: string | null;
    }
  | { type: 'delta'; id: number; text: string; tokens: TokenInfo[] }
  | {
      type: 'done';
      id: number;
      finish: 'stop' | 'length' | 'cancelled';
      promptTokens: number;
      completionTokens: number;
      echo?: TokenInfo[];
    }
  | { type: 'error'; id: number; status: number; message: string }
  /**
   * Token counts of the prompts counted, in order; the last may be a lower bound (`atLeast`)
   * when the prompt was too long to be worth tokenizing.
   */
  | { type: 'counted'; id: number; tokens: number[]; atLeast: boolean }
  | { type: 'fatal'; message: string };
