// Jinja2 filters and str methods with Python string semantics, against renders by Jinja2 3.x
// (scripts/fixtures/jinja_filters_expected.py, Debian's python3-jinja2; Python is not run here).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { JinjaRenderError, JinjaTemplate } from '../../src/data/templates/jinja.ts';
import { PyRandom } from '../../src/util/pyrandom.ts';
import { fixture } from '../helpers/shared.ts';

const want = JSON.parse(readFileSync(fixture('jinja', 'filters_expected.json'), 'utf8')) as {
  cases: { template: string; context: Record<string, unknown>; render: string }[];
};

// Context numbers that are floats in Python but integral in JSON would lose their type; the
// fixture's floats all have a fraction, so toRuntime's integer test is enough.
for (const c of want.cases) {
  test(`Jinja2 renders ${c.template} as Python does`, () => {
    const got = new JinjaTemplate(c.template).render(c.context, { rng: new PyRandom(0) });
    assert.equal(got, c.render);
  });
}

test('round filter rejects an unknown method and a non-number', () => {
  const r = (src: string, ctx: Record<string, unknown>) =>
    new JinjaTemplate(src).render(ctx, { rng: new PyRandom(0) });
  assert.throws(() => r("{{ x|round(1, 'up') }}", { x: 1.5 }), JinjaRenderError);
  assert.throws(() => r('{{ x|round }}', { x: 'a' }), JinjaRenderError);
});

test("a filter's arguments are evaluated once (one RNG draw for choice inside default/indent)", () => {
  const xs = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'];
  const r = new PyRandom(0);
  const want = [0, 1, 2].map(() => xs[r.randbelow(xs.length)]!);
  const got = new JinjaTemplate(
    '{{ missing|default(xs|choice) }} {{ 3|string|indent(xs|choice|length) }}{{ xs|choice }}',
  ).render({ xs }, { rng: new PyRandom(0) });
  assert.equal(got, `${want[0]} 3${want[2]}`);
});

test('first / last of an empty sequence render as Jinja2 Undefined (empty), not a TypeError', () => {
  const r = (src: string, ctx: Record<string, unknown>) =>
    new JinjaTemplate(src).render(ctx, { rng: new PyRandom(0) });
  assert.equal(r('[{{ xs|first }}][{{ xs|last }}]', { xs: [] }), '[][]');
  assert.equal(r('[{{ s|first }}][{{ s|last }}]', { s: '' }), '[][]');
  assert.equal(r('{{ s|first }}{{ s|last }}', { s: '😀ab😀' }), '😀😀');
  assert.equal(r('{{ (xs|first) is defined }}', { xs: [] }), 'False');
});
