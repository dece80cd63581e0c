// instructkit/data: instruction records, formats, templates, mixtures, splits, dedup.
export * from './records.ts';
