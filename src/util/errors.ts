// Typed errors. Every error says what was expected, what was found, and where (file, line,
// field, op), plus a hint naming the next step. Stages throw these; the CLI prints them.

export interface ErrorLocation {
  /** File path the bad input came from. */
  file?: string;
  /** 1-based line number inside `file`. */
  line?: number;
  /** Dotted field path, e.g. `messages.2.role` or `learning_rate`. */
  field?: string;
}

export class InstructkitError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  constructor(code: string, message: string, opts: { hint?: string; cause?: unknown } = {}) {
    super(opts.hint ? `${message}\n  hint: ${opts.hint}` : message, { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.hint = opts.hint;
  }
}

function where(loc: ErrorLocation): string {
  const parts: string[] = [];
  if (loc.file !== undefined)
    parts.push(loc.line !== undefined ? `${loc.file}:${loc.line}` : loc.file);
  else if (loc.line !== undefined) parts.push(`line ${loc.line}`);
  if (loc.field !== undefined && loc.field !== '') parts.push(`field '${loc.field}'`);
  return parts.join(', ');
}

/** Bad data: a record that does not parse or validate. */
export class DataError extends InstructkitError {
  readonly file: string | undefined;
  readonly line: number | undefined;
  readonly field: string | undefined;
  constructor(
    message: string,
    loc: ErrorLocation = {},
    opts: { hint?: string; cause?: unknown } = {},
  ) {
    const w = where(loc);
    super('E_DATA', w ? `${w}: ${message}` : message, opts);
    this.file = loc.file;
    this.line = loc.line;
    this.field = loc.field;
  }
}

/** Bad configuration: unknown key, wrong type, impossible combination. */
export class ConfigError extends InstructkitError {
  readonly file: string | undefined;
  readonly field: string | undefined;
  constructor(
    message: string,
    loc: ErrorLocation = {},
    opts: { hint?: string; cause?: unknown } = {},
  ) {
    const w = where(loc);
    super('E_CONFIG', w ? `${w}: ${message}` : message, opts);
    this.file = loc.file;
    this.field = loc.field;
  }
}

/** Bad file format (safetensors, GGUF, tokenizer.json, ...). */
export class FormatError extends InstructkitError {
  readonly file: string | undefined;
  constructor(message: string, file?: string, opts: { hint?: string; cause?: unknown } = {}) {
    super('E_FORMAT', file ? `${file}: ${message}` : message, opts);
    this.file = file;
  }
}

/** Graph construction error: shape or dtype mismatch, named by op. */
export class ShapeError extends InstructkitError {
  readonly op: string;
  constructor(op: string, message: string, opts: { hint?: string } = {}) {
    super('E_SHAPE', `${op}: ${message}`, opts);
    this.op = op;
  }
}

/** Training diverged or hit a numeric problem. */
export class TrainingError extends InstructkitError {
  readonly step: number | undefined;
  constructor(message: string, step?: number, opts: { hint?: string; cause?: unknown } = {}) {
    super('E_TRAIN', step !== undefined ? `step ${step}: ${message}` : message, opts);
    this.step = step;
  }
}

/** Remote endpoint failure after retries, or an unusable response. */
export class EndpointError extends InstructkitError {
  readonly status: number | undefined;
  constructor(message: string, status?: number, opts: { hint?: string; cause?: unknown } = {}) {
    super('E_ENDPOINT', message, opts);
    this.status = status;
  }
}
