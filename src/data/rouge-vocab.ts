// Token interning for RougeLIndex: turns a text into rouge_score tokens as integer ids in one pass
// over its characters, without building a string per token. rouge_score tokens are [a-z0-9]+, so
// each is stored as bytes in one buffer and found through an open-addressing hash table. The
// tokenisation rule itself (and stemming) is rougeTokenize in rouge-core.ts; this must agree.
import { notText, rougeTokenize } from './rouge-core.ts';

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 16777619;

export class TokenVocab {
  /** Open-addressing table of id + 1 (0 = empty); its length is a power of two. */
  #table = new Int32Array(1 << 12);
  #hash = new Int32Array(1024);
  #start = new Int32Array(1024);
  #len = new Int32Array(1024);
  #bytes = new Uint8Array(1 << 15);
  #used = 0;
  #size = 0;
  /** The current token's bytes while scanning. */
  #buf = new Uint8Array(256);
  /** Ids of the last scan (-1 for a token not in the vocabulary); valid up to its return value. */
  ids = new Int32Array(256);

  /** Number of distinct tokens. */
  get size(): number {
    return this.#size;
  }

  /**
   * Tokenises `text` like rougeTokenize and leaves the ids in `this.ids`; returns the token
   * count. With `create`, unseen tokens are added; otherwise they get id -1.
   */
  scan(text: string, stemmer: boolean, create: boolean): number {
    if (typeof text !== 'string') throw notText(text);
    if (stemmer) return this.#scanStrings(rougeTokenize(text, { stemmer: true }), create);
    let count = 0;
    let n = 0;
    let h = FNV_OFFSET;
    let buf = this.#buf;
    const len = text.length;
    for (let i = 0; i <= len; i++) {
      let c = i < len ? text.charCodeAt(i) : 32;
      if ((c >= 97 && c <= 122) || (c >= 48 && c <= 57)) {
        // a token character as it is
      } else if (c >= 65 && c <= 90) {
        c += 32;
      } else if (c === 0x212a) {
        c = 107; // KELVIN SIGN lower-cases to 'k'
      } else {
        if (c === 0x130) {
          // 'İ' lower-cases to 'i' + U+0307, and the combining dot ends the token.
          if (n === buf.length) buf = this.#growBuf();
          buf[n++] = 105;
          h = Math.imul(h ^ 105, FNV_PRIME);
        }
        if (n > 0) {
          count = this.#emit(count, n, h, create);
          n = 0;
          h = FNV_OFFSET;
        }
        continue;
      }
      if (n === buf.length) buf = this.#growBuf();
      buf[n++] = c;
      h = Math.imul(h ^ c, FNV_PRIME);
    }
    return count;
  }

  #growBuf(): Uint8Array<ArrayBuffer> {
    const b = new Uint8Array(this.#buf.length * 2);
    b.set(this.#buf);
    this.#buf = b;
    return b;
  }

  #scanStrings(toks: readonly string[], create: boolean): number {
    let count = 0;
    for (const tok of toks) {
      if (tok.length > this.#buf.length) this.#buf = new Uint8Array(tok.length * 2);
      let h = FNV_OFFSET;
      for (let i = 0; i < tok.length; i++) {
        const c = tok.charCodeAt(i);
        this.#buf[i] = c;
        h = Math.imul(h ^ c, FNV_PRIME);
      }
      count = this.#emit(count, tok.length, h, create);
    }
    return count;
  }

  /** Looks up (and with `create` adds) the token in #buf[0..n) and appends its id. */
  #emit(count: number, n: number, h: number, create: boolean): number {
    if (count === this.ids.length) {
      const b = new Int32Array(count * 2);
      b.set(this.ids);
      this.ids = b;
    }
    const table = this.#table;
    const mask = table.length - 1;
    const buf = this.#buf;
    const hashes = this.#hash;
    const lens = this.#len;
    const starts = this.#start;
    const bytes = this.#bytes;
    let at = h & mask;
    for (;;) {
      const slot = table[at]!;
      if (slot === 0) break;
      const id = slot - 1;
      if (hashes[id] === h && lens[id] === n) {
        const s = starts[id]!;
        let k = 0;
        while (k < n && bytes[s + k] === buf[k]) k++;
        if (k === n) {
          this.ids[count] = id;
          return count + 1;
        }
      }
      at = (at + 1) & mask;
    }
    this.ids[count] = create ? this.#add(n, h, at) : -1;
    return count + 1;
  }

  #add(n: number, h: number, at: number): number {
    const id = this.#size++;
    if (id === this.#hash.length) {
      this.#hash = growInt(this.#hash, id * 2);
      this.#start = growInt(this.#start, id * 2);
      this.#len = growInt(this.#len, id * 2);
    }
    if (this.#used + n > this.#bytes.length) {
      const b = new Uint8Array(Math.max(this.#used + n, this.#bytes.length * 2));
      b.set(this.#bytes);
      this.#bytes = b;
    }
    this.#bytes.set(this.#buf.subarray(0, n), this.#used);
    this.#hash[id] = h;
    this.#start[id] = this.#used;
    this.#len[id] = n;
    this.#used += n;
    this.#table[at] = id + 1;
    // Keep the load factor under one half.
    if (this.#size * 2 > this.#table.length) this.#rehash();
    return id;
  }

  #rehash(): void {
    const table = new Int32Array(this.#table.length * 2);
    const mask = table.length - 1;
    for (let id = 0; id < this.#size; id++) {
      let at = this.#hash[id]! & mask;
      while (table[at] !== 0) at = (at + 1) & mask;
      table[at] = id + 1;
    }
    this.#table = table;
  }
}

function growInt(a: Int32Array<ArrayBuffer>, size: number): Int32Array<ArrayBuffer> {
  const b = new Int32Array(size);
  b.set(a);
  return b;
}
