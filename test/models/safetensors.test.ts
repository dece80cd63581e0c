import assert from 'node:assert/strict';
import {
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { bf16BitsToF32, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits } from '../../src/models/half.ts';
import {
  readSafetensors,
  SafetensorsReader,
  writeSafetensors,
} from '../../src/models/safetensors.ts';
import {
  openSafetensorsDir,
  openSafetensorsIndex,
  writeSafetensorsDir,
} from '../../src/models/safetensors-shards.ts';
import { type TensorMap, tensorMapsEqual } from '../../src/models/tensor.ts';
import { FormatError } from '../../src/util/errors.ts';
import { Rng } from '../../src/util/rng.ts';
import { fixture } from '../helpers/shared.ts';

const dir = mkdtempSync(join(tmpdir(), 'ik-st-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function randomTensors(seed: number, shapes: Record<string, number[]>): TensorMap {
  const rng = new Rng(seed);
  const m: TensorMap = new Map();
  for (const [name, shape] of Object.entries(shapes)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) data[i] = rng.normal() * 3;
    m.set(name, { shape, data });
  }
  return m;
}

/** A file with a hand-made header (object or raw text) and `dataBytes` zero bytes of data. */
function rawFile(name: string, header: unknown, dataBytes: number, lenOverride?: bigint): string {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const h = Buffer.from(text, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lenOverride ?? BigInt(h.length));
  const p = join(dir, name);
  writeFileSync(p, Buffer.concat([len, h, Buffer.alloc(dataBytes)]));
  return p;
}

async function rejectsFormat(p: string, ...needles: string[]): Promise<void> {
  await assert.rejects(SafetensorsReader.open(p), (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${e}`);
    assert.ok(e.message.includes(p), `message should name the file: ${e.message}`);
    for (const n of needles)
      assert.ok(e.message.includes(n), `message should mention '${n}': ${e.message}`);
    return true;
  });
}

describe('half precision', () => {
  test('f16 bit patterns, rounding and specials', () => {
    assert.equal(f32ToF16Bits(1), 0x3c00);
    assert.equal(f32ToF16Bits(-2), 0xc000);
    assert.equal(f32ToF16Bits(65504), 0x7bff);
    assert.equal(f32ToF16Bits(65520), 0x7c00); // rounds up to inf
    assert.equal(f32ToF16Bits(2 ** -24), 0x0001); // smallest subnormal
    assert.equal(f32ToF16Bits(2 ** -25), 0x0000); // tie → even (zero)
    assert.equal(f32ToF16Bits(1.5 * 2 ** -25), 0x0001);
    assert.equal(f32ToF16Bits(0.1), 0x2e66);
    // 1 + 2^-11 is halfway between 1 and 1 + 2^-10: ties to even (1.0).
    assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00);
    assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02);
    assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(Number.NaN))));
    assert.equal(f16BitsToF32(0x7bff), 65504);
    assert.equal(f16BitsToF32(0x0001), 2 ** -24);
    for (let h = 0; h < 0x7c00; h += 7) assert.equal(f32ToF16Bits(f16BitsToF32(h)), h);
  });
  test('bf16 rounding', () => {
    assert.equal(f32ToBf16Bits(1), 0x3f80);
    assert.equal(bf16BitsToF32(0x3f80), 1);
    assert.equal(bf16BitsToF32(f32ToBf16Bits(1 + 2 ** -8)), 1); // tie → even
    assert.equal(bf16BitsToF32(f32ToBf16Bits(1 + 3 * 2 ** -8)), 1 + 2 ** -6);
    assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(Number.NaN))));
  });
});

describe('safetensors single file', () => {
  test('reads a file written independently by numpy (F32, F16, BF16, I64, metadata)', async () => {
    const r = await SafetensorsReader.open(fixture('models', 'small.safetensors'));
    try {
      assert.deepEqual(r.metadata, { format: 'pt', source: 'numpy' });
      assert.deepEqual(r.names(), ['a.weight', 'b.weight', 'c.bias', 'd.ids']);
      const a = await r.read('a.weight');
      assert.deepEqual(a.shape, [2, 3]);
      assert.deepEqual([...a.data], [-0.625, -0.375, -0.125, 0.125, 0.375, 0.625]);
      const b = await r.read('b.weight');
      assert.deepEqual([...b.data], [1, -2, f16BitsToF32(f32ToF16Bits(0.333)), 65504]);
      const c = await r.read('c.bias');
      // The fixture truncates 1e30 to its top 16 bits (numpy has no bf16 rounding).
      const trunc = bf16BitsToF32(new Uint32Array(new Float32Array([1e30]).buffer)[0] >>> 16);
      assert.deepEqual([...c.data], [3.140625, -0.0078125, trunc, 7]);
      const d = await r.readRaw('d.ids');
      assert.equal(d.dtype, 'I64');
      assert.deepEqual([...(d.data as BigInt64Array)], [1n, -2n, 3n]);
      await assert.rejects(r.read('d.ids'), FormatError);
    } finally {
      await r.close();
    }
  });

  test('write → read is bit-identical for F32; F16/BF16 give the rounded values', async () => {
    const t = randomTensors(1, { 'x.weight': [3, 5], 'y.bias': [7], scalar: [], empty: [0, 4] });
    const p = join(dir, 'rt.safetensors');
    await writeSafetensors(p, t, { metadata: { format: 'pt', note: 'hi' } });
    const buf = readFileSync(p);
    const n = Number(buf.readBigUInt64LE(0));
    assert.equal(n % 8, 0, 'header padded to 8 bytes');
    assert.equal(String.fromCharCode(buf[8]), '{');
    const back = await readSafetensors(p);
    assert.ok(tensorMapsEqual(back, t));
    for (const dtype of ['F16', 'BF16'] as const) {
      const q = join(dir, `rt-${dtype}.safetensors`);
      await writeSafetensors(q, t, { dtype });
      const r = await SafetensorsReader.open(q);
      assert.equal(r.entry('x.weight').dtype, dtype);
      const x = await r.read('x.weight');
      const enc = dtype === 'F16' ? f32ToF16Bits : f32ToBf16Bits;
      const dec = dtype === 'F16' ? f16BitsToF32 : bf16BitsToF32;
      const src = t.get('x.weight')!.data;
      for (let i = 0; i < src.length; i++) assert.equal(x.data[i], Math.fround(dec(enc(src[i]))));
      await r.close();
    }
  });

  test('reads only the requested byte ranges (sparse 3 GB file)', async () => {
    // A header that claims a 3 GB tensor; the file is sparse, so reading it whole would take
    // seconds and gigabytes. Reading the small tensor must not touch the big one.
    const big = 3 * 2 ** 30;
    const header = {
      small: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      big: { dtype: 'U8', shape: [big], data_offsets: [8, 8 + big] },
    };
    const p = rawFile('sparse.safetensors', header, 0);
    const h = JSON.stringify(header);
    truncateSync(p, 8 + Buffer.byteLength(h) + 8 + big);
    const r = await SafetensorsReader.open(p);
    const s = await r.read('small');
    assert.deepEqual([...s.data], [0, 0]);
    assert.deepEqual(r.entry('big').shape, [big]);
    await r.close();
  });
});

describe('safetensors hostile headers', () => {
  const ok = { t: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };
  test('header length larger than the file', async () => {
    await rejectsFormat(rawFile('long.st', ok, 8, 10_000n), 'larger than the rest of the file');
  });
  test('header length above the cap (no huge allocation)', async () => {
    await rejectsFormat(rawFile('huge.st', ok, 8, 2n ** 63n), 'exceeds');
  });
  test('file shorter than 8 bytes', async () => {
    const p = join(dir, 'tiny.st');
    writeFileSync(p, Buffer.from([1, 2, 3]));
    await rejectsFormat(p, 'less than the 8-byte');
  });
  test('header not starting with {', async () => {
    await rejectsFormat(rawFile('arr.st', '[1,2]', 0), "must start with '{'");
  });
  test('invalid JSON', async () => {
    await rejectsFormat(rawFile('bad.st', '{"t": {"dtype": ', 0), 'not valid JSON');
  });
  test('offsets out of range (truncated data)', async () => {
    await rejectsFormat(rawFile('trunc.st', ok, 4), "tensor 't'", 'run past');
  });
  test('overlapping tensors', async () => {
    const h = {
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    };
    await rejectsFormat(rawFile('overlap.st', h, 12), "tensor 'b'", 'overlaps');
  });
  test('uncovered bytes (hole and trailing)', async () => {
    const h = {
      a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
      b: { dtype: 'F32', shape: [1], data_offsets: [8, 12] },
    };
    await rejectsFormat(rawFile('hole.st', h, 12), "tensor 'b'", 'belong to no tensor');
    await rejectsFormat(rawFile('trail.st', ok, 16), 'trailing bytes');
  });
  test('shape × dtype size differs from byte length', async () => {
    const h = { w: { dtype: 'F16', shape: [3], data_offsets: [0, 8] } };
    await rejectsFormat(rawFile('size.st', h, 8), "tensor 'w'", 'needs 6 bytes');
  });
  test('duplicate names', async () => {
    const text =
      '{"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "w": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}';
    await rejectsFormat(rawFile('dup.st', text, 2), "duplicate tensor name 'w'");
  });
  test('unknown dtype and bad fields', async () => {
    const h = { w: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } };
    await rejectsFormat(rawFile('dtype.st', h, 1), "tensor 'w'", 'unsupported dtype');
    const h2 = { w: { dtype: 'U8', shape: [-1], data_offsets: [0, 1] } };
    await rejectsFormat(rawFile('neg.st', h2, 1), "tensor 'w'", 'shape');
    const h3 = { __metadata__: { a: 1 } };
    await rejectsFormat(rawFile('meta.st', h3, 0), '__metadata__.a');
  });
});

describe('sharded safetensors', () => {
  const t = randomTensors(2, {
    'model.embed_tokens.weight': [16, 8],
    'model.layers.0.mlp.up_proj.weight': [12, 8],
    'model.layers.0.mlp.down_proj.weight': [8, 12],
    'model.norm.weight': [8],
    'lm_head.weight': [16, 8],
  });

  test('writes shards under the size cap plus an index, reads back identical', async () => {
    const d = mkdtempSync(join(dir, 'shard-'));
    const files = await writeSafetensorsDir(d, t, { maxShardBytes: 600 });
    const names = readdirSync(d).sort();
    assert.ok(names.includes('model.safetensors.index.json'));
    const shards = names.filter((n) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(n));
    assert.equal(shards.length, files.length - 1);
    assert.ok(shards.length >= 3, `expected several shards, got ${shards.length}`);
    const index = JSON.parse(readFileSync(join(d, 'model.safetensors.index.json'), 'utf8'));
    const total = [...t.values()].reduce((a, x) => a + x.data.length * 4, 0);
    assert.equal(index.metadata.total_size, total);
    assert.deepEqual(Object.keys(index.weight_map).sort(), [...t.keys()].sort());
    const src = await openSafetensorsDir(d);
    assert.ok(tensorMapsEqual(await src.readAll(), t));
    await src.close();
  });

  test('a small model stays in one model.safetensors', async () => {
    const d = mkdtempSync(join(dir, 'one-'));
    await writeSafetensorsDir(d, t, { dtype: 'BF16' });
    assert.deepEqual(readdirSync(d), ['model.safetensors']);
    const src = await openSafetensorsDir(d);
    assert.equal(src.entry('lm_head.weight').dtype, 'BF16');
    await src.close();
  });

  test('a missing shard is named in the error', async () => {
    const d = mkdtempSync(join(dir, 'miss-'));
    await writeSafetensorsDir(d, t, { maxShardBytes: 600 });
    rmSync(join(d, 'model-00002-of-00004.safetensors'));
    await assert.rejects(
      openSafetensorsIndex(join(d, 'model.safetensors.index.json')),
      (e: unknown) => {
        assert.ok(e instanceof FormatError);
        assert.match(e.message, /shard file 'model-00002-of-00004\.safetensors'.*missing/);
        return true;
      },
    );
  });

  test('an index that maps a tensor to the wrong shard, or escapes the folder', async () => {
    const d = mkdtempSync(join(dir, 'wrong-'));
    await writeSafetensorsDir(d, t, { maxShardBytes: 600 });
    const ip = join(d, 'model.safetensors.index.json');
    const index = JSON.parse(readFileSync(ip, 'utf8'));
    index.weight_map['model.norm.weight'] = 'model-00001-of-00004.safetensors';
    index.weight_map['lm_head.weight'] = 'model-00001-of-00004.safetensors';
    writeFileSync(ip, JSON.stringify(index));
    await assert.rejects(openSafetensorsIndex(ip), /does not hold it/);
    index.weight_map['lm_head.weight'] = '../evil.safetensors';
    writeFileSync(ip, JSON.stringify(index));
    await assert.rejects(openSafetensorsIndex(ip), /not a plain file name/);
  });
});
